"""Reading JSONL files line by line, naming ``file:line`` in every error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


def iter_jsonl(
    path: str | Path, error: type[Exception] = ValueError, encoding: str = "utf-8"
) -> Iterator[tuple[str, object]]:
    """Yield ``("file:line", decoded row)`` for each non-blank line; invalid JSON raises ``error``
    naming the file and line."""
    path = Path(path)
    with path.open(encoding=encoding) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise error(f"{where}: invalid JSON ({err.msg})") from None
            yield where, row
