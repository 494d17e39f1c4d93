"""Which Trainer checkpoint a run may resume from.

`transformers.Trainer` writes a checkpoint file by file (weights, optimizer, scheduler, RNG state, and
`trainer_state.json` last) into its final folder, so a process killed while saving leaves a `checkpoint-N` folder
that `get_last_checkpoint` still returns and `Trainer.train(resume_from_checkpoint=...)` then fails on.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

logger = logging.getLogger("hf_distill.checkpoints")

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors", "pytorch_model.bin")


def is_complete_checkpoint(folder: str | Path) -> bool:
    """Whether a Trainer checkpoint folder was written to the end.

    Args:
        folder: a `checkpoint-N` folder written by `transformers.Trainer`.

    Returns:
        True when it holds model weights and a `trainer_state.json` that parses (the Trainer writes that file last,
        so a readable one means every file before it is complete).
    """
    folder = Path(folder)
    state = folder / "trainer_state.json"
    if not state.is_file() or not any((folder / name).is_file() for name in _WEIGHTS):
        return False
    try:
        json.loads(state.read_text())
    except (OSError, ValueError):
        return False
    return True


def last_complete_checkpoint(folder: str | Path, *, remove_incomplete: bool = False) -> str | None:
    """The newest complete `checkpoint-N` folder under `folder`, or None.

    Args:
        folder: the Trainer's `output_dir`.
        remove_incomplete: delete checkpoint folders that are newer than the one returned and incomplete. They were
            left by a run killed while saving; the Trainer would otherwise write its next checkpoint of the same step
            into them and mix stale files with new ones. Only folders named `checkpoint-N` are considered.

    Returns:
        The path of the checkpoint to pass to `Trainer.train(resume_from_checkpoint=...)`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = sorted(
        (int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))
    )
    for _, path in reversed(found):
        if is_complete_checkpoint(path):
            return str(path)
        logger.warning("checkpoint %s is incomplete (the run was stopped while saving it); not resuming from it",
                       path.name)
        if remove_incomplete:
            shutil.rmtree(path, ignore_errors=True)
    return None
