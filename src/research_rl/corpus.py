"""The corpus format: JSONL, one passage a line.

``{"id": str, "contents": "Title\\ntext"}`` (the FlashRAG / Search-R1 convention: the first line is
the title), or ``{"id", "title", "text"}``. Read streaming; a bad line is an error naming the file,
the line number and what is wrong.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from research_rl.run_dir import iter_jsonl, jsonl_lines


class CorpusError(ValueError):
    """A corpus file with a malformed line."""


@dataclass(frozen=True)
class Passage:
    id: str
    contents: str  # "Title\ntext"

    @property
    def title(self) -> str:
        return self.contents.split("\n", 1)[0]

    @property
    def text(self) -> str:
        parts = self.contents.split("\n", 1)
        return parts[1] if len(parts) > 1 else ""

    @classmethod
    def from_title_text(cls, id: str, title: str, text: str) -> Passage:
        return cls(id=id, contents=f"{title}\n{text}")

    def to_json(self) -> dict:
        return {"id": self.id, "contents": self.contents}


def parse_passage(row: object, where: str) -> Passage:
    """Turn one decoded JSON row into a Passage; ``where`` names it in errors."""
    if not isinstance(row, dict):
        raise CorpusError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if "id" not in row:
        raise CorpusError(f"{where}: missing field 'id'")
    pid = row["id"]
    if not isinstance(pid, (str, int)) or isinstance(pid, bool):
        raise CorpusError(f"{where}: field 'id' must be a string, got {type(pid).__name__}")
    if "contents" in row:
        contents = row["contents"]
        if not isinstance(contents, str):
            raise CorpusError(f"{where}: field 'contents' must be a string")
        return Passage(id=str(pid), contents=contents)
    if "text" in row:
        title, text = row.get("title", ""), row["text"]
        if not isinstance(title, str) or not isinstance(text, str):
            raise CorpusError(f"{where}: fields 'title' and 'text' must be strings")
        return Passage.from_title_text(str(pid), title, text)
    raise CorpusError(f"{where}: needs 'contents', or 'title' and 'text'")


def read_corpus(path: str | Path) -> Iterator[Passage]:
    """Stream passages from a JSONL corpus; blank lines are skipped."""
    for where, row in iter_jsonl(path, CorpusError):
        yield parse_passage(row, where)


def write_corpus(passages, path: str | Path) -> None:
    Path(path).write_text(jsonl_lines(p.to_json() for p in passages), encoding="utf-8")


def file_checksum(path: str | Path) -> str:
    """sha256 of a file, streamed (index manifests pin the corpus they were built from)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
