"""``research train``: GRPO training with search."""

import typer


def train() -> None:
    """Train with GRPO (arrives with issue 4)."""
    raise typer.Exit("not implemented yet: arrives with the training issue")
