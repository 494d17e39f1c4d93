"""Which distillation task a model performs, and the auto class that loads models for it."""

from __future__ import annotations

from typing import Literal

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


def detect_task(model: nn.Module) -> Task:
    """The task of a sequence-classification, masked-LM or causal-LM model, from its class."""
    name = type(unwrap(model)).__name__
    if name in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.values():
        return "sequence-classification"
    if name in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
        return "causal-lm"
    if name in MODEL_FOR_MASKED_LM_MAPPING_NAMES.values():
        return "masked-lm"
    raise ValueError(
        f"{name} is not a sequence-classification, masked-LM or causal-LM model; hf-distill distils models loaded "
        "with AutoModelForSequenceClassification, AutoModelForMaskedLM or AutoModelForCausalLM."
    )
