"""Dense serving: a plain one-request-at-a-time server vs ours, coalescing on and off, on loopback.

Run: ``.venv/bin/python benchmarks/dense_serving.py`` (defaults: 2,000 passages, the offline
all-MiniLM-L6-v2 encoder, keep-alive connections, the same intra-op threads for every server).

Starts three servers on the same dense index: a baseline (a plain FastAPI app written the way the
peers' retrieval servers are: a synchronous handler that encodes and searches each request on its
own, one at a time, passages held in memory), and ``research serve`` with coalescing off and on.
Four loads: 1, 8 and 32 concurrent clients sending single-query ``/retrieve`` requests, and one
client sending batched requests (``--batch`` queries each). Each load drives the servers in
alternating rounds, so all see the same machine conditions (an idle server costs no CPU). Prints
throughput, p50/p99 latency and failed requests per server and load, then the ratios against the
baseline with their targets: >= 1.0x with 1 client, >= 3x with 32, >= 1.0x batched, 0 failures.
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
from pydantic import BaseModel

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


async def load(
    url: str, queries: list[str], clients: int, per_client: int, batch: int, tally: Tally
) -> None:
    """``clients`` concurrent clients, each on its own keep-alive connection, each sending
    ``per_client`` requests of ``batch`` queries one after another."""

    async def client(c: int) -> None:
        conn = Connection(url)
        for r in range(per_client):
            first = (c * per_client + r) * batch
            qs = [queries[(first + j) % len(queries)] for j in range(batch)]
            t0 = time.perf_counter()
            try:
                status, body = await conn.post_json("/retrieve", {"queries": qs, "topk": 5})
                rows = body["result"]  # type: ignore[index]
                ok = status == 200 and len(rows) == batch and all(len(row) == 5 for row in rows)
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


# --- the baseline: a plain server, as the peers write theirs ----------------------------------


class Query(BaseModel):  # at module level: FastAPI resolves the (postponed) annotation here
    queries: list[str]
    topk: int = 5
    return_scores: bool = False


def baseline_app(index_dir: Path):
    """Encode + search in a synchronous handler (FastAPI runs it in its thread pool), one request
    at a time, the corpus as an in-memory list; answers Search-R1's ``/retrieve`` shape."""
    import threading

    import faiss
    from fastapi import FastAPI

    from research_rl.retrieval.dense import load_encoder

    manifest = json.loads((index_dir / "manifest.json").read_text())
    prefix = manifest["options"].get("query_prefix", "")
    model = load_encoder(manifest["encoder"])
    index = faiss.read_index(str(index_dir / "faiss.index"))
    with (index_dir / "corpus.jsonl").open(encoding="utf-8") as f:
        docs = [json.loads(line) for line in f if line.strip()]
    lock = threading.Lock()

    app = FastAPI()

    @app.post("/retrieve")
    def retrieve(req: Query) -> dict:
        with lock:
            emb = model.encode(
                [prefix + q for q in req.queries],
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            scores, ids = index.search(np.ascontiguousarray(emb, dtype=np.float32), req.topk)
        rows = [[docs[i] for i in row] for row in ids.tolist()]
        if req.return_scores:
            rows = [
                [{"document": d, "score": sc} for d, sc in zip(row, srow, strict=True)]
                for row, srow in zip(rows, scores.tolist(), strict=True)
            ]
        return {"result": rows}

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "batches": None}

    return app


def serve_baseline(index_dir: Path, port: int, threads: int | None) -> None:
    import uvicorn

    if threads is not None:
        import faiss
        import torch

        torch.set_num_threads(threads)
        faiss.omp_set_num_threads(threads)
    uvicorn.run(baseline_app(index_dir), host="127.0.0.1", port=port, log_level="warning")


# --- driving it ----------------------------------------------------------------------------

MODES = ("baseline", "off", "on")


@contextlib.contextmanager
def server(index: Path, mode: str, args, tmp: Path) -> Iterator[str]:
    """A server subprocess (``research serve``, or this file's baseline); yields its URL once
    /health answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    if mode == "baseline":
        cmd = [sys.executable, __file__, "--serve-baseline", str(index), "--port", str(port),
               "--threads", str(args.threads or 0)]  # fmt: skip
    else:
        cfg = tmp / f"serve-{mode}.yaml"
        threads = "null" if args.threads is None else args.threads
        cfg.write_text(
            f"coalesce: {str(mode == 'on').lower()}\nmax_batch_queries: {args.max_batch}\n"
            f"batch_wait_ms: {args.wait_ms}\nnum_threads: {threads}\n"
        )
        cmd = [*research_command(), "serve", "--index", str(index), "--port", str(port),
               "--config", str(cfg)]  # fmt: skip
    log_path = tmp / f"serve-{mode}.log"
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
                            f"{mode} server did not start:\n{log_path.read_text()}"
                        ) from None
                    time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def batches_run(url: str) -> int | None:
    return httpx.get(f"{url}/health").json()["batches"]


def rate(t: Tally) -> float:
    return t.requests / t.seconds if t.seconds else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=2_000)
    ap.add_argument("--requests", type=int, default=256, help="single-query requests per round")
    ap.add_argument("--batch", type=int, default=64, help="queries per batched request")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per load")
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--wait-ms", type=float, default=2.0, help="server batch_wait_ms")
    # The same intra-op threads for every server: on a machine shared with other busy processes,
    # multi-threaded torch spends batches waiting on descheduled OpenMP threads, which would
    # measure the neighbours rather than the servers. 0: the library default (one per core).
    ap.add_argument("--threads", type=int, default=1, help="server intra-op threads (0: default)")
    ap.add_argument("--encoder", default=None, help="default: the offline all-MiniLM-L6-v2")
    ap.add_argument("--serve-baseline", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.threads = args.threads or None
    if args.serve_baseline is not None:
        serve_baseline(args.serve_baseline, args.port, args.threads)
        return

    from research_rl.retrieval.index import build_index

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)

    # (label, clients, requests per client per round, queries per request)
    loads = [
        ("1 client", 1, max(1, args.requests // 4), 1),
        ("8 clients", 8, max(1, args.requests // 8), 1),
        ("32 clients", 32, max(1, args.requests // 32), 1),
        # at least 16 a round: a ratio of a few long requests is mostly their tail
        (f"batched x{args.batch}", 1, max(16, args.requests // args.batch), args.batch),
    ]
    tallies = {(label, m): Tally() for label, *_ in loads for m in MODES}
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
        with contextlib.ExitStack() as stack:
            urls = {
                mode: stack.enter_context(server(tmp / "idx", mode, args, tmp)) for mode in MODES
            }
            for url in urls.values():  # warm-up: first calls of each input shape are slow
                for _, clients, _, batch in loads:
                    asyncio.run(load(url, queries, clients, 2, batch, Tally()))
            for label, clients, per_client, batch in loads:
                before = batches_run(urls["on"]) or 0
                for _ in range(args.rounds):
                    for mode, url in urls.items():
                        t = tallies[(label, mode)]
                        asyncio.run(load(url, queries, clients, per_client, batch, t))
                tallies[(label, "on")].batches = (batches_run(urls["on"]) or 0) - before

    print(
        f"\n/retrieve requests of topk 5 on keep-alive loopback, {args.rounds} alternating rounds "
        f"per load; server threads: {args.threads or 'one per core'}; "
        f"baseline: one request at a time; off/on: research serve, coalescing off/on"
    )
    print(
        f"{'load':14}{'server':10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}{'batch':>7}"
    )
    for label, *_ in loads:
        for mode in MODES:
            t = tallies[(label, mode)]
            lat = np.array(t.latencies) * 1000
            mean_batch = f"{t.requests / t.batches:.1f}" if t.batches else "1"
            print(f"{label:14}{mode:10}{rate(t):9.1f}{np.percentile(lat, 50):9.1f}"
                  f"{np.percentile(lat, 99):9.1f}{t.failures:8d}{mean_batch:>7}")  # fmt: skip

    def ratio(label: str, mode: str, against: str = "baseline") -> float:
        return rate(tallies[(label, mode)]) / rate(tallies[(label, against)])

    failed = sum(t.failures for t in tallies.values())
    targets = [
        ("1 client", "on / baseline", ratio("1 client", "on"), 1.0),
        ("8 clients", "on / baseline", ratio("8 clients", "on"), None),
        ("32 clients", "on / baseline", ratio("32 clients", "on"), 3.0),
        ("32 clients", "on / off", ratio("32 clients", "on", "off"), 3.0),
        (loads[3][0], "on / baseline", ratio(loads[3][0], "on"), 1.0),
    ]
    print()
    for label, what, value, target in targets:
        verdict = (
            ""
            if target is None
            else f"  (target >= {target:.1f}x: " + ("met)" if value >= target else "NOT met)")
        )
        print(f"{label:14}{what:16}{value:6.2f}x{verdict}")
    print(f"failed requests: {failed}  (target 0: {'met' if failed == 0 else 'NOT met'})")


if __name__ == "__main__":
    main()
