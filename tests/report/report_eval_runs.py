"""Real evaluation directories for the report's tests: the evaluator itself (research_rl's
Evaluation) on the examples/tiny questions and BM25 index, with a scripted model that searches
once and answers, so each directory holds what `research eval` writes (card, tables, timings)."""

from __future__ import annotations

from pathlib import Path

from research_rl.backends.scripted import ScriptedBackend
from research_rl.config import validate_config
from research_rl.evaluation.config import EvalConfig
from research_rl.evaluation.runner import Evaluation
from research_rl.retrieval import RetrieverConfig, make_retriever

TINY = Path(__file__).resolve().parents[2] / "examples" / "tiny"
SCRIPT = [
    "<think> Look it up. </think> <search> where born </search>",
    "<think> Found it. </think> <answer> \\boxed{Tekaton} </answer>",
]


def write_real_eval_dir(out: Path, topk: int = 2, limit: int = 4) -> Path:
    from transformers import AutoTokenizer

    cfg = validate_config(
        {
            "model": {"backend": "hf", "path": str(TINY / "model"), "device": "cpu"},
            "datasets": [{"name": "tiny-val", "path": str(TINY / "val.jsonl")}],
            "methods": ["research", "rag"],
            "retriever": {"index": str(TINY / "index")},
            "rollout": {
                "template_path": str(TINY / "prompt.txt"),
                "topk": topk,
                "max_passage_tokens": 24,
                "max_response_tokens": 128,
                "max_prompt_tokens": 512,
            },
            "prompts": {"rag_base": "Documents:\n{passages}\nQuestion: {question}\nAssistant:"},
            "limit": limit,
            "output_dir": str(out),
        },
        EvalConfig,
    )
    tokenizer = AutoTokenizer.from_pretrained(TINY / "model")
    backend = ScriptedBackend(tokenizer, default=[SCRIPT])
    retriever = make_retriever(RetrieverConfig(index=str(TINY / "index")))
    Evaluation(cfg, backend, tokenizer, retriever, progress=False).run()
    return out
