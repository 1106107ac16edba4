"""``research eval``: evaluate a model with search, without it, or with retrieve-once RAG."""

import typer


def evaluate() -> None:
    """Evaluate (arrives with issue 6)."""
    raise typer.Exit("not implemented yet: arrives with the evaluation issue")
