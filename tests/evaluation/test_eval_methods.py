"""Each method (research, direct, rag) on the scripted backend and on a transformers model."""

import pytest

from research_rl.backends.hf import HFBackend
from research_rl.backends.scripted import ScriptedBackend
from research_rl.config import validate_config
from research_rl.evaluation.config import EvalConfig
from research_rl.evaluation.methods import MethodRunner
from research_rl.evaluation.runner import prediction_row
from research_rl.questions import read_questions
from research_rl.retrieval import RetrieverConfig, make_retriever

Q1 = "In which country was Tepu Suno born?"
SEARCH_THEN_ANSWER = [
    "<think> Where was Tepu Suno born? </think> <search> Tepu Suno born </search>",
    "<think> Suzeton is in Nokate. </think> <answer> \\boxed{Nokate} </answer>",
]
ANSWER_NOW = ["<think> I recall it. </think> <answer> \\boxed{Suzeton} </answer>"]


@pytest.fixture
def parts(world, tokenizer, make_config, tmp_path):
    cfg = validate_config(make_config(tmp_path), EvalConfig)
    retriever = make_retriever(RetrieverConfig(index=str(world["index"])))
    return cfg, retriever, read_questions(world["questions"])


@pytest.mark.parametrize("profile", ["research", "strict"])
def test_research_searches_then_answers_on_scripted_backend(parts, tokenizer, profile):
    cfg, retriever, questions = parts
    cfg.rollout.profile = profile
    backend = ScriptedBackend(tokenizer, {Q1: [SEARCH_THEN_ANSWER]}, default=[ANSWER_NOW])
    [t1, t2, _] = MethodRunner("research", backend, tokenizer, retriever, cfg).run(questions)
    assert t1.search_queries == ["Tepu Suno born"]
    assert t1.finish_reason == ("eos" if profile == "research" else "answer")
    hit = (  # the BM25 hit, in the profile's result layout
        " <result>\nTepu Suno\nTepu Suno was born in Suzeton."
        if profile == "research"
        else "\n<result>\nDoc 1 (Title: Tepu Suno) Tepu Suno was born in Suzeton."
    )
    assert hit in t1.text
    assert "Question: " + Q1 in t1.prompt_text and "search with <search>" in t1.prompt_text
    row = prediction_row(t1, "tiny", "research")
    assert (row["prediction"], row["em"], row["f1"], row["cover_em"]) == ("Nokate", 1.0, 1.0, 1.0)
    assert row["prediction_rule"] == "boxed"
    assert row["num_searches"] == 1 and row["valid_format"] is True
    assert row["trajectory"]["search_queries"] == ["Tepu Suno born"]
    assert row["trajectory"]["profile"] == profile
    # q2's golden answer is Elnobo: the scripted "Suzeton" is wrong on every metric.
    row2 = prediction_row(t2, "tiny", "research")
    assert (row2["em"], row2["f1"], row2["num_searches"]) == (0.0, 0.0, 0)


def test_direct_never_searches_even_when_the_model_tries(parts, tokenizer):
    cfg, retriever, questions = parts
    backend = ScriptedBackend(tokenizer, {Q1: [SEARCH_THEN_ANSWER]}, default=[ANSWER_NOW])
    [t1, _, t3] = MethodRunner("direct", backend, tokenizer, retriever, cfg).run(questions)
    assert t1.prompt_text == f"Answer in \\boxed{{}}.\nQuestion: {Q1}\nAssistant:"
    assert t1.finish_reason == "max_searches" and t1.num_searches == 0 and "<result>" not in t1.text
    assert t3.finish_reason == "eos"
    assert prediction_row(t3, "tiny", "direct")["em"] == 1.0  # q3's answer is Suzeton


@pytest.mark.parametrize(
    "text, prediction, rule",
    [
        ("<think> I recall it. </think> <answer> \\boxed{Suzeton} </answer>", "Suzeton", "boxed"),
        ("I am sure: \\boxed{Suzeton}.", "Suzeton", "boxed_anywhere"),
        ("<think> hmm </think> <answer> Suzeton </answer>", "Suzeton", "answer_span"),
        ("<think> It is a city. </think>\nAnswer: Suzeton.", "Suzeton", "last_line"),
        ("<think> no idea </think>", None, "none"),
    ],
)
def test_baselines_score_a_plain_text_answer(parts, tokenizer, text, prediction, rule):
    """An instruct model asked to answer directly often writes no \\boxed{}: the baselines read
    the plain-text answer (and record which rule gave it); the research method does not."""
    cfg, retriever, questions = parts
    backend = ScriptedBackend(tokenizer, default=[[text]])
    for method in ("direct", "rag"):
        [_, _, t3] = MethodRunner(method, backend, tokenizer, retriever, cfg).run(questions)
        row = prediction_row(t3, "tiny", method)
        assert (row["prediction"], row["prediction_rule"]) == (prediction, rule)
        assert row["em"] == (1.0 if prediction else 0.0)  # q3's answer is Suzeton
    [_, _, t3] = MethodRunner("research", backend, tokenizer, retriever, cfg).run(questions)
    research = prediction_row(t3, "tiny", "research")
    assert research["prediction"] == (prediction if rule == "boxed" else None)


def test_a_response_cut_by_the_budget_has_no_prediction(parts, tokenizer):
    cfg, retriever, questions = parts
    text = "<think> x </think> <answer> \\boxed{Suzeton} </answer>"
    # the answer is written, the EOS never comes
    cfg.rollout.max_response_tokens = len(tokenizer.encode(text, add_special_tokens=False)) + 3
    text += " and so on" * 20
    backend = ScriptedBackend(tokenizer, default=[[text]])
    for method in ("research", "direct"):
        [_, _, t3] = MethodRunner(method, backend, tokenizer, retriever, cfg).run(questions)
        assert t3.finish_reason == "length" and "</answer>" in t3.text
        row = prediction_row(t3, "tiny", method)
        assert (row["prediction"], row["em"], row["reward"]) == (None, 0.0, 0.0)


def test_rag_retrieves_once_with_the_question(parts, tokenizer):
    cfg, retriever, questions = parts
    backend = ScriptedBackend(tokenizer, default=[ANSWER_NOW])
    trajectories = MethodRunner("rag", backend, tokenizer, retriever, cfg).run(questions)
    t1 = trajectories[0]
    assert t1.prompt_text.startswith("Docs:\nDoc 1 (Title: Tepu Suno) Tepu Suno was born")
    assert t1.prompt_text.endswith(f"Question: {Q1}\nAssistant:")
    assert t1.metadata["passages"].count("Doc ") == 2  # topk=2
    assert "Tesu Rivi" in trajectories[1].prompt_text.split("Question:")[0]
    assert all(t.num_searches == 0 for t in trajectories)


def test_rag_workers_running_at_once_each_get_their_own_passages(parts, tokenizer):
    """Server backends run questions in worker threads on one runner: one worker's passages must
    never reach another's prompt."""
    from concurrent.futures import ThreadPoolExecutor

    cfg, retriever, questions = parts
    runner = MethodRunner(
        "rag", ScriptedBackend(tokenizer, default=[ANSWER_NOW]), tokenizer, retriever, cfg
    )
    alone = {q.id: runner.run([q])[0].prompt_text for q in questions}
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda q: runner.run([q])[0], questions * 4))
    assert {t.prompt_text for t in together} == set(alone.values())
    assert all(t.prompt_text == alone[t.question_id] for t in together)
    assert len(set(alone.values())) == len(questions)


@pytest.mark.parametrize("method", ["research", "direct", "rag"])
def test_each_method_on_a_transformers_model(parts, tokenizer, world, method):
    from transformers import AutoModelForCausalLM

    cfg, retriever, questions = parts
    cfg.rollout.max_response_tokens = 24  # a random model rambles: keep its budget small
    questions = questions[:2]
    model = AutoModelForCausalLM.from_pretrained(world["model"]).eval()
    backend = HFBackend(model, tokenizer, max_batch_size=2)
    trajectories = MethodRunner(method, backend, tokenizer, retriever, cfg).run(questions)
    assert [t.question_id for t in trajectories] == ["q1", "q2"]
    for t in trajectories:
        row = prediction_row(t, "tiny", method)
        assert 0 < row["response_tokens"] <= cfg.rollout.max_response_tokens
        assert row["finish_reason"] in ("answer", "eos", "length", "max_searches")
        assert row["trajectory"]["text"] == t.text
        if method != "research":
            assert t.num_searches == 0
    if method == "rag":
        assert "(Title: Tepu Suno)" in trajectories[0].prompt_text
    # Greedy decoding: the same question gives the same completion in another batch.
    again = MethodRunner(method, backend, tokenizer, retriever, cfg).run(questions[:1])
    assert again[0].completion_ids == trajectories[0].completion_ids
