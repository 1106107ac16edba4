"""The settings that name a generation backend and its model (an eval config's ``model:``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from research_rl.config import StrictModel


class BackendSettings(StrictModel):
    """A model and the generation backend that runs it (``backends.factory.open_backend``).

    ``hf``: transformers in this process, questions in batches of ``batch_size``.
    ``vllm``: vLLM's offline engine in this process (GPU), questions in batches of
    ``batch_size``; ``tensor_parallel_size`` and ``gpu_memory_utilization`` go to the engine.
    ``openai``: an OpenAI-compatible ``/v1/completions`` server (vLLM, SGLang, llama.cpp) at
    ``url`` serving ``name``; ``path`` is then only the tokenizer (the same model's), used to turn
    the rollout's token ids into prompt text and back. At most ``max_in_flight`` requests wait on
    the server at once.
    ``vllm-server``: a vLLM server at ``url``, spoken to in token ids (the exact sampled ids come
    back, no re-tokenisation); otherwise as ``openai``.
    """

    backend: Literal["hf", "vllm", "openai", "vllm-server"] = "hf"
    path: str  # local directory or hub name: the model (hf) or its tokenizer (openai)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str | None = None  # hf: e.g. "cuda", "cpu"; None = cuda when available
    batch_size: int = Field(8, ge=1)  # hf: questions per generation batch
    url: str | None = None  # openai: the server's base URL, e.g. http://localhost:8000/v1
    name: str | None = None  # openai: the served model name; None = the first of /v1/models
    api_key_env: str | None = None  # openai: environment variable holding the API key, if any
    max_in_flight: int = Field(32, ge=1)
    timeout_s: float = Field(600.0, gt=0)
    max_retries: int = Field(3, ge=0)
    tensor_parallel_size: int = Field(1, ge=1)  # vllm
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)  # vllm

    @property
    def is_server(self) -> bool:
        return self.backend in ("openai", "vllm-server")

    @model_validator(mode="after")
    def _server_needs_url(self) -> BackendSettings:
        if self.is_server and not self.url:
            raise ValueError(
                f"backend '{self.backend}' needs 'url' (the server's base URL, .../v1)"
            )
        return self
