"""The core's RolloutEngine generating through VLLMBackend, over a fake vLLM engine that runs a
scripted model on a real tokenizer with vLLM's sampling rules (and vLLM's output objects)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from scale_fakes import ScriptedLLM, ScriptedModel, fake_vllm_module, logprob_at, make_tokenizer

from research_rl.backends.base import SamplingParams
from research_rl.backends.vllm import VLLMBackend
from research_rl.corpus import Passage
from research_rl.questions import Question
from research_rl.retrieval.base import Hit
from research_rl.rollout import (
    RolloutConfig,
    RolloutEngine,
    format_passages,
    research_passages,
    research_result_block,
    result_block,
)

QUESTION = Question("q", "What is the capital of France?", ["Paris"])
TURNS = [
    "<think> I need the capital. </think> <search> capital of France </search>",
    " <think> found it </think> <answer> \\boxed{Paris} </answer>",
]
PASSAGE = Passage.from_title_text("1", "Paris", "Paris is the capital of France.")


class OneHitRetriever:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def search(self, queries: list[str], topk: int) -> list[list[Hit]]:
        self.calls.append(list(queries))
        return [[Hit(PASSAGE, 1.0)] for _ in queries]

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


@pytest.fixture
def fake_vllm(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm_module(lambda ids: []))


def run(tokenizer, tmp_path, chunk_tokens: int, n: int = 2, profile: str = "research"):
    template = tmp_path / "template.txt"
    template.write_text("Question: {question}\nAssistant:")
    config = RolloutConfig(
        profile=profile,
        template_path=str(template),
        max_response_tokens=200,
        topk=1,
        chunk_tokens=chunk_tokens,
    )
    llm = ScriptedLLM(ScriptedModel(tokenizer, {QUESTION.question: TURNS}))
    retriever = OneHitRetriever()
    engine = RolloutEngine(VLLMBackend(llm), tokenizer, retriever, config)
    return engine.run([QUESTION], n=n, sampling=SamplingParams(seed=11)), llm, retriever


@pytest.mark.parametrize("profile", ["research", "strict"])
def test_search_rollout_through_vllm_one_call_per_turn(fake_vllm, tokenizer, tmp_path, profile):
    trajs, llm, retriever = run(tokenizer, tmp_path, chunk_tokens=0, profile=profile)
    assert len(llm.calls) == 2  # turn 1 for both rollouts, then turn 2 for both
    (prompts1, params1), (prompts2, params2) = llm.calls
    assert [p.max_tokens for p in params1] == [200, 200]
    assert [p.seed for p in params1] == [11, 12]  # the group's rollouts do not share a seed
    stops = ["</search>"] if profile == "research" else ["</search>", "</answer>"]
    assert all(p.stop == stops for p in params1 + params2)
    assert retriever.calls == [["capital of France", "capital of France"]]

    turn1 = tokenizer.encode(TURNS[0], add_special_tokens=False)
    hits = [Hit(PASSAGE, 1.0)]
    text = (
        research_result_block(research_passages(hits))
        if profile == "research"
        else result_block(format_passages(hits, tokenizer, 200))
    )
    block = tokenizer.encode(text, add_special_tokens=False)
    turn2 = tokenizer.encode(TURNS[1], add_special_tokens=False)
    if profile == "research":  # the model ends with its own EOS, kept and trained
        turn2.append(tokenizer.eos_token_id)
    for t, prompt in zip(trajs, prompts1, strict=True):
        assert prompt["prompt_token_ids"] == t.prompt_ids
        assert t.completion_ids == turn1 + block + turn2
        assert t.loss_mask == [1] * len(turn1) + [0] * len(block) + [1] * len(turn2)
        # vLLM's per-call log-probs on model tokens, 0.0 on the inserted result
        assert t.logprobs == (
            [logprob_at(p, x) for p, x in enumerate(turn1)]
            + [0.0] * len(block)
            + [logprob_at(p, x) for p, x in enumerate(turn2)]
        )
        assert t.finish_reason == ("eos" if profile == "research" else "answer")
        assert t.reward.value == 1.0
    assert [p.max_tokens for p in params2] == [200 - len(turn1) - len(block)] * 2
    assert prompts2[0]["prompt_token_ids"] == trajs[0].prompt_ids + turn1 + block


def test_chunked_turns_through_vllm_give_the_same_rollout(fake_vllm, tokenizer, tmp_path):
    whole, _, _ = run(tokenizer, tmp_path, chunk_tokens=0, n=1)
    chunked, llm, _ = run(tokenizer, tmp_path, chunk_tokens=5, n=1)
    assert len(llm.calls) > 2 and all(p.max_tokens <= 5 for _, ps in llm.calls for p in ps)
    a, b = whole[0], chunked[0]
    assert (b.completion_ids, b.loss_mask, b.text) == (a.completion_ids, a.loss_mask, a.text)
    assert (b.finish_reason, b.reward.value) == ("eos", 1.0)


def test_trl_adapter_colocate_mode_generates_through_trls_engine(fake_vllm, tokenizer, tmp_path):
    """The trainer's vLLM switch (generation.backend: vllm, colocate) hands the rollout engine a
    VLLMBackend over TRL's own engine, ``trainer.vllm_generation.llm``."""
    from types import SimpleNamespace

    from research_rl.training.run import default_backend_factory, load_train_config

    root = Path(__file__).resolve().parents[2]
    cfg = load_train_config(root / "configs" / "tiny-cpu.yaml", {"generation.backend": "vllm"})
    llm = ScriptedLLM(ScriptedModel(tokenizer, {QUESTION.question: TURNS}))
    trainer = SimpleNamespace(vllm_generation=SimpleNamespace(llm=llm))
    backend = default_backend_factory(cfg, tokenizer)(trainer, None)
    assert isinstance(backend, VLLMBackend) and backend.llm is llm
