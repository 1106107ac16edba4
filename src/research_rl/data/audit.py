"""Contamination audit: which evaluation questions the training data already holds.

For each (training file, evaluation file) pair, three findings, each a list of evaluation ids:

- ``same_question``: the normalised question text
  (:func:`~research_rl.data.question_text.question_key`) is a training question's;
- ``same_answer_similar_question``: the question shares a normalised golden answer with a training
  question that asks about the same things (at least half of their content words shared, and at
  least two). A shared answer alone is no evidence: "yes", "1999" or "United States" answer
  thousands of unrelated questions;
- ``gold_passages_in_train``: one of the question's gold supporting passages (HotpotQA and
  2WikiMultiHopQA ``supporting_facts``, MuSiQue ``is_supporting`` paragraphs) is among the passages
  the training file carries. Checked only where the evaluation format marks gold passages and
  the training format ships passages; the report says when it was not checked, and why.

Files are released files (their dataset told by their fields,
:mod:`~research_rl.data.fingerprints`), FlashRAG/Search-R1 rows, or prepared question files (whose
``metadata.supporting_passages`` ``research data prepare`` keeps). The report is JSON with a stable
``schema`` (see :data:`SCHEMA`); :func:`audit` returns it, ``research data audit`` writes it.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from research_rl.data.fingerprints import guess_dataset
from research_rl.data.formats import DatasetFormatError, iter_records
from research_rl.data.id_maps import shipped_id_map
from research_rl.data.passages import shipped_passages, supporting_passages
from research_rl.data.question_text import content_words, question_key
from research_rl.data.rows import NoAnswer, RowContext, map_row
from research_rl.reward import normalize_answer

SCHEMA = "research-rl/data-audit/1"
MIN_SHARED_WORDS = 2  # content words two questions must share to count as similar ...
MIN_JACCARD = 0.5  # ... and the share of their content words that must be common
EXAMPLES = 5  # examples per finding in the report


@dataclass
class AuditQuestion:
    id: str
    question: str
    key: str  # question_key(question)
    answers: frozenset[str]  # normalised golden answers
    words: frozenset[str]  # content words
    gold: list[tuple[str, bytes]] | None  # gold passages (title, passage_digest); None: not marked


@dataclass
class AuditSet:
    """One file, read for the audit."""

    path: str
    dataset: str | None
    form: str  # "released" (a dataset's own format) or "questions" (FlashRAG/prepared rows)
    questions: list[AuditQuestion] = field(default_factory=list)
    skipped: int = 0  # rows without an answer
    passages: set[bytes] = field(default_factory=set)  # digests of every passage it carries
    ships_passages: bool = False  # some row carried its passages (not only gold ones)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "dataset": self.dataset,
            "format": self.form,
            "questions": len(self.questions),
            "skipped_without_answer": self.skipped,
            "questions_with_gold_passages": sum(bool(q.gold) for q in self.questions),
            "notes": self.notes,
        }


def passage_digest(title: str, text: str) -> bytes:
    """Passages compare by normalised title and text; a digest keeps big corpora small in memory."""
    key = f"{question_key(title)}\n{question_key(text)}"
    return hashlib.blake2b(key.encode("utf-8"), digest_size=12).digest()


def read_audit_set(path: str | Path) -> AuditSet:
    """Every answered question of a file, with its gold passages and the passages it carries."""
    notes: list[str] = []
    records = iter_records(path, notes)
    first = next(records, None)
    if first is None:
        raise DatasetFormatError(f"{path}: no rows to audit")
    where, row = first
    guess = guess_dataset(row)
    flashrag = "golden_answers" in row
    if guess is None and not flashrag:
        raise DatasetFormatError(
            f"{where}: cannot tell which dataset this file is from (fields: "
            f"{', '.join(sorted(row)[:8])}); prepare it with research data prepare and audit the "
            "question file"
        )
    dataset = guess.dataset if guess else None
    out = AuditSet(str(path), dataset, "questions" if flashrag else "released", notes=notes)
    id_map = shipped_id_map(dataset) if dataset else None
    for index, (where, row) in enumerate(chain([first], records), start=1):
        # FlashRAG rows map the same whatever their dataset; the name only fills metadata.
        ctx = RowContext(dataset or "nq", "audit", index, where, id_map=id_map)
        try:
            question = map_row(row, ctx)
        except NoAnswer:
            out.skipped += 1
            continue
        supporting = supporting_passages(row, where)
        gold = None if supporting is None else [(t, passage_digest(t, x)) for t, x in supporting]
        shipped = shipped_passages(row, where)
        if shipped is not None:
            out.ships_passages = True
            out.passages.update(passage_digest(t, x) for t, x in shipped)
        out.passages.update(digest for _, digest in gold or [])
        out.questions.append(
            AuditQuestion(
                id=question.id,
                question=question.question,
                key=question_key(question.question),
                answers=frozenset(normalize_answer(a) for a in question.golden_answers) - {""},
                words=content_words(question.question),
                gold=gold,
            )
        )
    return out


def audit(train_path: str | Path, eval_paths: list[str | Path]) -> dict[str, Any]:
    """The audit report (JSON-ready) of one training file against each evaluation file."""
    train = read_audit_set(train_path)
    by_key: dict[str, AuditQuestion] = {}
    by_answer: dict[str, list[AuditQuestion]] = defaultdict(list)
    for q in train.questions:
        by_key.setdefault(q.key, q)
        for a in q.answers:
            by_answer[a].append(q)
    train_summary = train.summary() | {
        "passages": len(train.passages),
        "passages_from": "shipped"
        if train.ships_passages
        else ("gold" if train.passages else "none"),
    }
    pairs = [_pair(train, by_key, by_answer, read_audit_set(p)) for p in eval_paths]
    return {
        "schema": SCHEMA,
        "train": train_summary,
        "method": {
            "question_text": "research_rl.reward.normalize_answer, then word characters only",
            "similar_question": {
                "min_shared_content_words": MIN_SHARED_WORDS,
                "min_jaccard": MIN_JACCARD,
            },
            "passages": "normalised title and text, equal",
        },
        "pairs": pairs,
    }


def _pair(
    train: AuditSet,
    by_key: dict[str, AuditQuestion],
    by_answer: dict[str, list[AuditQuestion]],
    ev: AuditSet,
) -> dict[str, Any]:
    same: list[dict[str, Any]] = []
    similar: list[dict[str, Any]] = []
    passages: list[dict[str, Any]] = []
    for q in ev.questions:
        seen = by_key.get(q.key)
        if seen is not None:
            same.append({"eval_id": q.id, "train_id": seen.id, "question": q.question})
        else:
            match = _similar(q, by_answer)
            if match is not None:
                twin, answer = match
                similar.append(
                    {
                        "eval_id": q.id,
                        "train_id": twin.id,
                        "eval_question": q.question,
                        "train_question": twin.question,
                        "answer": answer,
                    }
                )
        if q.gold:
            found = [title for title, digest in q.gold if digest in train.passages]
            if found:
                passages.append({"eval_id": q.id, "titles": found})
    n = len(ev.questions)
    gold_questions = sum(bool(q.gold) for q in ev.questions)
    reason = None
    if not gold_questions:
        reason = f"{ev.path} marks no gold supporting passages"
    elif not train.passages:
        reason = f"{train.path} carries no passages"
    gold = _finding(passages, gold_questions) | {"checked": reason is None, "reason": reason}
    flagged = [x["eval_id"] for x in chain(same, similar, passages)]
    any_ids = list(dict.fromkeys(flagged))
    return {
        "eval": ev.summary(),
        "same_question": _finding(same, n),
        "same_answer_similar_question": _finding(similar, n),
        "gold_passages_in_train": gold,
        "any": {"count": len(any_ids), "fraction": _fraction(len(any_ids), n), "eval_ids": any_ids},
    }


def _similar(
    q: AuditQuestion, by_answer: dict[str, list[AuditQuestion]]
) -> tuple[AuditQuestion, str] | None:
    """The training question most like ``q`` among those sharing an answer, if similar enough."""
    best: tuple[float, AuditQuestion, str] | None = None
    for answer in sorted(q.answers):
        for t in by_answer.get(answer, ()):
            shared = len(q.words & t.words)
            if shared < MIN_SHARED_WORDS:
                continue
            jaccard = shared / len(q.words | t.words)
            if jaccard >= MIN_JACCARD and (best is None or jaccard > best[0]):
                best = (jaccard, t, answer)
    return None if best is None else (best[1], best[2])


def _finding(items: list[dict[str, Any]], of: int) -> dict[str, Any]:
    return {
        "count": len(items),
        "fraction": _fraction(len(items), of),
        "eval_ids": [x["eval_id"] for x in items],
        "examples": items[:EXAMPLES],
    }


def _fraction(count: int, of: int) -> float:
    return round(count / of, 6) if of else 0.0


def summary_lines(report: dict[str, Any]) -> Iterator[str]:
    """The report for a terminal: one block per evaluation file."""
    train = report["train"]
    yield (
        f"train {train['path']} ({train['dataset'] or 'dataset not named'}, {train['format']}): "
        f"{train['questions']} questions, {train['passages']} passages ({train['passages_from']})"
    )
    for pair in report["pairs"]:
        ev = pair["eval"]
        yield (
            f"eval {ev['path']} ({ev['dataset'] or 'dataset not named'}, {ev['format']}): "
            f"{ev['questions']} questions"
        )
        yield f"  same question:                 {_count(pair['same_question'])}"
        yield f"  same answer, similar question: {_count(pair['same_answer_similar_question'])}"
        gold = pair["gold_passages_in_train"]
        shown = _count(gold) if gold["checked"] else f"not checked ({gold['reason']})"
        yield f"  gold passages in train:        {shown}"
        yield f"  any of these:                  {_count(pair['any'])}"


def _count(finding: dict[str, Any]) -> str:
    text = f"{finding['count']} ({100 * finding['fraction']:.1f}%)"
    examples = finding.get("examples") or []
    if examples:
        first = examples[0]
        text += f", e.g. {first['eval_id']}"
        if "train_id" in first:
            text += f" = train {first['train_id']}"
    return text
