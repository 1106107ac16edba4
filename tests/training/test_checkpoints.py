"""Atomic checkpoints: only sealed step_N directories are ever resumed from."""

from __future__ import annotations

import json

from research_rl.training import checkpoints


def _stage(run_dir, step, payload="weights"):
    staged = run_dir / "checkpoints" / ".partial" / f"checkpoint-{step}"
    staged.mkdir(parents=True)
    (staged / "model.safetensors").write_text(payload)
    (staged / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return staged


def test_finalize_seals_and_moves_into_place(tmp_path):
    final = checkpoints.finalize(_stage(tmp_path, 4), tmp_path, 4)
    assert final == tmp_path / "checkpoints" / "step_4"
    marker = json.loads((final / checkpoints.MARKER).read_text())
    assert marker["step"] == 4
    assert marker["files"] == ["model.safetensors", "trainer_state.json"]
    assert checkpoints.latest_checkpoint(tmp_path) == final


def test_half_written_checkpoints_are_never_chosen(tmp_path):
    good = checkpoints.finalize(_stage(tmp_path, 2), tmp_path, 2)
    # a kill before the marker: a step directory with files but no marker
    unsealed = tmp_path / "checkpoints" / "step_6"
    unsealed.mkdir()
    (unsealed / "model.safetensors").write_text("half")
    # a kill during the write: only the staging directory exists
    _stage(tmp_path, 4)
    # a marker that lists a file which is gone (e.g. a copy cut short)
    broken = checkpoints.finalize(_stage(tmp_path, 8), tmp_path, 8)
    (broken / "model.safetensors").unlink()
    assert checkpoints.latest_checkpoint(tmp_path) == good
    assert [s for s, _ in checkpoints.complete_checkpoints(tmp_path)] == [2]
    removed = checkpoints.clear_partial(tmp_path)
    assert not (tmp_path / "checkpoints" / ".partial").exists()
    assert sorted(p.name for p in removed) == ["step_6", "step_8"]
    assert checkpoints.latest_checkpoint(tmp_path) == good


def test_prune_keeps_the_newest(tmp_path):
    for step in (1, 2, 3):
        checkpoints.finalize(_stage(tmp_path, step), tmp_path, step)
    checkpoints.prune(tmp_path, keep=2)
    assert [s for s, _ in checkpoints.complete_checkpoints(tmp_path)] == [2, 3]


def test_a_same_step_checkpoint_is_replaced_whole(tmp_path):
    checkpoints.finalize(_stage(tmp_path, 2, "old"), tmp_path, 2)
    final = checkpoints.finalize(_stage(tmp_path, 2, "new"), tmp_path, 2)
    assert (final / "model.safetensors").read_text() == "new"
