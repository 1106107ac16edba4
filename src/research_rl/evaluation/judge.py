"""LLM-as-judge: a correct/incorrect verdict from any OpenAI-compatible chat endpoint.

The question, golden answers and prediction fill the configured prompt. A reply is read as a
verdict in one of two shapes: a JSON object with a ``judgement`` (or ``judgment`` / ``verdict``)
of "correct" or "incorrect", the last such object of the reply winning, whatever reasoning comes
before it (the research preset asks for that); or, without one, the words "correct" or
"incorrect" (whole words, any case; a reply naming both or neither is malformed).
Timeouts, connection failures, HTTP 429/5xx and malformed replies are retried with back-off; a
question still without a verdict after the retries gets ``correct=None`` and the error, which the
tables count (``judge_failed``) instead of scoring it as wrong. Verdicts are cached on disk by
(model, prompt), so a rerun, or a second evaluation of the same predictions, asks nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from research_rl.evaluation.config import JudgeSettings
from research_rl.http_transport import HTTPCallError, RetryableReply, call_json
from research_rl.run_dir import append_jsonl, iter_jsonl

_WORD = re.compile(r"[a-z]+")


class JudgeError(RuntimeError):
    """The judge endpoint refused a request in a way retrying cannot fix (e.g. HTTP 401/404)."""


@dataclass(frozen=True)
class Verdict:
    correct: bool | None  # None: no verdict after the retries
    reply: str  # the judge's last reply (empty when none came)
    error: str | None = None
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"correct": self.correct, "reply": self.reply, "error": self.error}


_VERDICT_KEYS = ("judgement", "judgment", "verdict")


def _json_verdict(reply: str) -> str | None:
    """The verdict string of the last JSON object in ``reply`` that carries one."""
    decoder = json.JSONDecoder()
    for start in reversed([i for i, c in enumerate(reply) if c == "{"]):
        try:
            obj, _ = decoder.raw_decode(reply, start)
        except ValueError:
            continue
        if isinstance(obj, dict):
            for key in _VERDICT_KEYS:
                if isinstance(obj.get(key), str):
                    return obj[key]
    return None


def parse_verdict(reply: str) -> bool | None:
    """True for "correct", False for "incorrect" (also "not correct"), None when malformed. A
    JSON verdict wins over the words around it (a rationale may say both)."""
    verdict = _json_verdict(reply)
    return _word_verdict(reply if verdict is None else verdict)


def _word_verdict(reply: str) -> bool | None:
    words = _WORD.findall(reply.lower())
    says_incorrect = "incorrect" in words or any(
        a == "not" and b == "correct" for a, b in zip(words, words[1:], strict=False)
    )
    says_correct = "correct" in words and not any(
        a == "not" and b == "correct" for a, b in zip(words, words[1:], strict=False)
    )
    if says_incorrect == says_correct:  # both or neither
        return None
    return says_correct


def _api_headers(api_key_env: str | None) -> dict[str, str]:
    if not api_key_env:
        return {}
    key = os.environ.get(api_key_env)
    if not key:
        raise JudgeError(f"environment variable {api_key_env} (api_key_env) is not set")
    return {"Authorization": f"Bearer {key}"}


class VerdictCache:
    """Verdicts on disk: one JSON line per judged prompt, appended as they come."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            # A line an interrupted run cut short is skipped: that prompt is asked again.
            for _, row in iter_jsonl(self.path, problems=[], repair_cut_tail=True):
                if isinstance(row, dict) and "key" in row:
                    self._entries[row["key"]] = row

    def get(self, key: str) -> dict[str, Any] | None:
        return self._entries.get(key)

    def put(self, key: str, correct: bool, reply: str) -> None:
        row = {"key": key, "correct": correct, "reply": reply}
        with self._lock:
            self._entries[key] = row
            append_jsonl(self.path, [row])

    def __len__(self) -> int:
        return len(self._entries)


class Judge:
    def __init__(self, settings: JudgeSettings, cache_path: str | Path, client: Any = None) -> None:

        self.settings = settings
        self.endpoint = settings.url.rstrip("/") + "/chat/completions"
        self.cache = VerdictCache(cache_path)
        self.client = client or httpx.Client(
            timeout=settings.timeout_s, headers=_api_headers(settings.api_key_env)
        )
        self._sleep = time.sleep

    def prompt(self, question: str, golden_answers: Sequence[str], prediction: str) -> str:
        # Plain replacement, not str.format: predictions and prompts may hold braces.
        return (
            self.settings.prompt_text.replace("{question}", question)
            .replace("{golden_answers}", " | ".join(golden_answers))
            .replace("{prediction}", prediction)
        )

    def _key(self, prompt: str) -> str:
        return hashlib.sha256(json.dumps([self.settings.model, prompt]).encode()).hexdigest()

    def judge(
        self, question: str, golden_answers: Sequence[str], prediction: str | None
    ) -> Verdict:
        if prediction is None or not prediction.strip():
            return Verdict(False, "", "no prediction to judge")
        prompt = self.prompt(question, golden_answers, prediction)
        key = self._key(prompt)
        hit = self.cache.get(key)
        if hit is not None:
            return Verdict(hit["correct"], hit["reply"], cached=True)
        payload = {
            "model": self.settings.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": self.settings.max_tokens,
            "temperature": 0.0,
        }
        replies: list[str] = []  # the last one is kept with a failed verdict

        def verdict(body: Any) -> tuple[bool, str]:
            try:
                content = body["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError):
                content = None
            if not isinstance(content, str):
                raise RetryableReply(f"malformed response {str(body)[:200]!r}")
            replies.append(content.strip())
            correct = parse_verdict(replies[-1])
            if correct is None:
                raise RetryableReply(f"malformed judge reply {replies[-1][:200]!r}")
            return correct, replies[-1]

        try:
            correct, reply = call_json(
                self.client, "POST", self.endpoint, payload,
                max_retries=self.settings.max_retries, backoff_s=self.settings.backoff_s,
                parse=verdict, sleep=self._sleep,
            )  # fmt: skip
        except HTTPCallError as err:
            if not err.exhausted:  # refused: retrying cannot fix it (401, 404, ...)
                raise JudgeError(f"{self.endpoint}: {err}") from None
            return Verdict(None, replies[-1] if replies else "", f"{self.endpoint}: {err}")
        self.cache.put(key, correct, reply)
        return Verdict(correct, reply)

    def judge_many(
        self,
        items: Sequence[tuple[str, Sequence[str], str | None]],
        on_done: Callable[[int, Verdict], None] | None = None,
    ) -> list[Verdict]:
        """Judge ``(question, golden_answers, prediction)`` items, ``max_in_flight`` at a time;
        ``on_done(index, verdict)`` is called as each finishes (for progress and checkpoints)."""
        results: list[Verdict | None] = [None] * len(items)

        def run(i: int) -> None:
            verdict = self.judge(*items[i])
            results[i] = verdict
            if on_done is not None:
                on_done(i, verdict)

        with ThreadPoolExecutor(max_workers=self.settings.max_in_flight) as pool:
            for future in [pool.submit(run, i) for i in range(len(items))]:
                future.result()  # re-raise a JudgeError from any worker
        return [r for r in results if r is not None]

    def close(self) -> None:
        self.client.close()
