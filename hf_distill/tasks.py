"""Which distillation task a model performs, and the auto class that loads models for it."""

from __future__ import annotations

from typing import Any, Literal

from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSequenceClassification
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
)

Task = Literal["sequence-classification", "masked-lm", "causal-lm"]

AUTO_CLASSES = {
    "sequence-classification": AutoModelForSequenceClassification,
    "masked-lm": AutoModelForMaskedLM,
    "causal-lm": AutoModelForCausalLM,
}
PIPELINE_TAGS = {
    "sequence-classification": "text-classification",
    "masked-lm": "fill-mask",
    "causal-lm": "text-generation",
}


def unwrap(model: nn.Module) -> nn.Module:
    """The underlying transformers model of a PEFT, DDP or compiled wrapper."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):  # DDP / DataParallel
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod
        elif hasattr(model, "get_base_model"):  # peft
            model = model.get_base_model()
        else:
            return model


def _names(mapping: dict) -> set[str]:
    out: set[str] = set()
    for v in mapping.values():
        out.update(v if isinstance(v, (tuple, list)) else (v,))
    return out


def task_from_architecture(architecture: str) -> Task | None:
    """'BertForSequenceClassification' -> 'sequence-classification', etc.; None for other heads."""
    if architecture in _names(MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES) or architecture.endswith(
        "ForSequenceClassification"
    ):
        return "sequence-classification"
    # Causal before masked: a few classes (e.g. BertLMHeadModel) are only in the causal mapping.
    if architecture in _names(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES) or architecture.endswith("ForCausalLM"):
        return "causal-lm"
    if architecture in _names(MODEL_FOR_MASKED_LM_MAPPING_NAMES) or architecture.endswith("ForMaskedLM"):
        return "masked-lm"
    return None


def detect_task(model_or_config: Any) -> Task:
    """The task of a model (from its class, through PEFT/DDP wrappers) or of a config (`architectures`)."""
    candidates: list[str] = []
    if isinstance(model_or_config, nn.Module):
        model_or_config = unwrap(model_or_config)
        candidates.append(type(model_or_config).__name__)
        model_or_config = getattr(model_or_config, "config", None)
    candidates += list(getattr(model_or_config, "architectures", None) or [])
    for arch in candidates:
        task = task_from_architecture(arch)
        if task:
            return task
    raise ValueError(
        f"cannot tell the task from {candidates or 'an empty architectures list'}: hf-distill distils models "
        "loaded with AutoModelForSequenceClassification, AutoModelForMaskedLM or AutoModelForCausalLM"
    )


def pipeline_tag(model_or_config: Any) -> str:
    """The Hub pipeline tag of a model's task (text-classification, fill-mask, text-generation)."""
    return PIPELINE_TAGS[detect_task(model_or_config)]
