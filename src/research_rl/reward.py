"""The rule reward (the ReSearch paper's): F1 of the boxed answer, 0.1 for a valid format, else 0.

``score(response, golden_answers, truncated=False, rules="research") -> Reward``. Two sets of
rules, named after the rollout profile that uses them (``rollout.profile``):

``research`` (ReSearch's released scoring, rule for rule):

- format: as many ``<think>`` as ``</think>``, at least one; exactly one ``<answer>`` and one
  ``</answer>``, in that order; every ``<search>`` is followed by a ``</search>``, then a
  ``<result>``, then a ``</result>``, in that order, and the check resumes after that
  ``</result>`` (so text inside a result is not checked, and a ``<result>`` the model writes
  without searching is not by itself invalid); the answer span holds ``\\boxed{`` and ``}``;
- the response must have ended by itself (with EOS; in this engine every other ending is a cut by
  the length budget, ``truncated``), else 0;
- the prediction is :func:`research_rl.tags.rightmost_boxed` of the first closed answer span; a
  box that cannot be read scores 0;
- F1 against the golden answers (their maximum) when above 0, else 0.1.

ReSearch scores the text after the first ``Assistant:`` of prompt plus response, which cuts an
answer that itself contains ``Assistant:``; here the completion alone is scored (a deliberate
difference, docs/core.md).

``strict`` (research-rl's earlier rules): think tags alternate; exactly one answer pair, in order;
search and result tags form whole ``<search> </search> <result> </result>`` groups (a model-written
``<result>`` is invalid); the answer holds a complete ``\\boxed{…}``; the prediction is the
outermost complete box of the last answer span; a truncated response scores 0.

``f1`` and ``em`` measure the prediction whatever the format, so evaluation can report answer
quality apart from the reward (``value``). Under ``research`` a truncated response has no
prediction (ReSearch's evaluation reads none from a response cut by the budget); under ``strict``
it keeps one.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Literal

from research_rl import tags

Rules = Literal["research", "strict"]
RULES: tuple[Rules, ...] = ("research", "strict")

FORMAT_ONLY_REWARD = 0.1
# A prediction or golden answer normalising to one of these only matches exactly (HotpotQA rule:
# "yes" must not earn partial credit against "no").
EXACT_ONLY = frozenset({"yes", "no", "noanswer"})

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


@dataclass(frozen=True)
class Reward:
    value: float
    f1: float
    em: float
    valid_format: bool
    reason: str

    def to_json(self) -> dict:
        return asdict(self)


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, drop articles (a, an, the), fold whitespace."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def token_f1(prediction: str, golden: str) -> float:
    """Token F1 between one prediction and one golden answer, after normalisation."""
    pred, gold = normalize_answer(prediction), normalize_answer(golden)
    if (pred in EXACT_ONLY or gold in EXACT_ONLY) and pred != gold:
        return 0.0
    pred_tokens, gold_tokens = pred.split(), gold.split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def best_f1(prediction: str, golden_answers: list[str]) -> float:
    return max((token_f1(prediction, g) for g in golden_answers), default=0.0)


def exact_match(prediction: str, golden_answers: list[str]) -> float:
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golden_answers))


def _check_rules(rules: str) -> None:
    if rules not in RULES:
        raise ValueError(f"unknown reward rules {rules!r}: expected one of {', '.join(RULES)}")


# -- the research rules ------------------------------------------------------------------------
def _research_format(text: str) -> tuple[bool, str]:
    opened, closed = text.count(tags.THINK_OPEN), text.count(tags.THINK_CLOSE)
    if opened != closed:
        return False, f"{opened} <think> but {closed} </think>"
    if opened == 0:
        return False, "no <think> </think>"
    if text.count(tags.ANSWER_OPEN) != 1 or text.count(tags.ANSWER_CLOSE) != 1:
        return False, "needs exactly one <answer> and one </answer>"
    pos = 0
    while (search := text.find(tags.SEARCH_OPEN, pos)) != -1:
        search_end = text.find(tags.SEARCH_CLOSE, search)
        result = text.find(tags.RESULT_OPEN, search)
        result_end = text.find(tags.RESULT_CLOSE, result) if result != -1 else -1
        if -1 in (search_end, result, result_end):
            return False, "a <search> lacks its </search>, <result> or </result> after it"
        if not search_end < result:
            return False, "a <result> comes before the </search> of its search"
        pos = result_end
    answer_start, answer_end = text.find(tags.ANSWER_OPEN), text.find(tags.ANSWER_CLOSE)
    if answer_start > answer_end:
        return False, "</answer> comes before <answer>"
    span = text[answer_start:answer_end]
    if tags.BOXED not in span or "}" not in span:
        return False, "the answer has no \\boxed{}"
    return True, "valid format"


def _research_prediction(text: str) -> str | None:
    answer = tags.first_closed_answer(text)
    return None if answer is None else tags.rightmost_boxed(answer)


# -- the strict rules --------------------------------------------------------------------------
def _alternates(found: list[str], cycle: list[str]) -> bool:
    """True when ``found`` is ``cycle`` repeated a whole number of times (zero included)."""
    if len(found) % len(cycle):
        return False
    return all(t == cycle[i % len(cycle)] for i, t in enumerate(found))


def _strict_format(response: str) -> tuple[bool, str]:
    found = [t.literal for t in tags.find_tags(response)]
    thinks = [t for t in found if t in (tags.THINK_OPEN, tags.THINK_CLOSE)]
    if not thinks:
        return False, "no <think> </think> pair"
    if not _alternates(thinks, [tags.THINK_OPEN, tags.THINK_CLOSE]):
        return False, "<think> and </think> are not paired"
    if found.count(tags.ANSWER_OPEN) != 1 or found.count(tags.ANSWER_CLOSE) != 1:
        return False, "needs exactly one <answer> and one </answer>"
    if found.index(tags.ANSWER_OPEN) > found.index(tags.ANSWER_CLOSE):
        return False, "</answer> comes before <answer>"
    search_cycle = [tags.SEARCH_OPEN, tags.SEARCH_CLOSE, tags.RESULT_OPEN, tags.RESULT_CLOSE]
    if not _alternates([t for t in found if t in search_cycle], search_cycle):
        return False, "search/result tags are not in <search> </search> <result> </result> order"
    answer = tags.answer_content(response) or ""
    if tags.last_boxed(answer) is None:
        return False, "the answer has no complete \\boxed{}"
    return True, "valid format"


def _strict_prediction(response: str) -> str | None:
    answer = tags.answer_content(response)
    return tags.last_boxed(response if answer is None else answer)


# -- the entry points --------------------------------------------------------------------------
def check_format(response: str, rules: Rules = "research") -> tuple[bool, str]:
    """Whether ``response`` follows the protocol under ``rules``, and why not."""
    _check_rules(rules)
    return _research_format(response) if rules == "research" else _strict_format(response)


def extract_prediction(
    response: str, rules: Rules = "research", truncated: bool = False
) -> str | None:
    """The boxed answer under ``rules``: ``research``, the rightmost box of the first closed
    answer span, none when ``truncated``; ``strict``, the last box of the last answer span (with
    no ``<answer>`` at all, of the whole response)."""
    _check_rules(rules)
    if rules == "research":
        return None if truncated else _research_prediction(response)
    return _strict_prediction(response)


def score(
    response: str, golden_answers: list[str], truncated: bool = False, *, rules: Rules = "research"
) -> Reward:
    """The rule reward of one response (the completion only, not the prompt). ``truncated``: the
    response was cut by the length budget instead of ending by itself."""
    prediction = extract_prediction(response, rules, truncated)
    f1 = best_f1(prediction, golden_answers) if prediction is not None else 0.0
    em = exact_match(prediction, golden_answers) if prediction is not None else 0.0
    valid, why = check_format(response, rules)
    cut = Reward(0.0, f1, em, valid, "truncated: cut by the length budget before it ended")
    if rules == "strict" and truncated:
        return cut
    if not valid:
        return Reward(0.0, f1, em, False, f"invalid format: {why}")
    if truncated:
        return cut
    if prediction is None:
        return Reward(0.0, f1, em, True, "no answer could be read from the last \\boxed")
    if f1 > 0:
        return Reward(f1, f1, em, True, f"answer F1 {f1:.3f}")
    return Reward(FORMAT_ONLY_REWARD, f1, em, True, f"valid format, wrong answer {prediction!r}")
