"""The verl agent loop against a fake server manager (verl's ``LLMServerClient.generate`` contract).

In the default environment verl is not installed and the loop subclasses the stand-in base of
``research_rl.scale.verl.compat``; where verl is importable the same tests run on verl's real
``AgentLoopBase`` / ``AgentLoopOutput`` / registry (``test_real_verl_*`` only run there).
"""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from scale_fakes import TOKEN_LOGPROB, FakeServerManager, make_tokenizer

from research_rl.backends.base import GenerationRequest
from research_rl.config import ConfigError
from research_rl.corpus import Passage, write_corpus
from research_rl.retrieval.base import Hit
from research_rl.retrieval.index import build_index
from research_rl.rollout import (
    RolloutConfig,
    research_passages,
    research_result_block,
    result_block,
)
from research_rl.scale.verl import agent_loop as al
from research_rl.scale.verl.compat import HAVE_VERL, _agent_loop_registry
from research_rl.scale.verl.reward import compute_score

QUESTION = "What is the capital of France?"
SEARCH_TURN = "<think> I need the capital. </think> <search> capital of France </search>"
ANSWER_TURN = " <answer> The answer is \\boxed{Paris} </answer>"
TEMPLATE = "Answer the question. Question: {question}\nAssistant:"


class AttrDict(dict):
    """What verl hands the loop: attribute access plus ``.get`` (as OmegaConf's DictConfig)."""

    def __getattr__(self, name):
        try:
            value = self[name]
        except KeyError as err:
            raise AttributeError(name) from err
        return AttrDict(value) if isinstance(value, dict) else value


class Wrap:  # verl's DictConfigWrap
    def __init__(self, config):
        self.config = config


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("verl-index")
    write_corpus(
        [
            Passage.from_title_text("1", "Paris", "Paris is the capital of France."),
            Passage.from_title_text("2", "Dune", "Dune is a novel by Frank Herbert."),
        ],
        root / "corpus.jsonl",
    )
    build_index(root / "corpus.jsonl", root / "bm25", "bm25", show_progress=False)
    return root / "bm25"


def write_settings(path: Path, index_dir: Path, wait_s: float = 0.05, **rollout) -> str:
    template = path.parent / "template.txt"
    template.write_text(TEMPLATE)
    rollout = {
        "max_response_tokens": 160,
        "max_prompt_tokens": 200,
        "topk": 1,
        "template_path": str(template),
        **rollout,
    }
    path.write_text(
        yaml.safe_dump(
            {
                "rollout": rollout,
                "retriever": {"index": str(index_dir)},
                "retrieval_wait_s": wait_s,
            }
        )
    )
    return str(path)


def make_loop(settings: str, server, tokenizer, response_length=160, prompt_length=200):
    """Build the loop the way verl's AgentLoopWorker does: from the registry entry, with the
    worker's keyword arguments plus the entry's own keys (``settings``)."""
    entry = {"name": al.AGENT_NAME, **_agent_loop_registry[al.AGENT_NAME], "settings": settings}
    module, _, cls = entry["_target_"].rpartition(".")
    loop_cls = getattr(importlib.import_module(module), cls)
    config = AttrDict(
        actor_rollout_ref={
            "rollout": {"prompt_length": prompt_length, "response_length": response_length}
        },
        data={},
    )
    return loop_cls(
        trainer_config=Wrap(config),
        server_manager=server,
        tokenizer=tokenizer,
        processor=None,
        dataset_cls=None,
        data_config=Wrap(AttrDict()),
        hf_model_type=None,
        settings=entry["settings"],
    )


def row(question: str, answers: list[str], index: int = 0) -> dict:
    """A row as verl's RLHFDataset yields it from the parquet our prepare script writes."""
    return {
        "data_source": "test",
        "raw_prompt": np.array([{"role": "user", "content": question}], dtype=object),
        "reward_model": {"style": "rule", "ground_truth": np.array(answers, dtype=object)},
        "extra_info": {
            "index": index,
            "question_id": f"q{index}",
            "question": question,
            "golden_answers": np.array(answers, dtype=object),
        },
        "index": index,
    }


SAMPLING = {
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": -1,
    "repetition_penalty": 1.0,
    "logprobs": True,
}


def run_loops(settings, server, tokenizer, rows, **kw):
    async def main():
        try:
            loops = [make_loop(settings, server, tokenizer, **kw) for _ in rows]
            return await asyncio.gather(
                *(lp.run(dict(SAMPLING), **r) for lp, r in zip(loops, rows, strict=True))
            )
        finally:
            await al.close_shared()

    return asyncio.run(main())


@pytest.mark.parametrize("profile", ["research", "strict"])
def test_rollout_on_the_server_manager_masks_inserted_results(
    tmp_path, index_dir, tokenizer, profile
):
    settings = write_settings(tmp_path / "s.yaml", index_dir, profile=profile)
    server = FakeServerManager(tokenizer, {QUESTION: [SEARCH_TURN, ANSWER_TURN]})
    [out] = run_loops(settings, server, tokenizer, [row(QUESTION, ["Paris"])])
    research = profile == "research"

    # What verl's server received: the rendered prompt as ids, the stop strings kept in the output,
    # and each turn's remaining budget.
    template = RolloutConfig(template_path=str(tmp_path / "template.txt")).load_template()
    prompt_ids = tokenizer.encode(template.render(QUESTION, tokenizer), add_special_tokens=True)
    first, second = server.calls
    assert first["prompt_ids"] == prompt_ids == out.prompt_ids
    for call in (first, second):
        params = call["sampling_params"]
        assert params["stop"] == (["</search>"] if research else ["</search>", "</answer>"])
        assert params["include_stop_str_in_output"] is True
        assert params["temperature"] == 1.0 and params["logprobs"] is True
    assert first["request_id"] == second["request_id"]  # one sticky session per rollout
    assert first["sampling_params"]["max_tokens"] == 160

    # The response: model tokens (mask 1), the result block (mask 0), model tokens (mask 1).
    turn1 = tokenizer.encode(SEARCH_TURN, add_special_tokens=False)
    mask = out.response_mask
    n0 = mask.index(0)
    n_res = mask[n0:].index(1)
    assert out.response_ids[:n0] == turn1 and mask[:n0] == [1] * n0
    inserted = tokenizer.decode(out.response_ids[n0 : n0 + n_res])
    assert "Paris is the capital of France." in inserted
    paris = Passage.from_title_text("1", "Paris", "Paris is the capital of France.")
    assert inserted == (
        research_result_block(research_passages([Hit(paris, 1.0)]))
        if research
        else result_block("Doc 1 (Title: Paris) Paris is the capital of France.")
    )
    assert second["prompt_ids"] == prompt_ids + out.response_ids[: n0 + n_res]
    assert second["sampling_params"]["max_tokens"] == 160 - (n0 + n_res)
    tail = out.response_ids[n0 + n_res :]
    assert set(mask[n0 + n_res :]) == {1}
    if research:  # ended by the model's own EOS: kept, and a model token (mask 1)
        assert tail[-1] == tokenizer.eos_token_id and tokenizer.decode(tail[:-1]) == ANSWER_TURN
    else:
        assert tokenizer.decode(tail) == ANSWER_TURN  # stopped at </answer>, which is kept
    # Log-probs: the server's on model tokens, 0.0 on inserted ones.
    assert out.response_logprobs == [TOKEN_LOGPROB if m else 0.0 for m in mask]
    assert out.num_turns == 4

    # The reward entry point scores the rollout's text the way the core does.
    extra = {**row(QUESTION, ["Paris"])["extra_info"], **out.extra_fields}
    assert out.extra_fields["research_finish_reason"] == ("eos" if research else "answer")
    assert out.extra_fields["research_ended_with_eos"] is research
    assert out.extra_fields["research_profile"] == profile
    reward = compute_score("test", "ignored", np.array(["Paris"], dtype=object), extra)
    assert reward == {"score": 1.0, "f1": 1.0, "em": 1.0, "valid_format": 1.0}
    assert out.extra_fields["research_rollout_reward"] == 1.0


def test_concurrent_rollouts_share_batched_retrieval(tmp_path, index_dir, tokenizer, monkeypatch):
    searches: list[list[str]] = []
    real = al.make_retriever

    def recording(cfg):
        retriever = real(cfg)
        inner = retriever.search

        def search(queries, topk):
            searches.append(list(queries))
            return inner(queries, topk)

        retriever.search = search
        return retriever

    monkeypatch.setattr(al, "make_retriever", recording)
    questions = [f"{QUESTION} ({i})" for i in range(4)]
    server = FakeServerManager(tokenizer, {q: [SEARCH_TURN, ANSWER_TURN] for q in questions})
    # a window wide enough that the concurrent rollouts' queries meet in one batch
    settings = write_settings(tmp_path / "s.yaml", index_dir, wait_s=1.0)
    outs = run_loops(
        settings, server, tokenizer, [row(q, ["Paris"], i) for i, q in enumerate(questions)]
    )
    assert sum(len(b) for b in searches) == 4
    assert len(searches) < 4  # queries of concurrent rollouts were coalesced
    assert all(0 in o.response_mask for o in outs)


def test_the_reward_scores_by_the_rollouts_profile():
    """A model-written <result> is valid under the research rules, not the strict ones; a
    rollout from another agent loop (no research_* fields) is scored on solution_str."""
    text = "<think> t </think> <result> guess </result> <answer> \\boxed{Paris} </answer>"
    extra = {"research_text": text, "research_truncated": False}
    assert (
        compute_score("t", "x", ["Paris"], {**extra, "research_profile": "research"})["score"] == 1
    )
    assert compute_score("t", "x", ["Paris"], {**extra, "research_profile": "strict"})["score"] == 0
    assert compute_score("t", text, ["Paris"], {})["score"] == 1.0


def test_length_budget_truncates_and_scores_zero(tmp_path, index_dir, tokenizer):
    settings = write_settings(tmp_path / "s.yaml", index_dir, max_response_tokens=12)
    server = FakeServerManager(tokenizer, {QUESTION: [SEARCH_TURN, ANSWER_TURN]})
    [out] = run_loops(settings, server, tokenizer, [row(QUESTION, ["Paris"])])
    assert len(out.response_ids) == 12 and out.response_mask == [1] * 12
    assert [c["sampling_params"]["max_tokens"] for c in server.calls] == [12]
    assert out.extra_fields["research_truncated"] is True
    extra = {**row(QUESTION, ["Paris"])["extra_info"], **out.extra_fields}
    assert compute_score("test", "x", ["Paris"], extra)["score"] == 0.0


def test_budget_over_verl_response_length_is_refused(tmp_path, index_dir, tokenizer):
    settings = write_settings(tmp_path / "s.yaml", index_dir, max_response_tokens=500)
    with pytest.raises(ValueError, match=r"max_response_tokens=500 exceeds .*response_length=160"):
        make_loop(settings, FakeServerManager(tokenizer, {}), tokenizer)


def test_bad_settings_name_the_file_and_key(tmp_path, tokenizer):
    path = tmp_path / "bad.yaml"
    path.write_text("retriever: {url: http://r:8000}\nrolout: {}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key 'rolout'"):
        make_loop(str(path), FakeServerManager(tokenizer, {}), tokenizer)


def test_finish_reason_is_recovered_from_token_output(tokenizer):
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id
    req = GenerationRequest([1], max_new_tokens=50, stop=["</search>", "</answer>"])
    ids = tokenizer.encode("<search> q </search>", add_special_tokens=False)
    eos_ids = al.eos_token_ids(tokenizer, [])
    out = al.to_generation_output(ids, None, req, tokenizer, eos_ids)
    assert (out.finish_reason, out.stop_string) == ("stop", "</search>")
    assert (
        al.to_generation_output(ids[:3] + [eos], None, req, tokenizer, eos_ids).finish_reason
        == "eos"
    )
    # another end id of the generation config (a special token) before the budget: eos
    assert (
        al.to_generation_output(ids[:2] + [pad], None, req, tokenizer, eos_ids).finish_reason
        == "eos"
    )
    full = GenerationRequest([1], max_new_tokens=3, stop=["</search>"])
    assert (
        al.to_generation_output(ids[:2] + [pad], None, full, tokenizer, eos_ids).finish_reason
        == "length"
    )
    assert al.to_generation_output(ids[:2], None, req, tokenizer, eos_ids).finish_reason == "length"


def test_rows_from_numpy_and_search_r1_ground_truth():
    q = al.question_from_row(row("Who wrote Dune?", ["Frank Herbert", "Herbert"], 3))
    assert (q.id, q.question, q.golden_answers) == (
        "q3",
        "Who wrote Dune?",
        ["Frank Herbert", "Herbert"],
    )
    other = {
        "raw_prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "Q?"}],
        "reward_model": {"ground_truth": {"target": np.array(["a", "b"])}},
        "index": 7,
    }
    q = al.question_from_row(other)
    assert (q.id, q.question, q.golden_answers) == ("7", "Q?", ["a", "b"])
    with pytest.raises(al.RowError, match="row 9: no extra_info.question"):
        al.question_from_row({"index": 9, "raw_prompt": []})


def test_registered_under_its_name():
    assert _agent_loop_registry[al.AGENT_NAME] == {
        "_target_": "research_rl.scale.verl.agent_loop.ReSearchAgentLoop"
    }


@pytest.mark.skipif(not HAVE_VERL, reason="verl is not installed in this environment")
def test_real_verl_base_classes_are_used():
    from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput

    assert issubclass(al.ReSearchAgentLoop, AgentLoopBase)
    assert al.AgentLoopOutput is AgentLoopOutput


@pytest.mark.skipif(not HAVE_VERL, reason="verl is not installed in this environment")
def test_real_verl_worker_pads_the_output_with_the_mask_intact(tmp_path, index_dir, tokenizer):
    """verl's own per-sample post-processing (AgentLoopWorker._agent_loop_postprocess) on the
    loop's output: prompt left-padded, response right-padded, response_mask kept (0 on results)."""
    from types import SimpleNamespace

    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

    settings = write_settings(tmp_path / "s.yaml", index_dir)
    server = FakeServerManager(tokenizer, {QUESTION: [SEARCH_TURN, ANSWER_TURN]})
    [out] = run_loops(settings, server, tokenizer, [row(QUESTION, ["Paris"])])
    worker = object.__new__(AgentLoopWorker)  # only what the post-processing reads
    worker.tokenizer, worker.processor, worker.mm_processor_kwargs = tokenizer, None, {}
    worker.rollout_config = SimpleNamespace(prompt_length=200, response_length=160)
    worker.reward_loop_worker_handles, worker.distillation_enabled = None, False
    padded = asyncio.run(worker._agent_loop_postprocess(out, False, **row(QUESTION, ["Paris"])))
    n = len(out.response_ids)
    assert padded.response_ids.shape == (1, 160) and padded.prompt_ids.shape == (1, 200)
    assert padded.response_mask[0, :n].tolist() == out.response_mask
    assert padded.response_mask[0, n:].sum() == 0
    assert padded.response_logprobs[0, :n].tolist() == pytest.approx(out.response_logprobs)
    assert padded.attention_mask[0].sum() == len(out.prompt_ids) + n
