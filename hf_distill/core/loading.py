"""Load models: any saved model with its tokenizer and task (`load_model`, used by evaluation, export and the
pipeline's later stages) and the checks of its weights. Building a run's teacher and student is
`hf_distill.pipeline.models`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .tasks import Task, detect_task, get_task


def damaged_weights(folder: str | os.PathLike) -> list[str]:
    """The safetensors files of a local model folder that safetensors cannot open, each with the reason.

    Opening reads only the header, and checks it against the file's size: a truncated copy or download fails here,
    where `from_pretrained` would say "Error while deserializing header" without naming the file.

    Args:
        folder: a model folder (anything else, e.g. a Hub id, has no local files to check: empty list).
    """
    from .checkpoints import weights_problem

    problem = weights_problem(folder) if Path(folder).is_dir() else None
    return [] if problem is None else [f"{problem[0]} ({problem[1].splitlines()[0]})"]


def check_weights(name_or_path: str | os.PathLike, role: str = "model") -> None:
    """Refuse a local model folder with a damaged weights file, naming the file and the fix (see `damaged_weights`).

    Args:
        name_or_path: a local folder (checked) or a Hub id (nothing to check yet).
        role: what the model is, named in the message ("teacher", "student", ...).

    Raises:
        ValueError: a safetensors file of the folder cannot be read.
    """
    damaged = damaged_weights(name_or_path)
    if damaged:
        raise ValueError(
            f"the {role}'s weights file {'; '.join(damaged)} is truncated or damaged (an interrupted "
            "copy or download?): copy it again, or save the model again with save_pretrained"
        )


def load_saved(folder: str | Path, task: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A model and tokenizer written by an earlier stage (safetensors, no remote code)."""
    loaded = load_model(folder, task)
    return loaded.model, loaded.tokenizer


def layer_count(config: Any) -> int | None:
    """Transformer blocks of a model config (``num_hidden_layers``, GPT-2's ``n_layer`` alias), or None."""
    for name in ("num_hidden_layers", "n_layer", "num_layers"):
        value = config.get(name) if isinstance(config, dict) else getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def max_positions(model_or_config: Any) -> int | None:
    """The longest sequence a model's position table allows, from its config, or None when the config names none.

    The model's own limit, whatever its tokenizer says: what a prompt plus its generated tokens must fit in. Configs
    name it ``max_position_embeddings`` (GPT-2 ``n_positions``, a few ``max_sequence_length``). For the longest
    input a model and its tokenizer both accept, see `hf_distill.evaluation.benchmark.max_input_length`.

    Args:
        model_or_config: a model (its ``config`` is read; an exported `OnnxModel` too), a config, or a
            ``config.json`` read as a dict.
    """
    config = getattr(model_or_config, "config", model_or_config)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = config.get(name) if isinstance(config, dict) else getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


@dataclass
class LoadedModel:
    """A model, its tokenizer, its task and where it came from."""

    model: nn.Module
    tokenizer: Any
    task: Task
    name_or_path: str


def _looks_local(name: str) -> bool:
    # A Hub id is "name" or "owner/name"; anything with more parts, a leading dot/slash or a backslash is a path.
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1 or os.path.isabs(name)


def _check_head(config: Any, task: Task, name: str, role: str) -> None:
    """Refuse a checkpoint whose saved head is another task's (a causal LM read as a classifier, say): loading it
    would drop that head for a random one and every figure would then be of noise, or fail later on a symptom
    (label names, vocabularies) instead of the cause."""
    try:
        saved = detect_task(config)
    except ValueError:
        return  # a headless base model (BertModel): nothing saved to contradict the task
    if saved.name != task.name:
        raise ValueError(
            f"the {role} {name!r} is a {saved.pipeline_tag} model ({', '.join(config.architectures or [])}), not "
            f"{task.pipeline_tag}: teacher and student must solve the same task; give a {task.pipeline_tag} "
            "checkpoint (or the task this one was trained for)"
        )


def load_model(
    name_or_path: str | os.PathLike,
    task: str | Task | None = None,
    *,
    trust_remote_code: bool = False,
    dtype: torch.dtype | str | None = None,
    revision: str | None = None,
    role: str = "model",
) -> LoadedModel:
    """Load a model and its tokenizer for evaluation (eval mode).

    Args:
        name_or_path: a local folder or a Hub id.
        task: a task name, pipeline tag or `Task`; detected from the config when None.
        trust_remote_code: allow custom model code (off by default).
        dtype: torch dtype (or its name) to load the weights in.
        revision: Hub revision.
        role: "teacher" or "student", used in error messages.

    Raises:
        FileNotFoundError: a local path that does not exist.
        ValueError: a model or tokenizer that cannot be loaded, naming which and why.
    """
    from transformers import AutoConfig, AutoTokenizer

    name = str(name_or_path)
    if not os.path.isdir(name) and (_looks_local(name) or os.path.exists(name)):
        raise FileNotFoundError(f"{role} {name!r}: no such model folder; give a saved model folder or a Hub id")
    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code, revision=revision)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot load the {role} {name!r}: {first}") from err
    resolved = get_task(task) if task is not None else detect_task(config)
    if task is not None:
        _check_head(config, resolved, name, role)
    # safetensors only: a pickled checkpoint can run arbitrary code when loaded.
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "revision": revision, "use_safetensors": True}
    if dtype is not None:
        kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    check_weights(name, role)
    model = resolved.auto_class.from_pretrained(name, config=config, **kwargs).eval()
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code, revision=revision)
    except (OSError, ValueError) as err:
        raise ValueError(
            f"the {role} {name!r} has no loadable tokenizer ({type(err).__name__}); save the tokenizer beside the "
            "model (tokenizer.save_pretrained(folder))"
        ) from err
    return LoadedModel(model=model, tokenizer=tokenizer, task=resolved, name_or_path=name)
