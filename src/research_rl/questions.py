"""Questions: the one JSONL schema every dataset is prepared into.

``{"id": str, "question": str, "golden_answers": [str], "metadata": {...}}``. Training, rollout,
evaluation and the demo all read this format.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from research_rl.run_dir import iter_jsonl, jsonl_lines


class QuestionFileError(ValueError):
    """A question file with a malformed row."""


@dataclass
class Question:
    id: str
    question: str
    golden_answers: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "golden_answers": list(self.golden_answers),
            "metadata": self.metadata,
        }


def parse_question(row: object, where: str) -> Question:
    if not isinstance(row, dict):
        raise QuestionFileError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for key in ("id", "question", "golden_answers"):
        if key not in row:
            raise QuestionFileError(f"{where}: missing field '{key}'")
    qid, text, answers = row["id"], row["question"], row["golden_answers"]
    if not isinstance(qid, (str, int)) or isinstance(qid, bool):
        raise QuestionFileError(f"{where}: field 'id' must be a string")
    if not isinstance(text, str) or not text.strip():
        raise QuestionFileError(f"{where}: field 'question' must be a non-empty string")
    if isinstance(answers, str):
        answers = [answers]
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise QuestionFileError(f"{where}: field 'golden_answers' must be a list of strings")
    if not answers:
        raise QuestionFileError(f"{where}: field 'golden_answers' is empty")
    metadata = row.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise QuestionFileError(f"{where}: field 'metadata' must be an object")
    return Question(id=str(qid), question=text, golden_answers=answers, metadata=metadata)


def read_questions(path: str | Path, limit: int | None = None) -> list[Question]:
    path = Path(path)
    if not path.is_file():
        raise QuestionFileError(f"{path}: question file not found")
    out: list[Question] = []
    for where, row in iter_jsonl(path, QuestionFileError):
        out.append(parse_question(row, where))
        if limit is not None and len(out) >= limit:
            break
    return out


def write_questions(questions: Iterable[Question], path: str | Path) -> None:
    Path(path).write_text(jsonl_lines(q.to_json() for q in questions), encoding="utf-8")
