"""A closed corpus: the passages HotpotQA, 2WikiMultiHopQA and MuSiQue ship with each question.

Users without a Wikipedia index can still train and evaluate with search over it. Passages are
de-duplicated by (title, text) across every question and every source file, and written in the
project's corpus format (:class:`research_rl.corpus.Passage`), ids in order of first appearance.

The shapes read are those of :mod:`research_rl.data.passages`. Files that carry no passages
(FlashRAG's MuSiQue rows, every NQ, TriviaQA, PopQA and Bamboogle file) are an error that says so
and names the release that does carry them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from research_rl.corpus import Passage
from research_rl.data.formats import DatasetFormatError, iter_records
from research_rl.data.passages import SHIPS_PASSAGES, row_passages
from research_rl.data.rows import check_dataset

CORPUS_DATASETS = tuple(SHIPS_PASSAGES)


@dataclass
class SourceCount:
    path: str
    questions: int  # rows read
    passages: int  # passages this file added (new to the corpus)


@dataclass
class ClosedCorpus:
    passages: list[Passage]
    questions: int  # rows read
    duplicates: int  # passages dropped as already present
    empty: int  # passages dropped for having no text
    sources: list[SourceCount] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how files were read (encoding)


def build_closed_corpus(dataset: str, sources: Iterable[str | Path]) -> ClosedCorpus:
    """Collect and de-duplicate the shipped passages of every row of every source file."""
    check_dataset(dataset)
    if dataset not in CORPUS_DATASETS:
        raise DatasetFormatError(
            f"{dataset} ships no passages with its questions; a closed corpus can be built from "
            f"{', '.join(CORPUS_DATASETS)}"
        )
    built = ClosedCorpus(passages=[], questions=0, duplicates=0, empty=0)
    seen: set[tuple[str, str]] = set()
    for source in sources:
        count = SourceCount(str(source), 0, 0)
        for where, row in iter_records(source, built.notes):
            count.questions += 1
            for title, text in row_passages(dataset, row, where):
                if not text:
                    built.empty += 1
                    continue
                if (title, text) in seen:
                    built.duplicates += 1
                    continue
                seen.add((title, text))
                pid = str(len(built.passages))
                built.passages.append(Passage.from_title_text(pid, title, text))
                count.passages += 1
        built.questions += count.questions
        built.sources.append(count)
    return built
