"""``research data prepare``: a released dataset split, from a file or the hub, into question JSONL.

Every row goes through :func:`research_rl.data.rows.map_row`; rows without an answer are counted
and skipped (the report names where), malformed rows stop the run with file, row and field, and
two rows with the same id are an error (evaluation resumes by id). The report's notes say how a
file was read (encoding, ids) and its warnings when the rows look like another dataset's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from research_rl.data.fingerprints import guess_dataset
from research_rl.data.formats import DatasetFormatError, iter_records
from research_rl.data.id_maps import IdMap, builtin_id_map, id_map_from_file
from research_rl.data.rows import NoAnswer, RowContext, check_dataset, map_row
from research_rl.data.splits import canonical_split
from research_rl.questions import Question

# The FlashRAG collection on the hub: one folder per dataset, ``<split>.jsonl`` files named
# train/dev/test, every row already ``{"id", "question", "golden_answers", "metadata"}``. It holds
# all seven datasets (MuSiQue and 2WikiMultiHopQA have no official hub release), so it is the
# default hub source.
FLASHRAG_REPO = "RUC-NLPIR/FlashRAG_datasets"


@dataclass(frozen=True)
class NativeHub:
    """A dataset's own hub release (rows in the dataset's own field names)."""

    repo: str
    config: str | None
    splits: dict[str, str]  # our split name -> the hub's


NATIVE_HUB: dict[str, NativeHub] = {
    "hotpotqa": NativeHub("hotpotqa/hotpot_qa", "distractor", {"dev": "validation"}),
    "nq": NativeHub("google-research-datasets/nq_open", "nq_open", {"dev": "validation"}),
    "triviaqa": NativeHub("mandarjoshi/trivia_qa", "rc.nocontext", {"dev": "validation"}),
    "popqa": NativeHub("akariasai/PopQA", None, {}),
    "bamboogle": NativeHub("chiayewken/bamboogle", None, {}),
}

_SKIP_EXAMPLES = 5  # how many skipped locations a report lists


@dataclass
class PrepareReport:
    questions: list[Question]
    source: str
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> rows skipped
    skipped_at: list[str] = field(default_factory=list)  # the first few skipped rows' locations
    notes: list[str] = field(default_factory=list)  # how the source was read
    warnings: list[str] = field(default_factory=list)  # what looks wrong but did not stop the run

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        lines = [f"{len(self.questions)} questions from {self.source}"]
        if self.skipped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
            lines.append(f"skipped {self.num_skipped} rows without an answer ({reasons}), e.g.:")
            lines.extend(f"  {where}" for where in self.skipped_at)
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


def read_aliases(path: str | Path) -> dict[str, list[str]]:
    """2WikiMultiHopQA's ``id_aliases.json``: JSONL of ``{"Q_id", "aliases", "demonyms"}``.

    Only ``aliases`` become golden answers: demonyms ("French" for France) are a different answer.
    """
    out: dict[str, list[str]] = {}
    for where, row in iter_records(Path(path)):
        qid, aliases = row.get("Q_id"), row.get("aliases", [])
        if not isinstance(qid, str):
            raise DatasetFormatError(f"{where}: field 'Q_id': expected a string")
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise DatasetFormatError(f"{where}: field 'aliases': expected a list of strings")
        out[qid] = aliases
    return out


def collect(
    dataset: str,
    split: str,
    records: Iterable[tuple[str, dict[str, Any]]],
    source: str,
    aliases: dict[str, list[str]] | None = None,
    id_map: IdMap | None = None,
    notes: list[str] | None = None,
) -> PrepareReport:
    """Map every record; skip (and count) the ones without an answer; reject duplicate ids.

    ``id_map``: ids of the same questions elsewhere (default: the shipped map for releases without
    ids, :func:`~research_rl.data.id_maps.builtin_id_map`). ``notes``: filled while ``records``
    is read (the encoding), reported with the report's own.
    """
    check_dataset(dataset)
    split = canonical_split(split)
    if id_map is None:
        id_map = builtin_id_map(dataset, split)
    report = PrepareReport(questions=[], source=source)
    if notes is not None:
        report.notes = notes  # the reader appends while the rows are read
    first_seen: dict[str, str] = {}
    for index, (where, row) in enumerate(records, start=1):
        if index == 1:
            report.warnings.extend(_other_dataset(dataset, row, source))
        ctx = RowContext(dataset, split, index, where, aliases or {}, id_map)
        try:
            question = map_row(row, ctx)
        except DatasetFormatError as err:
            if report.warnings:  # a bad row of a file read as another dataset: say that too
                raise DatasetFormatError(f"{err} ({report.warnings[0]})") from None
            raise
        except NoAnswer as skip:
            report.skipped[skip.reason] += 1
            if len(report.skipped_at) < _SKIP_EXAMPLES:
                report.skipped_at.append(f"{skip.where} ({skip.reason})")
            continue
        if question.id in first_seen:
            raise DatasetFormatError(
                f"{where}: duplicate id '{question.id}' (first at {first_seen[question.id]})"
            )
        first_seen[question.id] = where
        report.questions.append(question)
    if id_map is not None and id_map.looked_up:
        report.notes.append(_id_note(id_map))
    return report


def _other_dataset(dataset: str, row: dict[str, Any], source: str) -> list[str]:
    guess = guess_dataset(row)
    if guess is None or guess.dataset == dataset:
        return []
    return [
        f"{source} is read as {dataset}, but its fields ({guess.evidence}) are those of "
        f"{guess.dataset}: check --dataset"
    ]


def _id_note(id_map: IdMap) -> str:
    rows = "rows" if id_map.every_row else "rows without ids"
    note = (
        f"ids from {id_map.reference}: {id_map.found} of {id_map.looked_up} {rows} matched "
        "by question (the rest keep their own or positional ids)"
    )
    if id_map.ambiguous:
        note += f" ({id_map.ambiguous} reference questions appear under two ids: not mapped)"
    return note


def prepare_file(
    dataset: str,
    split: str,
    source: str | Path,
    aliases_path: str | Path | None = None,
    ids_from: str | Path | None = None,
) -> PrepareReport:
    """Read a released file (JSON, JSONL, CSV, TSV, Parquet, or FlashRAG JSONL).

    ``ids_from``: a file with ids for the same questions (a FlashRAG or Search-R1 split): every
    row whose question it has takes its id."""
    if aliases_path and dataset != "2wikimultihopqa":
        raise DatasetFormatError(f"{aliases_path}: an alias file only applies to 2wikimultihopqa")
    aliases = read_aliases(aliases_path) if aliases_path else None
    id_map = id_map_from_file(ids_from) if ids_from else None
    notes: list[str] = []
    return collect(dataset, split, iter_records(source, notes), str(source), aliases, id_map, notes)


def prepare_hub(dataset: str, split: str, hub: str = "flashrag") -> PrepareReport:
    """Load from the Hugging Face hub: ``hub="flashrag"`` (every dataset) or ``"native"`` (the
    dataset's own release, for those that have one). Needs network access."""
    check_dataset(dataset)
    split = canonical_split(split)
    import datasets

    if hub == "flashrag":
        hub_split = split
        data_file = f"{dataset}/{hub_split}.jsonl"
        source = f"hf://datasets/{FLASHRAG_REPO}/{data_file}"
        ds = _load(
            source,
            datasets.load_dataset,
            FLASHRAG_REPO,
            data_files={hub_split: data_file},
            split=hub_split,
        )
    elif hub == "native":
        if dataset not in NATIVE_HUB:
            raise DatasetFormatError(
                f"{dataset} has no native hub release; use the FlashRAG collection (--hub flashrag)"
                f" or --source (native releases: {', '.join(NATIVE_HUB)})"
            )
        spec = NATIVE_HUB[dataset]
        hub_split = spec.splits.get(split, split)
        source = f"hf://datasets/{spec.repo} ({spec.config or 'default'}, {hub_split})"
        ds = _load(source, datasets.load_dataset, spec.repo, spec.config, split=hub_split)
    else:
        raise DatasetFormatError(f"unknown hub source '{hub}' (expected flashrag or native)")
    return collect(dataset, split, _hub_records(ds, source), source)


def _load(source: str, load: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``datasets.load_dataset``, its failures (offline, no such split) named as the source."""
    try:
        return load(*args, **kwargs)
    except Exception as err:  # datasets raises many unrelated types (network, missing split)
        raise DatasetFormatError(f"{source}: could not load ({type(err).__name__}: {err})") from err


def _hub_records(ds: Iterable[dict[str, Any]], source: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for i, row in enumerate(ds, start=1):
        yield f"{source} row {i}", dict(row)
