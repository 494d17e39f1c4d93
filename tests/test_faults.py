"""Faults a run must survive: interrupted writes, partial or damaged artifacts, edited inputs, failed and concurrent
runs."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hf_distill.core.atomic import atomic_directory, staging_path
from hf_distill.core.checkpoints import damaged_weights, is_complete_checkpoint, last_complete_checkpoint
from hf_distill.pipeline.preflight import PreflightError
from hf_distill.pipeline.run import STATE_DIR, Pipeline, run_from_config
from hf_distill.pipeline.run_state import RunFolderError, RunLock
from hf_distill.targets.cache import CACHE_MANIFEST, SoftTargetCacheError, _verify
from tests.test_pipeline import cls_config, markers


def _checkpoint(root: Path, step: int, *, state: str | None = '{"global_step": 1}', weights: bool = True) -> Path:
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if weights:
        save_file({"w": torch.zeros(2)}, path / "model.safetensors")
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


def test_a_checkpoint_with_damaged_weights_is_passed_over_with_a_warning_and_kept(tmp_path, caplog):
    good = _checkpoint(tmp_path, 5)
    weights = _checkpoint(tmp_path, 10) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-3])  # the data no longer reach the header's last offset
    header = _checkpoint(tmp_path, 15) / "model.safetensors"
    header.write_bytes(b"\xff" * 8 + header.read_bytes()[8:])  # a header length larger than the file
    sharded = _checkpoint(tmp_path, 20, weights=False)
    (sharded / "model.safetensors.index.json").write_text('{"weight_map": {"w": "model-00001-of-00001.safetensors"}}')
    assert damaged_weights(good) is None
    assert "model.safetensors: Error while deserializing header" in damaged_weights(weights.parent)
    assert "model.safetensors: Error while deserializing header" in damaged_weights(header.parent)
    assert "model-00001-of-00001.safetensors" in damaged_weights(sharded)  # a shard the index lists is missing
    before = weights.read_bytes()
    with caplog.at_level(logging.WARNING, logger="hf_distill.core.checkpoints"):
        assert last_complete_checkpoint(tmp_path) == str(good)
    assert "checkpoint-10 has damaged weights (model.safetensors: Error while deserializing header" in caplog.text
    assert (tmp_path / "checkpoint-10").is_dir()  # nothing moved unless asked
    assert last_complete_checkpoint(tmp_path, remove_incomplete=True) == str(good)
    # never deleted: moved out of the Trainer's way (it would write its next checkpoint-10 into the folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-5",
        "damaged-checkpoint-10",
        "damaged-checkpoint-15",
        "damaged-checkpoint-20",
    ]
    assert (tmp_path / "damaged-checkpoint-10" / "model.safetensors").read_bytes() == before


@pytest.mark.slow
def test_student_stage_resumes_from_the_newest_intact_checkpoint(tmp_path, tiny_bert_cls_dir, caplog):
    # A checkpoint written to the end but with damaged weights failed every resume ("Error while deserializing
    # header"); the run now resumes from the checkpoint before it and keeps the damaged one.
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, save_strategy="steps", save_steps=2)
    run_from_config(cfg, ["--stop_after", "student"])
    checkpoints = tmp_path / "run" / "student_checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    (tmp_path / "run" / STATE_DIR / "student.json").unlink()  # as if killed after checkpoint-4, before the stage ended
    weights = checkpoints / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    damaged = weights.read_bytes()
    with caplog.at_level(logging.WARNING, logger="hf_distill.core.checkpoints"):
        results = run_from_config(cfg, ["--stop_after", "student"])
    assert results["student"]["resumed_from"] == str(checkpoints / "checkpoint-2")
    assert results["student"]["global_step"] == 4
    assert "checkpoint-4 has damaged weights" in caplog.text and "damaged-checkpoint-4" in caplog.text
    assert (checkpoints / "damaged-checkpoint-4" / "model.safetensors").read_bytes() == damaged
    assert damaged_weights(checkpoints / "checkpoint-4") is None  # the resumed run wrote a new, intact one


@pytest.mark.slow
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


# ---- artifacts damaged or removed between stages ------------------------------------------------------------------


def _cache_folder(run: Path) -> Path:
    marker = json.loads((run / STATE_DIR / "soft_targets.json").read_text())
    return run / marker["path"]


def verify_cache(folder: Path) -> None:
    """soft_targets' own manifest check, against the key the cache was written with."""
    _verify(folder, json.loads((folder / CACHE_MANIFEST).read_text())["key"])


def _arrow_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.arrow"))}


@pytest.mark.slow
def test_intact_soft_target_cache_is_reused_by_the_student_stage(tmp_path, tiny_bert_cls_dir):
    # The student stage verifies the cache; an intact one must be reused, not regenerated (same key across processes).
    cfg = cls_config(tmp_path, tiny_bert_cls_dir)
    run_from_config(cfg, ["--stop_after", "soft_targets"])
    folder = _cache_folder(tmp_path / "run")
    manifest = folder / CACHE_MANIFEST
    before = manifest.stat().st_mtime_ns
    run_from_config(cfg, ["--stop_after", "student"])
    assert manifest.stat().st_mtime_ns == before
    assert [p.name for p in (tmp_path / "run" / "soft_targets").iterdir()] == [folder.name]


@pytest.mark.slow
def test_soft_target_cache_corrupted_between_stages_is_regenerated_not_used(tmp_path, tiny_bert_cls_dir):
    cfg = cls_config(tmp_path, tiny_bert_cls_dir)
    run_from_config(cfg, ["--stop_after", "soft_targets"])
    folder = _cache_folder(tmp_path / "run")
    good = _arrow_files(folder)
    name, data = next(iter(good.items()))
    damaged = bytearray(data)
    middle = len(damaged) // 2
    damaged[middle : middle + 64] = bytes(64)  # same size, other bytes: only the checksum can tell
    (folder / name).write_bytes(bytes(damaged))
    results = run_from_config(cfg, ["--stop_after", "student"])
    assert results["student"]["global_step"] == 4
    assert _arrow_files(_cache_folder(tmp_path / "run")) == good  # regenerated (the teacher is deterministic)
    with pytest.raises(SoftTargetCacheError):
        _verify_damaged_copy(tmp_path, folder, name, damaged)


def _verify_damaged_copy(tmp_path: Path, folder: Path, name: str, damaged: bytearray) -> None:
    # Control: the damage above is one the manifest check detects.
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / name).write_bytes(bytes(damaged))
    verify_cache(copy)


@pytest.mark.slow
def test_deleted_soft_target_folder_is_regenerated(tmp_path, tiny_bert_cls_dir):
    cfg = cls_config(tmp_path, tiny_bert_cls_dir)
    run_from_config(cfg, ["--stop_after", "soft_targets"])
    shutil.rmtree(tmp_path / "run" / "soft_targets")
    results = run_from_config(cfg, ["--stop_after", "student"])
    assert results["student"]["global_step"] == 4 and results["student"]["rows"] == 40
    verify_cache(_cache_folder(tmp_path / "run"))


@pytest.mark.slow
def test_training_file_edited_in_place_after_a_stage_is_refused(tmp_path, tiny_bert_cls_dir):
    cfg = cls_config(tmp_path, tiny_bert_cls_dir)
    run_from_config(cfg, ["--stop_after", "teacher"])
    train = tmp_path / "train.tsv"
    train.write_text(train.read_text().replace("\t1\n", "\t0\n", 3))  # same path, other labels
    with pytest.raises(
        PreflightError, match=r"data of split\(s\) train changed since the finished stages.*--overwrite"
    ):
        run_from_config(cfg, ["--stop_after", "soft_targets"])
    assert markers(tmp_path / "run") == {"teacher"}
    results = run_from_config(cfg, ["--stop_after", "teacher", "--overwrite", "true"])  # redo on the new data
    assert not results["teacher"].get("skipped")


@pytest.mark.slow
def test_failed_first_run_does_not_block_the_corrected_rerun(tmp_path, tiny_bert_cls_dir, monkeypatch):
    cfg = cls_config(tmp_path, tiny_bert_cls_dir)

    def fail(self):
        raise RuntimeError("the teacher stage failed (simulated)")

    with monkeypatch.context() as patch:
        patch.setattr(Pipeline, "stage_teacher", fail)
        with pytest.raises(RuntimeError, match="simulated"):
            run_from_config(cfg, ["--teacher_learning_rate", "0.5"])
    assert not (tmp_path / "run" / STATE_DIR / "run_config.json").exists()
    results = run_from_config(cfg, ["--stop_after", "teacher"])  # corrected settings: accepted
    assert results["teacher"]["trained"] is True
    assert json.loads((tmp_path / "run" / STATE_DIR / "run_config.json").read_text())["teacher_max_steps"] == 3


@pytest.mark.slow
def test_overwrite_never_deletes_the_teacher_the_run_reads(tmp_path, tiny_bert_cls_dir):
    cfg = cls_config(tmp_path, tiny_bert_cls_dir)
    run_from_config(cfg, ["--stop_after", "teacher"])
    teacher = tmp_path / "run" / "teacher"
    weights = (teacher / "model.safetensors").read_bytes()
    with pytest.raises(PreflightError, match=r"--overwrite would delete .*teacher, which this run reads as teacher"):
        run_from_config(cfg, ["--teacher", str(teacher), "--train_teacher", "no", "--overwrite", "true"])
    assert (teacher / "model.safetensors").read_bytes() == weights
    assert markers(tmp_path / "run") == {"teacher"}


@pytest.mark.slow
def test_overwrite_deletes_stage_folders_only(tmp_path, tiny_bert_cls_dir):
    cfg = cls_config(tmp_path, tiny_bert_cls_dir)
    run_from_config(cfg, ["--stop_after", "teacher"])
    (tmp_path / "run" / "notes.txt").write_text("mine")
    (tmp_path / "run" / "teacher" / "extra").mkdir()
    run_from_config(cfg, ["--stop_after", "teacher", "--overwrite", "true"])
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "run" / "teacher" / "extra").exists()  # the stage folder was rewritten


# ---- two runs on one folder ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_second_run_on_a_locked_folder_is_refused(tmp_path, tiny_bert_cls_dir):
    cfg = cls_config(tmp_path, tiny_bert_cls_dir)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = tmp_path / "run" / STATE_DIR / "lock"
        lock.parent.mkdir(parents=True)
        lock.write_text(json.dumps({"pid": other.pid, "host": socket.gethostname(), "since": "now"}))
        with pytest.raises(RunFolderError, match=rf"in use by another hf-distill run \(process {other.pid}"):
            run_from_config(cfg, ["--stop_after", "teacher"])
        assert not (tmp_path / "run" / "teacher").exists() and lock.is_file()
    finally:
        other.kill()
        other.wait()
    # The same lock left by a process that has died is taken over, with a message.
    results = run_from_config(cfg, ["--stop_after", "teacher"])
    assert results["teacher"]["trained"] is True and not lock.exists()


def test_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_path = tmp_path / STATE_DIR / "lock"
    lock_path.parent.mkdir(parents=True)
    lock_path.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": "then"}))
    with caplog.at_level(logging.WARNING, logger="hf_distill.pipeline.run_state"), RunLock(tmp_path):
        assert json.loads(lock_path.read_text())["pid"] == os.getpid()
        with pytest.raises(RunFolderError, match="in use"):
            RunLock(tmp_path).acquire()  # held by this (live) process now
    assert f"taking over the lock of process {dead.pid}" in caplog.text
    assert not lock_path.exists()


# ---- the atomic-directory helper ----------------------------------------------------------------------------------


def test_atomic_directory_keeps_the_old_folder_until_the_new_one_is_complete(tmp_path):
    target = tmp_path / "teacher"
    with atomic_directory(target) as tmp:
        (tmp / "weights").write_text("v1")
    assert (target / "weights").read_text() == "v1"
    with pytest.raises(RuntimeError, match="killed"), atomic_directory(target) as tmp:
        (tmp / "weights").write_text("v2 (half")
        raise RuntimeError("killed while writing")
    assert (target / "weights").read_text() == "v1"  # the old complete folder, never a mix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["teacher"]  # no staging folder left behind
    leftover = staging_path(target)
    leftover.mkdir()
    (leftover / "stale").write_text("from a killed run")
    with atomic_directory(target) as tmp:
        assert not (tmp / "stale").exists()
        (tmp / "weights").write_text("v3")
    assert sorted(p.name for p in target.iterdir()) == ["weights"] and (target / "weights").read_text() == "v3"
