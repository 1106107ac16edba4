"""BM25 queries per second: our bm25s index against rank-bm25 on the same generated corpus.

Run: ``.venv/bin/python benchmarks/bm25_qps.py`` (defaults: 50,000 passages, 1,000 queries).
Prints both throughputs, their ratio (target: at least 50x), each one's recall@1 on the passage
each query was drawn from, and the top-1 agreement between the two. Agreement is high but not 100%:
the IDF formulas differ for terms in more than half of the passages (rank-bm25's Okapi IDF is
negative there and floored to a small positive value; ours, Lucene's, stays positive), and a
Zipf-distributed corpus has many such terms.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np


def make_corpus(path: Path, num_docs: int, vocab_size: int, seed: int) -> list[str]:
    """Passages of Zipf-distributed invented words (like natural text: few very common words, a
    long tail); each query is 3-5 words drawn from one passage, so every query has a target."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = sorted(
        {"".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(vocab_size)}
    )
    rng.shuffle(vocab)
    ranks = np.arange(1, len(vocab) + 1)
    probs = (1 / ranks**1.1) / (1 / ranks**1.1).sum()
    lengths = [rng.randint(30, 80) for _ in range(num_docs)]
    words = nrng.choice(len(vocab), size=sum(lengths), p=probs)
    docs = []
    with path.open("w", encoding="utf-8") as f:
        start = 0
        for i, n in enumerate(lengths):
            text = " ".join(vocab[j] for j in words[start : start + n])
            start += n
            docs.append(text)
            f.write(json.dumps({"id": f"d{i}", "contents": f"Passage {i}\n{text}"}) + "\n")
    return docs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=50_000)
    ap.add_argument("--queries", type=int, default=1_000)
    ap.add_argument("--vocab", type=int, default=30_000)
    ap.add_argument("--topk", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from rank_bm25 import BM25Okapi

    from research_rl.retrieval.index import build_index, load_index
    from research_rl.retrieval.tokenize import tokenize

    rng = random.Random(args.seed + 1)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        t0 = time.perf_counter()
        docs = make_corpus(corpus, args.docs, args.vocab, args.seed)
        print(f"corpus: {args.docs} passages, generated in {time.perf_counter() - t0:.1f}s")
        targets = [rng.randrange(args.docs) for _ in range(args.queries)]
        queries = []
        for t in targets:
            words = sorted(set(docs[t].split()))
            queries.append(" ".join(rng.sample(words, k=min(len(words), rng.randint(3, 5)))))

        t0 = time.perf_counter()
        build_index(corpus, Path(tmp) / "idx", kind="bm25", show_progress=False)
        ours = load_index(Path(tmp) / "idx")
        print(f"ours (bm25s):     built and loaded in {time.perf_counter() - t0:.1f}s")
        t0 = time.perf_counter()
        # Passage titles ("Passage i") are indexed by ours; give rank-bm25 the same text.
        baseline = BM25Okapi([tokenize(f"Passage {i}\n{d}") for i, d in enumerate(docs)])
        print(f"rank-bm25:        built in {time.perf_counter() - t0:.1f}s")

        def baseline_search(chunk: list[str]) -> list[int]:
            best = []
            for q in chunk:
                scores = baseline.get_scores(tokenize(q))
                top = np.argpartition(-scores, args.topk)[: args.topk]
                best.append(int(top[np.argsort(-scores[top], kind="stable")][0]))
            return best

        # Alternate the two on chunks of queries, so both see the same machine conditions.
        ours.search(queries[:10], args.topk)  # warm-up
        our_hits, base_top, ours_s, base_s = [], [], 0.0, 0.0
        for start in range(0, len(queries), 50):
            chunk = queries[start : start + 50]
            t0 = time.perf_counter()
            our_hits += ours.search(chunk, args.topk)
            t1 = time.perf_counter()
            base_top += baseline_search(chunk)
            ours_s, base_s = ours_s + t1 - t0, base_s + time.perf_counter() - t1

    our_top = [int(h[0].passage.id[1:]) if h else -1 for h in our_hits]
    agree = sum(a == b for a, b in zip(our_top, base_top, strict=True)) / len(queries)
    ours_qps, base_qps = len(queries) / ours_s, len(queries) / base_s
    print()
    print(f"{'':14}{'QPS':>10}{'recall@1':>10}")
    for name, qps, top in (("ours (bm25s)", ours_qps, our_top), ("rank-bm25", base_qps, base_top)):
        recall = sum(a == b for a, b in zip(top, targets, strict=True)) / len(queries)
        print(f"{name:14}{qps:10.1f}{recall:10.3f}")
    print(f"\nspeed-up: {ours_qps / base_qps:.1f}x  (target >= 50x)")
    print(
        f"top-1 agreement: {agree:.3f}  "
        f"({len(queries)} queries, {args.docs} passages, top-{args.topk})"
    )


if __name__ == "__main__":
    main()
