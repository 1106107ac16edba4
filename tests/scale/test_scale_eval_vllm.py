"""`research eval` on vLLM: the offline engine (backend: vllm) runs the ReSearch loop in batches,
against a stand-in engine that follows vLLM's documented API (vLLM itself needs a GPU)."""

import json
import sys

import pytest
from scale_fakes import ScriptedLLM, ScriptedModel, fake_vllm_module, make_tokenizer

from research_rl.backends.vllm import VLLMBackend
from research_rl.config import validate_config
from research_rl.corpus import Passage, write_corpus
from research_rl.evaluation.config import EvalConfig
from research_rl.evaluation.runner import open_evaluation
from research_rl.questions import Question, write_questions
from research_rl.retrieval.index import build_index

QUESTION = Question("q1", "What is the capital of France?", ["Paris"])
TURNS = [
    "<think> I need the capital. </think> <search> capital of France </search>",
    " <think> found it </think> <answer> \\boxed{Paris} </answer>",
]


@pytest.fixture
def world(tmp_path, monkeypatch):
    tokenizer = make_tokenizer()
    tokenizer.save_pretrained(tmp_path / "model")
    write_corpus(
        [Passage.from_title_text("1", "Paris", "Paris is the capital of France.")],
        tmp_path / "corpus.jsonl",
    )
    build_index(tmp_path / "corpus.jsonl", tmp_path / "index", kind="bm25", show_progress=False)
    write_questions([QUESTION], tmp_path / "q.jsonl")
    (tmp_path / "prompt.txt").write_text("Question: {question}\nAssistant:")
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm_module(lambda ids: []))
    engines: list[dict] = []

    def from_pretrained(model, **kwargs):
        engines.append({"model": model, **kwargs})
        return VLLMBackend(ScriptedLLM(ScriptedModel(tokenizer, {QUESTION.question: TURNS})))

    monkeypatch.setattr(VLLMBackend, "from_pretrained", staticmethod(from_pretrained))
    return tmp_path, engines


def test_eval_runs_the_research_loop_on_the_vllm_engine(world):
    root, engines = world
    cfg = validate_config(
        {
            "model": {
                "backend": "vllm",
                "path": str(root / "model"),
                "dtype": "bfloat16",
                "tensor_parallel_size": 2,
            },
            "datasets": [{"name": "toy", "path": str(root / "q.jsonl")}],
            "methods": ["research"],
            "retriever": {"index": str(root / "index")},
            "rollout": {
                "template": "base",
                "template_path": str(root / "prompt.txt"),
                "topk": 1,
                "max_response_tokens": 200,
                "chunk_tokens": 0,
            },
            "output_dir": str(root / "out"),
        },
        EvalConfig,
    )
    table = open_evaluation(cfg, progress=False).run()
    assert engines == [
        {
            "model": str(root / "model"),
            "dtype": "bfloat16",
            "tensor_parallel_size": 2,
            "gpu_memory_utilization": 0.9,
        }
    ]
    [row] = table
    assert (row["dataset"], row["method"], row["em"]) == ("toy", "research", 1.0)
    [pred] = [json.loads(x) for x in (root / "out/predictions/toy__research.jsonl").open()]
    assert pred["prediction"] == "Paris"


def test_server_backends_need_a_url():
    with pytest.raises(Exception, match="vllm-server.*needs 'url'"):
        validate_config(
            {
                "model": {"backend": "vllm-server", "path": "m"},
                "datasets": [{"name": "d", "path": "q"}],
            },
            EvalConfig,
        )
