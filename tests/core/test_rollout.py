"""The rollout engine driven by the scripted backend: every finish reason, the loss mask, limits,
retriever failures, and stop strings that end inside a token."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FakeRetriever
from research_rl.backends.scripted import ScriptedBackend, ScriptError
from research_rl.questions import Question
from research_rl.rollout import (
    EMPTY_QUERY_TEXT,
    PromptTooLongError,
    RolloutConfig,
    RolloutEngine,
)

Q_PARIS = Question("q1", "What is the capital of France?", ["Paris"])
Q_DUNE = Question("q2", "Who wrote Dune?", ["Frank Herbert"])

SEARCH_PARIS = "<think> find it </think> <search> Paris </search>"
ANSWER_PARIS = "<think> got it </think> <answer> \\boxed{Paris} </answer>"


def engine(tokenizer, retriever, scripts, logprob=-0.5, **cfg):
    backend = ScriptedBackend(tokenizer, scripts, logprob=logprob)
    return RolloutEngine(backend, tokenizer, retriever, RolloutConfig(**cfg))


def mask_spans(traj, value):
    """The contiguous runs of completion ids whose mask equals ``value``."""
    spans, cur = [], []
    for tok, m in zip(traj.completion_ids, traj.loss_mask, strict=True):
        if m == value:
            cur.append(tok)
        elif cur:
            spans.append(cur)
            cur = []
    if cur:
        spans.append(cur)
    return spans


def test_multi_search_rollout_ends_with_answer(tokenizer, retriever):
    scripts = {
        Q_PARIS.question: [
            [SEARCH_PARIS, "<think> more </think> <search> France </search>", ANSWER_PARIS]
        ]
    }
    (t,) = engine(tokenizer, retriever, scripts).run([Q_PARIS], n=1)
    assert t.finish_reason == "answer" and t.num_searches == 2
    assert t.search_queries == ["Paris", "France"]
    assert retriever.calls == [["Paris"], ["France"]]
    assert t.reward.value == 1.0 and t.reward.valid_format
    assert "Doc 1 (Title: Paris) Paris is the capital of France." in t.text
    assert t.text.endswith("</answer>")
    # The inserted spans are exactly the two result blocks, encoded on their own.
    inserted = [tokenizer.decode(s) for s in mask_spans(t, 0)]
    assert len(inserted) == 2 and all(s.startswith("\n<result>\n") for s in inserted)
    assert all(s.endswith("\n</result>\n") for s in inserted)
    assert t.logprobs == [0.0 if m == 0 else -0.5 for m in t.loss_mask]
    assert tokenizer.decode(t.completion_ids) == t.text


def test_eos_finish_and_eos_is_not_text(tokenizer, retriever):
    scripts = {Q_PARIS.question: [[SEARCH_PARIS, "<think> I give up"]]}
    (t,) = engine(tokenizer, retriever, scripts).run([Q_PARIS])
    assert t.finish_reason == "eos" and t.completion_ids[-1] == tokenizer.eos_token_id
    assert t.loss_mask[-1] == 1
    assert t.text.endswith("I give up") and t.reward.value == 0.0


def test_length_finish_is_truncated(tokenizer, retriever):
    scripts = {Q_PARIS.question: [["<think> " + "fox jumps over " * 40 + "</think>"]]}
    (t,) = engine(tokenizer, retriever, scripts, max_response_tokens=30).run([Q_PARIS])
    assert t.finish_reason == "length" and len(t.completion_ids) == 30
    assert t.reward.value == 0.0 and "truncated" in t.reward.reason


def test_result_that_does_not_fit_is_cut_and_ends_with_length(tokenizer, retriever):
    scripts = {Q_PARIS.question: [[SEARCH_PARIS, ANSWER_PARIS]]}
    first = len(tokenizer.encode(SEARCH_PARIS))
    (t,) = engine(tokenizer, retriever, scripts, max_response_tokens=first + 5).run([Q_PARIS])
    assert t.finish_reason == "length" and len(t.completion_ids) == first + 5
    assert t.loss_mask == [1] * first + [0] * 5
    assert t.text == tokenizer.decode(t.completion_ids)


def test_max_searches_ends_the_rollout(tokenizer, retriever):
    scripts = {Q_PARIS.question: [[SEARCH_PARIS, SEARCH_PARIS, ANSWER_PARIS]]}
    (t,) = engine(tokenizer, retriever, scripts, max_searches=1).run([Q_PARIS])
    assert t.finish_reason == "max_searches" and t.num_searches == 1
    assert len(retriever.calls) == 1
    assert t.loss_mask[-1] == 1  # ends on the model's refused </search>, nothing inserted after
    assert t.reward.value == 0.0


def test_retriever_error_becomes_a_result_and_the_rollout_goes_on(tokenizer):
    broken = FakeRetriever([], fail=True)
    scripts = {Q_PARIS.question: [[SEARCH_PARIS, ANSWER_PARIS]]}
    (t,) = engine(tokenizer, broken, scripts).run([Q_PARIS])
    assert "<result>\nThe search failed: index unavailable\n</result>" in t.text
    assert t.finish_reason == "answer" and t.reward.value == 1.0


def test_empty_query_is_not_sent_and_says_so(tokenizer, retriever):
    scripts = {Q_PARIS.question: [["<think> x </think> <search>  </search>", ANSWER_PARIS]]}
    (t,) = engine(tokenizer, retriever, scripts).run([Q_PARIS])
    assert retriever.calls == []
    assert EMPTY_QUERY_TEXT in t.text and t.search_queries == [""]
    assert t.finish_reason == "answer"


def test_no_hits_says_so(tokenizer, retriever):
    scripts = {Q_PARIS.question: [["<think> x </think> <search> zebra </search>", ANSWER_PARIS]]}
    (t,) = engine(tokenizer, retriever, scripts).run([Q_PARIS])
    assert "<result>\nNo passages found.\n</result>" in t.text


def test_batch_is_question_major_and_one_retriever_call_per_turn(tokenizer, retriever):
    scripts = {
        Q_PARIS.question: [[SEARCH_PARIS, ANSWER_PARIS], [ANSWER_PARIS]],
        Q_DUNE.question: [
            [
                "<think> a </think> <search> Dune </search>",
                "<answer> \\boxed{Frank Herbert} </answer>",
            ]
        ],
    }
    trajs = engine(tokenizer, retriever, scripts).run([Q_PARIS, Q_DUNE], n=2)
    assert [(t.question_id, t.sample_index) for t in trajs] == [
        ("q1", 0),
        ("q1", 1),
        ("q2", 0),
        ("q2", 1),
    ]
    assert [t.num_searches for t in trajs] == [1, 0, 1, 1]
    assert retriever.calls == [["Paris", "Dune", "Dune"]]
    assert trajs[2].reward.value == 1.0 and trajs[3].reward.value == 1.0
    assert trajs[1].reward.value == 1.0


def test_passages_are_capped_and_topk_applies(tokenizer, retriever):
    scripts = {
        Q_PARIS.question: [["<think> x </think> <search> France Paris </search>", ANSWER_PARIS]]
    }
    (t,) = engine(tokenizer, retriever, scripts, max_passage_tokens=8, topk=1).run([Q_PARIS])
    body = t.text.split("<result>\n")[1].split("\n</result>")[0]
    assert body.startswith("Doc 1 (Title: Paris)") and "Doc 2" not in body
    (t,) = engine(tokenizer, retriever, scripts, max_passage_tokens=8).run([Q_PARIS])
    france = t.text.split("Doc 2 (Title: France) ")[1].split("\n")[0]
    assert len(tokenizer.encode(france)) <= 8 and france.startswith("France is")


def test_stop_string_ending_inside_a_token_keeps_the_sampled_ids(tokenizer, retriever):
    tok = copy.deepcopy(tokenizer)
    tok.add_tokens(["ch> Wait"])  # a token that completes "</search>" and carries text past it
    special = tok.convert_tokens_to_ids("ch> Wait")
    segment = "<think> x </think> <search> Paris </search> Wait"
    scripts = {Q_PARIS.question: [[segment, ANSWER_PARIS]]}
    (t,) = engine(tok, retriever, scripts).run([Q_PARIS])
    first = tok.encode(segment, add_special_tokens=False)
    assert first[-1] == special and t.completion_ids[: len(first)] == first
    assert t.search_queries == ["Paris"]
    assert t.text.startswith(segment + "\n<result>\n")
    assert t.finish_reason == "answer"


def test_stop_midway_drops_the_rest_of_the_segment(tokenizer, retriever):
    scripts = {Q_PARIS.question: [[SEARCH_PARIS + " <think> never seen", ANSWER_PARIS]]}
    (t,) = engine(tokenizer, retriever, scripts).run([Q_PARIS])
    assert "never seen" not in t.text


def test_prompt_too_long_names_the_question(tokenizer, retriever):
    with pytest.raises(PromptTooLongError, match="question 'q1'.*max_prompt_tokens=10"):
        engine(tokenizer, retriever, {"x": [["y"]]}, max_prompt_tokens=10).run([Q_PARIS])


def test_instruct_template_rollout(tokenizer, retriever):
    scripts = {Q_PARIS.question: [[SEARCH_PARIS, ANSWER_PARIS]]}
    (t,) = engine(tokenizer, retriever, scripts, template="instruct").run([Q_PARIS])
    assert t.prompt_text.endswith("<|assistant|>\n")
    assert t.prompt_ids == tokenizer.encode(t.prompt_text, add_special_tokens=False)
    assert t.reward.value == 1.0


def test_script_running_out_is_an_error(tokenizer, retriever):
    with pytest.raises(ScriptError, match="2 was requested"):
        engine(tokenizer, retriever, {Q_PARIS.question: [[SEARCH_PARIS]]}).run([Q_PARIS])


def test_no_logprobs_from_backend(tokenizer, retriever):
    scripts = {Q_PARIS.question: [[SEARCH_PARIS, ANSWER_PARIS]]}
    (t,) = engine(tokenizer, retriever, scripts, logprob=None).run([Q_PARIS])
    assert t.logprobs is None


_MODEL_PIECES = st.sampled_from(
    [
        "<think>",
        "</think>",
        " <search>",
        "</search>",
        " Paris",
        " France",
        "<answer>",
        "</answer>",
        " \\boxed{",
        "}",
        " fox",
        "<result>",
        " ",
        "\n",
        "é",
    ]
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    turns=st.lists(st.lists(_MODEL_PIECES, max_size=12).map("".join), min_size=1, max_size=5),
    budget=st.integers(min_value=1, max_value=200),
    max_searches=st.integers(min_value=0, max_value=3),
)
def test_loss_mask_is_zero_exactly_on_inserted_results(
    tokenizer, retriever, turns, budget, max_searches
):
    # Every turn but the last ends in a search, so rollouts pass through result insertion.
    segments = [t + " <search> Paris </search>" for t in turns[:-1]] + [turns[-1]]
    e = engine(
        tokenizer,
        retriever,
        {Q_PARIS.question: [segments]},
        max_response_tokens=budget,
        max_searches=max_searches,
    )
    try:
        (t,) = e.run([Q_PARIS])
    except ScriptError:
        return  # a segment stopped early (it held a stop string) and the script ran out
    assert len(t.loss_mask) == len(t.completion_ids) == len(t.logprobs) <= budget
    inserted, generated = mask_spans(t, 0), mask_spans(t, 1)
    # One span per search; a search whose result found no room at all leaves none.
    assert len(inserted) == t.num_searches or (
        t.finish_reason == "length" and len(inserted) == t.num_searches - 1
    )
    # Model turns are the scripted tokens as "sampled", never re-encoded.
    for k, span in enumerate(generated):
        played = tokenizer.encode(segments[k], add_special_tokens=False) + [tokenizer.eos_token_id]
        assert span == played[: len(span)]
    # Inserted spans are result blocks encoded on their own; only the last may be cut.
    for k, span in enumerate(inserted):
        text = tokenizer.decode(span)
        assert text.startswith("\n<result>\n"[: len(text)])
        if k < len(inserted) - 1 or t.finish_reason != "length":
            assert text.endswith("\n</result>\n") and tokenizer.encode(text) == span
    assert all(lp == 0.0 for lp, m in zip(t.logprobs, t.loss_mask, strict=True) if m == 0)
    assert all(lp == -0.5 for lp, m in zip(t.logprobs, t.loss_mask, strict=True) if m == 1)
    assert t.finish_reason in ("answer", "eos", "length", "max_searches")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    turns=st.lists(st.lists(_MODEL_PIECES, max_size=12).map("".join), min_size=1, max_size=4),
    chunk=st.integers(min_value=1, max_value=12),
    budget=st.integers(min_value=20, max_value=200),
)
def test_chunked_generation_gives_the_same_rollouts(tokenizer, retriever, turns, chunk, budget):
    """Stop strings split across two calls are caught, and a chunk boundary changes nothing."""
    segments = [t + " <search> Paris </search>" for t in turns[:-1]] + [turns[-1] + ANSWER_PARIS]
    scripts = {Q_PARIS.question: [segments]}
    got = []
    for c in (0, chunk):
        try:
            got.append(
                engine(
                    tokenizer, retriever, scripts, chunk_tokens=c, max_response_tokens=budget
                ).run([Q_PARIS])
            )
        except ScriptError:
            got.append(None)
    whole, chunked = got
    if whole is None:
        assert chunked is None
        return
    (a,), (b,) = whole, chunked
    assert (a.completion_ids, a.loss_mask, a.logprobs) == (
        b.completion_ids,
        b.loss_mask,
        b.logprobs,
    )
    assert (a.text, a.finish_reason, a.search_queries) == (
        b.text,
        b.finish_reason,
        b.search_queries,
    )


def test_stop_split_across_chunks(tokenizer, retriever):
    scripts = {Q_PARIS.question: [[SEARCH_PARIS + " trailing words", ANSWER_PARIS]]}
    ids = tokenizer.encode(SEARCH_PARIS)
    # Chunks of len-2 tokens: the first call ends two tokens before the end of "</search>".
    (t,) = engine(tokenizer, retriever, scripts, chunk_tokens=len(ids) - 2).run([Q_PARIS])
    assert t.completion_ids[: len(ids)] == ids and t.loss_mask[len(ids)] == 0
    assert t.search_queries == ["Paris"] and "trailing" not in t.text
    assert t.finish_reason == "answer"


def test_group_samples_with_different_turn_counts_keep_their_own_scripts(tokenizer, retriever):
    # Samples 0 and 2 search then answer; sample 1 answers at once and leaves the batch early.
    # The rollouts share their first context, so the backend must tell them apart by output.
    scripts = {Q_PARIS.question: [[SEARCH_PARIS, ANSWER_PARIS], [ANSWER_PARIS]]}
    trajs = engine(tokenizer, retriever, scripts).run([Q_PARIS], n=3)
    assert [t.num_searches for t in trajs] == [1, 0, 1]
    assert [t.finish_reason for t in trajs] == ["answer"] * 3
