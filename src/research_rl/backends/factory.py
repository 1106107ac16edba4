"""Every generation backend a config can name, built in one place.

``open_backend`` builds the backend of an eval config's ``model:`` section (or any
:class:`BackendSettings`): a transformers model loaded here, vLLM's offline engine, or a client of
a vLLM or OpenAI-compatible server. ``trainer_backend_factory`` builds the training rollouts'
backend, which generates with the live policy (or TRL's vLLM engine, kept in sync with it).
The engines themselves are imported when chosen: each one pulls in torch, vLLM or httpx.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from research_rl.backends.base import GenerationBackend
from research_rl.backends.openai import OpenAICompletionsBackend
from research_rl.backends.settings import BackendSettings
from research_rl.backends.vllm import VLLMBackend, VLLMServerBackend

# (trainer, unwrapped policy) -> the backend that generates one rollout call
BackendFactory = Callable[[Any, Any], GenerationBackend]


def load_hf_model(path: str, dtype: str = "auto", device: str | None = None) -> Any:
    """A causal LM from a local directory or the hub, in eval mode, on ``device`` (None: CUDA
    when there is one)."""
    import torch
    from transformers import AutoModelForCausalLM

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(device).eval()


def hf_backend(model: Any, tokenizer: Any, max_batch_size: int | None = None) -> GenerationBackend:
    from research_rl.backends.hf import HFBackend

    if max_batch_size is None:
        return HFBackend(model, tokenizer)
    return HFBackend(model, tokenizer, max_batch_size=max_batch_size)


def open_backend(m: BackendSettings, tokenizer: Any) -> GenerationBackend:
    """The backend ``m`` names, with its model loaded or its server's client opened."""
    if m.backend == "hf":
        return hf_backend(load_hf_model(m.path, m.dtype, m.device), tokenizer, m.batch_size)
    if m.backend == "vllm":
        return VLLMBackend.from_pretrained(
            m.path,
            dtype=m.dtype,
            tensor_parallel_size=m.tensor_parallel_size,
            gpu_memory_utilization=m.gpu_memory_utilization,
        )
    assert m.url is not None  # BackendSettings checks it for server backends
    if m.backend == "vllm-server":
        # VLLMServerBackend takes the server root; the config names the .../v1 base like openai.
        return VLLMServerBackend(
            m.url.rstrip("/").removesuffix("/v1"),
            model=m.name,
            timeout_s=m.timeout_s,
            max_in_flight=m.max_in_flight,
            max_retries=m.max_retries,
        )

    return OpenAICompletionsBackend(
        m.url,
        tokenizer,
        model=m.name,
        api_key_env=m.api_key_env,
        max_in_flight=m.max_in_flight,
        timeout_s=m.timeout_s,
        max_retries=m.max_retries,
    )


def trainer_backend_factory(gen: Any, tokenizer: Any) -> BackendFactory:
    """Training's rollout backend from its ``generation:`` settings. hf: transformers generate on
    the live policy. vllm: TRL's engine (colocated), which TRL keeps in sync with the policy
    before every rollout call, or the client of TRL's vLLM server."""
    if gen.backend == "hf":
        return lambda trainer, model: hf_backend(model, tokenizer)
    if gen.vllm_mode == "server":
        server = VLLMServerBackend(gen.vllm_server_url)
        return lambda trainer, model: server

    return lambda trainer, model: VLLMBackend(trainer.vllm_generation.llm)
