"""Shared fixtures: a generated corpus where each query has exactly one target passage, indexes
built from it once per session, and a real uvicorn server on a free loopback port."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from research_rl.retrieval.index import IndexRetriever, build_index, load_index

_SYLLABLES = [
    "ka",
    "lo",
    "mir",
    "tan",
    "vex",
    "dor",
    "sul",
    "pra",
    "nim",
    "zu",
    "qel",
    "bar",
    "fen",
    "ost",
    "ri",
    "gan",
    "hal",
    "ber",
    "tu",
    "wyn",
]
_CITIES = [
    "Arborn",
    "Belcaster",
    "Corvale",
    "Dunmere",
    "Eastholm",
    "Falkreach",
    "Glimmerton",
    "Hollowfen",
    "Ironvale",
    "Juniper Cross",
]
_JOBS = ["cartographer", "glassblower", "archivist", "beekeeper", "ferryman", "astronomer"]


@dataclass(frozen=True)
class World:
    corpus: Path
    queries: list[tuple[str, str]]  # (query, id of the one passage that answers it)


def _name(rng: random.Random) -> str:
    def word() -> str:
        return "".join(rng.choice(_SYLLABLES) for _ in range(3)).capitalize()

    return f"{word()} {word()}"


def make_world(path: Path, n: int, seed: int = 0) -> World:
    """``n`` biographies of invented people; only the name tells passages apart, so a retriever
    finds the target of "Where was <name> born?" only if it really matches the name."""
    rng = random.Random(seed)
    names: list[str] = []
    while len(names) < n:
        name = _name(rng)
        if name not in names:
            names.append(name)
    queries = []
    with path.open("w", encoding="utf-8") as f:
        for i, name in enumerate(names):
            city, job = rng.choice(_CITIES), rng.choice(_JOBS)
            text = f"{name} was born in {city} and worked as a {job} for most of their life."
            f.write(json.dumps({"id": f"doc-{i}", "contents": f"{name}\n{text}"}) + "\n")
            queries.append((f"Where was {name} born?", f"doc-{i}"))
    return World(path, queries)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    return make_world(tmp_path_factory.mktemp("world") / "corpus.jsonl", n=200)


@pytest.fixture(scope="session")
def bm25_dir(world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("idx") / "bm25"
    build_index(world.corpus, out, kind="bm25", show_progress=False)
    return out


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """On the small shared machines tests run on, multi-threaded torch mostly waits for its own
    descheduled OpenMP threads; one thread encodes several times faster. Restored afterwards so
    other test folders keep their settings."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def torch_one_thread():
    """``one_torch_thread`` for session fixtures of test modules (importing ``conftest`` by name
    finds whichever folder's conftest was loaded last)."""
    return one_torch_thread


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def dense_dir(world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("idx") / "dense"
    with one_torch_thread():
        build_index(world.corpus, out, kind="dense", show_progress=False)
    return out


@pytest.fixture(scope="session")
def bm25(bm25_dir) -> IndexRetriever:
    return load_index(bm25_dir)


@pytest.fixture(scope="session")
def dense(dense_dir) -> IndexRetriever:
    return load_index(dense_dir)


@pytest.fixture
def live_server() -> Iterator[Callable[[object], str]]:
    """Start an ASGI app under real uvicorn on a free loopback port; returns its base URL."""
    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app) -> str:
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        started.append((server, thread))
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=10)
