"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """``shared/`` beside the repository (CI has it there); ``RESEARCH_RL_SHARED`` overrides."""
    return Path(os.environ.get("RESEARCH_RL_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The released dataset files (shared/data, see its README); skips only where it is absent."""
    data = shared_dir() / "data"
    if not data.is_dir():
        pytest.skip(f"the released dataset files are not here: {data} is absent")
    return data
