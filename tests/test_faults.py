"""Faults a run must survive: interrupted writes, partial artifacts."""

from __future__ import annotations

import json
from pathlib import Path

from hf_distill.checkpoints import is_complete_checkpoint, last_complete_checkpoint
from hf_distill.pipeline import run_from_config
from tests.test_pipeline import cls_config, markers


def _checkpoint(root: Path, step: int, *, state: str | None = '{"global_step": 1}', weights: bool = True) -> Path:
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if weights:
        (path / "model.safetensors").write_bytes(b"x")
    if state is not None:
        (path / "trainer_state.json").write_text(state)
    return path


def test_last_complete_checkpoint_skips_partial_ones(tmp_path):
    good = _checkpoint(tmp_path, 5)
    _checkpoint(tmp_path, 10, state=None)  # killed before trainer_state.json
    _checkpoint(tmp_path, 15, state='{"global_st')  # killed while writing trainer_state.json
    _checkpoint(tmp_path, 20, weights=False)
    (tmp_path / "checkpoint-99-notes").mkdir()  # not a Trainer checkpoint: never touched
    assert not is_complete_checkpoint(tmp_path / "checkpoint-10")
    assert is_complete_checkpoint(good)
    assert last_complete_checkpoint(tmp_path) == str(good)
    assert (tmp_path / "checkpoint-10").is_dir()  # nothing removed unless asked
    assert last_complete_checkpoint(tmp_path, remove_incomplete=True) == str(good)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-5", "checkpoint-99-notes"]
    assert last_complete_checkpoint(tmp_path / "missing") is None


def test_student_stage_ignores_a_checkpoint_interrupted_while_saving(tmp_path, tiny_bert_cls_dir):
    # A kill while the Trainer writes checkpoint-N leaves a folder without trainer_state.json; every re-run used to
    # pick it as the last checkpoint and fail on it.
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, save_strategy="steps", save_steps=2)
    run_from_config(cfg, ["--stop_after", "soft_targets"])
    partial = _checkpoint(tmp_path / "run" / "student_checkpoints", 2, state=None)
    results = run_from_config(cfg)
    assert results["student"]["resumed_from"] is None and results["student"]["global_step"] == 4
    assert markers(tmp_path / "run") >= {"student", "evaluate", "card"}
    assert json.loads((partial / "trainer_state.json").read_text())["global_step"] == 2  # rewritten by the new run
