"""The rule reward, pinned on hand-written cases for each rule of each profile's rules.

``tests/core/test_reward_differential.py`` checks the research rules on thousands of generated
responses; the cases here name each rule once.
"""

from __future__ import annotations

import pytest

from research_rl.reward import (
    FORMAT_ONLY_REWARD,
    check_format,
    extract_prediction,
    normalize_answer,
    score,
    token_f1,
)

RESEARCH = (
    "<think> who wrote it? </think> <search> author of Dune </search> <result>\nDune\nDune is a "
    "novel by Frank Herbert.\n</result> <think> found it </think> "
    "<answer> The final answer is \\[ \\boxed{Frank Herbert} \\] </answer>"
)
STRICT = (
    "<think>who wrote it?</think> <search>author of Dune</search>\n<result>\nDoc 1 (Title: Dune) "
    "Dune is a novel by Frank Herbert.\n</result>\n<think>found it</think> "
    "<answer>The author is \\boxed{Frank Herbert}</answer>"
)


# -- shared: the answer metrics ------------------------------------------------------------------
def test_normalisation():
    assert normalize_answer("  The  Eiffel-Tower, an icon!  ") == "eiffeltower icon"
    assert normalize_answer("A cat and THE dog") == "cat and dog"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words


@pytest.mark.parametrize(
    "pred, gold, expected",
    [
        ("yes", "yes", 1.0),
        ("Yes.", "yes", 1.0),
        ("yes", "no", 0.0),
        ("yes it is", "yes", 0.0),  # gold is yes/no: only an exact match counts
        ("no", "no way", 0.0),  # prediction is yes/no: only an exact match counts
        ("noanswer", "no answer", 0.0),
    ],
)
def test_yes_no_noanswer_need_exact_match(pred, gold, expected):
    assert token_f1(pred, gold) == expected


@pytest.mark.parametrize("rules", ["research", "strict"])
def test_scores_by_f1_max_over_golden_then_point_one(rules):
    text = RESEARCH if rules == "research" else STRICT
    r = score(text, ["Frank Herbert"], rules=rules)
    assert (r.value, r.f1, r.em, r.valid_format) == (1.0, 1.0, 1.0, True)
    # prediction "frank herbert" vs "herbert": P=1/2, R=1 -> F1 2/3; vs "frank herbert jr": 0.8
    r = score(text, ["Herbert", "Frank Herbert Jr"], rules=rules)
    assert (r.value, r.f1, r.em) == (pytest.approx(0.8), pytest.approx(0.8), 0.0)
    r = score(text, ["Isaac Asimov"], rules=rules)
    assert r.value == FORMAT_ONLY_REWARD and r.f1 == 0.0 and r.valid_format


def test_unknown_rules_are_an_error():
    with pytest.raises(ValueError, match="unknown reward rules 'paper'"):
        score(RESEARCH, ["x"], rules="paper")  # type: ignore[arg-type]


# -- research rules ------------------------------------------------------------------------------
def test_research_truncated_scores_zero_and_has_no_prediction():
    r = score(RESEARCH, ["Frank Herbert"], truncated=True)
    assert r.value == 0.0 and "truncated" in r.reason and r.valid_format
    assert (r.f1, r.em) == (0.0, 0.0)  # ReSearch reads no prediction from a cut response
    assert extract_prediction(RESEARCH, truncated=True) is None


@pytest.mark.parametrize(
    "response, why",
    [
        ("<answer>\\boxed{x}</answer>", "no <think>"),
        ("<think>a</think><think>b <answer>\\boxed{x}</answer>", "2 <think> but 1 </think>"),
        ("<think>a</think> \\boxed{x}", "exactly one <answer>"),
        ("<think>a</think><answer>\\boxed{x}</answer><answer>\\boxed{x}</answer>", "exactly one"),
        ("<think>a</think></answer>\\boxed{x}<answer>", "before <answer>"),
        ("<think>a</think><search>q</search><answer>\\boxed{x}</answer>", "lacks"),
        (
            "<think>a</think><search>q<result>r</result></search><answer>\\boxed{x}</answer>",
            "</search>",
        ),
        ("<think>a</think><search>q</search><result>r<answer>\\boxed{x}</answer>", "lacks"),
        ("<think>a</think><answer>x</answer>", "no \\boxed"),
        ("<think>a</think><answer>\\boxed{x</answer>", "no \\boxed"),
        ("<think>a</think>\\boxed{x}<answer>x</answer>", "no \\boxed"),
    ],
)
def test_research_invalid_formats_score_zero(response, why):
    valid, reason = check_format(response)
    assert not valid and why in reason
    r = score(response, ["x"])
    assert r.value == 0.0 and not r.valid_format


@pytest.mark.parametrize(
    "response",
    [
        # think tags are counted, not paired: a search and an answer inside an open <think>
        "<think> a <search> q </search> <result>\nr\n</result> so <answer> \\boxed{x} </answer>"
        " </think>",
        "</think> a <think> <answer> \\boxed{x} </answer>",
        # a <result> the model wrote, and an extra one after a search
        "<think> a </think> <result> made up </result> <answer> \\boxed{x} </answer>",
        "<think> a </think> <search> q </search> <result> r </result> <result> more </result>"
        " <answer> \\boxed{x} </answer>",
        # text inside a result is not checked: the walk resumes after </result>
        "<think> a </think> <search> q </search> <result> r <search> </result> "
        "<answer> \\boxed{x} </answer>",
        # an unbalanced brace elsewhere in the answer: only '\\boxed{' and a '}' are asked for
        "<think> a </think> <answer> \\boxed{x} { </answer>",
    ],
)
def test_research_accepts_what_research_accepts(response):
    assert check_format(response) == (True, "valid format")
    assert score(response, ["x"]).value == 1.0


@pytest.mark.parametrize(
    "answer, prediction",
    [
        ("\\boxed{a} then \\boxed{b {c}}", "b {c}"),  # the rightmost box, braces matched
        ("\\boxed{outer \\boxed{inner}}", "inner"),  # nested: the inner one
        ("\\boxed{a} \\boxed{unclosed", None),  # the rightmost box never closes: nothing
        ("\\boxed{} ", ""),
        ("\\boxed{a} and \\boxed b$ c", "b"),  # "\\boxed " (no brace): up to the first $
        ("\\boxed{a} \\boxedx{b}", None),  # the rightmost \\boxed does not open with a brace
        ("\\boxed{a} \\boxed}{b}", None),  # braces never return to zero on a '}'
    ],
)
def test_research_prediction_is_the_rightmost_box(answer, prediction):
    assert extract_prediction(f"<think>t</think><answer>{answer}</answer>") == prediction


def test_research_unreadable_box_scores_zero_with_a_valid_format():
    r = score("<think>t</think><answer>\\boxed{a} \\boxed{b</answer>", ["a"])
    assert (r.value, r.valid_format, r.f1) == (0.0, True, 0.0)
    assert "no answer could be read" in r.reason


def test_research_reads_the_first_closed_answer_only():
    assert extract_prediction("<answer> \\boxed{a} </answer> <answer> \\boxed{b} </answer>") == "a"
    assert extract_prediction("<think>\\boxed{Paris}</think> <answer>\\boxed{x}") is None
    resp = "<think>\\boxed{Paris}</think><answer>\\boxed{London}</answer>"
    assert score(resp, ["Paris"]).value == FORMAT_ONLY_REWARD


def test_the_completion_alone_is_scored():
    """ReSearch splits prompt + response at the word "Assistant:", which breaks on an answer that
    holds the word; here the completion is scored whole (a documented difference)."""
    resp = "<think>t</think><answer>\\boxed{Assistant: to the regional manager}</answer>"
    assert score(resp, ["Assistant to the regional manager"]).value == 1.0


# -- strict rules --------------------------------------------------------------------------------
def test_strict_truncated_scores_zero_and_keeps_its_f1():
    r = score(STRICT, ["Frank Herbert"], truncated=True, rules="strict")
    assert r.value == 0.0 and "truncated" in r.reason
    assert r.f1 == 1.0  # answer quality is still reported


@pytest.mark.parametrize(
    "response, why",
    [
        ("<answer>\\boxed{x}</answer>", "no <think>"),
        ("<think>a</think><think>b <answer>\\boxed{x}</answer>", "not paired"),
        ("</think>a<think><answer>\\boxed{x}</answer>", "not paired"),
        ("<think>a</think> \\boxed{x}", "exactly one <answer>"),
        ("<think>a</think><answer>\\boxed{x}</answer><answer>\\boxed{x}</answer>", "exactly one"),
        ("<think>a</think></answer>\\boxed{x}<answer>", "before <answer>"),
        ("<think>a</think><search>q</search><answer>\\boxed{x}</answer>", "search/result"),
        (
            "<think>a</think><search>q<result>r</result></search><answer>\\boxed{x}</answer>",
            "search/result",
        ),
        ("<think>a</think><result>made up</result><answer>\\boxed{x}</answer>", "search/result"),
        ("<think>a</think><answer>x</answer>", "no complete \\boxed"),
        ("<think>a</think><answer>\\boxed{x</answer>", "no complete \\boxed"),
        ("<think>a</think>\\boxed{x}<answer>x</answer>", "no complete \\boxed"),
    ],
)
def test_strict_invalid_formats_score_zero(response, why):
    valid, reason = check_format(response, "strict")
    assert not valid and why in reason
    r = score(response, ["x"], rules="strict")
    assert r.value == 0.0 and not r.valid_format


def test_strict_several_searches_in_order_are_valid():
    one = "<search>q</search><result>r</result>"
    text = f"<think>a</think>{one}<think>b</think>{one}<answer>\\boxed{{y}}</answer>"
    assert check_format(text, "strict")[0]


def test_strict_prediction_is_last_outermost_box():
    resp = "<think>t</think><answer>\\boxed{wrong} then \\boxed{a {b} c}</answer>"
    r = score(resp, ["a b c"], rules="strict")
    assert r.f1 == 1.0 and r.em == 1.0
    nested = "<think>t</think><answer>\\boxed{outer \\boxed{inner}}</answer>"
    assert extract_prediction(nested, "strict") == "outer \\boxed{inner}"


def test_strict_boxed_outside_answer_is_ignored_when_answer_exists():
    resp = "<think>\\boxed{Paris}</think><answer>\\boxed{London}</answer>"
    assert score(resp, ["Paris"], rules="strict").value == FORMAT_ONLY_REWARD


@pytest.mark.parametrize("rules", ["research", "strict"])
def test_em_is_normalised_exact_match(rules):
    resp = "<think>t</think><answer>\\boxed{the United States!}</answer>"
    assert score(resp, ["United States"], rules=rules).em == 1.0
    assert score(resp, ["United States of America"], rules=rules).em == 0.0


@pytest.mark.parametrize("rules", ["research", "strict"])
def test_no_prediction_scores_f1_zero(rules):
    r = score("just text", ["x"], rules=rules)
    assert (r.value, r.f1, r.em, r.valid_format) == (0.0, 0.0, 0.0, False)
