"""A closed corpus: the passages HotpotQA, 2WikiMultiHopQA and MuSiQue ship with each question.

Users without a Wikipedia index can still train and evaluate with search over it. Passages are
de-duplicated by (title, text) across every question and every source file, and written in the
project's corpus format (:class:`research_rl.corpus.Passage`), ids in order of first appearance.

Shapes read:
- MuSiQue: ``paragraphs: [{"title", "paragraph_text", ...}]``;
- HotpotQA / 2WikiMultiHopQA releases: ``context: [[title, [sentence, ...]], ...]``;
- their hub rows: ``context: {"title": [...], "sentences": [[...], ...]}``;
- FlashRAG rows keeping either shape under ``metadata``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from research_rl.corpus import Passage
from research_rl.data.formats import DatasetFormatError, iter_records
from research_rl.data.rows import check_dataset

CORPUS_DATASETS = ("musique", "hotpotqa", "2wikimultihopqa")


@dataclass
class ClosedCorpus:
    passages: list[Passage]
    questions: int  # rows read
    duplicates: int  # passages dropped as already present
    empty: int  # passages dropped for having no text


def join_sentences(sentences: Iterable[str]) -> str:
    """HotpotQA sentences carry their own leading space, 2WikiMultiHopQA's do not: join so that
    both read as prose (no doubled or missing spaces)."""
    out = ""
    for s in sentences:
        if out and not s[:1].isspace() and not out[-1:].isspace():
            out += " "
        out += s
    return out.strip()


def row_passages(dataset: str, row: dict[str, Any], where: str) -> list[tuple[str, str]]:
    """The (title, text) passages one question row ships with."""
    source = row
    if "paragraphs" not in row and "context" not in row and isinstance(row.get("metadata"), dict):
        source = row["metadata"]  # FlashRAG rows keep the released fields in metadata
    if dataset == "musique":
        return _paragraphs(source, where)
    return _context(source, where)


def _paragraphs(row: dict[str, Any], where: str) -> list[tuple[str, str]]:
    paragraphs = row.get("paragraphs")
    if not isinstance(paragraphs, list):
        raise DatasetFormatError(f"{where}: field 'paragraphs': expected a list of paragraphs")
    out = []
    for i, p in enumerate(paragraphs):
        title = p.get("title") if isinstance(p, dict) else None
        text = p.get("paragraph_text") if isinstance(p, dict) else None
        if not isinstance(title, str) or not isinstance(text, str):
            raise DatasetFormatError(
                f"{where}: field 'paragraphs[{i}]': expected 'title' and 'paragraph_text' strings"
            )
        out.append((title.strip(), text.strip()))
    return out


def _context(row: dict[str, Any], where: str) -> list[tuple[str, str]]:
    context = row.get("context")
    if isinstance(context, dict):  # hub layout: parallel lists
        titles, sentences = context.get("title"), context.get("sentences")
        if (
            not isinstance(titles, list)
            or not isinstance(sentences, list)
            or len(titles) != len(sentences)
        ):
            raise DatasetFormatError(
                f"{where}: field 'context': expected equally long 'title' and 'sentences' lists"
            )
        context = [[t, s] for t, s in zip(titles, sentences, strict=True)]
    if not isinstance(context, list):
        raise DatasetFormatError(f"{where}: field 'context': expected [[title, [sentences]], ...]")
    out = []
    for i, item in enumerate(context):
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


def build_closed_corpus(dataset: str, sources: Iterable[str | Path]) -> ClosedCorpus:
    """Collect and de-duplicate the shipped passages of every row of every source file."""
    check_dataset(dataset)
    if dataset not in CORPUS_DATASETS:
        raise DatasetFormatError(
            f"{dataset} ships no passages with its questions; a closed corpus can be built from "
            f"{', '.join(CORPUS_DATASETS)}"
        )
    seen: set[tuple[str, str]] = set()
    passages: list[Passage] = []
    rows = duplicates = empty = 0
    for where, row in _all_records(sources):
        rows += 1
        for title, text in row_passages(dataset, row, where):
            if not text:
                empty += 1
                continue
            if (title, text) in seen:
                duplicates += 1
                continue
            seen.add((title, text))
            passages.append(Passage.from_title_text(str(len(passages)), title, text))
    return ClosedCorpus(passages=passages, questions=rows, duplicates=duplicates, empty=empty)


def _all_records(sources: Iterable[str | Path]) -> Iterator[tuple[str, dict[str, Any]]]:
    for source in sources:
        yield from iter_records(source)
