"""``research rollout`` end to end: a tiny saved model, a real BM25 index, JSONL out."""

from __future__ import annotations

import json

import pytest
from test_hf_backend import build_model
from typer.testing import CliRunner

from conftest import make_tokenizer
from research_rl.cli import app
from research_rl.corpus import Passage, write_corpus
from research_rl.questions import Question, write_questions
from research_rl.retrieval.index import build_index


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("rollout_cli")
    tok = make_tokenizer()
    tok.add_tokens(["<search>", "</search>", "<answer>", "</answer>"])
    model = build_model(tok)
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    write_corpus(
        [
            Passage.from_title_text("1", "Paris", "Paris is the capital of France."),
            Passage.from_title_text("2", "Dune", "Dune is a novel by Frank Herbert."),
        ],
        root / "corpus.jsonl",
    )
    build_index(root / "corpus.jsonl", root / "index", "bm25", show_progress=False)
    write_questions(
        [
            Question("a", "What is the capital of France?", ["Paris"]),
            Question("b", "Who wrote Dune?", ["Frank Herbert"]),
        ],
        root / "questions.jsonl",
    )
    prompt = root / "prompt.txt"
    prompt.write_text("Q: {question}\nA:", encoding="utf-8")
    return root


def run(args):
    return CliRunner().invoke(app, ["rollout", *map(str, args)])


def base_args(root, out):
    return [
        "--model",
        root / "model",
        "--index",
        root / "index",
        "--questions",
        root / "questions.jsonl",
        "--out",
        out,
        "--template-path",
        root / "prompt.txt",
    ]


def test_rollout_writes_one_row_per_rollout(assets, tmp_path):
    config = tmp_path / "rollout.yaml"
    config.write_text(
        "n: 2\nrollout:\n  max_response_tokens: 40\n  topk: 1\nsampling:\n  temperature: 0.8\n",
        encoding="utf-8",
    )
    out = tmp_path / "out" / "rollouts.jsonl"
    result = run([*base_args(assets, out), "--config", config, "--n", 3])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["question_id"], r["sample_index"]) for r in rows] == [
        ("a", 0),
        ("a", 1),
        ("a", 2),
        ("b", 0),
        ("b", 1),
        ("b", 2),
    ]  # --n on the command line wins over the file's n
    for r in rows:
        assert r["prompt_text"].startswith("Q: ") and r["reward"] is not None
        assert len(r["loss_mask"]) == len(r["completion_ids"]) <= 40
        assert r["finish_reason"] in (
            "eos",
            "length",
            "max_searches",
        )  # research: no stop at </answer>
        assert r["profile"] == "research"
    assert "reward_mean=" in result.output


def test_rollout_runs_the_configs_profile(assets, tmp_path):
    config = tmp_path / "rollout.yaml"
    config.write_text("n: 1\nrollout:\n  profile: strict\n  max_response_tokens: 30\n")
    out = tmp_path / "rollouts.jsonl"
    result = run([*base_args(assets, out), "--config", config])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["profile"] for r in rows} == {"strict"}
    config.write_text("rollout:\n  profile: paper\n")
    result = run([*base_args(assets, out), "--config", config])
    assert result.exit_code == 2 and "rollout.profile" in result.output


def test_errors_name_the_bad_input(assets, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("no slot", encoding="utf-8")
    out = tmp_path / "o.jsonl"
    result = run([*base_args(assets, out)[:-1], bad])
    assert result.exit_code == 2 and "bad.txt" in result.output and "{question}" in result.output
    config = tmp_path / "c.yaml"
    config.write_text("rollout:\n  max_prompt_tokens: 3\n", encoding="utf-8")
    result = run([*base_args(assets, out), "--config", config])
    assert result.exit_code == 2 and "question 'a'" in result.output
    config.write_text("rollout:\n  topk: 0\n", encoding="utf-8")
    result = run([*base_args(assets, out), "--config", config])
    assert result.exit_code == 2 and "rollout.topk" in result.output
    result = run([*base_args(assets, out)[2:]])
    assert result.exit_code != 0 and "--model" in result.output
