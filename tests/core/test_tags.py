"""The tag parser: segments, boxed extraction, the last query; never raises."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from research_rl import tags
from research_rl.reward import score

# Text rich in protocol fragments, so the property tests hit tags, partial tags and braces.
_PIECES = st.sampled_from(
    [
        "<think>",
        "</think>",
        "<search>",
        "</search>",
        "<result>",
        "</result>",
        "<answer>",
        "</answer>",
        "\\boxed{",
        "{",
        "}",
        "<",
        ">",
        "/",
        "a",
        " ",
        "\n",
        "é",
        "<searc",
        "h>",
    ]
)
protocol_text = st.one_of(st.text(), st.lists(_PIECES, max_size=40).map("".join))


def test_segments_of_a_rollout():
    text = "intro <think>t</think> <search>q1</search><result>r</result><answer>\\boxed{x}</answer>"
    kinds = [(s.kind, s.content) for s in tags.parse_segments(text)]
    assert kinds == [
        ("other", "intro "),
        ("think", "t"),
        ("other", " "),
        ("search", "q1"),
        ("result", "r"),
        ("answer", "\\boxed{x}"),
    ]


def test_other_tags_inside_a_span_are_content_and_unclosed_span_is_flagged():
    segs = tags.parse_segments("<result>has <think> inside</result><think>open")
    assert segs[0].kind == "result" and segs[0].content == "has <think> inside"
    assert segs[1].kind == "think" and not segs[1].closed and segs[1].content == "open"


def test_stray_closing_tag_is_other_text():
    segs = tags.parse_segments("a </answer> b")
    assert [(s.kind, s.content) for s in segs] == [("other", "a </answer> b")]


def test_last_boxed():
    assert tags.last_boxed("\\boxed{a} and \\boxed{b {c}}") == "b {c}"
    assert tags.last_boxed("\\boxed{outer \\boxed{inner}}") == "outer \\boxed{inner}"
    assert tags.last_boxed("\\boxed{a} \\boxed{unclosed") == "a"
    assert tags.last_boxed("no box") is None
    assert tags.last_boxed("\\boxed{}") == ""


def test_last_search_query_wherever_the_search_stands():
    assert tags.last_search_query("<search> one </search> x <search> two ") == "two"
    assert tags.last_search_query("<search></search>") == ""
    assert tags.last_search_query("no search") is None
    # inside an open <think> or <answer>, after a model-written <result>: still the query
    assert tags.last_search_query("<think> I need X <search> capital of X </search>") == (
        "capital of X"
    )
    assert tags.last_search_query("<answer> hmm <search> Dune author") == "Dune author"
    assert tags.last_search_query("<result> fake </result> <search> q ") == "q"


def test_first_closed_answer_and_strip_tags():
    assert tags.first_closed_answer("<answer> a </answer> <answer> b </answer>") == " a "
    assert tags.first_closed_answer("<answer> open") is None
    assert tags.first_closed_answer("</answer> <answer> x </answer>") == " x "
    assert tags.strip_tags("a <search>b</search> <result>c") == "a b c"


def test_rightmost_boxed():
    assert tags.rightmost_boxed("\\boxed{a} and \\boxed{b {c}}") == "b {c}"
    assert tags.rightmost_boxed("\\boxed{outer \\boxed{inner}}") == "inner"
    assert tags.rightmost_boxed("\\boxed{a} \\boxed{unclosed") is None
    assert tags.rightmost_boxed("\\boxed{x} \\boxed y $z") == "y "
    assert tags.rightmost_boxed("no box") is None


@given(protocol_text)
def test_parser_never_raises_and_covers_the_text(text):
    segs = tags.parse_segments(text)
    assert "".join(text[s.start : s.end] for s in segs) == text
    for s in segs:
        assert s.kind in (*tags.TAG_NAMES, "other")
    tags.last_boxed(text)
    tags.rightmost_boxed(text)
    tags.first_closed_answer(text)
    tags.last_search_query(text)
    tags.answer_content(text)


@given(protocol_text, st.booleans(), st.sampled_from(["research", "strict"]))
def test_score_never_raises_and_stays_in_range(text, truncated, rules):
    r = score(text, ["a"], truncated=truncated, rules=rules)
    assert 0.0 <= r.value <= 1.0 and 0.0 <= r.f1 <= 1.0 and r.em in (0.0, 1.0)
    if truncated or not r.valid_format:
        assert r.value == 0.0


@given(st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=30))
def test_boxed_round_trip(content):
    assert tags.last_boxed(f"x \\boxed{{{content}}} y") == content
