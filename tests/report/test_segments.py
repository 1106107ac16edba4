from hypothesis import given
from hypothesis import strategies as st

from research_rl import tags
from research_rl.report.segments import segments

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
        "word ",
        "\n",
        "<thin",
        "x>",
    ]
)


@given(st.lists(_PIECES, max_size=30).map("".join))
def test_segments_cover_the_text_in_order(text):
    segs = segments(text)
    assert "".join(text[s.start : s.end] for s in segs) == text
    first_tag = tags.find_tags(text)[:1]
    if not first_tag or not first_tag[0].closing:
        assert segs == tags.parse_segments(text)  # only the leading-closing-tag case is repaired


def test_a_completion_starting_inside_the_prompts_span():
    text = "plan the hops</think>\n<search>q</search>"
    kinds = [(s.kind, s.content) for s in segments(text)]
    assert kinds == [("think", "plan the hops"), ("other", "\n"), ("search", "q")]
    assert tags.parse_segments(text)[0].kind == "other"  # what the repair is for


def test_only_results_right_after_a_search_are_inserted():
    from research_rl.report.segments import inserted

    text = (
        "<think>a</think><search>q</search>\n<result>r1</result>"
        "<think>b</think><result>made up</result><search>q2</search><result>r2</result>"
    )
    segs = segments(text)
    marks = [
        (s.kind, s.content, m)
        for s, m in zip(segs, inserted(segs), strict=True)
        if s.kind == "result"
    ]
    assert marks == [("result", "r1", True), ("result", "made up", False), ("result", "r2", True)]
