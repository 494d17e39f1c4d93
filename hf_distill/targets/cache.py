"""Run the teacher once over a data set and keep its predictions as `datasets` columns, cached on disk.

Columns added (see `DistillationTrainer`, which uses them instead of a live teacher):

* ``teacher_logits``: raw logits, float32. Sequence classification: (C,) per example; token tasks with
  ``top_k=None``: (L, V) per example, one row per token position. Raw logits make the cache independent of the
  training temperature, and the loss equals the live-teacher loss.
* ``teacher_topk_ids`` / ``teacher_topk_logprobs`` / ``teacher_tail_mass`` (token tasks with ``top_k=k``): per token
  position, the k most likely ids (uint16 when the vocabulary fits, else int32), their log-probabilities at the
  cache's temperature (float16 by default: about 1e-3 relative error, far below what KD can resolve; pass
  ``logprob_dtype="float32"`` for bit-faithful values), and the probability mass left outside them (float32).

The cache key covers the teacher's weights (a hash), the data fingerprint, ``top_k``, ``max_length``, the
temperature (top-k only) and the storage dtypes; each cache holds a manifest with the size and SHA-256 of every
file, checked before use, so a stale, truncated or corrupted cache is regenerated, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Array2D, Dataset, Features, List, Value, concatenate_datasets, load_from_disk
from torch import nn
from tqdm.auto import tqdm

from ..core.atomic import replace_directory
from ..core.data import file_sha256
from ..core.tasks import Task, detect_task, get_task, unwrap
from ..errors import HfDistillError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
# A local cache folder's manifest: its key (teacher weights, data, settings) and every file's size and SHA-256.
# Published soft targets have their own, `hf_distill.targets.shared.PUBLISHED_MANIFEST`.
CACHE_MANIFEST = "hf_distill_soft_targets.json"
INFO_KEY = "hf_distill_soft_targets"
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class SoftTargetCacheError(HfDistillError, RuntimeError):
    """A soft-target cache failed its integrity check."""


def default_cache_dir() -> Path:
    """``$HF_DISTILL_CACHE`` or ``$HF_HOME/hf_distill/soft_targets`` (``~/.cache/huggingface`` by default)."""
    if os.environ.get("HF_DISTILL_CACHE"):
        return Path(os.environ["HF_DISTILL_CACHE"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(hf_home) / "hf_distill" / "soft_targets"


def weights_fingerprint(model: nn.Module) -> str:
    """SHA-256 over the names, shapes, dtypes and bytes of a model's parameters and buffers."""
    digest = hashlib.sha256()
    for name, tensor in sorted(unwrap(model).state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _tree_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    return {
        str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != CACHE_MANIFEST
    }


def _verify(folder: Path, key: dict[str, Any]) -> None:
    manifest_path = folder / CACHE_MANIFEST
    if not manifest_path.is_file():
        raise SoftTargetCacheError(f"{folder} has no manifest (an interrupted write?)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        raise SoftTargetCacheError(f"{manifest_path} is not valid JSON: {err}") from None
    if manifest.get("key") != key:
        raise SoftTargetCacheError(f"{folder} was made for other settings than these")
    expected = manifest.get("files", {})
    actual = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != CACHE_MANIFEST}
    if set(expected) != actual:
        raise SoftTargetCacheError(f"{folder} holds files {sorted(actual)} but its manifest lists {sorted(expected)}")
    for name, meta in expected.items():
        path = folder / name
        if path.stat().st_size != meta["bytes"]:
            raise SoftTargetCacheError(f"{path} has {path.stat().st_size} bytes, expected {meta['bytes']} (truncated?)")
        if file_sha256(path) != meta["sha256"]:
            raise SoftTargetCacheError(f"{path} does not match its checksum (corrupted)")


def _pad(seqs: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([list(s) + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


def _forward_all(
    teacher: nn.Module,
    dataset: Dataset,
    task: Task,
    *,
    top_k: int | None,
    batch_size: int,
    max_length: int | None,
    temperature: float,
    device: torch.device,
    id_dtype: np.dtype,
    logprob_dtype: np.dtype,
    progress: bool,
) -> dict[str, list]:
    lengths = [len(ids) for ids in dataset["input_ids"]]
    if max_length is not None:
        lengths = [min(n, max_length) for n in lengths]
    # Longest first: batches of similar length waste no padding, and an out-of-memory error shows up at once.
    order = sorted(range(len(dataset)), key=lambda i: -lengths[i])
    pad_id = getattr(unwrap(teacher).config, "pad_token_id", None) or 0
    inputs_present = [c for c in MODEL_INPUTS if c in dataset.column_names]
    columns: dict[str, list] = {}
    results: list[dict[str, Any] | None] = [None] * len(dataset)
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), batch_size), desc="soft targets", disable=not progress, unit="batch"):
            idx = order[start : start + batch_size]
            rows = dataset.select(idx)
            batch = {}
            for col in inputs_present:
                seqs = [list(v)[: lengths[i]] for v, i in zip(rows[col], idx)]
                batch[col] = _pad(seqs, pad_id if col == "input_ids" else 0)
            if "attention_mask" not in batch:
                batch["attention_mask"] = _pad([[1] * lengths[i] for i in idx], 0)
            logits = teacher(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()
            for row, i in enumerate(idx):
                n = lengths[i]
                if not task.per_token:
                    results[i] = {"teacher_logits": logits[row].numpy()}  # one row of class logits
                elif top_k is None:
                    results[i] = {"teacher_logits": logits[row, :n].numpy()}
                else:
                    log_p = torch.log_softmax(logits[row, :n] / temperature, dim=-1)
                    top = log_p.topk(top_k, dim=-1)
                    outside = torch.ones_like(log_p, dtype=torch.bool).scatter(-1, top.indices, False)
                    tail = log_p.masked_fill(~outside, float("-inf")).logsumexp(-1).exp()
                    results[i] = {
                        "teacher_topk_ids": top.indices.numpy().astype(id_dtype),
                        "teacher_topk_logprobs": top.values.numpy().astype(logprob_dtype),
                        "teacher_tail_mass": tail.numpy().astype(np.float32),
                    }
    for name in results[0]:
        columns[name] = [r[name] for r in results]
    return columns


def _features(columns: dict[str, list]) -> Features:
    """Arrow types for the new columns: per-token tables as variable-length 2-D arrays."""
    features = {}
    for name, values in columns.items():
        first = values[0]
        if first.ndim == 2:
            features[name] = Array2D(shape=(None, first.shape[1]), dtype=str(first.dtype))
        else:
            features[name] = List(Value(str(first.dtype)))
    return Features(features)


def generate_soft_targets(
    teacher: nn.Module,
    dataset: Dataset,
    *,
    top_k: int | None = None,
    batch_size: int = 32,
    max_length: int | None = None,
    temperature: float = 1.0,
    logprob_dtype: str = "float16",
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    teacher_id: str | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> Dataset:
    """Add the teacher's predictions to a tokenized data set as columns (see the module docstring).

    `dataset` needs ``input_ids`` (``attention_mask`` and ``token_type_ids`` are used when present); rows are
    truncated to `max_length`. With `use_cache` the result is stored under `cache_dir` (default
    `default_cache_dir()`) and reused on the next call with the same teacher weights, data, and settings.
    `temperature` only matters for top-k targets, whose log-probabilities are stored softened; the trainer
    refuses to use them at another temperature. `teacher_id` (e.g. a Hub id and revision) is recorded for humans;
    the key always uses a hash of the weights, so a teacher retrained in place never reuses stale targets.
    A cache that does not verify against its manifest is regenerated, with a warning.

    Args:
        teacher: the teacher model (put in eval mode while it runs, its mode restored after).
        dataset: the tokenized training rows.
        top_k: token tasks: keep the teacher's `top_k` most likely ids and their log-probabilities per position
            (plus the remaining mass) instead of full logits; None keeps full logits.
        batch_size: rows per teacher forward pass.
        max_length: truncate rows to this many tokens.
        temperature: the softening of top-k log-probabilities.
        logprob_dtype: "float16" or "float32", the storage of top-k log-probabilities.
        cache_dir: the cache's root folder.
        use_cache: store and reuse the result (False: compute and return only).
        teacher_id: the teacher's name, recorded.
        device: where the teacher runs (default: where its parameters are).
        progress: show a progress bar.

    Returns:
        `dataset` with the teacher's columns added, its settings recorded in the data set's info
        (`soft_target_info`).

    Raises:
        ValueError: an untokenized or empty data set, or an invalid `top_k`, `logprob_dtype` or `temperature`.
    """
    task = detect_task(teacher)
    if "input_ids" not in dataset.column_names:
        raise ValueError("generate_soft_targets needs a tokenized data set with an 'input_ids' column")
    if len(dataset) == 0:
        raise ValueError("generate_soft_targets got an empty data set")
    vocab = unwrap(teacher).config.vocab_size if task.per_token else None
    if top_k is not None:
        if not task.per_token:
            raise ValueError("top_k applies to token tasks; classification keeps the full logits (they are small)")
        if not isinstance(top_k, int) or not 1 <= top_k <= vocab:
            raise ValueError(
                f"top_k={top_k!r} is invalid: choose an integer in 1..{vocab} (the vocabulary size) or None"
            )
    if logprob_dtype not in ("float16", "float32"):
        raise ValueError(f"logprob_dtype={logprob_dtype!r} is invalid: choose float16 or float32")
    if temperature <= 0:
        raise ValueError(f"temperature={temperature!r} is invalid: must be > 0")
    id_dtype = np.uint16 if vocab is not None and vocab <= np.iinfo(np.uint16).max + 1 else np.int32
    key = {
        "format": FORMAT_VERSION,
        "teacher_weights": weights_fingerprint(teacher),
        "data": dataset._fingerprint,
        "task": task.name,
        "top_k": top_k,
        "max_length": max_length,
        "temperature": temperature if top_k is not None else None,
        "logprob_dtype": logprob_dtype if top_k is not None else None,
    }
    info = {**key, "teacher_id": teacher_id, "columns": None}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / digest

    if use_cache and folder.exists():
        try:
            _verify(folder, key)
            cached = load_from_disk(str(folder))
            logger.info("soft targets: reusing the cache at %s", folder)
            return cached
        except (SoftTargetCacheError, OSError, ValueError) as err:
            logger.warning("soft targets: ignoring the cache at %s and regenerating: %s", folder, err)
            shutil.rmtree(folder)

    teacher_module = unwrap(teacher)
    was_training = teacher_module.training
    teacher_module.eval()
    if device is None:
        device = next(teacher_module.parameters()).device
    started = time.perf_counter()
    try:
        columns = _forward_all(
            teacher,
            dataset,
            task,
            top_k=top_k,
            batch_size=batch_size,
            max_length=max_length,
            temperature=temperature,
            device=torch.device(device),
            id_dtype=id_dtype,
            logprob_dtype=np.dtype(logprob_dtype),
            progress=progress,
        )
    finally:
        teacher_module.train(was_training)
    seconds = time.perf_counter() - started
    base = dataset.remove_columns([c for c in columns if c in dataset.column_names])
    result = concatenate_datasets([base, Dataset.from_dict(columns, features=_features(columns))], axis=1)
    if max_length is not None:
        result = result.map(
            lambda row: {
                c: row[c][:max_length] for c in MODEL_INPUTS + ("labels",) if c in row and isinstance(row[c], list)
            }
        )
    info["columns"] = sorted(columns)
    info["seconds"] = round(seconds, 3)
    result.info.description = json.dumps({INFO_KEY: info})
    if not use_cache:
        return result

    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{digest}.tmp-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    result.save_to_disk(str(staging))
    (staging / CACHE_MANIFEST).write_text(
        json.dumps({"key": key, "info": info, "files": _tree_manifest(staging)}, indent=1)
    )
    # Another process may have finished first; ours is equally valid. The old folder is renamed aside before
    # the swap, so the cache folder is never half there.
    replace_directory(staging, folder)
    return load_from_disk(str(folder))


def soft_target_info(dataset: Any) -> dict[str, Any] | None:
    """The settings a data set's soft-target columns were made with, or None."""
    description = getattr(getattr(dataset, "info", None), "description", None)
    if not description:
        return None
    try:
        return json.loads(description).get(INFO_KEY)
    except (json.JSONDecodeError, AttributeError):
        return None


def count_training_rows(dataset: Any) -> dict[str, int]:
    """How many rows of a training set carry a label and how many are transfer rows (label -1 or missing).

    Rows of token tasks (no label column, or per-token ``labels``) are their own labels: all count as labelled.
    What the report records as the data the student trained on, e.g. for published soft targets.

    Args:
        dataset: the training rows (a `datasets.Dataset`, or anything with `column_names` and a length).

    Returns:
        ``{"labelled_rows": ..., "transfer_rows": ...}``.
    """
    columns = getattr(dataset, "column_names", None) or []
    name = next((c for c in ("label", "labels") if c in columns), None)
    total = len(dataset)
    if name is None:
        return {"labelled_rows": total, "transfer_rows": 0}
    transfer = sum(1 for y in dataset[name] if y is None or (isinstance(y, int) and y < 0))
    return {"labelled_rows": total - transfer, "transfer_rows": transfer}


SOFT_TARGET_COLUMNS = ("teacher_logits", "teacher_topk_ids", "teacher_topk_logprobs", "teacher_tail_mass")
_PAD_DTYPES = {
    "teacher_logits": torch.float32,
    "teacher_topk_ids": torch.long,
    "teacher_topk_logprobs": torch.float32,
    "teacher_tail_mass": torch.float32,
}


class SoftTargetCollator:
    """Wrap a collator so that cached soft-target columns are padded and stacked beside the model inputs.

    Per-token columns are padded on the tokenizer's padding side to the batch's sequence length (padded positions
    are masked out by the loss). Missing labels (``None``) become -1: unlabelled transfer-set rows.
    """

    def __init__(self, base: Any, task: str | Task, padding_side: str = "right") -> None:
        self.base = base
        self.task = get_task(task)
        self.padding_side = padding_side

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        soft = {c: [f.pop(c) for f in features] for c in SOFT_TARGET_COLUMNS if c in features[0]}
        for f in features:
            for name in ("label", "labels"):
                if name in f and f[name] is None:
                    f[name] = -1
        batch = self.base(features)
        if not soft:
            return batch
        width = batch["input_ids"].shape[1] if "input_ids" in batch else None
        for name, values in soft.items():
            tensors = [torch.as_tensor(np.asarray(v), dtype=_PAD_DTYPES[name]) for v in values]
            if not self.task.per_token:
                batch[name] = torch.stack(tensors)  # one row of logits per example
                continue
            out = torch.zeros((len(tensors), width, *tensors[0].shape[1:]), dtype=_PAD_DTYPES[name])
            for i, t in enumerate(tensors):
                n = min(t.shape[0], width)
                if self.padding_side == "left":
                    out[i, width - n :] = t[-n:]
                else:
                    out[i, :n] = t[:n]
            batch[name] = out
        return batch
