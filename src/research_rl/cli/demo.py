"""``research demo`` and ``research ask``: the embedded default run and asking its model."""

import typer


def demo() -> None:
    """Learn to search on a synthetic world on a laptop CPU (arrives with issue 5)."""
    raise typer.Exit("not implemented yet: arrives with the demo issue")


def ask() -> None:
    """Ask a trained run a question (arrives with issue 5)."""
    raise typer.Exit("not implemented yet: arrives with the demo issue")
