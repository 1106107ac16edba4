"""A backend that replays given completions: for tests, and for users' own tests.

Each rollout follows a script, a list of model segments, one per turn. A segment is tokenised and
"generated" token by token with the same stop rules as a real backend: it stops at the first stop
string (the rest of the segment is dropped, as a model would have been interrupted), at the
request's token budget, or, when the segment runs out without a stop, with the end-of-sequence
token.

Scripts are keyed by question text; the rollouts of one question take its scripts in turn (sample
i gets script ``i % len(scripts)``). A rollout is recognised on later calls because its context
extends the context of its previous call. A call that continues exactly where the previous one hit
its token budget (the rollout engine generates in chunks) resumes the same segment; any other
continuation (a result was inserted) starts the next segment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from research_rl.backends.base import GenerationOutput, GenerationRequest, SamplingParams
from research_rl.backends.stopping import StopWatcher

Script = Sequence[str]  # the model's text for each turn


class ScriptError(ValueError):
    """A request the scripts do not cover."""


@dataclass
class _Live:
    question: str
    script: Script
    turn: int = 0  # the segment being played
    offset: int = 0  # tokens of it already played
    context: list[int] | None = None  # the context of the previous call
    output: list[int] | None = None  # what the previous call returned
    cut: bool = False  # the previous call ended on its budget, inside the segment


class ScriptedBackend:
    def __init__(
        self,
        tokenizer: Any,
        scripts: Mapping[str, Sequence[Script]] | None = None,
        default: Sequence[Script] | None = None,
        logprob: float | None = None,
    ) -> None:
        """``scripts`` maps question text to that question's scripts; ``default`` serves any
        other question. ``logprob``: the log-prob reported for every token (None: no log-probs)."""
        if not scripts and not default:
            raise ScriptError("give scripts for some questions or a default")
        self.tokenizer = tokenizer
        self.scripts = {k: list(v) for k, v in (scripts or {}).items()}
        self.default = list(default or [])
        self.logprob = logprob
        self._live: list[_Live] = []
        self._started: dict[str, int] = {}
        eos = getattr(tokenizer, "eos_token_id", None)
        if eos is None:
            raise ScriptError("the tokenizer has no eos_token_id")
        self.eos_id: int = eos

    def _new_rollout(self, prompt_ids: list[int]) -> _Live:
        text = self.tokenizer.decode(prompt_ids, skip_special_tokens=False)
        matches = [q for q in self.scripts if q in text]
        if matches:
            question = max(matches, key=len)
            options = self.scripts[question]
        elif self.default:
            question, options = "<default>", self.default
        else:
            raise ScriptError(f"no script for the prompt {text[-200:]!r}")
        i = self._started.get(question, 0)
        self._started[question] = i + 1
        return _Live(question, options[i % len(options)])

    def _claim(self, prompt_ids: list[int]) -> _Live:
        # The rollouts of one question share their first context, so a context prefix alone is
        # ambiguous once they diverge: take the rollout whose last output the request continues
        # furthest (the engine may drop tokens after a stop string split across chunks).
        best, best_len = None, -1
        for k, live in enumerate(self._live):
            assert live.context is not None and live.output is not None
            n = len(live.context)
            if n < len(prompt_ids) and prompt_ids[:n] == live.context:
                shared = _common_prefix(live.output, prompt_ids[n:])
                if shared > best_len:
                    best, best_len = k, shared
        if best is None:
            return self._new_rollout(prompt_ids)
        live = self._live.pop(best)
        assert live.context is not None and live.output is not None
        if not (live.cut and prompt_ids == live.context + live.output):
            live.turn, live.offset = live.turn + 1, 0
        return live

    def generate(
        self, requests: list[GenerationRequest], sampling: SamplingParams
    ) -> list[GenerationOutput]:
        outputs = []
        for req in requests:
            live = self._claim(req.prompt_ids)
            if live.turn >= len(live.script):
                raise ScriptError(
                    f"question {live.question!r}: the script has {len(live.script)} segments but "
                    f"turn {live.turn + 1} was requested"
                )
            segment = [
                *self.tokenizer.encode(live.script[live.turn], add_special_tokens=False),
                self.eos_id,
            ]
            out = self._play(segment[live.offset :], req)
            live.offset += len(out.token_ids)
            live.cut = out.finish_reason == "length"
            live.context, live.output = list(req.prompt_ids), list(out.token_ids)
            self._live.append(live)
            outputs.append(out)
        return outputs

    def _play(self, tokens: list[int], req: GenerationRequest) -> GenerationOutput:
        watcher = StopWatcher(self.tokenizer, req.stop)
        ids: list[int] = []
        finish, stop = "eos", None
        for tok in tokens:
            if len(ids) >= req.max_new_tokens:
                finish = "length"
                break
            ids.append(tok)
            if tok == self.eos_id:
                break
            stop = watcher.check(ids)
            if stop is not None:
                finish = "stop"
                break
        logprobs = None if self.logprob is None else [self.logprob] * len(ids)
        return GenerationOutput(ids, finish, stop, logprobs)  # type: ignore[arg-type]


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
