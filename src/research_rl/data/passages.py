"""The passages a question row ships with, and which of them are its gold supporting passages.

Shapes read:
- MuSiQue: ``paragraphs: [{"title", "paragraph_text", "is_supporting", ...}]``;
- HotpotQA / 2WikiMultiHopQA releases: ``context: [[title, [sentence, ...]], ...]`` with
  ``supporting_facts: [[title, sentence index], ...]``;
- their hub rows: ``context: {"title": [...], "sentences": [[...], ...]}`` with
  ``supporting_facts: {"title": [...], "sent_id": [...]}``;
- FlashRAG rows, which keep either shape under ``metadata`` (MuSiQue's keep no paragraphs, only
  each hop's ``support_paragraph`` inside ``metadata.question_decomposition``);
- prepared question files: ``metadata.supporting_passages: [{"title", "text"}]``.

A passage is ``(title, text)``, both stripped; sentences are joined into prose.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from research_rl.data.formats import DatasetFormatError

TitleText = tuple[str, str]  # (title, text)

# Where each released format keeps its passages, for the errors of ``research data corpus``.
SHIPS_PASSAGES = {
    "musique": "the released musique_ans_v1.0_*.jsonl / musique_full_v1.0_*.jsonl ('paragraphs')",
    "hotpotqa": "the released hotpot_*.json or the hub's hotpot_qa rows ('context')",
    "2wikimultihopqa": "the released train.json / dev.json ('context')",
}


def join_sentences(sentences: Iterable[str]) -> str:
    """HotpotQA sentences carry their own leading space, 2WikiMultiHopQA's do not: join so that
    both read as prose (no doubled or missing spaces)."""
    out = ""
    for s in sentences:
        if out and not s[:1].isspace() and not out[-1:].isspace():
            out += " "
        out += s
    return out.strip()


def _released_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The row itself, or the metadata where FlashRAG rows keep the released fields."""
    if "paragraphs" not in row and "context" not in row and isinstance(row.get("metadata"), dict):
        return row["metadata"]
    return row


def row_passages(dataset: str, row: dict[str, Any], where: str) -> list[TitleText]:
    """Every passage one row of ``dataset`` ships; an error that says so where it ships none."""
    source = _released_fields(row)
    key = "paragraphs" if dataset == "musique" else "context"
    if key not in source:
        raise DatasetFormatError(f"{where}: {_no_passages(dataset, row, key)}")
    if dataset == "musique":
        return paragraphs(source, where)
    return context(source, where)


def _no_passages(dataset: str, row: dict[str, Any], key: str) -> str:
    told = f"this row carries no passages (no '{key}' field)"
    if "golden_answers" in row:
        told = f"this FlashRAG-format row carries no passages (no '{key}' field, nor in metadata)"
        metadata = row.get("metadata")
        if isinstance(metadata, dict) and "question_decomposition" in metadata:
            told += (
                "; FlashRAG's MuSiQue rows keep only each hop's supporting paragraph "
                "(metadata.question_decomposition), so a corpus built from them would hold "
                "nothing but the answers' own passages"
            )
    return f"{told}; build the corpus from {SHIPS_PASSAGES[dataset]}"


def paragraphs(row: dict[str, Any], where: str, supporting_only: bool = False) -> list[TitleText]:
    items = row.get("paragraphs")
    if not isinstance(items, list):
        raise DatasetFormatError(f"{where}: field 'paragraphs': expected a list of paragraphs")
    out = []
    for i, p in enumerate(items):
        passage = _paragraph(p, f"paragraphs[{i}]", where)
        if not supporting_only or p.get("is_supporting") is True:
            out.append(passage)
    return out


def _paragraph(p: Any, field: str, where: str) -> TitleText:
    title = p.get("title") if isinstance(p, dict) else None
    text = p.get("paragraph_text") if isinstance(p, dict) else None
    if not isinstance(title, str) or not isinstance(text, str):
        raise DatasetFormatError(
            f"{where}: field '{field}': expected 'title' and 'paragraph_text' strings"
        )
    return title.strip(), text.strip()


def context(row: dict[str, Any], where: str) -> list[TitleText]:
    ctx = row.get("context")
    if isinstance(ctx, dict):  # hub layout: parallel lists
        titles, sentences = ctx.get("title"), ctx.get("sentences")
        if (
            not isinstance(titles, list)
            or not isinstance(sentences, list)
            or len(titles) != len(sentences)
        ):
            raise DatasetFormatError(
                f"{where}: field 'context': expected equally long 'title' and 'sentences' lists"
            )
        ctx = [[t, s] for t, s in zip(titles, sentences, strict=True)]
    if not isinstance(ctx, list):
        raise DatasetFormatError(f"{where}: field 'context': expected [[title, [sentences]], ...]")
    out = []
    for i, item in enumerate(ctx):
        ok = (
            isinstance(item, (list, tuple))
            and len(item) == 2
            and isinstance(item[0], str)
            and isinstance(item[1], (list, tuple))
            and all(isinstance(s, str) for s in item[1])
        )
        if not ok:
            raise DatasetFormatError(
                f"{where}: field 'context[{i}]': expected [title, [sentence, ...]]"
            )
        out.append((item[0].strip(), join_sentences(item[1])))
    return out


def shipped_passages(row: dict[str, Any], where: str) -> list[TitleText] | None:
    """Every passage the row ships, whatever its dataset; ``None`` where it ships none."""
    source = _released_fields(row)
    if "paragraphs" in source:
        return paragraphs(source, where)
    if "context" in source:
        return context(source, where)
    return None


def supporting_passages(row: dict[str, Any], where: str) -> list[TitleText] | None:
    """The row's gold supporting passages; ``None`` where its format does not mark them."""
    metadata = row.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("supporting_passages"), list):
        return _prepared(metadata["supporting_passages"], where)
    source = _released_fields(row)
    if "paragraphs" in source:
        return paragraphs(source, where, supporting_only=True)
    if "context" in source and "supporting_facts" in source:
        titles = _supporting_titles(source["supporting_facts"], where)
        return [p for p in context(source, where) if p[0] in titles]
    decomposition = source.get("question_decomposition")
    if isinstance(decomposition, list) and any(
        isinstance(step, dict) and "support_paragraph" in step for step in decomposition
    ):
        out = []
        for i, step in enumerate(decomposition):
            if isinstance(step, dict) and "support_paragraph" in step:
                field = f"metadata.question_decomposition[{i}].support_paragraph"
                passage = _paragraph(step["support_paragraph"], field, where)
                if passage not in out:
                    out.append(passage)
        return out
    return None


def _supporting_titles(facts: Any, where: str) -> set[str]:
    if isinstance(facts, dict):  # hub layout: {"title": [...], "sent_id": [...]}
        facts = facts.get("title")
        if isinstance(facts, list) and all(isinstance(t, str) for t in facts):
            return {t.strip() for t in facts}
    elif isinstance(facts, list) and all(
        isinstance(f, (list, tuple)) and f and isinstance(f[0], str) for f in facts
    ):
        return {f[0].strip() for f in facts}
    raise DatasetFormatError(
        f"{where}: field 'supporting_facts': expected [[title, sentence index], ...]"
    )


def _prepared(items: list[Any], where: str) -> list[TitleText]:
    out = []
    for i, p in enumerate(items):
        ok = isinstance(p, dict) and all(isinstance(p.get(k), str) for k in ("title", "text"))
        if not ok:
            raise DatasetFormatError(
                f"{where}: field 'metadata.supporting_passages[{i}]': expected 'title' and 'text'"
            )
        out.append((p["title"], p["text"]))
    return out
