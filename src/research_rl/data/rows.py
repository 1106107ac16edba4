"""One released example (a decoded row) into a :class:`~research_rl.questions.Question`.

The mapping is shared by every source: a released file read with ``--source`` and the same
dataset loaded from the Hugging Face hub produce rows of the same shape (or of the hub's shape,
which the mappers accept too), and both go through :func:`map_row`.

Per dataset, golden answers keep every alias the release gives (MuSiQue ``answer_aliases``,
TriviaQA ``Aliases``, 2WikiMultiHopQA's alias file, PopQA ``possible_answers``, NQ's answer list),
de-duplicated in order, and every answer column (Bamboogle's ``Answer 2``). A malformed row raises
:class:`DatasetFormatError` naming file, row and field; a row without any answer raises
:class:`NoAnswer`, which the caller counts and skips. Rows that mark their gold supporting passages
(HotpotQA, 2WikiMultiHopQA, MuSiQue) keep them as ``metadata.supporting_passages``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from research_rl.data.formats import DatasetFormatError
from research_rl.data.id_maps import IdMap
from research_rl.data.passages import supporting_passages
from research_rl.data.spreadsheet_dates import readable_dates
from research_rl.questions import Question

DATASETS = ("musique", "hotpotqa", "2wikimultihopqa", "bamboogle", "nq", "triviaqa", "popqa")


class NoAnswer(Exception):
    """The row has no usable answer (test splits, unanswerable questions): skip and report."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


@dataclass(frozen=True)
class RowContext:
    dataset: str
    split: str
    index: int  # 1-based position in the source: the id of rows that carry none
    where: str  # "file:line" or "file: row N", for errors
    # 2WikiMultiHopQA: answer entity id -> aliases (from the release's id_aliases.json).
    aliases: dict[str, list[str]] = field(default_factory=dict)
    # Ids of the same questions elsewhere (FlashRAG/Search-R1), for rows without ids or all rows.
    id_map: IdMap | None = None

    def error(self, key: str, problem: str) -> DatasetFormatError:
        return DatasetFormatError(f"{self.where}: field '{key}': {problem}")


def check_dataset(name: str) -> str:
    if name not in DATASETS:
        raise DatasetFormatError(f"unknown dataset '{name}' (known: {', '.join(DATASETS)})")
    return name


def map_row(row: dict[str, Any], ctx: RowContext) -> Question:
    """Map one row of ``ctx.dataset``; rows already in the FlashRAG collection format
    (``golden_answers``) are accepted for every dataset."""
    if "golden_answers" in row:
        question = _flashrag(row, ctx)
    else:
        question = _MAPPERS[check_dataset(ctx.dataset)](row, ctx)
    supporting = supporting_passages(row, ctx.where)
    if supporting is not None:
        question.metadata["supporting_passages"] = [{"title": t, "text": x} for t, x in supporting]
    return question


# --- field helpers ----------------------------------------------------------------------------


def _first_key(row: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in row and row[k] is not None), None)


def _text(row: dict[str, Any], keys: tuple[str, ...], ctx: RowContext) -> str:
    """A required non-empty string field, under any of its names (released first, hub second)."""
    key = _first_key(row, keys)
    if key is None:
        raise DatasetFormatError(f"{ctx.where}: missing field '{keys[0]}'")
    value = row[key]
    if not isinstance(value, str):
        raise ctx.error(key, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise ctx.error(key, "is empty")
    return value.strip()


def _row_id(row: dict[str, Any], keys: tuple[str, ...], ctx: RowContext) -> str | None:
    """The row's own id; ``None`` for releases without ids (Bamboogle, NQ-open)."""
    key = _first_key(row, keys)
    if key is None:
        return None
    value = row[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ctx.error(key, f"expected a string id, got {type(value).__name__}")
    if not str(value).strip():
        raise ctx.error(key, "is empty")
    return str(value)


def _answer_strings(values: Iterable[Any], key: str, ctx: RowContext) -> list[str]:
    """Strip, drop empties, de-duplicate keeping the first spelling; reject non-scalars."""
    out: list[str] = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ctx.error(key, f"answers must be strings, got {type(value).__name__}")
        text = str(value).strip()
        if text and text not in out:
            out.append(text)
    return out


def _string_list(value: Any, key: str, ctx: RowContext, allow_scalar: bool = False) -> list[Any]:
    """A list field that releases sometimes store as a JSON-encoded string (PopQA in CSV/TSV);
    ``allow_scalar`` accepts a lone string as a one-element list."""
    if isinstance(value, str):
        stripped = value.strip()
        if not stripped:
            return []
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError as err:
                raise ctx.error(key, f"invalid JSON list ({err.msg})") from None
        elif allow_scalar:
            return [value]
        else:
            raise ctx.error(key, f"expected a list, got the string {value[:40]!r}")
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        raise ctx.error(key, f"expected a list, got {type(value).__name__}")
    return value


def _require_answers(answers: list[str], ctx: RowContext) -> list[str]:
    if not answers:
        raise NoAnswer(ctx.where, "no answer")
    return answers


def _question(
    own_id: str | None, text: str, answers: list[str], ctx: RowContext, **meta: Any
) -> Question:
    metadata = {"dataset": ctx.dataset, "split": ctx.split}
    metadata.update({k: v for k, v in meta.items() if v is not None})
    qid = own_id
    id_map = ctx.id_map
    if id_map is not None and (own_id is None or id_map.every_row):
        qid = id_map.lookup(text) or own_id
        if own_id is not None and qid != own_id:
            metadata["source_id"] = own_id
    if qid is None:  # no id of its own, none mapped: its position in the source
        qid = f"{ctx.dataset}-{ctx.split}-{ctx.index}"
    return Question(id=qid, question=text, golden_answers=answers, metadata=metadata)


# --- per-dataset mappers ----------------------------------------------------------------------


def _flashrag(row: dict[str, Any], ctx: RowContext) -> Question:
    """FlashRAG collection rows: ``{"id", "question", "golden_answers": [...], "metadata"}``."""
    answers = _answer_strings(
        _string_list(row["golden_answers"], "golden_answers", ctx, True), "golden_answers", ctx
    )
    metadata = row.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ctx.error("metadata", f"expected an object, got {type(metadata).__name__}")
    question = _question(
        _row_id(row, ("id",), ctx),
        _text(row, ("question",), ctx),
        _require_answers(answers, ctx),
        ctx,
    )
    question.metadata = {**metadata, **question.metadata}
    return question


def _musique(row: dict[str, Any], ctx: RowContext) -> Question:
    """MuSiQue JSONL: ``id``, ``question``, ``answer``, ``answer_aliases``, ``answerable`` (full
    version only), ``paragraphs``, ``question_decomposition``."""
    qid = _row_id(row, ("id",), ctx)
    text = _text(row, ("question",), ctx)
    if row.get("answerable") is False:
        raise NoAnswer(ctx.where, "marked unanswerable")
    answer = row.get("answer")
    if answer is not None and not isinstance(answer, str):
        raise ctx.error("answer", f"expected a string, got {type(answer).__name__}")
    aliases = _string_list(row.get("answer_aliases") or [], "answer_aliases", ctx)
    answers = _answer_strings([answer or "", *aliases], "answer_aliases", ctx)
    decomposition = row.get("question_decomposition")
    hops = len(decomposition) if isinstance(decomposition, list) else None
    return _question(qid, text, _require_answers(answers, ctx), ctx, hops=hops)


def _hotpotqa(row: dict[str, Any], ctx: RowContext) -> Question:
    """HotpotQA JSON list (``_id``, ``question``, ``answer``, ``type``, ``level``, ``context``)
    or the hub's rows (``id`` instead of ``_id``)."""
    qid = _row_id(row, ("_id", "id"), ctx)
    text = _text(row, ("question",), ctx)
    answer = row.get("answer")
    if answer is not None and not isinstance(answer, str):
        raise ctx.error("answer", f"expected a string, got {type(answer).__name__}")
    answers = _answer_strings([answer or ""], "answer", ctx)
    return _question(
        qid, text, _require_answers(answers, ctx), ctx, type=row.get("type"), level=row.get("level")
    )


def _2wikimultihopqa(row: dict[str, Any], ctx: RowContext) -> Question:
    """2WikiMultiHopQA JSON list (``_id``, ``type``, ``question``, ``context``, ``answer``; the
    id-annotated release adds ``answer_id``, whose aliases come from ``id_aliases.json``)."""
    qid = _row_id(row, ("_id", "id"), ctx)
    text = _text(row, ("question",), ctx)
    answer = row.get("answer")
    if answer is not None and not isinstance(answer, str):
        raise ctx.error("answer", f"expected a string, got {type(answer).__name__}")
    answer_id = row.get("answer_id")
    aliases = ctx.aliases.get(answer_id, []) if isinstance(answer_id, str) else []
    answers = _answer_strings([answer or "", *aliases], "answer", ctx)
    return _question(
        qid, text, _require_answers(answers, ctx), ctx, type=row.get("type"), answer_id=answer_id
    )


BAMBOOGLE_RELEASE_YEAR = 2022  # no answer can be dated later: the century of a re-typed date


def _bamboogle(row: dict[str, Any], ctx: RowContext) -> Question:
    """Bamboogle CSV as released: ``Question,,,,Answer,Answer 2`` (every ``Answer*`` column is a
    golden answer; no ids), or the hub's ``Question``/``Answer`` rows. Answers a spreadsheet
    re-typed as dates (``29-May-32``) get their readable forms as aliases."""
    qid = _row_id(row, ("id",), ctx)
    text = _text(row, ("Question", "question"), ctx)
    keys = [k for k in row if k.strip().lower().startswith("answer")]
    if not keys:
        raise DatasetFormatError(f"{ctx.where}: missing field 'Answer'")
    values: list[Any] = []
    for key in keys:
        answer = row[key]
        if answer is not None and not isinstance(answer, str):
            raise ctx.error(key, f"expected a string, got {type(answer).__name__}")
        if answer:
            values += [answer, *readable_dates(answer, BAMBOOGLE_RELEASE_YEAR)]
    answers = _answer_strings(values, keys[0], ctx)
    return _question(qid, text, _require_answers(answers, ctx), ctx)


def _nq(row: dict[str, Any], ctx: RowContext) -> Question:
    """NQ-open JSONL (and the hub's ``nq_open``): ``question``, ``answer`` (a list of strings)."""
    qid = _row_id(row, ("id", "example_id"), ctx)
    text = _text(row, ("question",), ctx)
    values = _string_list(row.get("answer") or [], "answer", ctx)
    answers = _answer_strings(values, "answer", ctx)
    return _question(qid, text, _require_answers(answers, ctx), ctx)


def _triviaqa(row: dict[str, Any], ctx: RowContext) -> Question:
    """TriviaQA: the release's ``Data`` rows (``Question``, ``QuestionId``, ``Answer`` with
    ``Value`` and ``Aliases``) or the hub's rows (``question``, ``question_id``, ``answer`` with
    ``value`` and ``aliases``). Test rows carry no answer."""
    qid = _row_id(row, ("QuestionId", "question_id"), ctx)
    text = _text(row, ("Question", "question"), ctx)
    key = _first_key(row, ("Answer", "answer"))
    if key is None:
        raise NoAnswer(ctx.where, "no answer")
    answer = row[key]
    if not isinstance(answer, dict):
        raise ctx.error(
            key, f"expected an object with 'Value' and 'Aliases', got {type(answer).__name__}"
        )
    value = answer.get("Value", answer.get("value")) or ""
    aliases = _string_list(
        answer.get("Aliases", answer.get("aliases")) or [], f"{key}.Aliases", ctx
    )
    answers = _answer_strings([value, *aliases], f"{key}.Aliases", ctx)
    return _question(qid, text, _require_answers(answers, ctx), ctx)


def _popqa(row: dict[str, Any], ctx: RowContext) -> Question:
    """PopQA TSV/CSV/Parquet: ``id``, ``question``, ``possible_answers`` (a JSON-encoded list in
    the text releases), with the subject/relation/object columns kept as metadata."""
    qid = _row_id(row, ("id",), ctx)
    text = _text(row, ("question",), ctx)
    if "possible_answers" not in row:
        raise DatasetFormatError(f"{ctx.where}: missing field 'possible_answers'")
    values = _string_list(row["possible_answers"] or [], "possible_answers", ctx)
    answers = _answer_strings(values, "possible_answers", ctx)
    pop = row.get("s_pop")
    return _question(
        qid,
        text,
        _require_answers(answers, ctx),
        ctx,
        subject=row.get("subj"),
        relation=row.get("prop"),
        object=row.get("obj"),
        subject_popularity=int(pop) if str(pop or "").isdigit() else None,
    )


_MAPPERS: dict[str, Callable[[dict[str, Any], RowContext], Question]] = {
    "musique": _musique,
    "hotpotqa": _hotpotqa,
    "2wikimultihopqa": _2wikimultihopqa,
    "bamboogle": _bamboogle,
    "nq": _nq,
    "triviaqa": _triviaqa,
    "popqa": _popqa,
}
