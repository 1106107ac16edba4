"""GGUF import errors and the memory sizing (no SmolLM2 needed: a GGUF file written here, and
SmolLM2's shape as a config)."""

from __future__ import annotations

import pytest
from transformers import LlamaConfig
from typer.testing import CliRunner

from research_rl.cli import app
from research_rl.config import ConfigError
from research_rl.models import ModelImportError, import_gguf, resolve_model
from research_rl.training.memory import estimate, fit_micro_batch, peak_rss_gb

SMOL = LlamaConfig(
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    vocab_size=49152,
    tie_word_embeddings=True,
)


def _gguf(path, arch: str):
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_an_architecture_transformers_cannot_read_is_one_clear_line(tmp_path):
    path = _gguf(tmp_path / "odd.gguf", "nonsensearch")
    with pytest.raises(ModelImportError, match="cannot read this GGUF architecture"):
        import_gguf(path, tmp_path / "out")
    result = CliRunner().invoke(app, ["model", "import", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: {path}: transformers cannot read") and "nonsensearch" in line


def test_paths_that_are_not_gguf_pass_through_and_a_missing_gguf_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert resolve_model("Qwen/Qwen2.5-7B") == "Qwen/Qwen2.5-7B"
    with pytest.raises(FileNotFoundError, match="absent.gguf: GGUF file not found"):
        resolve_model(str(tmp_path / "absent.gguf"))
    two = tmp_path / "two"
    two.mkdir()
    _gguf(two / "a.gguf", "llama")
    _gguf(two / "b.gguf", "llama")
    with pytest.raises(ModelImportError, match="several GGUF files"):
        resolve_model(str(two))


def test_the_micro_batch_is_sized_to_the_budget_and_an_oversized_one_is_refused():
    lengths = dict(prompt_tokens=400, completion_tokens=384)
    whole = estimate(SMOL, micro_batch=20, **lengths)
    assert whole.total_bytes > 8e9  # the OOM: the whole step as one micro-batch
    micro, est = fit_micro_batch(SMOL, 20, budget_bytes=int(8e9), **lengths)
    assert 20 % micro == 0 and micro < 20 and est.total_bytes <= 8e9
    bigger, _ = fit_micro_batch(SMOL, 20, budget_bytes=int(16e9), **lengths)
    assert bigger > micro
    with pytest.raises(ConfigError, match=r"grpo.micro_batch_size 20 needs about .* GB"):
        fit_micro_batch(SMOL, 20, budget_bytes=int(8e9), given=20, **lengths)
    with pytest.raises(ConfigError, match="lower rollout.max_response_tokens"):
        fit_micro_batch(SMOL, 20, budget_bytes=int(3e9), **lengths)
    lora = estimate(SMOL, micro_batch=1, lora=True, **lengths)
    assert lora.static_bytes < estimate(SMOL, micro_batch=1, **lengths).static_bytes / 3


def test_peak_rss_is_reported_per_step():
    peak_rss_gb()  # ends the peak of whatever ran before this test
    first = peak_rss_gb()
    block = bytearray(300 * 1024 * 1024)  # touched: resident
    block[::4096] = b"x" * len(block[::4096])
    del block  # gone before the step ends: its peak is still this step's
    during = peak_rss_gb()
    after = peak_rss_gb()  # the next step's peak starts from what is resident now
    assert during > first + 0.25 and after < during - 0.2
