"""Which dataset a row's fields say it comes from: for the warning when ``--dataset`` and the file
disagree (a MuSiQue file read as HotpotQA maps silently: both have ``question`` and ``answer``), and
for the audit, which reads released files without being told their dataset.

Only fields unique to one release count as evidence; a row with none of them (FlashRAG's NQ rows,
a prepared question file without ``metadata.dataset``) is not guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from research_rl.data.rows import DATASETS

# Hub names that Search-R1-style ``data_source`` fields use for the same datasets.
_SOURCE_NAMES = {
    "hotpot_qa": "hotpotqa",
    "nq_open": "nq",
    "trivia_qa": "triviaqa",
    "2wiki": "2wikimultihopqa",
}


@dataclass(frozen=True)
class Guess:
    dataset: str
    evidence: str  # the fields that told, for the warning


# Checked in order: the first whose fields are all present wins (2WikiMultiHopQA before HotpotQA:
# both have context and supporting_facts, only HotpotQA has level, only 2Wiki has evidences).
_RELEASE_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("musique", ("paragraphs", "question_decomposition")),
    ("musique", ("answer_aliases", "answerable")),
    ("2wikimultihopqa", ("context", "evidences")),
    ("2wikimultihopqa", ("context", "answer_id")),
    ("hotpotqa", ("context", "supporting_facts", "level")),
    ("triviaqa", ("QuestionId", "Answer")),
    ("triviaqa", ("question_id", "answer", "entity_pages")),
    ("popqa", ("possible_answers", "s_pop")),
    ("popqa", ("possible_answers", "prop")),
    ("bamboogle", ("Question", "Answer")),
)


def guess_dataset(row: dict[str, Any]) -> Guess | None:
    """The dataset ``row`` is from, where its fields tell; ``None`` where they do not."""
    if "golden_answers" in row:
        return _flashrag(row)
    for dataset, fields in _RELEASE_FIELDS:
        if all(f in row for f in fields):
            return Guess(dataset, ", ".join(fields))
    # NQ-open: exactly a question and a list of answers, nothing else.
    if set(row) == {"question", "answer"} and isinstance(row["answer"], list):
        return Guess("nq", "question, answer (a list) and nothing else")
    return None


def _flashrag(row: dict[str, Any]) -> Guess | None:
    """FlashRAG/Search-R1 rows: Search-R1 names the dataset (``data_source``), prepared files have
    ``metadata.dataset``, FlashRAG's MuSiQue rows keep MuSiQue's own fields in metadata."""
    source = row.get("data_source")
    if isinstance(source, str):
        name = source.strip().lower().rsplit("/", 1)[-1]  # "chiayewken/bamboogle"
        name = _SOURCE_NAMES.get(name, name)
        if name in DATASETS:
            return Guess(name, f"data_source '{source}'")
    metadata = row.get("metadata")
    if not isinstance(metadata, dict):
        return None
    if metadata.get("dataset") in DATASETS:
        return Guess(metadata["dataset"], f"metadata.dataset '{metadata['dataset']}'")
    inner = guess_dataset({k: v for k, v in metadata.items() if k != "golden_answers"})
    if inner is None and "question_decomposition" in metadata and "answerable" in metadata:
        inner = Guess("musique", "question_decomposition, answerable")
    if inner is None:
        return None
    return Guess(inner.dataset, f"metadata: {inner.evidence}")
