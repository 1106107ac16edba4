"""vLLM generation backends: the offline engine (``vllm.LLM``) and vLLM's OpenAI-compatible server.

Both implement :class:`research_rl.backends.base.GenerationBackend` with the stop semantics stated
there. vLLM is an optional dependency (``research-rl[vllm]``, GPU only): it is imported inside the
functions that need it, so this module imports anywhere.

How the protocol maps onto vLLM:
- token ids in: each prompt is ``{"prompt_token_ids": ids}`` (vLLM's ``TokensPrompt``), so vLLM
  never re-tokenises the context the rollout engine built;
- one ``SamplingParams`` per request, so every request keeps its own token budget
  (``max_tokens``) and stop strings; ``include_stop_str_in_output=True`` keeps ``</search>`` in
  the output, as the core requires;
- ``finish_reason == "stop"`` with a string ``stop_reason`` is a stop string; ``"stop"`` with no
  (or an integer) ``stop_reason`` is an end-of-sequence token; ``"length"`` is the budget;
- ``logprobs=0`` asks for the sampled token's log-prob only. Build the engine with
  ``logprobs_mode="processed_logprobs"`` (the default of :meth:`VLLMBackend.from_pretrained`, and
  what TRL does) so they are taken under the sampling distribution (after temperature/top-p);
- a seeded call gives request ``i`` the seed ``seed + i``: the ``n`` rollouts of a question share a
  prompt, and one seed for all of them would make the whole group identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx

from research_rl.backends.base import (
    FinishReason,
    GenerationOutput,
    GenerationRequest,
    SamplingParams,
)
from research_rl.backends.completions_server import CompletionsServer

INSTALL_HINT = (
    "vLLM is not installed: it is an optional GPU dependency; see docs/scaling.md "
    "('Scaling out') for the environment to install it in"
)


class VLLMError(RuntimeError):
    """vLLM returned something the generation protocol cannot represent (names the request)."""


def _require_vllm_sampling_params() -> Callable[..., Any]:
    try:
        from vllm import SamplingParams as VLLMSamplingParams
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return VLLMSamplingParams


def _request_seed(sampling: SamplingParams, index: int) -> int | None:
    return None if sampling.seed is None else sampling.seed + index


def _sampling_kwargs(
    request: GenerationRequest, sampling: SamplingParams, seed: int | None, logprobs: bool
) -> dict[str, Any]:
    """The vLLM ``SamplingParams`` fields for one request (shared by the engine and the server)."""
    return {
        "n": 1,
        "temperature": max(sampling.temperature, 0.0),
        "top_p": sampling.top_p,
        # vLLM disables top-k with -1 (recent releases also accept 0); -1 works in all of them.
        "top_k": sampling.top_k if sampling.top_k > 0 else -1,
        "seed": seed,
        "max_tokens": request.max_new_tokens,
        "stop": list(request.stop) or None,
        "include_stop_str_in_output": True,
        # Stop strings are matched on text decoded with special tokens kept, as the core does.
        "skip_special_tokens": False,
        "logprobs": 0 if logprobs else None,
    }


def _finish(
    finish_reason: str | None, stop_reason: Any, request: GenerationRequest, where: str
) -> tuple[FinishReason, str | None]:
    if finish_reason == "length":
        return "length", None
    if finish_reason == "stop":
        if isinstance(stop_reason, str):
            if stop_reason not in request.stop:
                raise VLLMError(f"{where}: stopped on {stop_reason!r}, not one of {request.stop}")
            return "stop", stop_reason
        # None: the model's EOS token; an int: another stop token id from the generation config.
        return "eos", None
    raise VLLMError(
        f"{where}: unexpected finish_reason {finish_reason!r} (aborted or unfinished request)"
    )


def _empty_output(logprobs: bool) -> GenerationOutput:
    # A request with no budget left: vLLM rejects max_tokens < 1, and there is nothing to sample.
    return GenerationOutput(token_ids=[], finish_reason="length", logprobs=[] if logprobs else None)


def _check_budget(output: GenerationOutput, request: GenerationRequest, where: str) -> None:
    if len(output.token_ids) > request.max_new_tokens:
        raise VLLMError(
            f"{where}: returned {len(output.token_ids)} tokens for a budget of "
            f"{request.max_new_tokens}"
        )


class VLLMBackend:
    """The generation protocol over vLLM's offline engine (``vllm.LLM``).

    ``llm`` is anything with vLLM's ``LLM.generate(prompts, sampling_params, use_tqdm)``: an engine
    this class built (:meth:`from_pretrained`) or one another library owns, such as the colocated
    engine of TRL's ``GRPOTrainer`` (``trainer.vllm_generation.llm``), whose weights TRL keeps in
    sync with the policy.
    """

    def __init__(self, llm: Any, *, logprobs: bool = True) -> None:
        self.llm = llm
        self.logprobs = logprobs

    @classmethod
    def from_pretrained(
        cls, model: str, *, logprobs: bool = True, **engine_kwargs: Any
    ) -> VLLMBackend:
        """Start an engine on ``model`` (a local directory or hub id); ``engine_kwargs`` go to
        ``vllm.LLM`` (e.g. ``tensor_parallel_size``, ``gpu_memory_utilization``,
        ``max_model_len``)."""
        try:
            from vllm import LLM
        except ImportError as err:
            raise ImportError(INSTALL_HINT) from err
        engine_kwargs.setdefault("logprobs_mode", "processed_logprobs")
        return cls(LLM(model=model, **engine_kwargs), logprobs=logprobs)

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingParams
    ) -> list[GenerationOutput]:
        outputs: list[GenerationOutput | None] = [None] * len(requests)
        todo = [i for i, r in enumerate(requests) if r.max_new_tokens > 0]
        for i, request in enumerate(requests):
            if request.max_new_tokens <= 0:
                outputs[i] = _empty_output(self.logprobs)
        if todo:
            make_params = _require_vllm_sampling_params()
            prompts = [{"prompt_token_ids": list(requests[i].prompt_ids)} for i in todo]
            params = [
                make_params(
                    **_sampling_kwargs(
                        requests[i], sampling, _request_seed(sampling, i), self.logprobs
                    )
                )
                for i in todo
            ]
            results = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
            if len(results) != len(todo):
                raise VLLMError(f"vLLM returned {len(results)} results for {len(todo)} prompts")
            for i, result in zip(todo, results, strict=True):
                outputs[i] = self._convert(result, requests[i], f"vLLM request {i}")
        return [o for o in outputs if o is not None]

    def _convert(self, result: Any, request: GenerationRequest, where: str) -> GenerationOutput:
        if not result.outputs:
            raise VLLMError(f"{where}: no completion (aborted request)")
        completion = result.outputs[0]
        token_ids = list(completion.token_ids)
        finish, stop_string = _finish(
            completion.finish_reason, completion.stop_reason, request, where
        )
        logprobs = None
        if self.logprobs:
            logprobs = _sampled_logprobs(token_ids, completion.logprobs, where)
        output = GenerationOutput(token_ids, finish, stop_string, logprobs)
        _check_budget(output, request, where)
        return output


def _sampled_logprobs(
    token_ids: list[int], per_position: Sequence[dict[int, Any]] | None, where: str
) -> list[float]:
    """The sampled token's log-prob at each position, from vLLM's ``[{token_id: Logprob}]``."""
    if per_position is None or len(per_position) != len(token_ids):
        got = "none" if per_position is None else f"{len(per_position)} positions"
        raise VLLMError(f"{where}: asked for log-probs of {len(token_ids)} tokens, got {got}")
    values = []
    for pos, (token, candidates) in enumerate(zip(token_ids, per_position, strict=True)):
        if token not in candidates:
            raise VLLMError(f"{where}: no log-prob for sampled token {token} at position {pos}")
        entry = candidates[token]
        values.append(float(getattr(entry, "logprob", entry)))
    return values


class VLLMServerBackend(CompletionsServer):
    """The generation protocol over a vLLM OpenAI-compatible server (``/v1/completions``).

    This is the server of TRL's ``vllm_mode="server"`` (``trl vllm-serve``) or a plain
    ``vllm serve``. Every training rank may call it on its own (an HTTP request is not a
    collective), so ranks need no lockstep here. Requests that share a budget and stop strings go
    in one HTTP call; a seeded call sends each request alone (the server applies one seed to every
    prompt of a call), with up to ``max_in_flight`` calls at once.
    """

    error = VLLMError

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        logprobs: bool = True,
        timeout_s: float = 600.0,
        max_in_flight: int = 64,
        max_retries: int = 3,
        backoff_s: float = 1.0,
        client: Any = None,
    ) -> None:
        self.logprobs = logprobs
        self.max_in_flight = max_in_flight
        client = client if client is not None else httpx.Client(timeout=timeout_s)
        self._connect(base_url, client, model, max_retries, backoff_s)

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingParams
    ) -> list[GenerationOutput]:
        outputs: list[GenerationOutput | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, request in enumerate(requests):
            if request.max_new_tokens <= 0:
                outputs[i] = _empty_output(self.logprobs)
                continue
            key = (request.max_new_tokens, tuple(request.stop))
            if sampling.seed is not None:
                key = (*key, i)
            groups.setdefault(key, []).append(i)
        model = self.model

        def post(indices: list[int]) -> list[tuple[int, GenerationOutput]]:
            first = requests[indices[0]]
            payload = {
                "model": model,
                "prompt": [list(requests[i].prompt_ids) for i in indices],
                **_sampling_kwargs(
                    first, sampling, _request_seed(sampling, indices[0]), self.logprobs
                ),
                "return_token_ids": True,
                "return_tokens_as_token_ids": True,
            }
            choices = self._call("POST", "/v1/completions", payload).get("choices", [])
            if len(choices) != len(indices):
                raise VLLMError(
                    f"{self.base_url}/v1/completions: "
                    f"{len(choices)} choices for {len(indices)} prompts"
                )
            done = []
            for choice in choices:
                i = indices[int(choice["index"])]
                done.append((i, self._convert(choice, requests[i], f"vLLM server request {i}")))
            return done

        batches = list(groups.values())
        if len(batches) == 1:
            results = [post(batches[0])]
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(self.max_in_flight, len(batches))) as pool:
                results = list(pool.map(post, batches))
        for done in results:
            for i, output in done:
                outputs[i] = output
        return [o for o in outputs if o is not None]

    def _convert(
        self, choice: dict[str, Any], request: GenerationRequest, where: str
    ) -> GenerationOutput:
        token_ids = [int(t) for t in choice.get("token_ids") or []]
        finish, stop_string = _finish(
            choice.get("finish_reason"), choice.get("stop_reason"), request, where
        )
        logprobs = None
        if self.logprobs:
            block = choice.get("logprobs") or {}
            values = block.get("token_logprobs")
            if values is None or len(values) != len(token_ids):
                raise VLLMError(
                    f"{where}: asked for log-probs of {len(token_ids)} tokens, got {block!r:.200}"
                )
            logprobs = [float(v) for v in values]
        output = GenerationOutput(token_ids, finish, stop_string, logprobs)
        _check_budget(output, request, where)
        return output
