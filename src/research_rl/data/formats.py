"""Reading released dataset files record by record, whatever container they ship in.

Each record comes with ``where``, a human-readable location ("file:line" for line-based files,
"file: row N" for JSON lists and Parquet), so a loader can name the exact bad row in its errors.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from research_rl.jsonl import iter_jsonl
from research_rl.questions import QuestionFileError


class DatasetFormatError(QuestionFileError):
    """A released dataset file, or one row of it, that does not have the expected shape."""


# Top-level keys under which JSON releases nest their list of examples
# (TriviaQA: {"Data": [...], "Version": ...}; SQuAD-style: {"data": [...]}).
_NESTED_LIST_KEYS = ("Data", "data")


def iter_records(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(where, record)`` for every example in a JSON, JSONL, CSV, TSV or Parquet file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetFormatError(f"{path}: dataset file not found")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _iter_jsonl(path)
    elif suffix == ".json":
        yield from _iter_json(path)
    elif suffix in (".csv", ".tsv"):
        yield from _iter_delimited(path, "\t" if suffix == ".tsv" else ",")
    elif suffix == ".parquet":
        yield from _iter_parquet(path)
    else:
        raise DatasetFormatError(
            f"{path}: unsupported file type '{suffix}' "
            "(expected .json, .jsonl, .csv, .tsv, .parquet)"
        )


def _record(where: str, row: object) -> tuple[str, dict[str, Any]]:
    if not isinstance(row, dict):
        raise DatasetFormatError(f"{where}: expected an object, got {type(row).__name__}")
    return where, row


def _iter_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for where, row in iter_jsonl(path, DatasetFormatError):
        yield _record(where, row)


def _iter_json(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # several JSON values: a JSONL file named .json
            yield from _iter_jsonl(path)
            return
        raise DatasetFormatError(
            f"{path}: invalid JSON at line {err.lineno} column {err.colno} ({err.msg})"
        ) from None
    if isinstance(data, dict):
        for key in _NESTED_LIST_KEYS:
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            if len(text.strip().splitlines()) == 1:  # a one-row JSONL file named .json
                yield from _iter_jsonl(path)
                return
            raise DatasetFormatError(
                f"{path}: expected a list of examples, or an object with a 'Data' or 'data' list"
            )
    if not isinstance(data, list):
        raise DatasetFormatError(f"{path}: expected a list of examples, got {type(data).__name__}")
    for i, row in enumerate(data, start=1):
        yield _record(f"{path}: row {i}", row)


def _iter_delimited(path: Path, delimiter: str) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        if not reader.fieldnames:
            raise DatasetFormatError(f"{path}: empty file (no header row)")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if None in row:  # more cells than header columns
                raise DatasetFormatError(f"{where}: more cells than header columns")
            if any(v is None for v in row.values()):
                missing = [k for k, v in row.items() if v is None]
                raise DatasetFormatError(f"{where}: missing cells for {missing}")
            if not any(v.strip() for v in row.values()):
                continue
            yield where, dict(row)


def _iter_parquet(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several unrelated types for a bad file
        raise DatasetFormatError(f"{path}: not a readable Parquet file ({err})") from None
    i = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            i += 1
            yield _record(f"{path}: row {i}", row)
