"""Rollout, evaluation and two GRPO steps (full and LoRA) of SmolLM2-135M-Instruct, each given
the .gguf file itself (imported once, through the session's cache): the real commands on the real
BM25 index of examples/tiny, with short budgets (2 questions, 2 rollouts, 32-48 tokens)."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from realmodel_fakes import TINY
from typer.testing import CliRunner

from research_rl.cli import app
from research_rl.run_dir import iter_jsonl

ROLLOUT = {"template": "instruct", "profile": "research", "topk": 2, "max_passage_tokens": 48}


def test_rollout_command_takes_the_gguf_file(smol_gguf, smol_dir, tmp_path):
    out = tmp_path / "rollouts.jsonl"
    config = tmp_path / "rollout.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": str(smol_gguf),
                "index": str(TINY / "index"),
                "questions": str(TINY / "val.jsonl"),
                "n": 2,
                "limit": 2,
                "out": str(out),
                "rollout": {**ROLLOUT, "max_response_tokens": 32},
                "sampling": {"temperature": 1.0, "seed": 0},
            }
        )
    )
    result = CliRunner().invoke(app, ["rollout", "--config", str(config)])
    assert result.exit_code == 0, result.output
    rows = [row for _, row in iter_jsonl(out)]
    assert len(rows) == 4 and all(r["completion_ids"] for r in rows)
    assert all(len(r["completion_ids"]) <= 32 for r in rows)


def test_eval_runs_every_method_on_the_gguf_file(smol_gguf, smol_dir, tmp_path):
    config = tmp_path / "eval.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"backend": "hf", "path": str(smol_gguf), "dtype": "float32"},
                "datasets": [{"name": "tiny-val", "path": str(TINY / "val.jsonl")}],
                "methods": ["direct", "rag", "research"],
                "retriever": {"index": str(TINY / "index")},
                "rollout": {**ROLLOUT, "max_response_tokens": 48},
                "sampling": {"temperature": 0.0},
                "limit": 2,
                "output_dir": str(tmp_path / "out"),
            }
        )
    )
    result = CliRunner().invoke(app, ["eval", "--config", str(config), "--no-progress"])
    assert result.exit_code == 0, result.output
    for method in ("direct", "rag", "research"):
        assert f"| tiny-val | {method} | 2 |" in result.output
        predictions = tmp_path / "out" / "predictions" / f"tiny-val__{method}.jsonl"
        rows = [row for _, row in iter_jsonl(predictions)]
        assert [r["id"] for r in rows] == [
            json.loads(line)["id"] for line in (TINY / "val.jsonl").read_text().splitlines()[:2]
        ]


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_two_grpo_steps(smol_gguf, smol_dir, tmp_path, lora):
    from research_rl.config import validate_config
    from research_rl.training.config import TrainConfig
    from research_rl.training.run import train

    cfg = validate_config(
        {
            "model": {"path": str(smol_gguf), "dtype": "float32"},
            "data": {"train": str(TINY / "train.jsonl")},
            "retriever": {"index": str(TINY / "index")},
            "rollout": {**ROLLOUT, "max_response_tokens": 32, "chunk_tokens": 0},
            "grpo": {
                "group_size": 2,
                "questions_per_step": 2,
                "max_steps": 2,
                "learning_rate": 1e-5,
                "seed": 0,
            },
            "lora": {"enabled": lora, "r": 4, "alpha": 8},
            "run": {"save_every": 2, "eval_every": 100, "tensorboard": False, "progress": False},
        },
        TrainConfig,
        "test",
    )
    result = train(cfg, tmp_path / "run")
    assert result.final_step == 2
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["loss"]) for r in rows)
    assert all(r["peak_rss_gb"] > 0.3 for r in rows)  # the 135M model alone is 0.5 GB in float32
    assert result.last_checkpoint is not None
