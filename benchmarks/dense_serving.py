"""Dense serving under concurrent clients: request coalescing on vs off, on loopback.

Run: ``.venv/bin/python benchmarks/dense_serving.py`` (defaults: 2,000 passages, the offline
all-MiniLM-L6-v2 encoder, 32 concurrent clients sending single-query ``/retrieve`` requests over
keep-alive connections, one intra-op thread per server).

Starts two ``research serve`` processes on the same dense index, one with coalescing off and one
with it on (configs differing only in ``coalesce``), then drives them in alternating rounds so
that both see the same machine conditions (an idle server costs no CPU). Prints throughput,
p50/p99 latency, failed requests and mean batch size per mode, and the throughput ratio
(target: at least 3x with zero failed requests).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

_WORDS = [
    "river", "mountain", "ancient", "city", "harbour", "festival", "bridge", "library", "castle",
    "engineer", "poet", "merchant", "winter", "empire", "canal", "observatory", "orchard",
]  # fmt: skip


def make_corpus(path: Path, n: int, seed: int) -> list[str]:
    """``n`` short passages about invented names; returns one question per passage."""
    rng = random.Random(seed)
    questions = []
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            name = "".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(4))
            name = name.title()
            topic = " ".join(rng.sample(_WORDS, 4))
            text = f"{name} is known for the {topic}, first recorded in the year {1000 + i}."
            f.write(json.dumps({"id": f"d{i}", "contents": f"{name}\n{text}"}) + "\n")
            questions.append(f"What is {name} known for?")
    return questions


def research_command() -> list[str]:
    exe = Path(sys.executable).with_name("research")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "from research_rl.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Tally:
    seconds: float = 0.0
    requests: int = 0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)
    batches: int | None = None  # encoder/FAISS batches the server ran (coalescing only)


class Connection:
    """A minimal HTTP/1.1 keep-alive client for the load generator. httpx costs several ms of CPU
    per request, which on a small machine would measure the client rather than the server."""

    def __init__(self, url: str) -> None:
        host_port = url.split("://", 1)[1]
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post_json(self, path: str, payload: object) -> tuple[int, object]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        body = json.dumps(payload).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")  # fmt: skip
        try:
            writer.write(head.encode() + body)
            await writer.drain()
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            return status, json.loads(await reader.readexactly(length))
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            self.close()
            raise

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def load(url: str, queries: list[str], clients: int, per_client: int, tally: Tally) -> None:
    """``clients`` concurrent clients, each on its own keep-alive connection, each sending
    ``per_client`` single-query requests one after another."""

    async def client(c: int) -> None:
        conn = Connection(url)
        for r in range(per_client):
            q = queries[(c * per_client + r) % len(queries)]
            t0 = time.perf_counter()
            try:
                status, body = await conn.post_json("/retrieve", {"queries": [q], "topk": 5})
                ok = status == 200 and len(body["result"][0]) == 5  # type: ignore[index]
            except (
                OSError,
                asyncio.IncompleteReadError,
                ValueError,
                IndexError,
                KeyError,
                TypeError,
            ):
                ok = False
            tally.latencies.append(time.perf_counter() - t0)
            tally.failures += not ok
        conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    tally.seconds += time.perf_counter() - t0
    tally.requests += clients * per_client


@contextlib.contextmanager
def server(index: Path, coalesce: bool, args, tmp: Path) -> Iterator[str]:
    """A ``research serve`` subprocess; yields its URL once /health answers."""
    cfg = tmp / f"serve-{coalesce}.yaml"
    threads = "null" if args.threads is None else args.threads
    cfg.write_text(
        f"coalesce: {str(coalesce).lower()}\nmax_batch_queries: {args.max_batch}\n"
        f"batch_wait_ms: {args.wait_ms}\nnum_threads: {threads}\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [*research_command(), "serve", "--index", str(index), "--port", str(port),
           "--config", str(cfg)]  # fmt: skip
    log_path = tmp / f"serve-{coalesce}.log"
    with log_path.open("w") as log:  # a file, not a pipe nobody drains
        proc = subprocess.Popen(
            cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    httpx.get(f"{url}/health", timeout=1).raise_for_status()
                    break
                except httpx.HTTPError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"server did not start:\n{log_path.read_text()}"
                        ) from None
                    time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def batches_run(url: str) -> int | None:
    return httpx.get(f"{url}/health").json()["batches"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=2_000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=8, help="requests per client per round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating off/on rounds")
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--wait-ms", type=float, default=2.0, help="server batch_wait_ms")
    # One intra-op thread by default, the same for both modes: on a machine shared with other busy
    # processes, multi-threaded torch spends batches waiting on descheduled OpenMP threads, which
    # would measure the neighbours rather than coalescing. Pass 0 for the library default.
    ap.add_argument("--threads", type=int, default=1, help="server intra-op threads (0: default)")
    ap.add_argument("--encoder", default=None, help="default: the offline all-MiniLM-L6-v2")
    args = ap.parse_args()

    from research_rl.retrieval.index import build_index

    args.threads = args.threads or None
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)

    tallies = {False: Tally(), True: Tally()}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        queries = make_corpus(tmp / "corpus.jsonl", args.docs, seed=0)
        random.Random(1).shuffle(queries)
        t0 = time.perf_counter()
        m = build_index(tmp / "corpus.jsonl", tmp / "idx", kind="dense", encoder=args.encoder,
                        show_progress=False)  # fmt: skip
        print(
            f"dense index: {m.num_docs} passages, {m.encoder}, "
            f"built in {time.perf_counter() - t0:.1f}s"
        )
        with (
            server(tmp / "idx", False, args, tmp) as off,
            server(tmp / "idx", True, args, tmp) as on,
        ):
            urls = {False: off, True: on}
            for url in urls.values():  # warm-up: first calls of each input shape are slow
                asyncio.run(load(url, queries, args.clients, 2, Tally()))
            start = batches_run(on) or 0
            for _ in range(args.rounds):
                for mode, url in urls.items():
                    asyncio.run(load(url, queries, args.clients, args.requests, tallies[mode]))
            tallies[True].batches = (batches_run(on) or 0) - start

    print(
        f"\n{args.clients} concurrent clients, single-query requests, {args.rounds} alternating "
        f"rounds of {args.clients * args.requests} requests per mode; "
        f"server threads: {args.threads or 'one per core'}"
    )
    print(f"{'coalescing':12}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'failed':>8}{'batch':>8}")
    for mode, t in tallies.items():
        lat = np.array(t.latencies) * 1000
        mean_batch = f"{t.requests / t.batches:.1f}" if t.batches else "1"
        print(f"{'on' if mode else 'off':12}{t.requests / t.seconds:10.1f}"
              f"{np.percentile(lat, 50):10.1f}{np.percentile(lat, 99):10.1f}{t.failures:8d}"
              f"{mean_batch:>8}")  # fmt: skip
    off, on = tallies[False], tallies[True]
    ratio = (on.requests / on.seconds) / (off.requests / off.seconds)
    print(
        f"\nthroughput ratio (on / off): {ratio:.1f}x  (target >= 3x); "
        f"failed requests: {off.failures + on.failures}"
    )


if __name__ == "__main__":
    main()
