"""Ids that line up with FlashRAG's and Search-R1's for the same question, so results join.

FlashRAG's collection (and Search-R1's data, made from it) ids every question ``<split>_<n>``.
Releases that ship no ids take theirs from a map of question digest
(:func:`~research_rl.data.question_text.question_digest`) to id, shipped in ``id_maps/``:

- ``nq.json``: NQ-open's dev set is FlashRAG's and Search-R1's NQ test (NQ's own test answers are
  not public), in another order; built from Search-R1's ``nq_search/test.parquet``.
- ``bamboogle.json``: Bamboogle's CSV is FlashRAG's Bamboogle test in the same order; built from
  the CSV (``test_0`` is its first row).

A row the map does not know keeps the positional id ``<dataset>-<split>-<row>``. ``research data
prepare --ids-from FILE`` maps every row (own ids too, kept as ``metadata.source_id``) to the ids
of any file with ids, such as a FlashRAG split. A map holds digests, not question text; the
shipped ones are rebuilt with :func:`id_map_from_file` / :func:`id_map_from_pairs` and
:func:`write_id_map`, and a test checks they equal what the released files give.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from research_rl.data.formats import DatasetFormatError, iter_records
from research_rl.data.question_text import question_digest

_SHIPPED = Path(__file__).parent / "id_maps"

# dataset -> (shipped map, the splits whose release it is)
BUILTIN: dict[str, tuple[str, tuple[str, ...]]] = {
    "nq": ("nq.json", ("dev", "test")),
    "bamboogle": ("bamboogle.json", ("test",)),
}


@dataclass
class IdMap:
    reference: str  # where the ids come from, for the report
    ids: dict[str, str]  # question digest -> id
    every_row: bool = False  # True: replace rows' own ids too (--ids-from); else id-less rows only
    ambiguous: int = 0  # reference questions left out: the same question under several ids
    looked_up: int = 0  # rows that asked the map for an id, for the report
    found: int = 0

    def lookup(self, question: str) -> str | None:
        found = self.ids.get(question_digest(question))
        self.looked_up += 1
        self.found += found is not None
        return found

    def to_json(self) -> dict:
        return {"reference": self.reference, "ids": self.ids}


def builtin_id_map(dataset: str, split: str) -> IdMap | None:
    """The shipped map for ``dataset``'s release of ``split``, if there is one."""
    entry = BUILTIN.get(dataset)
    if entry is None or split not in entry[1]:
        return None
    return read_id_map(_SHIPPED / entry[0])


def shipped_id_map(dataset: str) -> IdMap | None:
    """The shipped map for ``dataset``, whatever the split (the audit reads files unnamed)."""
    entry = BUILTIN.get(dataset)
    return read_id_map(_SHIPPED / entry[0]) if entry else None


def read_id_map(path: str | Path) -> IdMap:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return IdMap(reference=data["reference"], ids=data["ids"])


def write_id_map(id_map: IdMap, path: str | Path) -> None:
    text = json.dumps(id_map.to_json(), indent=0, ensure_ascii=False)
    Path(path).write_text(text + "\n", encoding="utf-8")


def id_map_from_pairs(pairs: Iterable[tuple[str, str]], reference: str) -> IdMap:
    """From ``(id, question)`` pairs; a question found under two ids maps to neither."""
    ids: dict[str, str] = {}
    clashes: set[str] = set()
    for qid, question in pairs:
        digest = question_digest(question)
        if digest in ids and ids[digest] != qid:
            clashes.add(digest)
        ids.setdefault(digest, qid)
    for digest in clashes:
        del ids[digest]
    return IdMap(reference=reference, ids=ids, ambiguous=len(clashes))


def id_map_from_file(path: str | Path, every_row: bool = True) -> IdMap:
    """The ids of a file that has them (FlashRAG/Search-R1 rows, prepared question files)."""

    def pairs():
        for where, row in iter_records(path):
            qid, question = row.get("id", row.get("_id")), row.get("question")
            if isinstance(qid, bool) or not isinstance(qid, (str, int)):
                raise DatasetFormatError(f"{where}: field 'id': an id file needs an id on each row")
            if not isinstance(question, str):
                raise DatasetFormatError(f"{where}: field 'question': expected a string")
            yield str(qid), question

    id_map = id_map_from_pairs(pairs(), str(path))
    id_map.every_row = every_row
    return id_map
