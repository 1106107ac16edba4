"""Fakes that behave as vLLM's and verl's documented APIs do, for CPU contract tests.

The fake "model" is a script: the continuation to sample for a prompt. Everything around it
follows vLLM: ``LLM.generate(prompts, sampling_params, use_tqdm)`` with ``{"prompt_token_ids"}``
prompts and one ``SamplingParams`` per prompt; ``RequestOutput.outputs[0]`` is a
``CompletionOutput`` with ``token_ids``, ``text``, ``finish_reason`` ("stop"/"length"),
``stop_reason`` (the stop string, or None for EOS) and ``logprobs`` (one ``{token_id: Logprob}`` per
position, the sampled token included). Stop strings are matched on the text decoded so far; the ids
keep the token that completed the stop string (vLLM does not split tokens), while the text is cut
at the stop string's end (``include_stop_str_in_output=True``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# A tiny vocabulary of text pieces. Some pieces straddle a stop string ("h>x" completes
# "</search>" and carries text past it) so the tests see vLLM's token-boundary behaviour.
PIECES = [
    "<eos>",
    "<search>",
    "</search>",
    "</sear",
    "ch>",
    "</searc",
    "h>x",
    "q",
    " ",
    "a",
    "b",
    "<answer>",
    "</answer>",
    "\\boxed{",
    "}",
    "<think>",
    "</think>",
    "x",
    "y",
    "<result>",
    "</result>",
    "\n",
]
EOS_ID = 0


def encode_pieces(*pieces: str) -> list[int]:
    return [PIECES.index(p) for p in pieces]


def decode(ids: list[int]) -> str:
    return "".join(PIECES[i] for i in ids)


@dataclass
class Logprob:  # vllm.logprobs.Logprob
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:  # vllm.outputs.CompletionOutput
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:  # vllm.outputs.RequestOutput
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int]
    prompt_logprobs: Any
    outputs: list[CompletionOutput]
    finished: bool = True


@dataclass
class FakeSamplingParams:
    """vllm.SamplingParams' fields that the backend may set; unknown keywords fail as in vLLM."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: str | list[str] | None = None
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    max_tokens: int | None = 16
    logprobs: int | None = None

    def __post_init__(self) -> None:
        # vLLM's SamplingParams._verify_args
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}.")
        if not (0.0 < self.top_p <= 1.0):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.top_k < -1:
            raise ValueError(f"top_k must be -1 (disable), or at least 1, got {self.top_k}.")


def logprob_at(position: int, token: int) -> float:
    """The fake model's log-prob of ``token`` at ``position`` (distinct values, easy to check)."""
    return -0.01 * (position + 1) - 0.001 * token


def sample(
    prompt_ids: list[int], params: FakeSamplingParams, script: Callable[[list[int]], list[int]]
) -> CompletionOutput:
    """Run one request the way vLLM's detokenizer and stop checker do."""
    continuation = script(prompt_ids)
    stops = [params.stop] if isinstance(params.stop, str) else list(params.stop or [])
    ids: list[int] = []
    finish, stop_reason = "length", None
    text = ""
    for token in continuation:
        ids.append(token)
        if token == EOS_ID:
            finish, stop_reason = "stop", None
            break
        text = decode([i for i in ids if i != EOS_ID])
        hit = min(((text.find(s), s) for s in stops if s in text), default=None)
        if hit is not None:
            pos, s = hit
            end = pos + len(s) if params.include_stop_str_in_output else pos
            text = text[:end]
            finish, stop_reason = "stop", s
            break
        if len(ids) == params.max_tokens:
            break
    else:
        raise AssertionError("the script ran out of tokens before a stop, EOS or the budget")
    logprobs = None
    if params.logprobs is not None:
        logprobs = [
            {t: Logprob(logprob_at(p, t), rank=1, decoded_token=PIECES[t])}
            for p, t in enumerate(ids)
        ]
    return CompletionOutput(0, text, ids, None, logprobs, finish, stop_reason)


@dataclass
class FakeLLM:
    """``vllm.LLM`` with a scripted model; records what it was asked."""

    script: Callable[[list[int]], list[int]]
    calls: list[tuple[list[dict], list[FakeSamplingParams]]] = field(default_factory=list)
    init_kwargs: dict[str, Any] = field(default_factory=dict)

    def generate(self, prompts, sampling_params=None, use_tqdm=True, **kwargs):
        if not isinstance(sampling_params, list):
            sampling_params = [sampling_params] * len(prompts)
        assert len(sampling_params) == len(prompts), "vLLM: one SamplingParams per prompt"
        self.calls.append((prompts, sampling_params))
        out = []
        for k, (prompt, params) in enumerate(zip(prompts, sampling_params, strict=True)):
            ids = list(prompt["prompt_token_ids"])
            out.append(RequestOutput(str(k), None, ids, None, [sample(ids, params, self.script)]))
        return out


def fake_vllm_module(script: Callable[[list[int]], list[int]]):
    """A stand-in for the ``vllm`` package: ``LLM`` (built with the script) and
    ``SamplingParams``."""
    import types

    module = types.ModuleType("vllm")
    module.SamplingParams = FakeSamplingParams

    def make_llm(model: str, **kwargs):
        return FakeLLM(script, init_kwargs={"model": model, **kwargs})

    module.LLM = make_llm
    return module


# --- a tokenizer and a scripted verl server manager --------------------------------------------

_TOKENIZER_TEXT = [
    "<think> I need to find the capital. </think> <search> capital of France </search>",
    "<result> Doc 1 (Title: Paris) Paris is the capital of France. </result>",
    "<answer> The answer is \\boxed{Paris} </answer>",
    "Answer the question. Question: What is the capital of France? Assistant: Dune Herbert",
]


def make_tokenizer():
    """A small byte-level BPE tokenizer (any text round-trips), built offline."""
    from research_rl.bpe import train_tokenizer

    return train_tokenizer(_TOKENIZER_TEXT * 20, 400, min_frequency=0, added_tokens=())


try:  # the real output type when verl is importable, else one with its fields
    from verl.workers.rollout.replica import TokenOutput
except ImportError:

    @dataclass
    class TokenOutput:  # verl.workers.rollout.replica.TokenOutput (0.9.1)
        token_ids: list[int]
        log_probs: list[float] | None = None
        routed_experts: Any = None
        stop_reason: str | None = None
        num_preempted: int | None = None
        extra_fields: dict = field(default_factory=dict)


TOKEN_LOGPROB = -0.25


class ScriptedModel:
    """A "model" over a real tokenizer whose text per turn is scripted, sampled with vLLM's rules.

    ``scripts`` maps question text to the model's text per turn; the turn is the number of
    ``<result>`` blocks in the context. A call continues the turn where the context left it (so a
    turn may span calls), emits tokens one by one and stops when the decoded new text contains a
    stop string (the completing token kept), at ``max_tokens``, or with EOS when the turn's text
    runs out. Returns (ids, vLLM finish_reason, vLLM stop_reason).
    """

    def __init__(self, tokenizer, scripts: dict[str, list[str]]) -> None:
        self.tokenizer = tokenizer
        self.scripts = scripts

    def sample(self, prompt_ids: list[int], stops: list[str], max_tokens: int):
        assert max_tokens >= 1, "vLLM rejects max_tokens < 1"
        tok = self.tokenizer
        context = tok.decode(prompt_ids, skip_special_tokens=False)
        question = next(q for q in self.scripts if q in context)
        turn = context.count("<result>")
        marker = "</result>" if turn else "Assistant:"
        so_far = context[context.rindex(marker) + len(marker) :]
        if turn:  # the search-r1 block ends with a newline of its own, not the model's
            so_far = so_far.removeprefix("\n")
        planned = tok.encode(self.scripts[question][turn], add_special_tokens=False)
        planned.append(tok.eos_token_id)
        done = next(
            m
            for m in range(len(planned) + 1)
            if tok.decode(planned[:m], skip_special_tokens=False) == so_far
        )
        out: list[int] = []
        for token in planned[done:]:
            out.append(token)
            if token == tok.eos_token_id:
                return out, "stop", None
            new_text = tok.decode(out, skip_special_tokens=False)
            hit = next((s for s in stops if s in new_text), None)
            if hit is not None:
                return out, "stop", hit
            if len(out) == max_tokens:
                return out, "length", None
        raise AssertionError("the script ran out before a stop, EOS or the budget")


class ScriptedLLM:
    """``vllm.LLM`` over a :class:`ScriptedModel`: RequestOutput/CompletionOutput as vLLM
    returns."""

    def __init__(self, model: ScriptedModel) -> None:
        self.model = model
        self.calls: list[tuple[list[dict], list[FakeSamplingParams]]] = []

    def generate(self, prompts, sampling_params=None, use_tqdm=True, **kwargs):
        assert isinstance(sampling_params, list) and len(sampling_params) == len(prompts)
        self.calls.append((prompts, sampling_params))
        out = []
        for k, (prompt, params) in enumerate(zip(prompts, sampling_params, strict=True)):
            assert params.include_stop_str_in_output, "the stop string must be kept"
            ids, finish, stop_reason = self.model.sample(
                list(prompt["prompt_token_ids"]), list(params.stop or []), params.max_tokens
            )
            logprobs = (
                None
                if params.logprobs is None
                else [{t: Logprob(logprob_at(p, t), rank=1)} for p, t in enumerate(ids)]
            )
            text = self.model.tokenizer.decode(ids, skip_special_tokens=True)
            completion = CompletionOutput(0, text, ids, None, logprobs, finish, stop_reason)
            out.append(
                RequestOutput(str(k), None, list(prompt["prompt_token_ids"]), None, [completion])
            )
        return out


class FakeServerManager:
    """verl's ``LLMServerClient.generate`` over a :class:`ScriptedModel`, returning verl's
    ``TokenOutput`` (token ids and log-probs, no finish reason)."""

    def __init__(self, tokenizer, scripts: dict[str, list[str]]) -> None:
        self.tokenizer = tokenizer
        self.model = ScriptedModel(tokenizer, scripts)
        self.calls: list[dict[str, Any]] = []

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs):
        self.calls.append(
            {
                "request_id": request_id,
                "prompt_ids": list(prompt_ids),
                "sampling_params": dict(sampling_params),
            }
        )
        assert sampling_params.get("include_stop_str_in_output"), "the stop string must be kept"
        out, _, _ = self.model.sample(
            list(prompt_ids), sampling_params.get("stop") or [], sampling_params["max_tokens"]
        )
        log_probs = [TOKEN_LOGPROB] * len(out) if sampling_params.get("logprobs") else None
        return TokenOutput(token_ids=out, log_probs=log_probs, stop_reason="completed")
