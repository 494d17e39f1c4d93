"""Build a smaller student from a teacher by copying a subset of its transformer blocks (DistilBERT-style)."""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence

from torch import nn
from transformers import PreTrainedModel

# (attribute path of the block list inside the base model, config attribute holding the layer count)
_BLOCK_LAYOUTS = (
    ("encoder.layer", "num_hidden_layers"),  # BERT, RoBERTa, ELECTRA, XLM-R, MiniLM, ...
    ("h", "num_hidden_layers"),  # GPT-2 (n_layer is an alias), GPT-Neo, GPT-J
)
SUPPORTED = "BERT-family encoders (blocks at `encoder.layer`) and GPT-2-family decoders (blocks at `transformer.h`)"
STRATEGIES = ("uniform", "first", "last")


def _get(module: nn.Module, path: str):
    for part in path.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def find_blocks(model: PreTrainedModel) -> tuple[str, nn.ModuleList]:
    """Return the state-dict prefix and the `ModuleList` of transformer blocks of a supported model."""
    base_prefix = getattr(model, "base_model_prefix", "")
    base = getattr(model, base_prefix, model) if base_prefix else model
    for path, _ in _BLOCK_LAYOUTS:
        blocks = _get(base, path)
        if isinstance(blocks, nn.ModuleList) and len(blocks) > 0:
            prefix = f"{base_prefix}.{path}" if base is not model else path
            return prefix, blocks
    raise ValueError(
        f"student_from_teacher does not support {type(model).__name__}: it supports {SUPPORTED}. "
        "Build the student yourself (e.g. AutoModel.from_config) and pass it to DistillationTrainer."
    )


def select_layers(num_teacher_layers: int, num_layers: int, strategy: str = "uniform") -> list[int]:
    """0-based teacher block indices to keep.

    ``uniform`` spreads the kept blocks evenly and always keeps the last one (6 → 3 keeps 1, 3, 5);
    ``first`` / ``last`` keep the bottom / top blocks.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} is invalid: choose one of {', '.join(STRATEGIES)}")
    if not 1 <= num_layers <= num_teacher_layers:
        raise ValueError(f"num_layers={num_layers} is invalid: the teacher has {num_teacher_layers} blocks, choose 1..{num_teacher_layers}")
    if strategy == "first":
        return list(range(num_layers))
    if strategy == "last":
        return list(range(num_teacher_layers - num_layers, num_teacher_layers))
    return [round((i + 1) * num_teacher_layers / num_layers) - 1 for i in range(num_layers)]


def student_from_teacher(
    teacher: PreTrainedModel,
    num_layers: int | None = None,
    layers: Sequence[int] | None = None,
    strategy: str = "uniform",
    config_overrides: dict | None = None,
) -> PreTrainedModel:
    """A new model of the teacher's class holding a copy of the chosen blocks.

    Embeddings, pooler, heads and final layer norm are copied as they are; the config's layer count is updated and
    the kept teacher blocks are recorded in ``config.distilled_from_layers``. Give either ``num_layers`` (with a
    ``strategy``) or explicit 0-based ``layers``. ``config_overrides`` sets config attributes of the student
    before it is built, e.g. ``{"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}`` for a GPT-2 student
    without the teacher's dropout. The teacher is not modified.
    """
    if hasattr(teacher, "get_base_model") and not isinstance(teacher, PreTrainedModel):
        raise ValueError("student_from_teacher needs a plain transformers model; merge or unwrap the PEFT teacher first")
    prefix, blocks = find_blocks(teacher)
    total = len(blocks)
    if layers is not None and num_layers is not None:
        raise ValueError("give either num_layers or layers, not both")
    if layers is None:
        if num_layers is None:
            num_layers = max(1, total // 2)
        keep = select_layers(total, num_layers, strategy)
    else:
        keep = [int(i) for i in layers]
        if not keep or len(set(keep)) != len(keep) or any(not 0 <= i < total for i in keep) or keep != sorted(keep):
            raise ValueError(f"layers={list(layers)} is invalid: give distinct, increasing block indices in 0..{total - 1}")

    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(keep)
    config.distilled_from_layers = keep
    for name, value in (config_overrides or {}).items():
        if not hasattr(config, name):
            raise ValueError(f"config_overrides: {type(config).__name__} has no attribute {name!r}")
        setattr(config, name, value)
    if getattr(config, "layer_types", None) is not None and len(config.layer_types) == total:
        config.layer_types = [config.layer_types[i] for i in keep]
    student = type(teacher)(config)

    new_index = {old: new for new, old in enumerate(keep)}
    block_key = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.(.*)$")
    state = {}
    for key, value in teacher.state_dict().items():
        match = block_key.match(key)
        if match is None:
            state[key] = value
        elif int(match.group(1)) in new_index:
            state[f"{prefix}.{new_index[int(match.group(1))]}.{match.group(2)}"] = value
    missing, unexpected = student.load_state_dict(state, strict=False)
    # Tied weights (e.g. GPT-2's lm_head) may be absent from the teacher's state dict; anything else is a bug.
    tied = set(getattr(student, "_tied_weights_keys", None) or [])
    real_missing = [k for k in missing if k not in tied and not k.endswith("lm_head.weight")]
    if real_missing or unexpected:
        raise RuntimeError(f"could not copy the teacher's weights: missing {real_missing}, unexpected {unexpected}")
    if hasattr(student, "tie_weights"):
        student.tie_weights()
    student.to(dtype=next(teacher.parameters()).dtype)
    if getattr(teacher, "generation_config", None) is not None:
        student.generation_config = copy.deepcopy(teacher.generation_config)
    return student
