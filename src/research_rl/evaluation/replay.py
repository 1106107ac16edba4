"""Retrieval recording and replay: a run's searches kept so it can be re-run without the index.

A store is a directory:

- ``store.json``: the retriever and corpus the answers came from (the card's sections), so a store
  is never filled or replayed under another retriever;
- ``queries.jsonl``: one line per distinct search, keyed by the sha256 of ``[query, topk]``, with
  the hits as ``[passage id, score, sha256 of the passage's contents]``;
- ``passages.jsonl``: each passage's contents once, keyed by their sha256.

Keys are content addresses, so one store can collect the searches of many runs over the same
retriever, and be shared with people who cannot host the index. :class:`RecordingRetriever` wraps
a live retriever and adds what it answers; :class:`ReplayRetriever` answers from the store alone
and stops the run (:class:`ReplayMissError`, not a retriever error, so the rollout cannot turn it
into a failed search, ``retriever_error``) on a search the store has not seen.

A retriever answers each search the same way (index search is deterministic), so the store keeps
the first answer to each key; an answer that differs later is counted in ``conflicts``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from research_rl.config import ConfigError
from research_rl.corpus import Passage
from research_rl.evaluation.card import differences
from research_rl.retrieval.base import Hit, Retriever
from research_rl.run_dir import RETRIEVAL, append_jsonl, iter_jsonl, write_json_atomic

STORE_DIR = RETRIEVAL  # inside a run directory
STORE_FORMAT = 1
_STORE_FILE, _QUERIES, _PASSAGES = "store.json", "queries.jsonl", "passages.jsonl"


class ReplayMissError(ConfigError):
    """Replay met a search its store does not hold: the store is not this run's recording."""


class StoreError(ConfigError):
    """A retrieval store that is damaged or belongs to another retriever."""


def search_key(query: str, topk: int) -> str:
    return hashlib.sha256(json.dumps([query, topk], ensure_ascii=False).encode()).hexdigest()


def content_key(contents: str) -> str:
    return hashlib.sha256(contents.encode("utf-8")).hexdigest()


def resolve_store(path: str | Path) -> Path:
    """A store directory, or a run directory holding one under ``retrieval/``."""
    p = Path(path)
    return p / STORE_DIR if (p / STORE_DIR / _STORE_FILE).is_file() else p


class RetrievalStore:
    """The on-disk store, loaded into memory; additions are appended and flushed as they come."""

    def __init__(self, path: str | Path, retriever: Mapping[str, Any] | None = None) -> None:
        """Open (or create) the store at ``path``. With ``retriever`` (the card's retriever and
        corpus sections) the store must have been recorded from that retriever, or be new."""
        self.path = Path(path)
        self._lock = threading.Lock()
        self.searches: dict[str, list[list[Any]]] = {}
        self.passages: dict[str, str] = {}
        self.conflicts = 0
        meta = self.path / _STORE_FILE
        if meta.is_file():
            try:
                self.meta = json.loads(meta.read_text(encoding="utf-8"))
            except ValueError as err:
                raise StoreError(f"{meta}: not a retrieval store description ({err})") from None
            if retriever is not None and self.meta.get("retriever") != dict(retriever):
                cards = [{"protocol": self.meta.get("retriever") or {}}, {"protocol": retriever}]
                listed = "; ".join(str(d) for d in differences(cards)) or "unknown retriever"
                raise StoreError(
                    f"{self.path}: this retrieval store was recorded from another retriever "
                    f"({listed}); record into another --retrieval-store"
                )
            self._load()
        elif retriever is None:
            raise StoreError(
                f"{self.path}: not a retrieval store (no {_STORE_FILE}); pass a store, or the run "
                f"directory of a recorded run (it holds {STORE_DIR}/)"
            )
        else:
            self.meta = {"format": STORE_FORMAT, "retriever": dict(retriever)}
            self.path.mkdir(parents=True, exist_ok=True)
            # Ranks open one store at once: a rank must never read another's half-written file.
            write_json_atomic(meta, self.meta)

    @property
    def retriever(self) -> dict[str, Any]:
        return dict(self.meta.get("retriever") or {})

    def _load(self) -> None:
        for where, row in _rows(self.path / _QUERIES):
            if not isinstance(row, dict) or "key" not in row or "hits" not in row:
                raise StoreError(f"{where}: not a recorded search")
            self.searches.setdefault(row["key"], row["hits"])
        for where, row in _rows(self.path / _PASSAGES):
            if not isinstance(row, dict) or "sha256" not in row or "contents" not in row:
                raise StoreError(f"{where}: not a recorded passage")
            self.passages[row["sha256"]] = row["contents"]

    def __len__(self) -> int:
        return len(self.searches)

    def add(self, query: str, topk: int, hits: list[Hit]) -> None:
        key = search_key(query, topk)
        entry = [[h.passage.id, h.score, content_key(h.passage.contents)] for h in hits]
        with self._lock:
            known = self.searches.get(key)
            if known is not None:
                if [k[0] for k in known] != [e[0] for e in entry]:
                    self.conflicts += 1
                return
            self.searches[key] = entry
            new = []
            for h, (_, _, sha) in zip(hits, entry, strict=True):
                if sha not in self.passages:
                    self.passages[sha] = h.passage.contents
                    new.append({"sha256": sha, "contents": h.passage.contents})
            # Passages first: a store cut short by a kill never holds a search without them.
            append_jsonl(self.path / _PASSAGES, new)
            append_jsonl(
                self.path / _QUERIES, [{"key": key, "query": query, "topk": topk, "hits": entry}]
            )

    def get(self, query: str, topk: int) -> list[Hit]:
        entry = self.searches.get(search_key(query, topk))
        if entry is None:
            raise ReplayMissError(
                f"replay: the search {query!r} (topk {topk}) is not in the retrieval store "
                f"{self.path}: the recorded run never sent it, so this run has left the recording "
                "(another model, prompt or setting, or a search that failed when recorded)"
            )
        try:
            return [
                Hit(Passage(pid, self.passages[sha]), float(score)) for pid, score, sha in entry
            ]
        except KeyError as err:
            raise StoreError(
                f"{self.path}: passage {err} of a recorded search is missing"
            ) from None


def _rows(path: Path) -> Iterator[tuple[str, Any]]:
    """A store file's rows (none before its first search); a last line a kill cut short is
    dropped from the file and recorded again when that search comes again."""
    if path.is_file():
        yield from iter_jsonl(path, StoreError, repair_cut_tail=True)


class RecordingRetriever:
    """A live retriever whose every answered search is added to a store."""

    def __init__(self, inner: Retriever, store: RetrievalStore) -> None:
        self.inner = inner
        self.store = store

    def search(self, queries: list[str], topk: int) -> list[list[Hit]]:
        results = self.inner.search(queries, topk)
        for query, hits in zip(queries, results, strict=False):
            if query.strip():  # empty queries reach no index: nothing to record
                self.store.add(query, topk, hits)
        return results

    def close(self) -> None:
        self.inner.close()


class ReplayRetriever:
    """Answers every search from a store; no index, no server."""

    def __init__(self, store: RetrievalStore) -> None:
        self.store = store

    def search(self, queries: list[str], topk: int) -> list[list[Hit]]:
        if topk < 1:
            raise ValueError(f"topk must be at least 1, got {topk}")
        return [self.store.get(q, topk) if q.strip() else [] for q in queries]

    def close(self) -> None:
        pass
