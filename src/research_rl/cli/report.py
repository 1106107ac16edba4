"""``research report``: a self-contained HTML report of a run directory."""

import typer


def report() -> None:
    """Write a run report (arrives with issue 7)."""
    raise typer.Exit("not implemented yet: arrives with the report issue")
