"""The research reward rules against a table derived from the written rules, on 6,000 generated
responses.

Each response is assembled from pieces whose tags the generator records as it places them, so
the expected value comes from what was placed, never from parsing the text back:

- format: as many ``<think>`` as ``</think>``, at least one; exactly one ``<answer>`` and one
  ``</answer>``, the opening first; each ``<search>`` is followed by ``</search>``, ``<result>``,
  ``</result>`` in that order (the first of each after it; ``</search>`` before ``<result>``),
  the walk resuming after that ``</result>``; the answer span holds ``\\boxed{`` and ``}``;
- a truncated response (no EOS) scores 0;
- the prediction is the rightmost box of the answer span, braces matched (the inner one of a
  nested pair; nothing when the rightmost never closes or does not open with a brace; after
  ``\\boxed `` up to ``$``), and it scores its F1 from the table below when above 0, else 0.1.

Fillers never hold ``<``, ``>``, braces, backslashes or ``$``, so only placed pieces make tags
and boxes; they do hold unicode, newlines and the word ``Assistant:``.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from research_rl.reward import score

N_RESPONSES = 6000

# (boxed content, golden answers, token F1), worked out by hand from the SQuAD normalisation.
ANSWERS = [
    ("Paris", ["Paris"], 1.0),
    ("paris, France", ["Paris"], 2 / 3),  # P = 1/2, R = 1
    ("Frank Herbert", ["Herbert", "Frank Herbert Jr"], 0.8),  # best of 2/3 and 0.8
    ("Rome", ["Paris"], 0.0),
    ("yes", ["no"], 0.0),
    ("Yes.", ["yes"], 1.0),
    ("yes indeed", ["yes"], 0.0),  # a yes/no golden answer needs an exact match
    ("the Zürich", ["Zürich"], 1.0),  # articles and case dropped, the umlaut kept
    ("中国", ["中国"], 1.0),
    ("", ["Paris"], 0.0),
    ("Assistant: Paris", ["assistant paris"], 1.0),  # the word that splits ReSearch's text
    ("a {b} c", ["a b c"], 1.0),  # braces are punctuation once normalised
]

# How the answer span holds its boxes: (pieces, span holds "\\boxed{" and "}", whether the
# answer's content is what is read). "@X" stands for the answer's content, "@Y"/"@Z" for others.
BOXES = {
    "single": (["\\boxed{@X}"], True, True),
    "latex": (["The final answer is \\[ \\boxed{@X} \\]"], True, True),
    "two": (["\\boxed{@Y} or rather \\boxed{@X}"], True, True),
    "nested": (["\\boxed{@Y \\boxed{@X}}"], True, True),
    "nested_last": (["\\boxed{@Y} then \\boxed{@Z \\boxed{@X} @Z}"], True, True),
    "unclosed_last": (["\\boxed{@X} and \\boxed{@Y"], True, False),
    "unclosed_only": (["\\boxed{@Y"], False, False),
    "no_brace_last": (["\\boxed{@Y} \\boxedx{@X}"], True, False),
    "spaced": (["\\boxed{@Y} so \\boxed @X$ @Z"], True, True),
    "spaced_only": (["\\boxed @X$"], False, True),
    "none": (["no box here"], False, False),
}

SEARCH_GROUPS = {
    "complete": ["<search>", "Q", "</search>", " ", "<result>", "R", "</result>"],
    "search_in_result": [
        "<search>",
        "Q",
        "</search>",
        "<result>",
        "R",
        "<search>",
        "R",
        "</result>",
    ],
    "no_close": ["<search>", "Q", "<result>", "R", "</result>"],
    "no_result": ["<search>", "Q", "</search>"],
    "no_result_close": ["<search>", "Q", "</search>", "<result>", "R"],
    "result_first": ["<search>", "Q", "<result>", "R", "</result>", "</search>"],
    "model_result": ["<result>", "R", "</result>"],
}

# (number of <think>, number of </think>); (<answer>s, </answer>s, opening first). Weighted
# towards well-formed responses, so that the scored cases are many too.
THINKS = [(1, 1)] * 4 + [(2, 2)] * 2 + [(3, 3), (0, 0), (1, 0), (0, 1), (2, 1), (1, 2)]
ANSWER_TAGS = [(1, 1, True)] * 12 + [
    (1, 1, False),
    (0, 0, True),
    (2, 1, True),
    (1, 2, True),
    (2, 2, True),
    (1, 0, True),
    (0, 1, True),
]

TAGS = {
    "<think>",
    "</think>",
    "<search>",
    "</search>",
    "<result>",
    "</result>",
    "<answer>",
    "</answer>",
}
FILLER_CHARS = "abcdefghij klmnop éüñçß 中文字 😀 Ω\n\t.,;:!?'\"-"


def filler(rng: random.Random) -> str:
    if rng.random() < 0.1:
        return " Assistant: "
    return "".join(rng.choice(FILLER_CHARS) for _ in range(rng.randint(0, 12)))


def expected_format(tags: list[str], span_has_box: bool) -> bool:
    """The written rules over the placed tags, in order."""
    if tags.count("<think>") != tags.count("</think>") or tags.count("<think>") == 0:
        return False
    if tags.count("<answer>") != 1 or tags.count("</answer>") != 1:
        return False
    if tags.index("<answer>") > tags.index("</answer>"):
        return False

    def first(tag: str, after: int) -> int | None:
        return next((i for i in range(after + 1, len(tags)) if tags[i] == tag), None)

    i = -1
    while (s := first("<search>", i)) is not None:
        close, result = first("</search>", s), first("<result>", s)
        result_close = first("</result>", result) if result is not None else None
        if close is None or result is None or result_close is None or close > result:
            return False
        i = result_close
    return span_has_box


def generate(rng: random.Random):
    """(response, golden answers, truncated, expected value, expected format, class labels)."""
    content, golden, f1 = rng.choice(ANSWERS)
    box_kind = rng.choice(list(BOXES))
    box_pieces, span_has_box, reads_content = BOXES[box_kind]
    opens, closes, in_order = rng.choice(ANSWER_TAGS)
    think = rng.choice(THINKS)
    kinds = list(SEARCH_GROUPS) + ["complete"] * 4 + ["search_in_result", "model_result"]
    groups = [rng.choice(kinds) for _ in range(rng.choice([0, 0, 1, 1, 2, 3]))]
    truncated = rng.random() < 0.12

    other = rng.choice(["London", "Berlin", "x y"])
    box = [p.replace("@X", content).replace("@Y", other).replace("@Z", other) for p in box_pieces]
    # Units: each search group, then the answer; one group may sit inside the answer span.
    units: list[list[str]] = [
        [filler(rng) if p in ("Q", "R") else p for p in SEARCH_GROUPS[g]] for g in groups
    ]
    inner = units.pop(rng.randrange(len(units))) if units and rng.random() < 0.25 else []
    if opens == 1 and closes == 1:
        answer = ["<answer>", *inner, *box, "</answer>"]
        units.append(answer if in_order else ["</answer>", *box, "<answer>"])
    else:
        units.append([*inner, *box])
        units += [["<answer>"] for _ in range(opens)] + [["</answer>"] for _ in range(closes)]
        rng.shuffle(units)
    if rng.random() < 0.2:  # a box outside the answer span is never read
        units.insert(0, ["\\boxed{Berlin}"])
    pieces = [p for unit in units for p in unit]
    # Think tags anywhere: around the answer, inside it, inside a search group.
    if think == (1, 1) and rng.random() < 0.5:
        pieces = ["<think>", "</think>", *pieces]  # the usual order: reasoning first
    else:
        for tag, count in (("<think>", think[0]), ("</think>", think[1])):
            for _ in range(count):
                pieces.insert(rng.randrange(len(pieces) + 1), tag)
    text = filler(rng) + "".join(p + filler(rng) for p in pieces)
    tags = [p for p in pieces if p in TAGS]

    valid = expected_format(tags, span_has_box)
    scored = valid and not truncated and reads_content
    value = (f1 if f1 > 0 else 0.1) if scored else 0.0
    labels = {f"box:{box_kind}", f"think:{think}", f"answer:{opens}{closes}{in_order}"}
    labels |= {f"search:{g}" for g in groups}
    labels |= {"truncated"} if truncated else set()
    labels |= {"search_in_answer"} if inner else set()
    if valid and not truncated:
        labels |= {"scored", f"scored_box:{box_kind}"} | {f"scored_search:{g}" for g in groups}
        labels |= {"scored_nesting"} if tags.index("<answer>") > tags.index("<think>") else set()
    labels |= {f"valid:{valid}"}
    return text, golden, truncated, value, valid, labels


def test_research_reward_matches_the_rule_table_on_generated_responses():
    rng = random.Random(0)
    seen: Counter[str] = Counter()
    mismatches = []
    for _ in range(N_RESPONSES):
        text, golden, truncated, value, valid, labels = generate(rng)
        seen.update(labels)
        r = score(text, golden, truncated)
        if r.value != pytest.approx(value) or r.valid_format != valid:
            mismatches.append((text, golden, truncated, value, valid, r))
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[0]}"
    # every class was generated often enough to mean something
    classes = (
        [f"box:{k}" for k in BOXES]
        + [f"search:{k}" for k in SEARCH_GROUPS]
        + [f"think:{t}" for t in set(THINKS)]
        + ["truncated", "search_in_answer", "valid:True", "valid:False", "scored_nesting"]
        # the valid and scored responses cover every box kind the format accepts, and the
        # search kinds that can still be valid (a complete group, or a broken one borrowing the
        # tags of a later group)
        + [f"scored_box:{k}" for k, (_, ok, _) in BOXES.items() if ok]
        + [f"scored_search:{k}" for k in ("complete", "search_in_result", "model_result")]
    )
    assert all(seen[c] >= 30 for c in classes), {c: seen[c] for c in classes if seen[c] < 30}
    assert seen["scored"] >= 1000  # the scored cases are not a corner
