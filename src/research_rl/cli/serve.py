"""``research serve``: the retrieval HTTP service."""

import typer


def serve() -> None:
    """Serve an index over HTTP (arrives with issue 2)."""
    raise typer.Exit("not implemented yet: arrives with the retrieval issue")
