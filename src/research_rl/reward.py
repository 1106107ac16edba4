"""The rule reward (the ReSearch paper's): F1 of the boxed answer, 0.1 for a valid format, else 0.

``score(response, golden_answers, truncated=False) -> Reward``:

- a truncated response (it hit the length budget without ending) scores 0;
- an invalid format (see :func:`check_format`) scores 0;
- otherwise the prediction is the content of the last ``\\boxed{…}`` in the answer, and the value is
  its token F1 against the golden answers (the maximum over them) when that is above 0, else 0.1.

``f1`` and ``em`` always measure the prediction, whatever the format or truncation, so evaluation
can report answer quality separately from the reward (``value``).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import asdict, dataclass

from research_rl import tags

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


def _alternates(found: list[str], cycle: list[str]) -> bool:
    """True when ``found`` is ``cycle`` repeated a whole number of times (zero included)."""
    if len(found) % len(cycle):
        return False
    return all(t == cycle[i % len(cycle)] for i, t in enumerate(found))


def check_format(response: str) -> tuple[bool, str]:
    """Whether ``response`` follows the protocol, and why not.

    - ``<think>`` / ``</think>`` alternate, starting with an opening tag, with at least one pair;
    - exactly one ``<answer>`` and one ``</answer>``, in that order;
    - search and result tags appear as whole ``<search> </search> <result> </result>`` groups, in
      that order (a ``<result>`` the model wrote without a search is invalid too);
    - the answer contains a complete ``\\boxed{…}`` (braces matched).
    """
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


def extract_prediction(response: str) -> str | None:
    """The last ``\\boxed{…}`` in the answer; with no ``<answer>`` at all, in the whole response."""
    answer = tags.answer_content(response)
    return tags.last_boxed(response if answer is None else answer)


def score(response: str, golden_answers: list[str], truncated: bool = False) -> Reward:
    """The rule reward of one response (the completion only, not the prompt)."""
    prediction = extract_prediction(response)
    f1 = best_f1(prediction, golden_answers) if prediction is not None else 0.0
    em = exact_match(prediction, golden_answers) if prediction is not None else 0.0
    valid, why = check_format(response)
    if truncated:
        return Reward(0.0, f1, em, valid, "truncated: hit the length budget")
    if not valid:
        return Reward(0.0, f1, em, False, f"invalid format: {why}")
    if f1 > 0:
        return Reward(f1, f1, em, True, f"answer F1 {f1:.3f}")
    return Reward(FORMAT_ONLY_REWARD, f1, em, True, f"valid format, wrong answer {prediction!r}")
