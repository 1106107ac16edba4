"""Reading released dataset files record by record, whatever container they ship in.

Each record comes with ``where``, a human-readable location ("file:line" for line-based files,
"file: row N" for JSON lists and Parquet), so a loader can name the exact bad row in its errors.
Text files are read in the encoding their bytes say (:mod:`research_rl.data.encoding`); how a file
was read, where a user should know (not UTF-8, a byte-order mark), is added to ``notes``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from research_rl.data.encoding import detect_encoding
from research_rl.questions import QuestionFileError
from research_rl.run_dir import iter_jsonl


class DatasetFormatError(QuestionFileError):
    """A released dataset file, or one row of it, that does not have the expected shape."""


# Top-level keys under which JSON releases nest their list of examples
# (TriviaQA: {"Data": [...], "Version": ...}; SQuAD-style: {"data": [...]}).
_NESTED_LIST_KEYS = ("Data", "data")


def iter_records(
    path: str | Path, notes: list[str] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(where, record)`` for every example in a JSON, JSONL, CSV, TSV or Parquet file."""
    path = Path(path)
    if path.is_dir():
        raise DatasetFormatError(f"{path}: is a directory, not a dataset file")
    if not path.is_file():
        raise DatasetFormatError(f"{path}: dataset file not found")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".csv", ".tsv"):
        encoding = detect_encoding(path)
        if encoding.note and notes is not None:
            notes.append(encoding.note)
    if suffix == ".jsonl":
        yield from _iter_jsonl(path, encoding.name)
    elif suffix == ".json":
        yield from _iter_json(path, encoding.name)
    elif suffix in (".csv", ".tsv"):
        yield from _iter_delimited(path, "\t" if suffix == ".tsv" else ",", encoding.name)
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


def _iter_jsonl(path: Path, encoding: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for where, row in iter_jsonl(path, DatasetFormatError, encoding=encoding):
        yield _record(where, row)


def _iter_json(path: Path, encoding: str) -> Iterator[tuple[str, dict[str, Any]]]:
    text = path.read_text(encoding=encoding)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # several JSON values: a JSONL file named .json
            yield from _iter_jsonl(path, encoding)
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
                yield from _iter_jsonl(path, encoding)
                return
            raise DatasetFormatError(
                f"{path}: expected a list of examples, or an object with a 'Data' or 'data' list"
            )
    if not isinstance(data, list):
        raise DatasetFormatError(f"{path}: expected a list of examples, got {type(data).__name__}")
    for i, row in enumerate(data, start=1):
        yield _record(f"{path}: row {i}", row)


def _iter_delimited(
    path: Path, delimiter: str, encoding: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(encoding=encoding, newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader, None)
            if not header:
                raise DatasetFormatError(f"{path}: empty file (no header row)")
            # Spreadsheet exports leave unnamed spacer columns (Bamboogle: "Question,,,,Answer"):
            # only named columns are fields, and a cell under an unnamed column must be empty.
            named = [(i, name.strip()) for i, name in enumerate(header) if name.strip()]
            names = [name for _, name in named]
            twice = next((n for n in names if names.count(n) > 1), None)
            if twice:
                raise DatasetFormatError(f"{path}:1: column '{twice}' appears twice in the header")
            for cells in reader:
                where = f"{path}:{reader.line_num}"
                if not any(c.strip() for c in cells):
                    continue
                yield where, _delimited_row(where, header, named, cells)
        except csv.Error as err:
            raise DatasetFormatError(f"{path}:{reader.line_num}: unreadable CSV ({err})") from None


def _delimited_row(
    where: str, header: list[str], named: list[tuple[int, str]], cells: list[str]
) -> dict[str, Any]:
    if any(c.strip() for c in cells[len(header) :]):
        raise DatasetFormatError(f"{where}: more cells than header columns")
    if len(cells) < len(header):
        missing = [name for i, name in named if i >= len(cells)]
        if missing:
            raise DatasetFormatError(f"{where}: missing cells for {missing}")
        cells = cells + [""] * (len(header) - len(cells))
    stray = [i + 1 for i, name in enumerate(header) if not name.strip() and cells[i].strip()]
    if stray:
        raise DatasetFormatError(f"{where}: a value in unnamed column {stray[0]}")
    return {name: cells[i] for i, name in named}


def _iter_parquet(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several unrelated types for a bad file
        raise DatasetFormatError(f"{path}: not a readable Parquet file ({err})") from None
    i = 0
    batches = parquet.iter_batches(batch_size=1024)
    while True:
        try:
            batch = next(batches, None)
        except Exception as err:  # a corrupt row group surfaces only when it is read
            raise DatasetFormatError(f"{path}: row {i + 1}: unreadable Parquet ({err})") from None
        if batch is None:
            return
        for row in batch.to_pylist():
            i += 1
            yield _record(f"{path}: row {i}", row)
