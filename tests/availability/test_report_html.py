"""The HTML report is one self-contained file whose plots show what was measured."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from hakeeper.availability import report_html
from hakeeper.availability.measure import Report, measure
from hakeeper.availability.services import ResourceRule, ServiceRule, Services
from hakeeper.model.events import NodeJoined, NodeLost, ResourceFailed, ResourceStarted


def small_report() -> Report:
    events = [
        NodeJoined(0, "a"),
        ResourceStarted(0, "vip", "a"),
        ResourceFailed(5000, "vip", "a"),
        ResourceStarted(5100, "vip", "a"),
        NodeLost(10_000, "a"),
    ]
    services = Services(
        resources={"vip": ResourceRule("vip", exclusive=True)},
        services={"svc": ServiceRule("svc", ("vip",), 0.999)},
    )
    return measure(events, services, end=10_000)


def test_report_needs_nothing_from_the_network() -> None:
    page = report_html.render(small_report())
    assert not re.search(r"(src|href)=\"https?:", page)
    assert "<script" not in page


def test_report_is_well_formed_enough_to_parse() -> None:
    HTMLParser().feed(report_html.render(small_report()))


def test_timeline_draws_one_red_bar_per_outage() -> None:
    svg = report_html.timeline_svg(small_report())
    # service svc and resource vip are each down once (node a's end is the window's end).
    assert svg.count('fill="#d64541"') == 2


def test_outage_title_says_how_long() -> None:
    assert "down 1 min 40 s" in report_html.timeline_svg(small_report())


def test_nines_plot_marks_the_target() -> None:
    assert "<title>target 99.9%</title>" in report_html.nines_svg(small_report())


def test_missed_target_bar_is_red() -> None:
    # 100 s down in 10 000 s = 99 %, below the 99.9 % target.
    svg = report_html.nines_svg(small_report())
    assert re.search(r'fill="#d64541"><title>service svc: 99%', svg)


def test_budget_plot_is_skipped_without_targets() -> None:
    report = measure([ResourceStarted(0, "web", "a"), ResourceFailed(10, "web", "a")])
    assert "no budget" in report_html.budget_svg(report)
