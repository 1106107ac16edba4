"""A real BPE tokenizer and chat template (SmolLM2's) cannot break the protocol: prompts are the
chat template's ids, inserted spans are exactly the result blocks, the model's tokens are never
re-encoded, stop strings split over tokens (or merged with their neighbours) are found, and the
end-of-turn token is the EOS.

Forced sequences run through the real model and the real ``HFBackend``: ``Forced`` replaces the
model's logits so that greedy decoding emits a given token sequence, one token per forward pass,
so a test decides what the model "says" while every other part is the real one."""

from __future__ import annotations

import pytest
import torch
from realmodel_fakes import TitleRetriever

from mask_spans import mask_spans
from research_rl.backends.base import GenerationRequest, SamplingParams
from research_rl.backends.hf import HFBackend
from research_rl.models import end_of_turn_token
from research_rl.questions import Question
from research_rl.rollout import RolloutConfig, RolloutEngine, research_passages
from research_rl.rollout import research_result_block as block_of
from research_rl.templates import load_template

GREEDY = SamplingParams(temperature=0.0)
QUESTION = Question("q1", "What is the capital of France?", ["Paris"])


class Forced(torch.nn.Module):
    """The real model, whose next token is always the next one of ``script`` (one row only)."""

    def __init__(self, model, script: list[int]) -> None:
        super().__init__()
        self.inner, self.script, self.step = model, script, 0
        self.config, self.generation_config = model.config, model.generation_config

    def forward(self, **kwargs):
        out = self.inner(**kwargs)
        assert out.logits.shape[0] == 1, "Forced drives one sequence"
        logits = torch.full_like(out.logits[:, -1:, :], -1e4)
        logits[..., self.script[self.step]] = 0.0
        self.step += 1
        out.logits = logits
        return out


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def engine_for(model, tokenizer, retriever, **rollout) -> RolloutEngine:
    cfg = RolloutConfig(template="instruct", max_response_tokens=256, **rollout)
    return RolloutEngine(HFBackend(model, tokenizer), tokenizer, retriever, cfg)


def test_the_eos_is_the_chat_templates_end_of_turn_token(smol_model, smol_tokenizer, smol_dir):
    eot = smol_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert end_of_turn_token(smol_tokenizer) == "<|im_end|>"
    assert smol_tokenizer.eos_token == "<|im_end|>"
    assert smol_model.generation_config.eos_token_id == eot
    assert HFBackend(smol_model, smol_tokenizer).eos_ids == {eot}
    assert (smol_dir / "model.safetensors").is_file() and (
        smol_dir / "chat_template.jinja"
    ).is_file()


@pytest.mark.parametrize("profile", ["research", "strict"])
def test_prompt_ids_are_the_chat_templates(smol_model, smol_tokenizer, profile):
    engine = engine_for(smol_model, smol_tokenizer, None, profile=profile)
    _, prompt_ids = engine.render_prompt(QUESTION)
    template = load_template("instruct", profile=profile)
    messages = [{"role": "user", "content": template.text.replace("{question}", QUESTION.question)}]
    if template.system:
        messages.insert(0, {"role": "system", "content": template.system})
    expected = smol_tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=True, return_dict=False
    )
    assert prompt_ids == list(expected)
    assert smol_tokenizer.decode(prompt_ids).endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize(
    "stop_text",
    [
        "capital of France</search>",  # '</', 'search', '>': split over three tokens
        "capital of France</search>. Then",  # '>.' merges the stop's end with a full stop
        "capital of France </search>",  # ' </' merges a space with the stop's start
    ],
)
def test_a_split_or_merged_stop_string_is_found(smol_model, smol_tokenizer, stop_text):
    prefix = ids(smol_tokenizer, "Let me search. <search> ")
    script = prefix + ids(smol_tokenizer, stop_text)
    backend = HFBackend(Forced(smol_model, script), smol_tokenizer)
    prompt = ids(smol_tokenizer, "<|im_start|>assistant\n")
    (out,) = backend.generate([GenerationRequest(prompt, 64, ["</search>", "</answer>"])], GREEDY)
    assert (out.finish_reason, out.stop_string) == ("stop", "</search>")
    text = smol_tokenizer.decode(out.token_ids)
    assert "</search>" in text and "</search>" not in smol_tokenizer.decode(out.token_ids[:-1])
    assert out.token_ids == script[: len(out.token_ids)]  # exactly the tokens produced


def test_inserted_spans_are_exactly_the_result_blocks_and_model_tokens_are_kept(
    smol_model, smol_tokenizer
):
    turns = [
        "I will look it up. <search> capital of France</search>. ",  # '>.' crosses the stop
        "<search> France </search>",
        "<answer> The answer is \\boxed{Paris} </answer><|im_end|>",
    ]
    script_turns = [ids(smol_tokenizer, t) for t in turns]
    # The model stops at the token completing </search>: what follows in a turn is never sampled.
    first = script_turns[0][: script_turns[0].index(ids(smol_tokenizer, ">.")[0]) + 1]
    script = first + script_turns[1] + script_turns[2]
    retriever = TitleRetriever()
    forced = Forced(smol_model, script)
    engine = engine_for(forced, smol_tokenizer, retriever)
    (traj,) = engine.run([QUESTION], n=1, sampling=GREEDY)

    assert traj.finish_reason == "eos" and traj.num_searches == 2
    assert traj.search_queries == ["capital of France", "France"]
    assert retriever.calls == [["capital of France"], ["France"]]
    # the model's tokens, exactly as forced (never decoded and re-encoded)
    assert mask_spans(traj, 1) == [first, script_turns[1], script_turns[2]]
    # every inserted span decodes to exactly its block, nothing else
    hits = [retriever.search([q], 5)[0] for q in traj.search_queries]
    blocks = [block_of(research_passages(h)) for h in hits]
    assert [smol_tokenizer.decode(s) for s in mask_spans(traj, 0)] == blocks
    assert traj.text == smol_tokenizer.decode(traj.completion_ids[:-1])  # the eos is not text
    assert traj.reward is not None and traj.reward.f1 == 1.0


class Recording:
    """A backend that records every call's requests and outputs."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, []

    def generate(self, requests, sampling):
        outs = self.inner.generate(requests, sampling)
        self.calls.append((requests, outs))
        return outs

    def clear_prefix_cache(self) -> None:
        self.inner.clear_prefix_cache()


def test_sampled_tokens_reach_the_trajectory_as_sampled(smol_model, smol_tokenizer):
    engine = engine_for(smol_model, smol_tokenizer, TitleRetriever(), chunk_tokens=16)
    engine.config.max_response_tokens = 48
    engine.backend = Recording(engine.backend)
    trajs = engine.run([QUESTION], n=2, sampling=SamplingParams(temperature=1.0, seed=3))
    for t in trajs:
        full = t.prompt_ids + t.completion_ids
        pos, mask = len(t.prompt_ids), [1] * len(t.prompt_ids) + t.loss_mask
        while pos < len(full):
            if mask[pos] == 0:
                pos += 1
                continue
            produced = [
                o.token_ids
                for reqs, outs in engine.backend.calls
                for r, o in zip(reqs, outs, strict=True)
                if r.prompt_ids == full[:pos]
            ]
            assert produced, f"no backend call produced the tokens at {pos}"
            got = full[pos : pos + len(produced[0])]
            # a call's tokens after a stop string found across calls are dropped, never changed
            assert any(p[: len(got)] == got for p in produced)
            pos += len(got)
        assert t.logprobs is not None and len(t.logprobs) == len(t.completion_ids)
