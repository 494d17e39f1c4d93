"""The bookkeeping of a run folder: stage markers, the recorded settings, `--overwrite`, and the lock.

Layout under ``output_dir``: ``.hf_distill/<stage>.json`` marks a finished stage; ``.hf_distill/run_config.json``
holds the settings (and data fingerprint) of the finished stages; ``.hf_distill/lock`` is held while a run works.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from ..core.atomic import PARTIAL_SUFFIX, atomic_write_text, raise_if_disk_full
from ..errors import HfDistillError
from .arguments import STAGES

logger = logging.getLogger(__name__)

STATE_DIR = ".hf_distill"
# What `--overwrite` deletes (with the stage markers and the recorded settings); everything else in the folder stays.
STAGE_FOLDERS = ("teacher", "teacher_checkpoints", "soft_targets", "student", "student_checkpoints")
# Settings that may change between a run and its resumption without invalidating finished stages.
VOLATILE = {
    "overwrite",
    "push_to_hub",
    "hub_model_id",
    "hub_space_id",
    "hub_private_repo",
    "report_to",
    "logging_steps",
    "logging_strategy",
    "disable_tqdm",
    "dataloader_num_workers",
    "stop_after",
    # Wording for the report and card: a folder trained before the sweep that chose its recipe was written up
    # must not be retrained for it.
    "recipe_chosen_by",
}


class RunFolderError(HfDistillError, RuntimeError):
    """The run folder cannot be used as asked (other settings, stale data, foreign content, locked)."""


class RunState:
    """Completion markers and the recorded settings of a run folder.

    Args:
        output_dir: the run folder.
    """

    def __init__(self, output_dir: str | os.PathLike) -> None:
        self.root = Path(output_dir)
        self.dir = self.root / STATE_DIR
        self.settings_path = self.dir / "run_config.json"

    def done(self, stage: str) -> dict[str, Any] | None:
        """The marker of a finished stage, or None."""
        path = self.dir / f"{stage}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def finished(self) -> list[str]:
        """The stages finished in this folder, in pipeline order."""
        return [stage for stage in STAGES if self.done(stage) is not None]

    def mark(self, stage: str, settings: dict[str, Any], **info: Any) -> None:
        """Record a finished stage, and the settings it was made with (written only now: a run that finished no
        stage leaves no settings behind, so its corrected re-run is not refused).

        Args:
            stage: one of `STAGES`.
            settings: the run's recorded settings (`parse_run_config`'s third value).
            **info: facts about the stage kept in its marker (e.g. the step count).
        """
        atomic_write_text(self.settings_path, json.dumps(settings, indent=1, sort_keys=True, default=str))
        record = {"stage": stage, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}
        atomic_write_text(self.dir / f"{stage}.json", json.dumps(record, indent=1, default=str))

    def would_delete(self, paths: dict[str, str | None]) -> list[str]:
        """Problems: inputs of the run (name → path) that `--overwrite` would delete."""
        doomed = [(self.root / sub).resolve() for sub in STAGE_FOLDERS]
        problems = []
        for name, path in paths.items():
            if not path or not os.path.exists(path):
                continue
            resolved = Path(path).resolve()
            for folder in doomed:
                if resolved == folder or folder in resolved.parents:
                    problems.append(
                        f"--overwrite would delete {folder}, which this run reads as {name} ({path}): copy it out "
                        "of the run folder and point the config there, or use another output_dir"
                    )
        return problems

    def check(self, settings: dict[str, Any], overwrite: bool) -> list[str]:
        """Problems that stop a run in this folder with these settings (empty: the run may go ahead)."""
        if overwrite:
            return []
        if self.settings_path.is_file() and self.finished():
            before = json.loads(self.settings_path.read_text())
            problems = []
            if (
                "data_fingerprint" in before
                and "data_fingerprint" in settings
                and before["data_fingerprint"] != settings["data_fingerprint"]
            ):
                changed = sorted(
                    k
                    for k in set(before["data_fingerprint"]) | set(settings["data_fingerprint"])
                    if before["data_fingerprint"].get(k) != settings["data_fingerprint"].get(k)
                )
                problems.append(
                    f"the data of split(s) {', '.join(changed)} changed since the finished stages "
                    f"({', '.join(self.finished())}) used it: pass --overwrite to redo them on the new data, "
                    "restore the old file, or use another output_dir"
                )
            before, settings = _with_defaults(before, settings)
            changed = sorted(
                k
                for k in set(before) | set(settings)
                if k not in VOLATILE and k != "data_fingerprint" and before.get(k) != settings.get(k)
            )
            if changed:
                details = ", ".join(f"{k}: {before.get(k)!r} -> {settings.get(k)!r}" for k in changed)
                problems.append(
                    f"{self.root} holds a run with other settings ({details}). Use another output_dir, "
                    "or pass --overwrite to redo every stage."
                )
            return problems
        if not self.dir.is_dir() and self.root.is_dir() and any(self.root.iterdir()):
            return [
                f"{self.root} is not empty and is not an hf-distill run folder; choose another output_dir or pass "
                f"--overwrite (which deletes only the stage folders {', '.join(STAGE_FOLDERS)} in it)"
            ]
        return []

    def prepare(self, settings: dict[str, Any], overwrite: bool, inputs: dict[str, str | None] | None = None) -> None:
        """Refuse to mix runs or to use stale data; with `overwrite`, delete the stage folders and markers.

        Args:
            settings: the run's settings (with its data fingerprint).
            overwrite: start afresh. Deletes only `STAGE_FOLDERS`, their staging folders, the markers and the
                recorded settings; never other files, and never an input of the run (refused instead).
            inputs: paths the run reads (teacher, student, tokenizer, data files), protected from `overwrite`.
        """
        problems = self.would_delete(inputs or {}) if overwrite else self.check(settings, overwrite)
        if problems:
            raise RunFolderError("\n".join(problems))
        if overwrite and self.root.exists():
            for stage in STAGES:
                (self.dir / f"{stage}.json").unlink(missing_ok=True)
            self.settings_path.unlink(missing_ok=True)
            for sub in STAGE_FOLDERS:
                shutil.rmtree(self.root / sub, ignore_errors=True)
                shutil.rmtree(self.root / (sub + PARTIAL_SUFFIX), ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)


def _with_defaults(before: dict[str, Any], now: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both settings with the fields that only one of them sets added at their effective (default) values.

    Settings hold what the user set: without this, `--temperature 2.0` (the default) differed from "unset", and a
    newly set field was reported as ``alpha: None -> 0.7``.
    """
    one_sided = (set(before) ^ set(now)) - VOLATILE - {"data_fingerprint"}
    if not one_sided:
        return before, now
    from .arguments import effective_settings  # the fields and their defaults

    try:
        return ({**effective_settings(before, one_sided), **before}, {**effective_settings(now, one_sided), **now})
    except Exception:  # noqa: BLE001 - settings the dataclasses refuse: compare them as recorded
        return before, now


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``.hf_distill/lock``: one run at a time per folder. A lock left by a dead process is taken over.

    Args:
        output_dir: the run folder.
    """

    def __init__(self, output_dir: str | os.PathLike) -> None:
        self.path = Path(output_dir) / STATE_DIR / "lock"
        self.held = False

    def acquire(self) -> None:
        """Take the folder's lock, or take over one left by a process of this host that is no longer running.

        Raises:
            RunFolderError: another live run holds the lock (names its process, host and start, and the fix).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")})
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    owner = json.loads(self.path.read_text())
                except (OSError, ValueError):
                    owner = {}
                pid, host = owner.get("pid"), owner.get("host")
                if isinstance(pid, int) and host == socket.gethostname() and not _pid_alive(pid):
                    logger.warning("%s: taking over the lock of process %s, which is no longer running", self.path, pid)
                    self.path.unlink(missing_ok=True)
                    continue
                raise RunFolderError(
                    f"{self.path.parent.parent} is in use by another hf-distill run (process {pid} on {host}, since "
                    f"{owner.get('since')}): wait for it, or use another output_dir. If no such run exists, delete "
                    f"{self.path}"
                ) from None
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(me)
            except Exception as err:  # an empty lock would block every later run
                self.path.unlink(missing_ok=True)
                raise_if_disk_full(err, self.path.parent.parent)
                raise
            self.held = True
            return
        raise RunFolderError(f"could not take the lock {self.path}: another run took it meanwhile")

    def release(self) -> None:
        """Give the lock back (remove the file) when this object holds it; otherwise do nothing."""
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
