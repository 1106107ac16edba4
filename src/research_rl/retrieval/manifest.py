"""The manifest every index directory carries, and the checks run when an index is loaded.

An index is only meaningful together with the corpus and the encoder it was built from, so the
manifest pins both; loading refuses a mismatch instead of returning passages that do not belong.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from research_rl import __version__
from research_rl.config import StrictModel
from research_rl.retrieval.base import RetrieverError
from research_rl.retrieval.index_quality import Quality
from research_rl.run_dir import write_json_atomic

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


class IndexLoadError(RetrieverError):
    """An index directory that is missing, damaged, or does not match what the caller asked for."""


class Manifest(StrictModel):
    format_version: int = FORMAT_VERSION
    kind: Literal["bm25", "dense"]
    encoder: str | None  # None for BM25
    dimension: int | None  # embedding size; None for BM25
    num_docs: int
    corpus_checksum: str  # sha256 of the corpus file the index was built from
    corpus_source: str  # where it was built from (informational)
    created_with: str
    created_at: str
    options: dict[str, Any] = {}
    # An imported index reads its corpus and FAISS file where they are (no copy). Loading checks
    # their size and modification time; `research index verify` re-hashes the corpus in full.
    corpus_path: str | None = None
    corpus_size: int | None = None
    corpus_mtime_ns: int | None = None
    faiss_path: str | None = None
    faiss_size: int | None = None
    faiss_mtime_ns: int | None = None
    # Recall@k against exact search, memory and QPS, measured when the index was made.
    quality: Quality | None = None

    @classmethod
    def new(cls, **fields: Any) -> Manifest:
        return cls(
            created_with=f"research-rl {__version__}",
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **fields,
        )

    def write(self, index_dir: Path) -> None:
        # Staged and renamed: `research index verify` rewrites it beside a live server.
        write_json_atomic(index_dir / MANIFEST_NAME, self.model_dump())

    @classmethod
    def read(cls, index_dir: Path) -> Manifest:
        path = index_dir / MANIFEST_NAME
        if not index_dir.is_dir():
            raise IndexLoadError(f"{index_dir}: index directory not found")
        if not path.is_file():
            raise IndexLoadError(
                f"{index_dir}: not an index directory (no {MANIFEST_NAME}); "
                "build one with `research index build`"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise IndexLoadError(f"{path}: invalid JSON ({err.msg})") from None
        if isinstance(data, dict) and data.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
            raise IndexLoadError(
                f"{path}: index format version {data.get('format_version')!r} is not supported "
                f"(this research-rl reads version {FORMAT_VERSION}); rebuild the index"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            problems = "; ".join(
                f"'{'.'.join(str(p) for p in e['loc'])}': {e['msg']}" for e in err.errors()
            )
            raise IndexLoadError(f"{path}: invalid manifest: {problems}") from None

    def check_corpus(self, checksum: str, what: str) -> None:
        if checksum != self.corpus_checksum:
            raise IndexLoadError(
                f"{what} does not match the index: its sha256 is {checksum[:12]}…, the index was "
                f"built from a corpus with sha256 {self.corpus_checksum[:12]}… "
                f"({self.corpus_source}); rebuild the index or use the matching corpus"
            )

    def check_external_files(self, index_dir: Path) -> None:
        """The imported corpus and FAISS file are still the ones recorded (size and mtime: a
        full read of a 14 GB corpus at every start would cost minutes)."""
        for what, path, size, mtime in (
            ("corpus", self.corpus_path, self.corpus_size, self.corpus_mtime_ns),
            ("FAISS file", self.faiss_path, self.faiss_size, self.faiss_mtime_ns),
        ):
            if path is None:
                continue
            p = Path(path)
            if not p.is_file():
                raise IndexLoadError(f"{p}: the {what} imported into {index_dir} is not found")
            st = p.stat()
            if (size, mtime) != (st.st_size, st.st_mtime_ns):
                raise IndexLoadError(
                    f"{p}: the {what} imported into {index_dir} changed since the import (size "
                    f"{size} -> {st.st_size} bytes, mtime {_when(mtime)} -> {_when(st.st_mtime_ns)}"
                    f"); run `research index verify {index_dir}` to re-hash it, or import again"
                )

    def check_encoder(self, encoder: str | None, index_dir: Path) -> None:
        if encoder is None:
            return
        if self.kind != "dense":
            raise IndexLoadError(
                f"{index_dir}: an encoder ({encoder!r}) was requested but this is a {self.kind} "
                "index, which uses no encoder"
            )
        if encoder != self.encoder:
            raise IndexLoadError(
                f"{index_dir}: encoder mismatch: the index was built with {self.encoder!r}, "
                f"but {encoder!r} was requested; query embeddings from another encoder would "
                "not be comparable, so rebuild the index with that encoder"
            )


def _when(mtime_ns: int | None) -> str:
    if mtime_ns is None:
        return "unknown"
    return datetime.fromtimestamp(mtime_ns / 1e9, timezone.utc).isoformat(timespec="seconds")
