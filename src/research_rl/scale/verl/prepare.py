"""Question JSONL (``research data prepare`` output) -> the parquet files verl trains on.

    python -m research_rl.scale.verl.prepare --train data/musique/train.jsonl \\
        --val data/musique/dev.jsonl --out data/verl/musique [--tokenizer Qwen/Qwen2.5-7B \\
        --settings runs/verl/settings.yaml]

Each row carries what verl's ``RLHFDataset`` and the ReSearch agent loop read: ``data_source``,
``prompt`` (the question as a user message; verl needs one, the agent loop renders the project's
own template from ``extra_info.question``), ``agent_name`` (``research_agent``),
``reward_model.ground_truth`` (the golden answers) and ``extra_info`` (question id and text,
golden answers, index). With ``--tokenizer`` and ``--settings``, questions whose rendered prompt
exceeds ``rollout.max_prompt_tokens`` are dropped here (and counted), since in training the rollout
engine refuses them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from research_rl.questions import Question, read_questions
from research_rl.rollout import PromptTooLongError, RolloutEngine
from research_rl.scale.verl.agent_loop import AGENT_NAME, load_settings


def verl_row(q: Question, index: int, split: str, data_source: str) -> dict[str, Any]:
    return {
        "data_source": data_source,
        "prompt": [{"role": "user", "content": q.question}],
        "ability": "search-qa",
        "agent_name": AGENT_NAME,
        "reward_model": {"style": "rule", "ground_truth": list(q.golden_answers)},
        "extra_info": {
            "split": split,
            "index": index,
            "question_id": q.id,
            "question": q.question,
            "golden_answers": list(q.golden_answers),
        },
    }


def prompt_filter(tokenizer_name: str, settings_path: str):
    """A predicate keeping questions whose rendered prompt fits ``rollout.max_prompt_tokens``."""
    from transformers import AutoTokenizer

    settings = load_settings(settings_path)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_name)
    # The engine's own prompt rendering, so the check is exactly the one training applies.
    engine = RolloutEngine(None, tokenizer, None, settings.rollout)  # type: ignore[arg-type]

    def fits_prompt(q: Question) -> bool:
        try:
            engine.render_prompt(q)
        except PromptTooLongError:
            return False
        return True

    return fits_prompt


def convert(
    questions: list[Question], out: Path, split: str, data_source: str, keep=None
) -> tuple[int, int]:
    """Write ``out`` (parquet); returns (rows written, questions dropped as too long)."""
    from datasets import Dataset

    rows, dropped = [], 0
    for q in questions:
        if keep is not None and not keep(q):
            dropped += 1
            continue
        rows.append(verl_row(q, len(rows), split, data_source))
    if not rows:
        raise ValueError(f"{out}: no questions left to write ({dropped} too long)")
    out.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows).to_parquet(str(out))
    return len(rows), dropped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True, help="question JSONL for training")
    parser.add_argument("--val", help="question JSONL for validation")
    parser.add_argument(
        "--out", required=True, help="output directory (train.parquet, val.parquet)"
    )
    parser.add_argument("--data-source", default="research", help="the data_source column")
    parser.add_argument("--tokenizer", help="drop prompts longer than rollout.max_prompt_tokens")
    parser.add_argument("--settings", help="the agent loop settings (with --tokenizer)")
    args = parser.parse_args(argv)
    if bool(args.tokenizer) != bool(args.settings):
        parser.error("--tokenizer and --settings go together")
    keep = prompt_filter(args.tokenizer, args.settings) if args.tokenizer else None
    out = Path(args.out)
    for split, path in (("train", args.train), ("val", args.val)):
        if path is None:
            continue
        written, dropped = convert(
            read_questions(path), out / f"{split}.parquet", split, args.data_source, keep
        )
        note = f" ({dropped} dropped: prompt too long)" if dropped else ""
        print(f"{out / f'{split}.parquet'}: {written} rows{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
