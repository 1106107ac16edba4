"""Run directories and the files in them: the names training, evaluation, the demo and the report
agree on, and the one way this project reads and writes JSON and JSONL.

Everything here is written to survive a killed process: whole files are staged and renamed into
place, appends go out as one ``write`` (the ranks of a distributed run share some files), and the
reader drops a last line that a kill cut short instead of failing the resume.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# What a training run writes (`research train`, the demo's GRPO stage).
CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
ROLLOUTS = "rollouts"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
# What an evaluation writes (`research eval`); the retrieval record is written by both.
CARD = "card.json"
PREDICTIONS = "predictions"
TIMINGS = "timings.json"
RETRIEVAL = "retrieval"
SUMMARY = "summary.json"


def rollout_file(run_dir: Path, step: int, validation: bool = False) -> Path:
    folder = Path(run_dir) / ROLLOUTS
    return (folder / "val" if validation else folder) / f"step_{step}.jsonl"


def iter_jsonl(
    path: str | Path,
    error: type[Exception] = ValueError,
    *,
    encoding: str = "utf-8",
    problems: list[str] | None = None,
    repair_cut_tail: bool = False,
) -> Iterator[tuple[str, Any]]:
    """Yield ``("file:line", decoded row)`` for each non-blank line.

    A line that is not JSON raises ``error`` naming the file and line, unless ``problems`` is
    given: then the message goes there and the line is skipped (readers that must show what they
    can, like the report). With ``repair_cut_tail`` a last line without its newline that does not
    parse is what a kill left behind: it is removed from the file and not reported, so the run
    that resumes rewrites it.
    """
    path = Path(path)
    if repair_cut_tail:
        _drop_cut_tail(path, encoding)
    with path.open(encoding=encoding, errors="replace" if problems is not None else "strict") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                message = f"{where}: invalid JSON ({err.msg})"
                if problems is None:
                    raise error(message) from None
                problems.append(message)
                continue
            yield where, row


def _drop_cut_tail(path: Path, encoding: str) -> None:
    """Remove a last line that has no newline and does not parse: what a kill left mid-write
    (measured in bytes, so a character cut in half is removed whole)."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    start = data.rfind(b"\n") + 1
    try:
        json.loads(data[start:].decode(encoding))
    except ValueError:  # invalid JSON or a cut multi-byte character
        with path.open("r+b") as f:
            f.truncate(start)


def jsonl_lines(rows: Iterable[Any]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def append_jsonl(path: Path, rows: Iterable[Any], sync: bool = False) -> None:
    """Append ``rows`` in one ``write``: lines from processes sharing the file never interleave.
    ``sync`` waits until they are on disk (what a resume will count as done)."""
    data = jsonl_lines(rows).encode("utf-8")
    if not data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:  # a regular file takes it in one call; the loop covers a short write
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a staged file beside it, synced, then renamed over it.
    The staged name is unique to this process, so two writers never share one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with staged.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(staged, path)


def write_jsonl_atomic(path: Path, rows: Iterable[Any]) -> None:
    write_text_atomic(path, jsonl_lines(rows))


def write_json_atomic(path: Path, obj: Any, indent: int = 2) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def read_json(path: Path, problems: list[str] | None = None) -> Any:
    """The decoded file; with ``problems`` an unreadable file is noted there and gives None."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        if problems is None:
            raise
        problems.append(f"{path}: cannot read JSON: {err}")
        return None
