"""``research index build``: build a BM25 or dense index from a corpus."""

import typer

app = typer.Typer(help="Build retrieval indexes.", no_args_is_help=True)


@app.command("build")
def build() -> None:
    """Build an index (arrives with issue 2)."""
    raise typer.Exit("not implemented yet: arrives with the retrieval issue")
