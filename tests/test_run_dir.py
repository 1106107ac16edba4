"""The one reader and writers of run-directory files: what a kill leaves behind never fails a
resume, and what another process writes beside us never interleaves."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from research_rl.run_dir import (
    append_jsonl,
    iter_jsonl,
    write_json_atomic,
    write_jsonl_atomic,
)


def test_a_bad_line_names_file_and_line(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{oops\n{"a": 3}\n')
    with pytest.raises(KeyError, match=r"rows.jsonl:3: invalid JSON"):
        list(iter_jsonl(path, KeyError))


def test_problems_collects_bad_lines_and_goes_on(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{oops\n{"a": 3}\n')
    problems: list[str] = []
    rows = [row for _, row in iter_jsonl(path, problems=problems)]
    assert rows == [{"a": 1}, {"a": 3}]
    assert len(problems) == 1 and problems[0].startswith(f"{path}:2: invalid JSON")


def test_a_last_line_cut_by_a_kill_is_removed_and_appending_goes_on(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    append_jsonl(path, [{"a": 1}, {"a": "é"}])
    with path.open("a", encoding="utf-8") as f:
        f.write('{"a": "cut sh')  # the kill
    rows = [row for _, row in iter_jsonl(path, repair_cut_tail=True)]
    assert rows == [{"a": 1}, {"a": "é"}]
    append_jsonl(path, [{"a": 4}])
    assert [row for _, row in iter_jsonl(path)] == [{"a": 1}, {"a": "é"}, {"a": 4}]


def test_a_character_cut_in_half_by_a_kill_is_removed_whole(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    append_jsonl(path, [{"a": 1}])
    with path.open("ab") as f:
        f.write('{"a": "é'.encode()[:-1])  # the kill lands inside the two bytes of "é"
    assert [row for _, row in iter_jsonl(path, repair_cut_tail=True)] == [{"a": 1}]
    assert path.read_bytes() == b'{"a": 1}\n'


def test_a_bad_line_before_the_last_is_still_an_error_when_repairing(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{oops\n{"a": 2}')
    with pytest.raises(ValueError, match=r":1: invalid JSON"):
        list(iter_jsonl(path, repair_cut_tail=True))
    assert path.read_text() == '{oops\n{"a": 2}'  # nothing lost


def test_atomic_writers_replace_whole_files_and_leave_no_staged_file(tmp_path: Path):
    path = tmp_path / "sub" / "rows.jsonl"
    write_jsonl_atomic(path, [{"a": 1}])
    write_jsonl_atomic(path, [{"a": 2}, {"a": 3}])
    assert path.read_text() == '{"a": 2}\n{"a": 3}\n'
    write_json_atomic(tmp_path / "card.json", {"k": "ü"})
    assert json.loads((tmp_path / "card.json").read_text(encoding="utf-8")) == {"k": "ü"}
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["card.json", "rows.jsonl", "sub"]


def _append_many(path: str, worker: int) -> None:
    for i in range(200):
        append_jsonl(Path(path), [{"w": worker, "i": i, "pad": "x" * 500}] * 3)


def test_appends_from_several_processes_never_interleave(tmp_path: Path):
    path = tmp_path / "shared.jsonl"
    procs = [
        multiprocessing.get_context("spawn").Process(target=_append_many, args=(str(path), w))
        for w in range(4)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    rows = [row for _, row in iter_jsonl(path)]  # every line parses
    assert len(rows) == 4 * 200 * 3
    assert {(r["w"], r["i"]) for r in rows} == {(w, i) for w in range(4) for i in range(200)}
