"""Availability: closed forms (calc, topology), measured figures (measure, services, report_html)
and the Monte Carlo simulation (simulate). See docs/availability.md."""
