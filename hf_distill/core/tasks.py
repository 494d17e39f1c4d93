"""The distillation tasks: one `Task` per task, holding every rule that differs between them.

Adding a task means adding one `Task(...)` to `_TASKS` below (plus tests); the trainer, the soft-target cache,
evaluation and benchmarking read the rules from the `Task` and never compare task names.

A task is found by its name (``"causal-lm"``), by its Hub pipeline tag (``"text-generation"``, what the report
stores) or from a model / config (`detect_task`)::

    task = get_task("text-generation")
    task.auto_class.from_pretrained(...)
    task.pipeline_tag, task.primary_metric, task.lower_is_better
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSequenceClassification
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
)

from . import losses


@dataclass(frozen=True)
class Task:
    """Everything that differs between distillation tasks.

    Args:
        name: hf-distill's name (``sequence-classification``, ``masked-lm``, ``causal-lm``), used in configs.
        pipeline_tag: the Hub pipeline tag (``text-classification``, ...), used in reports, cards and pipelines.
        auto_class: the transformers auto class that loads models for the task.
        architecture_suffix: the class-name ending of models for the task (``ForCausalLM``).
        architectures: function returning the class names transformers registers for the task.
        per_token: one prediction per token position over the vocabulary (language models), instead of one per
            example over the labels. Token tasks need one shared vocabulary for their logits.
        shift: logit ``i`` predicts label ``i + shift`` (1 for causal LMs, 0 otherwise).
        masks_inputs: inputs are randomly masked (masked LM): cached teacher outputs cannot match the student's
            masking, so soft targets cannot be cached.
        generates: the model generates text, so generation speed is measured.
        metrics: the task metrics evaluation reports.
        primary_metric: the metric the card leads with; `lower_is_better` says which way is good.
        lower_is_better: True for perplexity.
    """

    name: str
    pipeline_tag: str
    auto_class: type
    architecture_suffix: str
    architectures: Callable[[], set[str]]
    per_token: bool
    shift: int
    masks_inputs: bool
    generates: bool
    metrics: tuple[str, ...]
    primary_metric: str
    lower_is_better: bool

    def __str__(self) -> str:
        return self.name

    @property
    def has_class_labels(self) -> bool:
        """Whether examples carry class labels (classification) rather than token targets."""
        return not self.per_token

    @property
    def caches_soft_targets(self) -> bool:
        """Whether the teacher's outputs can be computed once and reused (not when inputs are randomly masked)."""
        return not self.masks_inputs

    # -- valid positions: the one definition, used by training, soft targets and evaluation ------------------------

    def valid_mask(
        self, labels: torch.Tensor | None, attention_mask: torch.Tensor | None, input_ids: torch.Tensor
    ) -> torch.Tensor:
        """Which predictions count, aligned with `aligned(logits)`.

        Classification: every example, shape (B,). Causal LM: `losses.causal_lm_valid_mask` (shifted; label not
        -100; predicting and predicted token both real), shape (B, L-1). Masked LM: `losses.token_valid_mask`.

        Args:
            labels: the batch's labels, or None.
            attention_mask: the batch's attention mask, or None.
            input_ids: the batch's input ids (for the shape and device).
        """
        if not self.per_token:
            return torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if self.shift:
            return losses.causal_lm_valid_mask(labels, attention_mask, input_ids)
        return losses.token_valid_mask(labels, attention_mask, input_ids)

    def aligned(self, tensor: torch.Tensor) -> torch.Tensor:
        """Per-position logits (or cached teacher tensors) cut to the positions that have a target."""
        return tensor[:, : tensor.shape[1] - self.shift] if self.per_token and self.shift else tensor

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        """Labels aligned with `aligned(logits)`: for causal LMs label ``i + 1`` sits at position ``i``."""
        return labels[:, self.shift :] if self.per_token else labels

    def at_valid(self, tensor: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Rows of a per-example or per-position tensor at the valid items, as (N, ...)."""
        if not self.per_token:
            return tensor
        return self.aligned(tensor)[valid.to(tensor.device)]

    def count_items(self, labels: torch.Tensor | None, attention_mask: torch.Tensor | None, input_ids: torch.Tensor):
        """(cross-entropy items, distillation items) of one batch: the denominators of the loss terms.

        Unlabelled classification rows (label < 0) count for distillation only.

        Args:
            labels: the batch's labels, or None (then no cross-entropy items).
            attention_mask: the batch's attention mask, or None.
            input_ids: the batch's input ids.
        """
        if not self.per_token:
            return (int((labels >= 0).sum()) if labels is not None else 0), int(input_ids.shape[0])
        n_kd = int(self.valid_mask(labels, attention_mask, input_ids).sum())
        return (n_kd if labels is not None else 0), n_kd

    def ce_targets(self, logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor):
        """Flat (logits, labels) for the cross-entropy term, items that do not count set to -100.

        Token tasks keep every position (as transformers' own losses do) so that alpha = 0 reproduces the model's
        loss; for causal LMs the labels are shifted left and the last logit gets no target.

        Args:
            logits: the student's logits, aligned (`aligned`).
            labels: the batch's labels.
            valid: the `valid_mask` of the batch.
        """
        if not self.per_token:
            return logits, labels.masked_fill(labels < 0, losses.IGNORE_INDEX)
        if self.shift:
            valid = F.pad(valid, (0, self.shift), value=False)
            labels = F.pad(labels, (0, self.shift), value=losses.IGNORE_INDEX)[:, self.shift :]
        labels = labels.masked_fill(~valid, losses.IGNORE_INDEX)
        return logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)

    # -- data --------------------------------------------------------------------------------------------------------

    def default_collator(self, tokenizer: Any) -> Callable:
        """The collator `Trainer` would pick, except that token tasks get a language-modelling collator."""
        from transformers import DataCollatorForLanguageModeling, DataCollatorWithPadding, default_data_collator

        if tokenizer is None or not hasattr(tokenizer, "pad"):
            return default_data_collator
        if not self.per_token:
            return DataCollatorWithPadding(tokenizer)
        return DataCollatorForLanguageModeling(tokenizer, mlm=self.masks_inputs)

    def matches_architecture(self, architecture: str) -> bool:
        """Whether a model class name (``BertForSequenceClassification``) belongs to this task."""
        return architecture in self.architectures() or architecture.endswith(self.architecture_suffix)


def _names(mapping: dict) -> Callable[[], set[str]]:
    def names() -> set[str]:
        out: set[str] = set()
        for v in mapping.values():
            out.update(v if isinstance(v, (tuple, list)) else (v,))
        return out

    return names


SEQUENCE_CLASSIFICATION = Task(
    name="sequence-classification",
    pipeline_tag="text-classification",
    auto_class=AutoModelForSequenceClassification,
    architecture_suffix="ForSequenceClassification",
    architectures=_names(MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES),
    per_token=False,
    shift=0,
    masks_inputs=False,
    generates=False,
    metrics=("accuracy", "f1"),
    primary_metric="accuracy",
    lower_is_better=False,
)
CAUSAL_LM = Task(
    name="causal-lm",
    pipeline_tag="text-generation",
    auto_class=AutoModelForCausalLM,
    architecture_suffix="ForCausalLM",
    architectures=_names(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES),
    per_token=True,
    shift=1,
    masks_inputs=False,
    generates=True,
    metrics=("perplexity",),
    primary_metric="perplexity",
    lower_is_better=True,
)
MASKED_LM = Task(
    name="masked-lm",
    pipeline_tag="fill-mask",
    auto_class=AutoModelForMaskedLM,
    architecture_suffix="ForMaskedLM",
    architectures=_names(MODEL_FOR_MASKED_LM_MAPPING_NAMES),
    per_token=True,
    shift=0,
    masks_inputs=True,
    generates=False,
    metrics=("perplexity", "accuracy"),
    primary_metric="perplexity",
    lower_is_better=True,
)

# Detection order matters: causal before masked, because a few classes (e.g. BertLMHeadModel) are only in the
# causal mapping while their names look like neither.
_TASKS: tuple[Task, ...] = (SEQUENCE_CLASSIFICATION, CAUSAL_LM, MASKED_LM)
_BY_KEY: dict[str, Task] = {t.name: t for t in _TASKS} | {t.pipeline_tag: t for t in _TASKS}

TASK_NAMES: tuple[str, ...] = tuple(t.name for t in _TASKS)
# The auto class of each task by name (`pipeline.models.auto_class` indexes it).
AUTO_CLASSES = {t.name: t.auto_class for t in _TASKS}


def all_tasks() -> tuple[Task, ...]:
    """Every task hf-distill distils."""
    return _TASKS


def get_task(name_or_tag: str | Task) -> Task:
    """The `Task` for a name (``causal-lm``) or a pipeline tag (``text-generation``); a `Task` is returned as is.

    Args:
        name_or_tag: a task name, a Hub pipeline tag, or a `Task`.

    Raises:
        ValueError: for anything else, listing the accepted names.
    """
    if isinstance(name_or_tag, Task):
        return name_or_tag
    task = _BY_KEY.get(name_or_tag) if isinstance(name_or_tag, str) else None
    if task is None:
        accepted = ", ".join(f"{t.name} ({t.pipeline_tag})" for t in _TASKS)
        raise ValueError(f"unknown task {name_or_tag!r}: use one of {accepted}")
    return task


def unwrap(model: nn.Module) -> nn.Module:
    """The underlying transformers model of a PEFT, DDP, compiled or projection wrapper."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):  # DDP / DataParallel
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod
        elif hasattr(model, "get_base_model"):  # peft, and hf_distill.projections.StudentWithProjections
            model = model.get_base_model()
        else:
            return model


def task_from_architecture(architecture: str) -> Task | None:
    """The task of a model class name ('BertForSequenceClassification' -> sequence classification), or None."""
    return next((t for t in _TASKS if t.matches_architecture(architecture)), None)


def detect_task(model_or_config: Any) -> Task:
    """The `Task` of a model (from its class, through PEFT/DDP wrappers) or of a config (`architectures`).

    Args:
        model_or_config: a model instance (possibly wrapped) or a `PretrainedConfig`.

    Raises:
        ValueError: when neither the class nor the config's `architectures` names one of the tasks.
    """
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
    return detect_task(model_or_config).pipeline_tag
