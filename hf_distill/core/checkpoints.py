"""Which Trainer checkpoint a run may resume from.

`transformers.Trainer` writes a checkpoint file by file (weights, optimizer, scheduler, RNG state, and
`trainer_state.json` last) into its final folder, so a process killed while saving leaves a `checkpoint-N` folder
that `get_last_checkpoint` still returns and `Trainer.train(resume_from_checkpoint=...)` then fails on. A checkpoint
written to the end can still have damaged weights (a disk error, a truncated copy): its safetensors header must parse
and its data cover the file exactly, or loading fails with "Error while deserializing header".
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

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


def weights_problem(folder: str | Path) -> tuple[Path, str] | None:
    """The first safetensors file of a model folder that cannot be loaded, with the reason; None when all can.

    Args:
        folder: a model folder (`save_pretrained`'s output, or a `checkpoint-N` folder).

    Returns:
        None when every safetensors weights file (`model.safetensors`, `adapter_model.safetensors` and the shards an
        index lists) has a header that parses and data offsets that cover the file exactly, as `safetensors.safe_open`
        checks before reading a tensor; else the file and the problem. Pickled weights (`pytorch_model.bin`) are not
        read, so not checked.
    """
    from safetensors import safe_open

    folder = Path(folder)
    files = [folder / name for name in ("model.safetensors", "adapter_model.safetensors") if (folder / name).is_file()]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            files += [folder / shard for shard in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            return index, f"unreadable ({type(err).__name__})"
    for path in files:
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except Exception as err:  # noqa: BLE001 - SafetensorError, OSError: any failure means it cannot be loaded
            return path, str(err).strip() or type(err).__name__
    return None


def damaged_weights(folder: str | Path) -> str | None:
    """Why a checkpoint's safetensors weights cannot be loaded (`file: reason`, see `weights_problem`), or None."""
    problem = weights_problem(folder)
    return None if problem is None else f"{problem[0].name}: {problem[1]}"


def _move_aside(path: Path) -> Path:
    """Rename a damaged checkpoint to `damaged-checkpoint-N` (a name the Trainer neither resumes from, writes into
    nor rotates away), so the run's next checkpoint of that step does not overwrite it."""
    target = path.with_name(f"damaged-{path.name}")
    suffix = 1
    while target.exists():
        suffix += 1
        target = path.with_name(f"damaged-{path.name}-{suffix}")
    path.rename(target)
    return target


def last_complete_checkpoint(folder: str | Path, *, remove_incomplete: bool = False) -> str | None:
    """The newest complete `checkpoint-N` folder under `folder`, or None.

    Args:
        folder: the Trainer's `output_dir`.
        remove_incomplete: delete checkpoint folders that are newer than the one returned and incomplete. They were
            left by a run killed while saving; the Trainer would otherwise write its next checkpoint of the same step
            into them and mix stale files with new ones. Only folders named `checkpoint-N` are considered. A newer
            checkpoint with damaged weights (`damaged_weights`) is never deleted: it is renamed
            `damaged-checkpoint-N`, out of the Trainer's way.

    Returns:
        The path of the checkpoint to pass to `Trainer.train(resume_from_checkpoint=...)`: the newest one written to
        the end whose weights load. Each one passed over is named in a warning.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name)))
    for _, path in reversed(found):
        if is_complete_checkpoint(path):
            problem = damaged_weights(path)
            if problem is None:
                return str(path)
            kept = _move_aside(path) if remove_incomplete else path
            logger.warning(
                "checkpoint %s has damaged weights (%s): not resuming from it, but from the newest intact "
                "checkpoint before it, if any. It is kept, not deleted, as %s",
                path.name,
                problem,
                kept,
            )
            continue
        logger.warning(
            "checkpoint %s is incomplete (the run was stopped while saving it); not resuming from it", path.name
        )
        if remove_incomplete:
            shutil.rmtree(path, ignore_errors=True)
    return None
