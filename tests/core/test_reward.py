"""The rule reward, pinned on hand-written cases for each rule."""

from __future__ import annotations

import pytest

from research_rl.reward import (
    FORMAT_ONLY_REWARD,
    check_format,
    normalize_answer,
    score,
    token_f1,
)

GOOD = (
    "<think>who wrote it?</think> <search>author of Dune</search>\n<result>\nDoc 1 (Title: Dune) "
    "Dune is a novel by Frank Herbert.\n</result>\n<think>found it</think> "
    "<answer>The author is \\boxed{Frank Herbert}</answer>"
)


def test_correct_answer_scores_its_f1():
    r = score(GOOD, ["Frank Herbert"])
    assert (r.value, r.f1, r.em, r.valid_format) == (1.0, 1.0, 1.0, True)


def test_partial_answer_scores_token_f1_max_over_golden():
    # prediction "frank herbert" vs "herbert": P=1/2, R=1 -> F1 2/3; vs "frank herbert jr": 0.8
    r = score(GOOD, ["Herbert", "Frank Herbert Jr"])
    assert r.f1 == pytest.approx(0.8)
    assert r.value == pytest.approx(0.8)
    assert r.em == 0.0


def test_valid_format_wrong_answer_scores_point_one():
    r = score(GOOD, ["Isaac Asimov"])
    assert r.value == FORMAT_ONLY_REWARD and r.f1 == 0.0 and r.valid_format


def test_truncated_scores_zero_even_when_right():
    r = score(GOOD, ["Frank Herbert"], truncated=True)
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
def test_invalid_formats_score_zero(response, why):
    valid, reason = check_format(response)
    assert not valid and why in reason
    r = score(response, ["x"])
    assert r.value == 0.0 and not r.valid_format


def test_several_searches_in_order_are_valid():
    one = "<search>q</search><result>r</result>"
    assert check_format(f"<think>a</think>{one}<think>b</think>{one}<answer>\\boxed{{y}}</answer>")[
        0
    ]


def test_prediction_is_last_boxed_with_nested_braces():
    resp = "<think>t</think><answer>\\boxed{wrong} then \\boxed{a {b} c}</answer>"
    r = score(resp, ["a b c"])
    assert r.f1 == 1.0 and r.em == 1.0


def test_boxed_outside_answer_is_ignored_when_answer_exists():
    resp = "<think>\\boxed{Paris}</think><answer>\\boxed{London}</answer>"
    assert score(resp, ["Paris"]).value == FORMAT_ONLY_REWARD


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


def test_em_is_normalised_exact_match():
    resp = "<think>t</think><answer>\\boxed{the United States!}</answer>"
    assert score(resp, ["United States"]).em == 1.0
    assert score(resp, ["United States of America"]).em == 0.0


def test_no_prediction_scores_f1_zero():
    r = score("just text", ["x"])
    assert (r.value, r.f1, r.em, r.valid_format) == (0.0, 0.0, 0.0, False)
