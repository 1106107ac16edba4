"""``research data``: prepare question files and closed corpora from released datasets."""

import typer

app = typer.Typer(help="Prepare datasets.", no_args_is_help=True)


@app.command("prepare")
def prepare() -> None:
    """Prepare a dataset split (arrives with issue 6)."""
    raise typer.Exit("not implemented yet: arrives with the data issue")
