"""Build index directories from a corpus and load them as in-process retrievers.

An index directory holds ``manifest.json``, ``corpus.jsonl`` (a byte copy of the corpus, so the
directory is self-contained and hits carry their passages) and the kind's own files (``bm25/`` or
``faiss.index``). Passages are read from the copy on demand (see ``passages.py``).
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from research_rl.corpus import CorpusError, file_checksum, read_corpus
from research_rl.retrieval.base import Hit
from research_rl.retrieval.manifest import IndexLoadError, Manifest
from research_rl.retrieval.passages import OFFSETS_FILE, PassageStore

CORPUS_COPY = "corpus.jsonl"
Kind = Literal["bm25", "dense"]


class _Backend(Protocol):
    num_docs: int

    def search(self, queries: list[str], k: int) -> list[list[tuple[int, float]]]: ...


def _count_passages(path: Path, source: str) -> int:
    """Check every line and that ids are unique, holding only the ids (the texts are streamed
    again when indexed)."""
    seen: set[str] = set()
    for p in read_corpus(path):
        if p.id in seen:
            raise CorpusError(f"{source}: duplicate passage id {p.id!r}")
        seen.add(p.id)
    return len(seen)


def build_index(
    corpus: str | Path,
    out_dir: str | Path,
    kind: Kind = "bm25",
    *,
    encoder: str | None = None,
    faiss: str = "flat",
    factory: str | None = None,
    max_ram: int | None = None,
    fast: bool = False,
    preset: str | None = None,
    pooling: str | None = None,
    query_prefix: str | None = None,
    passage_prefix: str | None = None,
    fp16: bool = False,
    quality_sample: int | None = None,
    batch_size: int = 64,
    hnsw_m: int = 32,
    k1: float = 1.5,
    b: float = 0.75,
    overwrite: bool = False,
    show_progress: bool = True,
) -> Manifest:
    """Build a ``kind`` index of ``corpus`` into ``out_dir`` and return its manifest.

    The index is written to a sibling temporary directory and moved into place at the end, so an
    interrupted build never leaves a directory that looks complete. Dense options: ``factory`` (a
    FAISS factory string) or ``max_ram`` (bytes; the most accurate type that fits) replace
    ``faiss``; ``preset``, ``pooling`` and the prefixes say how the encoder is called.
    """
    corpus, out_dir = Path(corpus), Path(out_dir)
    if kind not in ("bm25", "dense"):
        raise ValueError(f"unknown index kind {kind!r}; choose 'bm25' or 'dense'")
    dense_only = (encoder, query_prefix, passage_prefix, factory, max_ram, preset, pooling)
    if kind == "bm25" and (any(x is not None for x in dense_only) or fp16):
        raise ValueError(
            "--encoder, --factory, --max-ram, --preset, --pooling, --fp16 and the prefixes only "
            "apply to --kind dense"
        )
    if kind == "dense" and faiss not in ("flat", "hnsw"):
        raise ValueError(f"unknown FAISS index type {faiss!r}; choose 'flat' or 'hnsw'")
    if not corpus.is_file():
        raise FileNotFoundError(f"{corpus}: corpus file not found")
    tmp = start_index_dir(out_dir, overwrite)
    try:
        # Read the source (errors name the user's file), then keep a byte copy next to the index;
        # the manifest's checksum is the copy's, i.e. exactly what the index serves.
        num_docs = _count_passages(corpus, str(corpus))
        shutil.copyfile(corpus, tmp / CORPUS_COPY)
        if not num_docs:
            raise CorpusError(f"{corpus}: the corpus has no passages")
        common: dict[str, Any] = dict(
            kind=kind,
            num_docs=num_docs,
            corpus_checksum=file_checksum(tmp / CORPUS_COPY),
            corpus_source=str(corpus.resolve()),
        )
        texts = (p.contents for p in read_corpus(tmp / CORPUS_COPY))
        if kind == "bm25":
            from research_rl.retrieval.bm25 import BM25Index

            bm25 = BM25Index.build(texts, k1=k1, b=b, show_progress=show_progress)
            bm25.save(tmp)
            manifest = Manifest.new(
                encoder=None,
                dimension=None,
                options={
                    "k1": k1,
                    "b": b,
                    "method": "lucene",
                    "tokenizer": "lowercase-words-en-stopwords",
                },
                **common,
            )
        else:
            from research_rl.retrieval.dense import DenseIndex, canonical_encoder
            from research_rl.retrieval.encoder_presets import resolve_settings
            from research_rl.retrieval.index_quality import DEFAULT_SAMPLE

            name = canonical_encoder(encoder)
            settings = resolve_settings(name, preset, pooling, query_prefix, passage_prefix)
            built = DenseIndex.build(
                texts,
                num_docs,
                name,
                tmp,
                faiss_kind=faiss,
                factory=factory,
                max_ram=max_ram,
                fast=fast,
                pooling=settings.pooling,
                query_prefix=settings.query_prefix,
                passage_prefix=settings.passage_prefix,
                normalize=settings.normalize,
                fp16=fp16,
                batch_size=batch_size,
                hnsw_m=hnsw_m,
                quality_sample=DEFAULT_SAMPLE if quality_sample is None else quality_sample,
                show_progress=show_progress,
            )
            manifest = Manifest.new(
                encoder=name,
                dimension=built.index.dimension,
                options={**built.options, "preset": settings.preset, "notes": built.notes},
                quality=built.quality,
                **common,
            )
        finish_index_dir(tmp, out_dir, manifest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def start_index_dir(out_dir: Path, overwrite: bool) -> Path:
    """The temporary sibling an index is written to (refusing an existing ``out_dir`` unless
    ``overwrite``); :func:`finish_index_dir` moves it into place."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a directory")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir}: already exists and is not empty (use --overwrite)")
    tmp = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def finish_index_dir(tmp: Path, out_dir: Path, manifest: Manifest) -> None:
    manifest.write(tmp)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)


class IndexRetriever:
    """The in-process retriever: an index in this process's memory, passages read on demand.

    Thread-safe: searches are serialised, because the encoder and FAISS already use every core.
    """

    def __init__(
        self, manifest: Manifest, backend: _Backend, passages: PassageStore, index_dir: Path
    ):
        self.manifest = manifest
        self.index_dir = index_dir
        self._backend = backend
        self._passages = passages
        self._lock = threading.Lock()

    @property
    def kind(self) -> str:
        return self.manifest.kind

    @property
    def num_docs(self) -> int:
        return len(self._passages)

    def search(self, queries: list[str], topk: int) -> list[list[Hit]]:
        if topk < 1:
            raise ValueError(f"topk must be at least 1, got {topk}")
        # An empty or whitespace-only query (a model may emit <search></search>) has no hits,
        # whatever the index kind; only the others reach the index.
        asked = [i for i, q in enumerate(queries) if q.strip()]
        out: list[list[Hit]] = [[] for _ in queries]
        if not asked:
            return out
        with self._lock:
            rows = self._backend.search([queries[i] for i in asked], topk)
        for i, row in zip(asked, rows, strict=True):
            out[i] = [Hit(self._passages[d], score) for d, score in row]
        return out

    def close(self) -> None:
        self._passages.close()


def _open_passages(index_dir: Path, manifest: Manifest, verify_checksum: bool) -> PassageStore:
    if manifest.corpus_path is not None:  # imported: the corpus where it is, offsets stored
        offsets = index_dir / OFFSETS_FILE
        if not offsets.is_file():
            raise IndexLoadError(f"{index_dir}: missing {OFFSETS_FILE}; import the index again")
        return PassageStore(manifest.corpus_path, np.load(offsets, mmap_mode="r"))
    copy = index_dir / CORPUS_COPY
    if not copy.is_file():
        raise IndexLoadError(f"{index_dir}: missing {CORPUS_COPY}; the index is incomplete")
    if verify_checksum:
        manifest.check_corpus(file_checksum(copy), f"{copy} (the index's corpus copy)")
    return PassageStore(copy)


def load_index(
    index_dir: str | Path,
    *,
    corpus: str | Path | None = None,
    encoder: str | None = None,
    verify_checksum: bool = True,
) -> IndexRetriever:
    """Load an index directory after checking its manifest.

    ``corpus`` and ``encoder``, when given, must be the ones the index was built from.
    ``verify_checksum`` re-hashes the stored corpus copy to catch a damaged or replaced file;
    an imported corpus (too large to re-hash at every start) is checked by size and mtime, and
    re-hashed by :func:`verify_index`.
    """
    index_dir = Path(index_dir)
    manifest = Manifest.read(index_dir)
    if encoder is not None:
        from research_rl.retrieval.dense import canonical_encoder

        manifest.check_encoder(canonical_encoder(encoder), index_dir)
    manifest.check_external_files(index_dir)
    if corpus is not None:
        corpus = Path(corpus)
        if not corpus.is_file():
            raise FileNotFoundError(f"{corpus}: corpus file not found")
        # The imported corpus itself, unchanged in size and mtime (checked above), needs no hash.
        if manifest.corpus_path is None or corpus.resolve() != Path(manifest.corpus_path):
            manifest.check_corpus(file_checksum(corpus), f"corpus {corpus}")
    passages = _open_passages(index_dir, manifest, verify_checksum)
    backend: _Backend
    if manifest.kind == "bm25":
        from research_rl.retrieval.bm25 import SUBDIR, BM25Index

        if not (index_dir / SUBDIR).is_dir():
            raise IndexLoadError(f"{index_dir}: missing {SUBDIR}/; the index is incomplete")
        backend = BM25Index.load(index_dir)
    else:
        from research_rl.retrieval.dense import DenseIndex

        backend = DenseIndex.load(index_dir, manifest)
    if not (len(passages) == backend.num_docs == manifest.num_docs):
        raise IndexLoadError(
            f"{index_dir}: document count mismatch: manifest {manifest.num_docs}, "
            f"corpus copy {len(passages)}, {manifest.kind} index {backend.num_docs}"
        )
    return IndexRetriever(manifest, backend, passages, index_dir)


@dataclass(frozen=True)
class Verification:
    corpus: Path
    checksum: str
    restamped: bool  # the corpus's mtime had changed but not its contents; the manifest is updated


def verify_index(index_dir: str | Path) -> Verification:
    """Re-hash an index's corpus (the copy, or an imported corpus where it is) in full and compare
    it with the manifest. An imported corpus whose contents match after a change of mtime (a copy,
    a touch) gets its new size and mtime recorded, so loading accepts it again."""
    index_dir = Path(index_dir)
    manifest = Manifest.read(index_dir)
    corpus = Path(manifest.corpus_path) if manifest.corpus_path else index_dir / CORPUS_COPY
    if not corpus.is_file():
        raise IndexLoadError(f"{corpus}: the corpus of {index_dir} is not found")
    checksum = file_checksum(corpus)
    manifest.check_corpus(checksum, f"{corpus} (the corpus of {index_dir})")
    restamped = False
    if manifest.corpus_path is not None:
        st = corpus.stat()
        if (manifest.corpus_size, manifest.corpus_mtime_ns) != (st.st_size, st.st_mtime_ns):
            manifest.corpus_size, manifest.corpus_mtime_ns = st.st_size, st.st_mtime_ns
            manifest.write(index_dir)
            restamped = True
    manifest.check_external_files(index_dir)  # the FAISS file: size and mtime
    return Verification(corpus, checksum, restamped)
