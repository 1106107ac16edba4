"""``research data``: prepare question files and closed corpora from released datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from research_rl.cli.errors import user_errors

app = typer.Typer(help="Prepare datasets.", no_args_is_help=True)


@app.command("prepare")
@user_errors
def prepare(
    dataset: Annotated[
        str,
        typer.Option(help="musique, hotpotqa, 2wikimultihopqa, bamboogle, nq, triviaqa or popqa"),
    ],
    split: Annotated[str, typer.Option(help="train, dev (= validation) or test")],
    out: Annotated[Path, typer.Option(help="question JSONL to write")],
    source: Annotated[
        Path | None,
        typer.Option(
            help="the dataset's released file (JSON, JSONL, CSV, TSV, Parquet or FlashRAG JSONL); "
            "without it the split is loaded from the Hugging Face hub"
        ),
    ] = None,
    aliases: Annotated[
        Path | None,
        typer.Option(help="2WikiMultiHopQA id_aliases.json: adds answer aliases as golden answers"),
    ] = None,
    hub: Annotated[
        str,
        typer.Option(
            help="hub source without --source: 'flashrag' (RUC-NLPIR/FlashRAG_datasets) or "
            "'native' (the dataset's own hub release)"
        ),
    ] = "flashrag",
) -> None:
    """Prepare a dataset split as question JSONL ({id, question, golden_answers, metadata})."""
    from research_rl.data.prepare import prepare_file, prepare_hub
    from research_rl.questions import write_questions

    if source is not None:
        report = prepare_file(dataset, split, source, aliases)
    else:
        report = prepare_hub(dataset, split, hub)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_questions(report.questions, out)
    typer.echo(report.summary())
    typer.echo(f"wrote {out}")


@app.command("corpus")
@user_errors
def corpus(
    dataset: Annotated[str, typer.Option(help="musique, hotpotqa or 2wikimultihopqa")],
    source: Annotated[
        list[Path],
        typer.Option(help="released file(s) whose questions ship passages; repeat to merge splits"),
    ],
    out: Annotated[Path, typer.Option(help="corpus JSONL to write")],
) -> None:
    """Build a closed corpus from the passages shipped with each question, de-duplicated."""
    from research_rl.corpus import write_corpus
    from research_rl.data.closed_corpus import build_closed_corpus

    built = build_closed_corpus(dataset, source)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_corpus(built.passages, out)
    typer.echo(
        f"{len(built.passages)} passages from {built.questions} questions "
        f"({built.duplicates} duplicates and {built.empty} empty passages dropped); wrote {out}"
    )
