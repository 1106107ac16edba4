"""Passages of an index, read from its corpus copy on demand.

Only the byte offset of each passage's line is kept in memory (8 bytes a passage), so serving a
Wikipedia-sized corpus does not hold every passage as a Python object. Lines are read with
``os.pread``, which is safe from several threads at once.
"""

from __future__ import annotations

import json
import os
from array import array
from pathlib import Path

from research_rl.corpus import CorpusError, Passage, parse_passage


class PassageStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
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
        raw = os.pread(self._fd, self._lengths[i], self._starts[i])
        where = f"{self.path}:{self._linenos[i]}"
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
