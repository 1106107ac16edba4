"""Split names: releases and hubs call the same split ``dev``, ``validation`` or ``val``."""

from __future__ import annotations

from research_rl.data.formats import DatasetFormatError

SPLITS = ("train", "dev", "test")
_ALIASES = {"validation": "dev", "val": "dev", "valid": "dev"}


def canonical_split(name: str) -> str:
    """``train``, ``dev`` or ``test``; ``validation``/``val``/``valid`` are ``dev``."""
    split = name.strip().lower()
    split = _ALIASES.get(split, split)
    if split not in SPLITS:
        raise DatasetFormatError(
            f"unknown split '{name}' (expected train, dev (= validation, val) or test)"
        )
    return split
