"""Passages of an index, read from its corpus on demand.

Only the byte offset and length of each passage's line are kept in memory (16 bytes a passage),
so serving a Wikipedia-sized corpus does not hold every passage as a Python object. Lines are read
with ``os.pread``, which is safe from several threads at once. An imported index stores the
offsets (found while hashing the corpus at import), so a start does not re-read the corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
from array import array
from pathlib import Path

import numpy as np

from research_rl.corpus import CorpusError, Passage, parse_passage

OFFSETS_FILE = "passages.offsets.npy"


def scan_corpus(path: Path, show_progress: bool = False) -> tuple[np.ndarray, str]:
    """One read of a corpus: every line checked as a passage, the (offset, length) of each
    non-blank line, and the file's sha256."""
    from tqdm.auto import tqdm

    h = hashlib.sha256()
    rows = array("q")
    offset = 0
    size = path.stat().st_size
    with (
        path.open("rb") as f,
        tqdm(total=size, desc="reading corpus", unit="B", unit_scale=True,
             disable=not show_progress) as bar,
    ):  # fmt: skip
        for lineno, line in enumerate(f, start=1):
            h.update(line)
            if line.strip():
                try:
                    row = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise CorpusError(f"{path}:{lineno}: invalid JSON") from None
                parse_passage(row, f"{path}:{lineno}")
                rows.extend((offset, len(line)))
            offset += len(line)
            if lineno % 100_000 == 0:
                bar.update(offset - bar.n)
        bar.update(offset - bar.n)
    return np.frombuffer(rows, dtype=np.int64).reshape(-1, 2).copy(), h.hexdigest()


class PassageStore:
    def __init__(self, path: str | Path, offsets: np.ndarray | None = None) -> None:
        self.path = Path(path)
        if offsets is not None:  # (offset, length) per passage, e.g. a memmap of OFFSETS_FILE
            self._starts, self._lengths = offsets[:, 0], offsets[:, 1]
            self._linenos = None
            self._fd = os.open(self.path, os.O_RDONLY)
            return
        # Passage i is the i-th non-blank line, as read_corpus numbers them.
        self._starts = array("q")
        self._lengths = array("q")
        self._linenos = array("q")
        offset = 0
        with self.path.open("rb") as f:
            for lineno, line in enumerate(f, start=1):
                if line.strip():
                    self._starts.append(offset)
                    self._lengths.append(len(line))
                    self._linenos.append(lineno)
                offset += len(line)
        self._fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, i: int) -> Passage:
        raw = os.pread(self._fd, int(self._lengths[i]), int(self._starts[i]))
        where = (
            f"{self.path}:{self._linenos[i]}"
            if self._linenos is not None
            else f"{self.path} (byte {int(self._starts[i])})"
        )
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CorpusError(f"{where}: invalid JSON (the index's corpus copy changed?)") from None
        return parse_passage(row, where)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()
