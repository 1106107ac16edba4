"""``research rollout``: run search-interleaved rollouts and write trajectories."""

import typer


def rollout() -> None:
    """Roll out a model with search (arrives with issue 3)."""
    raise typer.Exit("not implemented yet: arrives with the core issue")
