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
    split: Annotated[str, typer.Option(help="train, dev (= validation, val) or test")],
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
    ids_from: Annotated[
        Path | None,
        typer.Option(
            help="a file with ids for the same questions (a FlashRAG or Search-R1 split): every "
            "row whose question it has takes its id, the row's own kept as metadata.source_id"
        ),
    ] = None,
) -> None:
    """Prepare a dataset split as question JSONL ({id, question, golden_answers, metadata})."""
    from research_rl.data.prepare import prepare_file, prepare_hub
    from research_rl.questions import write_questions

    if source is not None:
        report = prepare_file(dataset, split, source, aliases, ids_from)
    elif ids_from is not None:
        raise typer.BadParameter("--ids-from needs --source (hub rows come with FlashRAG's ids)")
    else:
        report = prepare_hub(dataset, split, hub)
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
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
    """Build a closed corpus from the passages shipped with each question, de-duplicated.

    Files that carry passages: MuSiQue's released JSONL ('paragraphs'), HotpotQA's and
    2WikiMultiHopQA's released JSON and the hub's hotpot_qa rows ('context'), and FlashRAG rows
    that keep 'context' in metadata. Files that do not: FlashRAG's MuSiQue rows (only each hop's
    supporting paragraph), and every NQ, TriviaQA, PopQA and Bamboogle file.
    """
    from research_rl.corpus import write_corpus
    from research_rl.data.closed_corpus import build_closed_corpus

    built = build_closed_corpus(dataset, source)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_corpus(built.passages, out)
    for count in built.sources:
        typer.echo(f"{count.path}: {count.questions} questions, {count.passages} new passages")
    for note in built.notes:
        typer.echo(f"note: {note}")
    typer.echo(
        f"{len(built.passages)} passages from {built.questions} questions "
        f"({built.duplicates} duplicates and {built.empty} empty passages dropped); wrote {out}"
    )


@app.command("audit")
@user_errors
def audit(
    train: Annotated[Path, typer.Option(help="the training data: a released or question file")],
    eval_files: Annotated[
        list[Path],
        typer.Option("--eval", help="an evaluation file to check against it; repeat for several"),
    ],
    out: Annotated[
        Path | None, typer.Option(help="write the report here as JSON (for evaluation cards)")
    ] = None,
) -> None:
    """Contamination audit: what of each evaluation file the training data already holds.

    Per evaluation file: questions with a training question's normalised text, questions with a
    training question's answer and wording, and questions whose gold supporting passages the
    training data carries.
    """
    import json

    from research_rl.data.audit import audit as run_audit
    from research_rl.data.audit import summary_lines

    report = run_audit(train, list(eval_files))
    for line in summary_lines(report):
        typer.echo(line)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        typer.echo(f"wrote {out}")
