"""The ``research`` command. Each subcommand lives in the module named after it; heavy imports
(torch, transformers) happen inside the commands so ``research --help`` stays instant."""

from __future__ import annotations

import typer

from research_rl.cli import data, demo, evaluate, index, model, report, rollout, serve, train

app = typer.Typer(
    name="research",
    help="Train language models to reason with search through reinforcement learning (ReSearch).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(index.app, name="index")
app.add_typer(data.app, name="data")
app.add_typer(model.app, name="model")
app.command("serve")(serve.serve)
app.command("rollout")(rollout.rollout)
app.command("train")(train.train)
app.command("demo")(demo.demo)
app.command("ask")(demo.ask)
app.add_typer(evaluate.app, name="eval")
app.command("report")(report.report)


def main() -> None:
    app()
