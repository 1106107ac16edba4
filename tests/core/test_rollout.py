"""The rollout engine driven by the scripted backend, under each profile: every finish reason, the
loss mask, limits, retriever failures (which end a rollout unscored), queries wherever the model
writes them, and stop strings that end inside a token."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FakeRetriever
from mask_spans import mask_spans
from research_rl.backends.scripted import ScriptedBackend, ScriptError
from research_rl.config import validate_config
from research_rl.profiles import PROFILES
from research_rl.questions import Question
from research_rl.rollout import (
    EMPTY_QUERY_TEXT,
    PromptTooLongError,
    RolloutConfig,
    RolloutEngine,
)
from research_rl.trajectory import Trajectory

Q_PARIS = Question("q1", "What is the capital of France?", ["Paris"])
Q_DUNE = Question("q2", "Who wrote Dune?", ["Frank Herbert"])

SEARCH_PARIS = "<think> find it </think> <search> Paris </search>"
ANSWER_PARIS = "<think> got it </think> <answer> \\boxed{Paris} </answer>"


def engine(tokenizer, retriever, scripts, logprob=-0.5, **cfg):
    backend = ScriptedBackend(tokenizer, scripts, logprob=logprob)
    return RolloutEngine(backend, tokenizer, retriever, RolloutConfig(**cfg))


def strict(tokenizer, retriever, scripts, **cfg):
    return engine(tokenizer, retriever, scripts, profile="strict", **cfg)


def inserted_texts(tokenizer, traj):
    return [tokenizer.decode(s) for s in mask_spans(traj, 0)]


# -- the research profile (the default) ---------------------------------------------------------
def test_research_rollout_searches_and_ends_with_its_own_eos(tokenizer, retriever):
    scripts = {
        Q_PARIS.question: [
            [SEARCH_PARIS, "<think> more </think> <search> France </search>", ANSWER_PARIS]
        ]
    }
    (t,) = engine(tokenizer, retriever, scripts).run([Q_PARIS], n=1)
    assert t.profile == "research"
    assert t.finish_reason == "eos" and t.num_searches == 2
    assert t.completion_ids[-1] == tokenizer.eos_token_id and t.loss_mask[-1] == 1  # trained
    assert t.search_queries == ["Paris", "France"] and retriever.calls == [["Paris"], ["France"]]
    assert t.reward.value == 1.0 and t.reward.valid_format
    # ReSearch's block: a space, <result>, a newline, the hits' contents as stored, separated by
    # blank lines, a newline, </result>; no per-passage cut (France's passage is long).
    paris, france = retriever.passages[0].contents, retriever.passages[1].contents
    assert inserted_texts(tokenizer, t) == [
        f" <result>\n{paris}\n</result>",
        f" <result>\n{france.strip()}\n</result>",
    ]
    assert t.text.endswith("</answer>")  # the eos token ends the ids, it is not text
    assert t.logprobs == [0.0 if m == 0 else -0.5 for m in t.loss_mask]
    assert tokenizer.decode(t.completion_ids[:-1]) == t.text


def test_research_does_not_stop_at_the_answer(tokenizer, retriever):
    scripts = {Q_PARIS.question: [[ANSWER_PARIS + " and some words after it"]]}
    (t,) = engine(tokenizer, retriever, scripts).run([Q_PARIS])
    assert t.finish_reason == "eos" and t.text.endswith("words after it")
    assert t.reward.value == 1.0


def test_research_search_from_inside_an_open_think(tokenizer, retriever):
    scripts = {
        Q_PARIS.question: [
            [
                "<think> I need the capital <search> Paris </search>",
                " so it is Paris </think> <answer> \\boxed{Paris} </answer>",
            ]
        ]
    }
    (t,) = engine(tokenizer, retriever, scripts).run([Q_PARIS])
    assert t.search_queries == ["Paris"] and retriever.calls == [["Paris"]]
    assert "Paris is the capital of France." in t.text
    assert (t.finish_reason, t.reward.value) == ("eos", 1.0)


def test_research_answer_inside_think_and_a_model_written_result(tokenizer, retriever):
    scripts = {
        Q_PARIS.question: [
            [
                "<think> I guess <result> Paris, I believe </result> <search> Paris </search>",
                " <answer> \\boxed{Paris} </answer> </think>",
            ]
        ]
    }
    (t,) = engine(tokenizer, retriever, scripts).run([Q_PARIS])
    assert t.search_queries == ["Paris"]  # the query after the model's own <result>
    assert t.reward.valid_format and t.reward.value == 1.0


def test_research_ending_without_eos_is_truncated_and_scores_zero(tokenizer, retriever):
    answered = ANSWER_PARIS + " fox jumps over" * 20
    scripts = {Q_PARIS.question: [[answered]]}
    budget = len(tokenizer.encode(ANSWER_PARIS)) + 10
    (t,) = engine(tokenizer, retriever, scripts, max_response_tokens=budget).run([Q_PARIS])
    assert t.finish_reason == "length" and len(t.completion_ids) == budget
    assert tokenizer.eos_token_id not in t.completion_ids
    assert t.reward.valid_format and t.reward.value == 0.0 and "truncated" in t.reward.reason


def test_research_has_no_search_cap(tokenizer, retriever):
    scripts = {Q_PARIS.question: [[SEARCH_PARIS] * 7 + [ANSWER_PARIS]]}
    (t,) = engine(tokenizer, retriever, scripts).run([Q_PARIS])
    assert t.num_searches == 7 and len(retriever.calls) == 7
    assert t.finish_reason == "eos" and t.reward.value == 1.0
    (s,) = strict(tokenizer, FakeRetriever(retriever.passages), scripts).run([Q_PARIS])
    assert (s.num_searches, s.finish_reason) == (5, "max_searches")


def test_research_empty_query_inserts_no_passages_and_no_tags(tokenizer, retriever):
    scripts = {Q_PARIS.question: [["<think> x </think> <search>  </search>", ANSWER_PARIS]]}
    (t,) = engine(tokenizer, retriever, scripts).run([Q_PARIS])
    assert retriever.calls == [] and t.search_queries == [""]
    assert inserted_texts(tokenizer, t) == [" <result>\n\n</result>"]
    assert t.reward.valid_format and t.reward.value == 1.0


def test_research_no_hits(tokenizer, retriever):
    scripts = {Q_PARIS.question: [["<think> x </think> <search> zebra </search>", ANSWER_PARIS]]}
    (t,) = engine(tokenizer, retriever, scripts).run([Q_PARIS])
    assert inserted_texts(tokenizer, t) == [" <result>\n\n</result>"]


def test_one_key_overrides_one_point_of_the_profile(tokenizer, retriever):
    scripts = {Q_PARIS.question: [["<think> x </think> <search> France </search>", ANSWER_PARIS]]}
    e = engine(
        tokenizer,
        retriever,
        scripts,
        stop_at_answer=True,
        result_format="search-r1",
        max_passage_tokens=8,
    )
    (t,) = e.run([Q_PARIS])
    assert t.finish_reason == "answer" and t.reward.value == 1.0  # scored: it ended at a stop
    (block,) = inserted_texts(tokenizer, t)
    assert block.startswith("\n<result>\nDoc 1 (Title: France) France is")
    france = block.split("(Title: France) ")[1].split("\n")[0]
    assert len(tokenizer.encode(france)) <= 8
    # research layout with a cut: each passage's contents cut to the given tokens
    (t,) = engine(tokenizer, FakeRetriever(retriever.passages), scripts, max_passage_tokens=5).run(
        [Q_PARIS]
    )
    (block,) = inserted_texts(tokenizer, t)
    assert block.startswith(" <result>\nFrance\n") and len(tokenizer.encode(block)) < 20


def test_profile_values_apply_only_to_unset_keys_and_survive_a_dump():
    research, strict_cfg = RolloutConfig(), RolloutConfig(profile="strict")
    assert research.effective() == PROFILES["research"]
    assert strict_cfg.effective() == PROFILES["strict"]
    assert (research.effective().max_searches, strict_cfg.effective().max_searches) == (None, 5)
    assert research.effective().stop_strings == ("</search>",)
    assert strict_cfg.effective().stop_strings == ("</search>", "</answer>")
    # an explicit null means "no cap" / "no cut", not "the profile's"
    uncapped = RolloutConfig(profile="strict", max_searches=None, max_passage_tokens=None)
    assert (uncapped.effective().max_searches, uncapped.effective().max_passage_tokens) == (
        None,
        None,
    )
    # a config written back holds the values in effect, so it reads back the same
    for cfg in (research, strict_cfg, uncapped, RolloutConfig(profile="strict", max_searches=2)):
        again = validate_config(cfg.model_dump(mode="json"), RolloutConfig)
        assert again.effective() == cfg.effective()
    # changing the profile of a copy re-resolves every key the copy does not set
    switched = RolloutConfig(max_searches=3).model_copy(update={"profile": "strict"})
    assert switched.effective() == replace(PROFILES["strict"], max_searches=3)


# -- the strict profile --------------------------------------------------------------------------
def test_strict_multi_search_rollout_ends_with_answer(tokenizer, retriever):
    scripts = {
        Q_PARIS.question: [
            [SEARCH_PARIS, "<think> more </think> <search> France </search>", ANSWER_PARIS]
        ]
    }
    (t,) = strict(tokenizer, retriever, scripts).run([Q_PARIS], n=1)
    assert t.profile == "strict"
    assert t.finish_reason == "answer" and t.num_searches == 2
    assert t.search_queries == ["Paris", "France"]
    assert retriever.calls == [["Paris"], ["France"]]
    assert t.reward.value == 1.0 and t.reward.valid_format
    assert "Doc 1 (Title: Paris) Paris is the capital of France." in t.text
    assert t.text.endswith("</answer>")
    # The inserted spans are exactly the two result blocks, encoded on their own.
    inserted = inserted_texts(tokenizer, t)
    assert len(inserted) == 2 and all(s.startswith("\n<result>\n") for s in inserted)
    assert all(s.endswith("\n</result>\n") for s in inserted)
    assert t.logprobs == [0.0 if m == 0 else -0.5 for m in t.loss_mask]
    assert tokenizer.decode(t.completion_ids) == t.text


def test_eos_finish_and_eos_is_not_text(tokenizer, retriever):
    scripts = {Q_PARIS.question: [[SEARCH_PARIS, "<think> I give up"]]}
    for make in (engine, strict):
        (t,) = make(tokenizer, FakeRetriever(retriever.passages), scripts).run([Q_PARIS])
        assert t.finish_reason == "eos" and t.completion_ids[-1] == tokenizer.eos_token_id
        assert t.loss_mask[-1] == 1
        assert t.text.endswith("I give up") and t.reward.value == 0.0


def test_length_finish_is_truncated(tokenizer, retriever):
    scripts = {Q_PARIS.question: [["<think> " + "fox jumps over " * 40 + "</think>"]]}
    (t,) = strict(tokenizer, retriever, scripts, max_response_tokens=30).run([Q_PARIS])
    assert t.finish_reason == "length" and len(t.completion_ids) == 30
    assert t.reward.value == 0.0 and "truncated" in t.reward.reason


@pytest.mark.parametrize("profile", ["research", "strict"])
def test_result_that_does_not_fit_is_cut_and_ends_with_length(tokenizer, retriever, profile):
    scripts = {Q_PARIS.question: [[SEARCH_PARIS, ANSWER_PARIS]]}
    first = len(tokenizer.encode(SEARCH_PARIS))
    e = engine(tokenizer, retriever, scripts, profile=profile, max_response_tokens=first + 5)
    (t,) = e.run([Q_PARIS])
    assert t.finish_reason == "length" and len(t.completion_ids) == first + 5
    assert t.loss_mask == [1] * first + [0] * 5
    assert t.text == tokenizer.decode(t.completion_ids)
    assert t.reward.value == 0.0


def test_max_searches_ends_the_rollout(tokenizer, retriever):
    scripts = {Q_PARIS.question: [[SEARCH_PARIS, SEARCH_PARIS, ANSWER_PARIS]]}
    for profile in ("research", "strict"):  # a cap the user sets holds in every profile
        r = FakeRetriever(retriever.passages)
        (t,) = engine(tokenizer, r, scripts, profile=profile, max_searches=1).run([Q_PARIS])
        assert t.finish_reason == "max_searches" and t.num_searches == 1
        assert len(r.calls) == 1
        assert t.loss_mask[-1] == 1  # ends on the model's refused </search>, nothing inserted after
        assert t.reward.value == 0.0


@pytest.mark.parametrize("profile", ["research", "strict"])
def test_a_failed_search_ends_the_rollout_unscored(tokenizer, profile):
    broken = FakeRetriever([], fail=True)
    scripts = {Q_PARIS.question: [[SEARCH_PARIS, ANSWER_PARIS]]}
    (t,) = engine(tokenizer, broken, scripts, profile=profile).run([Q_PARIS])
    assert t.failed and t.finish_reason == "retriever_error"
    assert t.error == "index unavailable" and t.reward is None
    # Nothing was inserted (no "search failed" text to learn from) and the answer never came.
    assert t.text == SEARCH_PARIS and set(t.loss_mask) == {1}
    assert t.completion_ids == tokenizer.encode(SEARCH_PARIS, add_special_tokens=False)
    assert len(t.logprobs) == len(t.completion_ids)
    assert (t.num_searches, t.search_queries, broken.calls) == (1, ["Paris"], [["Paris"]])
    again = Trajectory.from_json(t.to_json())
    assert again.failed and again.error == "index unavailable" and again.reward is None


def test_a_failed_call_ends_only_the_rollouts_it_was_searching_for(tokenizer, retriever):
    # Turn 1: all three search (call 0 answers). Turn 2: Paris searches again and that call
    # fails; Dune answers; the third sends an empty query, which never reaches the retriever.
    flaky = FakeRetriever(retriever.passages, fail_calls={1})
    q_empty = Question("q3", "Where is Paris?", ["France"])
    scripts = {
        Q_PARIS.question: [[SEARCH_PARIS, "<search> France </search>", ANSWER_PARIS]],
        Q_DUNE.question: [
            ["<search> Dune </search>", ANSWER_PARIS.replace("Paris", "Frank Herbert")]
        ],
        q_empty.question: [
            [
                "<search> Paris </search>",
                "<search> </search>",
                ANSWER_PARIS.replace("Paris", "France"),
            ]
        ],
    }
    paris, dune, empty = engine(tokenizer, flaky, scripts).run([Q_PARIS, Q_DUNE, q_empty])
    assert flaky.calls == [["Paris", "Dune", "Paris"], ["France"]]
    assert paris.failed and paris.reward is None and paris.search_queries == ["Paris", "France"]
    assert len(inserted_texts(tokenizer, paris)) == 1  # the first result only
    assert paris.text.endswith("<search> France </search>")
    for t in (dune, empty):
        assert not t.failed and t.error is None
        assert t.finish_reason == "eos" and t.reward.value == 1.0
    assert empty.search_queries == ["Paris", ""] and len(inserted_texts(tokenizer, empty)) == 2


def test_strict_empty_query_is_not_sent_and_says_so_without_tags(tokenizer, retriever):
    scripts = {Q_PARIS.question: [["<think> x </think> <search>  </search>", ANSWER_PARIS]]}
    (t,) = strict(tokenizer, retriever, scripts).run([Q_PARIS])
    assert retriever.calls == []
    assert inserted_texts(tokenizer, t) == [f"\n<result>\n{EMPTY_QUERY_TEXT}\n</result>\n"]
    assert t.search_queries == [""] and t.finish_reason == "answer"
    assert t.reward.valid_format  # the inserted note holds no tags that break the format


def test_strict_search_inside_think_finds_its_query(tokenizer, retriever):
    scripts = {
        Q_PARIS.question: [
            ["<think> need it <search> Paris </search>", " ok </think> " + ANSWER_PARIS]
        ]
    }
    (t,) = strict(tokenizer, retriever, scripts).run([Q_PARIS])
    assert t.search_queries == ["Paris"] and retriever.calls == [["Paris"]]


def test_no_hits_says_so(tokenizer, retriever):
    scripts = {Q_PARIS.question: [["<think> x </think> <search> zebra </search>", ANSWER_PARIS]]}
    (t,) = strict(tokenizer, retriever, scripts).run([Q_PARIS])
    assert "<result>\nNo passages found.\n</result>" in t.text


@pytest.mark.parametrize("profile", ["research", "strict"])
def test_batch_is_question_major_and_one_retriever_call_per_turn(tokenizer, retriever, profile):
    scripts = {
        Q_PARIS.question: [[SEARCH_PARIS, ANSWER_PARIS], [ANSWER_PARIS]],
        Q_DUNE.question: [
            [
                "<think> a </think> <search> Dune </search>",
                "<think> b </think> <answer> \\boxed{Frank Herbert} </answer>",
            ]
        ],
    }
    trajs = engine(tokenizer, retriever, scripts, profile=profile).run([Q_PARIS, Q_DUNE], n=2)
    assert [(t.question_id, t.sample_index) for t in trajs] == [
        ("q1", 0),
        ("q1", 1),
        ("q2", 0),
        ("q2", 1),
    ]
    assert [t.num_searches for t in trajs] == [1, 0, 1, 1]
    assert retriever.calls == [["Paris", "Dune", "Dune"]]
    assert [t.reward.value for t in trajs] == [1.0] * 4


def test_passages_are_capped_and_topk_applies(tokenizer, retriever):
    scripts = {
        Q_PARIS.question: [["<think> x </think> <search> France Paris </search>", ANSWER_PARIS]]
    }
    (t,) = strict(tokenizer, retriever, scripts, max_passage_tokens=8, topk=1).run([Q_PARIS])
    body = t.text.split("<result>\n")[1].split("\n</result>")[0]
    assert body.startswith("Doc 1 (Title: Paris)") and "Doc 2" not in body
    (t,) = strict(tokenizer, retriever, scripts, max_passage_tokens=8).run([Q_PARIS])
    france = t.text.split("Doc 2 (Title: France) ")[1].split("\n")[0]
    assert len(tokenizer.encode(france)) <= 8 and france.startswith("France is")


@pytest.mark.parametrize("profile", ["research", "strict"])
def test_stop_string_ending_inside_a_token_keeps_the_sampled_ids(tokenizer, retriever, profile):
    tok = copy.deepcopy(tokenizer)
    tok.add_tokens(["ch> Wait"])  # a token that completes "</search>" and carries text past it
    special = tok.convert_tokens_to_ids("ch> Wait")
    segment = "<think> x </think> <search> Paris </search> Wait"
    scripts = {Q_PARIS.question: [[segment, ANSWER_PARIS]]}
    (t,) = engine(tok, retriever, scripts, profile=profile).run([Q_PARIS])
    first = tok.encode(segment, add_special_tokens=False)
    assert first[-1] == special and t.completion_ids[: len(first)] == first
    assert t.search_queries == ["Paris"]
    block = " <result>\n" if profile == "research" else "\n<result>\n"
    assert t.text.startswith(segment + block)
    assert t.finish_reason == ("eos" if profile == "research" else "answer")


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
    max_searches=st.sampled_from([0, 1, 2, 3, None]),
    profile=st.sampled_from(["research", "strict"]),
)
def test_loss_mask_is_zero_exactly_on_inserted_results(
    tokenizer, retriever, turns, budget, max_searches, profile
):
    # Every turn but the last ends in a search, so rollouts pass through result insertion.
    segments = [t + " <search> Paris </search>" for t in turns[:-1]] + [turns[-1]]
    e = engine(
        tokenizer,
        retriever,
        {Q_PARIS.question: [segments]},
        profile=profile,
        max_response_tokens=budget,
        max_searches=max_searches,
    )
    opens, closes = (
        (" <result>\n", "\n</result>")
        if profile == "research"
        else ("\n<result>\n", "\n</result>\n")
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
        assert text.startswith(opens[: len(text)])
        if k < len(inserted) - 1 or t.finish_reason != "length":
            assert text.endswith(closes) and tokenizer.encode(text) == span
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
    profile=st.sampled_from(["research", "strict"]),
)
def test_chunked_generation_gives_the_same_rollouts(
    tokenizer, retriever, turns, chunk, budget, profile
):
    """Stop strings split across two calls are caught, and a chunk boundary changes nothing."""
    segments = [t + " <search> Paris </search>" for t in turns[:-1]] + [turns[-1] + ANSWER_PARIS]
    scripts = {Q_PARIS.question: [segments]}
    got = []
    for c in (0, chunk):
        try:
            got.append(
                engine(
                    tokenizer,
                    retriever,
                    scripts,
                    profile=profile,
                    chunk_tokens=c,
                    max_response_tokens=budget,
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


@pytest.mark.parametrize("profile", ["research", "strict"])
def test_stop_split_across_chunks(tokenizer, retriever, profile):
    scripts = {Q_PARIS.question: [[SEARCH_PARIS + " trailing words", ANSWER_PARIS]]}
    ids = tokenizer.encode(SEARCH_PARIS)
    # Chunks of len-2 tokens: the first call ends two tokens before the end of "</search>".
    e = engine(tokenizer, retriever, scripts, profile=profile, chunk_tokens=len(ids) - 2)
    (t,) = e.run([Q_PARIS])
    assert t.completion_ids[: len(ids)] == ids and t.loss_mask[len(ids)] == 0
    assert t.search_queries == ["Paris"] and "trailing" not in t.text
    assert t.finish_reason == ("eos" if profile == "research" else "answer")


def test_group_samples_with_different_turn_counts_keep_their_own_scripts(tokenizer, retriever):
    # Samples 0 and 2 search then answer; sample 1 answers at once and leaves the batch early.
    # The rollouts share their first context, so the backend must tell them apart by output.
    scripts = {Q_PARIS.question: [[SEARCH_PARIS, ANSWER_PARIS], [ANSWER_PARIS]]}
    trajs = engine(tokenizer, retriever, scripts).run([Q_PARIS], n=3)
    assert [t.num_searches for t in trajs] == [1, 0, 1]
    assert [t.finish_reason for t in trajs] == ["eos"] * 3
