"""Index memory: resident memory, QPS and recall@10 per FAISS index type, against Flat.

Run: ``.venv/bin/python benchmarks/index_memory.py`` (defaults: 2,000,000 random unit vectors of
dimension 128, 1,000 queries, 2 threads); ``--n 100000`` runs in seconds.

Each index type is built the way ``research index build --factory`` builds it (the project's
``fit_index`` over an embedding memmap, the planner's search parameters), written to disk, and
then measured in a fresh process: resident memory added by ``faiss.read_index`` (what a server
holds), QPS of one batch of held-out queries, and recall@10 against Flat's exact top 10. Next to
the measured memory stands the planner's estimate of the index (``index_plan.estimate``), so the
arithmetic used for budgets is checked at this size.

Random vectors are the pessimistic case for approximate indexes: they have no cluster structure
for IVF or PQ to exploit and no low intrinsic dimension for HNSW, so recall on real embeddings is
higher at the same settings. Memory scales exactly with the per-vector bytes; QPS of the scanning
types (Flat, SQ8) scales about as 1/(n*d). See docs/retrieval.md for the extrapolation to wiki-18.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(index_path: str, queries_path: str, truth_path: str, threads: int, k: int) -> dict:
    """In a fresh process: memory added by loading the index, then QPS and recall@k."""
    import faiss

    faiss.omp_set_num_threads(threads)
    queries = np.load(queries_path)
    before = rss_bytes()
    index = faiss.read_index(index_path)
    loaded = rss_bytes() - before
    params = json.loads(os.environ.get("INDEX_PARAMS", "{}"))
    space = faiss.ParameterSpace()
    for name, value in params.items():
        space.set_index_parameter(index, name, float(value))
    index.search(queries[:16], k)  # warm-up: first-touch allocations, thread pool
    t0 = time.perf_counter()
    _, ids = index.search(queries, k)
    seconds = time.perf_counter() - t0
    out = {"rss": loaded, "qps": len(queries) / seconds}
    if truth_path:
        truth = np.load(truth_path)
        hits = [len(set(a) & set(b)) for a, b in zip(ids, truth, strict=True)]
        out["recall"] = float(np.mean(hits)) / k
    else:
        out["ids"] = ids.tolist()
    return out


def run_measure(path: Path, queries: Path, truth: Path | None, threads: int, k: int, params):
    env = {**os.environ, "INDEX_PARAMS": json.dumps(params)}
    cmd = [sys.executable, __file__, "--measure", str(path), str(queries),
           str(truth or ""), str(threads), str(k)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"measuring {path.name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2_000_000, help="vectors in the corpus")
    ap.add_argument("--dim", type=int, default=128, help="vector dimension")
    ap.add_argument("--queries", type=int, default=1000, help="held-out queries")
    ap.add_argument("--threads", type=int, default=2, help="FAISS threads (build and search)")
    ap.add_argument(
        "--types",
        default="Flat,HNSW32,SQ8,HNSW32_SQ8,IVF-PQ/8,IVF-PQ/4",
        help="factory strings; IVF-PQ/r means the planner's IVF size with PQ codes of dim/r bytes",
    )
    ap.add_argument("--measure", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        path, queries, truth, threads, k = args.measure
        print(json.dumps(measure(path, queries, truth, int(threads), int(k))))
        return

    import faiss

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from research_rl.retrieval.index_fit import fit_index
    from research_rl.retrieval.index_plan import estimate, format_size, ivf_lists
    from research_rl.retrieval.vectors import ArraySource, open_memmap

    faiss.omp_set_num_threads(args.threads)
    n, d, k = args.n, args.dim, 10
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="index_memory.") as tmp:
        work = Path(tmp)
        vectors = open_memmap(work / "vectors.f32", n, d)
        for start in range(0, n, 250_000):  # random unit vectors, written a chunk at a time
            x = rng.standard_normal((min(250_000, n - start), d), dtype=np.float32)
            vectors[start : start + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
        q = rng.standard_normal((args.queries, d), dtype=np.float32)
        np.save(work / "queries.npy", q / np.linalg.norm(q, axis=1, keepdims=True))
        source = ArraySource(vectors)
        factories = []
        for name in args.types.split(","):
            if name.startswith("IVF-PQ/"):
                name = f"IVF{ivf_lists(n)},PQ{d // int(name.split('/')[1])}"
            factories.append(name)
        print(f"{n:,} random unit vectors, dimension {d}, {args.queries} queries, "
              f"{args.threads} threads, recall@{k} against Flat", flush=True)  # fmt: skip
        rows = []
        for factory in factories:
            plan = estimate(factory, n, d)
            params = plan.search_params if plan else {}
            t0 = time.perf_counter()
            index = fit_index(source, factory, search_params=params, show_progress=False)
            build_s = time.perf_counter() - t0
            path = work / f"{factory.replace(',', '_')}.index"
            faiss.write_index(index, str(path))
            del index
            if factory == "Flat":
                got = run_measure(path, work / "queries.npy", None, args.threads, k, params)
                np.save(work / "truth.npy", np.array(got.pop("ids"), dtype=np.int64))
                got["recall"] = 1.0
            else:
                truth = work / "truth.npy"
                got = run_measure(path, work / "queries.npy", truth, args.threads, k, params)
            row = dict(
                factory=factory, build_s=build_s, file=path.stat().st_size,
                estimate=plan.index_bytes if plan else None, params=params, **got,
            )  # fmt: skip
            rows.append(row)
            path.unlink()
            print(json.dumps(row), flush=True)
        del vectors

    flat = rows[0] if rows[0]["factory"] == "Flat" else None
    print()
    print("| index | params | build s | resident memory | estimate | B/vector | QPS | "
          "recall@10 | memory vs Flat | QPS vs Flat |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ratio_mem = f"{r['rss'] / flat['rss']:.3f}x" if flat else "-"
        ratio_qps = f"{r['qps'] / flat['qps']:.1f}x" if flat else "-"
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
        est = format_size(r["estimate"]) if r["estimate"] else "-"
        print(f"| {r['factory']} | {params} | {r['build_s']:.1f} | {format_size(r['rss'])} | "
              f"{est} | {r['rss'] / n:.1f} | {r['qps']:,.0f} | {r['recall']:.3f} | "
              f"{ratio_mem} | {ratio_qps} |")  # fmt: skip


if __name__ == "__main__":
    main()
