"""Flag the behaviours the ReSearch paper reads in trajectories, so a report can count them per
step and show reflection emerging during training.

- ``search_after_miss``: the rollout searched again after a result that did not contain a golden
  answer: it noticed the evidence was not enough and went on looking.
- ``revision``: the model revised an earlier claim: its own text (not the inserted passages)
  holds a correction cue ("wait", "actually", "I was wrong", "let me re-check", ...) or it boxed
  two different answers.

Both are heuristics on text, so they are shown as counts and per-rollout badges, not as truth.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from research_rl import tags
from research_rl.report.segments import inserted, segments
from research_rl.reward import normalize_answer

SEARCH_AFTER_MISS = "search_after_miss"
REVISION = "revision"
BEHAVIOURS = (SEARCH_AFTER_MISS, REVISION)

_CORRECTION_CUES = re.compile(
    r"\b(?:wait|actually|on second thought"
    r"|i was wrong|i made a mistake|my mistake|i misread"
    r"|(?:that|this|it) (?:is|was|'s) (?:wrong|incorrect|not right|not correct)"
    r"|let me (?:re-?check|double[- ]check|re-?verify|re-?think|reconsider|correct)"
    r"|reconsider(?:ing)?|correction"
    r"|my (?:earlier|previous|first|initial) (?:answer|claim|guess|assumption|thought))\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Behaviours:
    search_after_miss: bool = False
    revision: bool = False
    evidence: tuple[str, ...] = ()  # short human-readable reasons, shown as badge tooltips

    def names(self) -> list[str]:
        return [n for n in BEHAVIOURS if getattr(self, n)]


def _contains_answer(passages: str, golden: list[str]) -> bool:
    hay = f" {normalize_answer(passages)} "
    return any(g and f" {g} " in hay for g in (normalize_answer(a) for a in golden))


def flag(
    text: str, golden_answers: list[str], segs: list[tags.Segment] | None = None
) -> Behaviours:
    """The behaviours one rollout shows (see the module docstring); ``segs`` are the text's
    segments when the caller has them already."""
    segs = segments(text) if segs is None else segs
    evidence: list[str] = []

    after_miss = False
    missed_at: int | None = None  # index of a result without a golden answer, not yet followed up
    for i, (seg, from_retriever) in enumerate(zip(segs, inserted(segs), strict=True)):
        if from_retriever and golden_answers:
            if _contains_answer(seg.content, golden_answers):
                missed_at = None
            elif missed_at is None:
                missed_at = i
        elif seg.kind == "search" and missed_at is not None:
            after_miss = True
            evidence.append(
                f"searched again ({seg.content.strip()[:60]!r}) after a result without the answer"
            )
            break

    model_text = "\n".join(
        s.content
        for s, ins in zip(segs, inserted(segs), strict=True)
        if s.kind in ("think", "answer", "other", "result") and not ins
    )
    cue = _CORRECTION_CUES.search(model_text)
    if cue:
        evidence.append(f"correction cue {cue.group(0)!r}")
    boxed = {normalize_answer(model_text[a:b]) for a, b in tags.boxed_spans(model_text)}
    if len(boxed) > 1:
        evidence.append(f"{len(boxed)} different boxed answers")
    return Behaviours(after_miss, bool(cue) or len(boxed) > 1, tuple(evidence))


def per_step(rows_by_step: Iterable[tuple[int, list[Behaviours]]]) -> list[dict[str, Any]]:
    """Per training step: how many rollouts, and how many show each behaviour (and the rate)."""
    out = []
    for step, flags in sorted(rows_by_step, key=lambda sf: sf[0]):
        n = len(flags)
        entry: dict[str, Any] = {"step": step, "rollouts": n}
        for name in BEHAVIOURS:
            count = sum(getattr(f, name) for f in flags)
            entry[name] = count
            entry[f"{name}_rate"] = count / n if n else 0.0
        out.append(entry)
    return out
