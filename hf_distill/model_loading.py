"""Load a model and its tokenizer for evaluation, with its task, refusing clearly what cannot be loaded."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .tasks import Task, detect_task, get_task


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
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "revision": revision}
    if dtype is not None:
        kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    model = resolved.auto_class.from_pretrained(name, config=config, **kwargs).eval()
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code, revision=revision)
    except (OSError, ValueError) as err:
        raise ValueError(
            f"the {role} {name!r} has no loadable tokenizer ({type(err).__name__}); save the tokenizer beside the "
            "model (tokenizer.save_pretrained(folder))"
        ) from err
    return LoadedModel(model=model, tokenizer=tokenizer, task=resolved, name_or_path=name)
