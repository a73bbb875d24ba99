"""Command-line faces of hakeeper (typer + rich)."""
