"""An evaluation-only backend over any OpenAI-compatible ``/v1/completions`` server.

vLLM, SGLang and llama.cpp all serve ``/v1/completions`` with a text prompt and ``stop`` strings;
only vLLM also speaks token ids (see :class:`research_rl.backends.vllm.VLLMServerBackend`, the one
training uses). This backend bridges the token-id protocol through text with the model's own
tokenizer:

- the request's ``prompt_ids`` are decoded to text (a leading BOS token is dropped: the server adds
  its own) and sent as the raw prompt, with the request's stop strings and token budget;
- the returned text is re-encoded to ids. Servers cut the stop string from the text; it is put
  back, so the ids end with the stop string as the protocol requires. Which stop string ended the
  completion is read from vLLM's ``stop_reason`` or SGLang's ``matched_stop`` when the server
  sends the field (a string there is the stop string, null or a token id the end of sequence),
  else from the text (a stop string the server left in, or the tag the text opened
  and never closed: ``<search>`` for ``</search>``); a ``stop`` finish matching none is the
  model's end of sequence, and the EOS id is appended.

Re-encoding is not guaranteed to give the ids the server sampled (tokenisation is not unique), so
this backend is for evaluation only: training needs the exact sampled ids and log-probs. The
response lengths it reports are in re-encoded tokens. Requests of a batch go out concurrently,
at most ``max_in_flight`` at a time; timeouts, connection errors and HTTP 429/5xx are retried
with back-off, anything else is an error naming the server and the status.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from research_rl.backends.base import GenerationOutput, GenerationRequest, SamplingParams
from research_rl.backends.completions_server import CompletionsServer


class ServerBackendError(RuntimeError):
    """The completions server failed, or answered something this backend cannot use."""


def opening_tag(stop: str) -> str | None:
    """``<search>`` for ``</search>``: the tag a closing-tag stop string ends."""
    if stop.startswith("</") and stop.endswith(">"):
        return "<" + stop[2:]
    return None


def infer_stop(text: str, stops: list[str], choice: dict[str, Any]) -> str | None:
    """Which stop string ended a ``finish_reason == "stop"`` completion; None means end of
    sequence."""
    for key in ("stop_reason", "matched_stop"):  # vLLM, SGLang
        if key in choice:
            reported = choice[key]
            # A stop string, or None / a token id: the model's EOS or another stop token.
            return reported if isinstance(reported, str) and reported in stops else None
    for stop in stops:
        if stop and text.endswith(stop):  # servers that keep the stop string in the text
            return stop
    # The server cut the stop string and did not say which: the stop whose opening tag is still
    # open at the end of the text is the one that fired.
    best: tuple[int, str] | None = None
    for stop in stops:
        tag = opening_tag(stop)
        if tag is None:
            continue
        opened = text.rfind(tag)
        if opened >= 0 and text.find(stop, opened) < 0 and (best is None or opened > best[0]):
            best = (opened, stop)
    return best[1] if best else None


class OpenAICompletionsBackend(CompletionsServer):
    error = ServerBackendError
    models_path = "/models"  # the configured URL ends in /v1

    def __init__(
        self,
        url: str,
        tokenizer: Any,
        *,
        model: str | None = None,
        api_key_env: str | None = None,
        max_in_flight: int = 32,
        timeout_s: float = 600.0,
        max_retries: int = 3,
        backoff_s: float = 1.0,
        client: Any = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.max_in_flight = max_in_flight
        self.timeout_s = timeout_s
        headers = {}
        if api_key_env:
            key = os.environ.get(api_key_env)
            if not key:
                raise ServerBackendError(f"environment variable {api_key_env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        client = client or httpx.Client(timeout=timeout_s, headers=headers)
        self._connect(url, client, model, max_retries, backoff_s)
        self.eos_id: int | None = getattr(tokenizer, "eos_token_id", None)
        self.bos_id: int | None = getattr(tokenizer, "bos_token_id", None)

    def prompt_text(self, prompt_ids: list[int]) -> str:
        ids = list(prompt_ids)
        if ids and self.bos_id is not None and ids[0] == self.bos_id:
            ids = ids[1:]
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def _one(
        self, request: GenerationRequest, sampling: SamplingParams, seed: int | None
    ) -> GenerationOutput:
        if request.max_new_tokens <= 0:
            return GenerationOutput(token_ids=[], finish_reason="length")
        payload: dict[str, Any] = {
            "model": self.model,
            "prompt": self.prompt_text(request.prompt_ids),
            "max_tokens": request.max_new_tokens,
            "temperature": max(sampling.temperature, 0.0),
            "top_p": sampling.top_p,
            "stop": list(request.stop),
        }
        if sampling.top_k > 0:
            payload["top_k"] = sampling.top_k  # an extension vLLM, SGLang and llama.cpp accept
        if seed is not None:
            payload["seed"] = seed
        body = self._call("POST", "/completions", payload)
        try:
            choice = body["choices"][0]
            text = choice["text"]
        except (KeyError, IndexError, TypeError):
            raise ServerBackendError(
                f"{self.base_url}/completions: no choices[0].text in {str(body)[:200]}"
            ) from None
        return self._convert(text, choice.get("finish_reason"), choice, request)

    def _convert(
        self, text: str, finish: Any, choice: dict[str, Any], request: GenerationRequest
    ) -> GenerationOutput:
        where = f"{self.base_url}/completions"
        if finish == "length":
            ids = self.tokenizer.encode(text, add_special_tokens=False)[: request.max_new_tokens]
            return GenerationOutput(ids, "length")
        if finish not in ("stop", "eos"):
            raise ServerBackendError(f"{where}: unexpected finish_reason {finish!r}")
        stop = infer_stop(text, list(request.stop), choice)
        if stop is not None:
            full = text if text.endswith(stop) else text + stop
            ids = self.tokenizer.encode(full, add_special_tokens=False)
            if len(ids) > request.max_new_tokens:
                return GenerationOutput(ids[: request.max_new_tokens], "length")
            return GenerationOutput(ids, "stop", stop)
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if self.eos_id is None:
            raise ServerBackendError("the tokenizer has no eos_token_id to end a sequence with")
        ids = ids[: max(request.max_new_tokens - 1, 0)] + [self.eos_id]
        return GenerationOutput(ids, "eos")

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingParams
    ) -> list[GenerationOutput]:
        _ = self.model  # resolve the served model once, before the worker threads need it
        seeds = [None if sampling.seed is None else sampling.seed + i for i in range(len(requests))]
        if len(requests) <= 1:
            return [self._one(r, sampling, s) for r, s in zip(requests, seeds, strict=True)]
        with ThreadPoolExecutor(max_workers=min(self.max_in_flight, len(requests))) as pool:
            futures = [
                pool.submit(self._one, r, sampling, s) for r, s in zip(requests, seeds, strict=True)
            ]
            return [f.result() for f in futures]
