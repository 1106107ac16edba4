"""Dense serving under concurrent clients: request coalescing on vs off, on loopback.

Run: ``.venv/bin/python benchmarks/dense_serving.py`` (defaults: 2,000 passages, the offline
all-MiniLM-L6-v2 encoder, 32 concurrent clients each sending 16 single-query requests).
Starts ``research serve`` twice on the same dense index (configs differing only in ``coalesce``),
and prints throughput, p50/p99 latency and failed requests for each, and the throughput ratio
(target: at least 3x with zero failed requests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

_WORDS = [
    "river", "mountain", "ancient", "city", "harbour", "festival", "bridge", "library", "castle",
    "engineer", "poet", "merchant", "winter", "empire", "canal", "observatory", "orchard",
]  # fmt: skip


def make_corpus(path: Path, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    questions = []
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            name = "".join(
                rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(4)
            ).title()
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
class Result:
    seconds: float
    latencies: list[float]
    failures: int


async def load(url: str, queries: list[str], clients: int, per_client: int) -> Result:
    latencies: list[float] = []
    failures = 0

    async def client(c: int, http: httpx.AsyncClient) -> None:
        nonlocal failures
        for r in range(per_client):
            q = queries[(c * per_client + r) % len(queries)]
            t0 = time.perf_counter()
            try:
                resp = await http.post(f"{url}/retrieve", json={"queries": [q], "topk": 5})
                ok = resp.status_code == 200 and len(resp.json()["result"][0]) == 5
            except (httpx.HTTPError, ValueError, KeyError):
                ok = False
            latencies.append(time.perf_counter() - t0)
            failures += not ok

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c, http) for c in range(clients)))
        return Result(time.perf_counter() - t0, latencies, failures)


def run_mode(index: Path, coalesce: bool, queries: list[str], args, tmp: Path) -> Result:
    cfg = tmp / f"serve-{coalesce}.yaml"
    cfg.write_text(f"coalesce: {str(coalesce).lower()}\nmax_batch_queries: {args.max_batch}\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [
        *research_command(),
        "serve",
        "--index",
        str(index),
        "--port",
        str(port),
        "--config",
        str(cfg),
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"server did not start: {proc.stderr.read() if proc.stderr else ''}"
                    ) from None
                time.sleep(0.3)
        asyncio.run(load(url, queries, clients=4, per_client=4))  # warm-up
        return asyncio.run(load(url, queries, args.clients, args.requests))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=2_000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=16, help="requests per client")
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--encoder", default=None, help="default: the offline all-MiniLM-L6-v2")
    args = ap.parse_args()

    from research_rl.retrieval.index import build_index

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        queries = make_corpus(tmp / "corpus.jsonl", args.docs, seed=0)
        random.Random(1).shuffle(queries)
        t0 = time.perf_counter()
        m = build_index(tmp / "corpus.jsonl", tmp / "idx", kind="dense", encoder=args.encoder)
        print(
            f"dense index: {m.num_docs} passages, {m.encoder}, built in {time.perf_counter() - t0:.1f}s"
        )
        results = {mode: run_mode(tmp / "idx", mode, queries, args, tmp) for mode in (False, True)}

    n = args.clients * args.requests
    print(
        f"\n{args.clients} concurrent clients x {args.requests} single-query requests ({n} per mode)"
    )
    print(f"{'coalescing':12}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'failed':>8}")
    for mode, r in results.items():
        lat = np.array(r.latencies) * 1000
        print(f"{'on' if mode else 'off':12}{n / r.seconds:10.1f}{np.percentile(lat, 50):10.1f}"
              f"{np.percentile(lat, 99):10.1f}{r.failures:8d}")  # fmt: skip
    ratio = results[False].seconds / results[True].seconds
    failed = sum(r.failures for r in results.values())
    print(f"\nthroughput ratio (on / off): {ratio:.1f}x  (target >= 3x); failed requests: {failed}")


if __name__ == "__main__":
    main()
