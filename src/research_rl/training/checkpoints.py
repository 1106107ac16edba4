"""Atomic checkpoints in ``<run>/checkpoints/step_N/``.

A checkpoint is written into ``checkpoints/.partial/`` first, every file is fsynced, a completion
marker (``COMPLETE.json``) is written and fsynced last, and only then is the directory renamed into
place (one atomic rename on the same filesystem). A run killed at any moment leaves either the
previous checkpoints untouched or a ``.partial`` directory that nothing ever loads: resume only
considers ``step_N`` directories that hold the marker.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

MARKER = "COMPLETE.json"
PARTIAL_DIR = ".partial"
_STEP_RE = re.compile(r"^step_(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from."""


def checkpoints_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file, then every directory bottom-up, so the data is on disk before the
    rename."""
    for dirpath, _, filenames in os.walk(root, topdown=False):
        for name in filenames:
            _fsync_path(Path(dirpath) / name)
        _fsync_path(Path(dirpath))


def finalize(staged: Path, run_dir: str | Path, step: int) -> Path:
    """Seal a fully written checkpoint directory and move it to ``checkpoints/step_<step>``."""
    final = checkpoints_dir(run_dir) / f"step_{step}"
    files = sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file())
    fsync_tree(staged)
    marker = staged / MARKER
    with marker.open("w", encoding="utf-8") as f:
        json.dump({"step": step, "files": files, "time": time.time()}, f)
        f.flush()
        os.fsync(f.fileno())
    _fsync_path(staged)
    if final.exists():  # a same-step checkpoint from an earlier attempt: replace it
        shutil.rmtree(final)
    os.replace(staged, final)
    _fsync_path(final.parent)
    return final


def is_complete(path: Path) -> bool:
    marker = path / MARKER
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return all((path / f).is_file() for f in info.get("files", []))


def complete_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint, oldest first; partial ones are skipped."""
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_RE.match(p.name)
        if m and p.is_dir() and is_complete(p):
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    done = complete_checkpoints(run_dir)
    return done[-1][1] if done else None


def prune(run_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` complete checkpoints, and any leftover partial write."""
    for _, path in complete_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def clear_partial(run_dir: str | Path) -> list[Path]:
    """Remove what a killed save left behind (the staging directory, unsealed step directories);
    returns the unsealed step directories removed."""
    root = checkpoints_dir(run_dir)
    shutil.rmtree(root / PARTIAL_DIR, ignore_errors=True)
    removed = []
    if root.is_dir():
        for p in root.iterdir():
            if _STEP_RE.match(p.name) and p.is_dir() and not is_complete(p):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed
