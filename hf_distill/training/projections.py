"""Hidden-state projections: learned maps from the student's hidden size to the teacher's, trained with it.

When the student is narrower than the teacher, the hidden-state loss compares ``W·h_student + b`` with
``h_teacher``. The maps are a `HiddenStateProjections` module, and `StudentWithProjections` joins it and the
student in one `nn.Module` that `DistillationTrainer` hands to `transformers.Trainer` as *the* model. So the
Trainer's own machinery covers them: the optimizer (and its state in checkpoints), gradient accumulation, DDP
gradient averaging, FSDP/DeepSpeed wrapping and sharding, `accelerator.prepare`. The projections run inside the
wrapper's `forward`, so distributed wrappers see them used in the forward pass.

Saved folders stay plain transformers folders: `DistillationTrainer._save` writes the student with
`save_pretrained` (its keys, no prefix) and the projections beside it in ``distillation_projections.safetensors``;
resuming reads both back. The student alone is what is published; the projections are a training aid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers.utils import ModelOutput

PROJECTIONS_FILE = "distillation_projections.safetensors"
_STUDENT_PREFIX = "student."
_PROJECTIONS_PREFIX = "projections."


class HiddenStateProjections(nn.ModuleList):
    """One `nn.Linear(student_hidden, teacher_hidden)` per student layer that is compared with a teacher layer.

    Args:
        student_hidden: the student's hidden size.
        teacher_hidden: the teacher's hidden size.
        student_layers: the student's hidden-state indices (0 = embeddings) to project, one map each, in order.
    """

    def __init__(self, student_hidden: int, teacher_hidden: int, student_layers: Sequence[int]) -> None:
        super().__init__(nn.Linear(student_hidden, teacher_hidden) for _ in student_layers)
        self.student_layers = tuple(int(i) for i in student_layers)

    def project(self, hidden_states: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """The projected hidden states of `student_layers`, in order (from all of a model's hidden states)."""
        return tuple(proj(hidden_states[i]) for proj, i in zip(self, self.student_layers, strict=True))


@dataclass
class StudentWithProjectionsOutput(ModelOutput):
    """The student's loss, logits, hidden states and attentions, plus the projected hidden states."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    projected_hidden_states: tuple[torch.Tensor, ...] | None = None


class StudentWithProjections(nn.Module):
    """A student and its hidden-state projections as one module (see the module docstring).

    `forward` takes the student's arguments and returns its loss, logits, hidden states and attentions; when hidden
    states are requested it adds ``projected_hidden_states`` (one tensor per entry of ``projections.student_layers``).

    Args:
        student: the student model (a `PreTrainedModel` or a `PeftModel`).
        projections: its `HiddenStateProjections`.
    """

    def __init__(self, student: nn.Module, projections: HiddenStateProjections) -> None:
        super().__init__()
        self.student = student
        self.projections = projections

    def get_base_model(self) -> nn.Module:
        """The student (so `hf_distill.tasks.unwrap` sees through this wrapper)."""
        return self.student

    # The Trainer reads these from its model; they are the student's.
    @property
    def config(self) -> Any:
        """The student's config (the Trainer reads it from its model)."""
        return self.student.config

    @property
    def generation_config(self) -> Any:
        """The student's generation config (transformers reads it from the model it is given)."""
        return self.student.generation_config

    @property
    def main_input_name(self) -> str:
        """The student's main input name (default ``input_ids``)."""
        return getattr(self.student, "main_input_name", "input_ids")

    @property
    def _keys_to_ignore_on_save(self) -> Any:
        return getattr(self.student, "_keys_to_ignore_on_save", None)

    def tie_weights(self) -> None:
        """Tie the student's weights, as the student itself does (transformers calls this on its model)."""
        self.student.tie_weights()

    def activation_checkpointing_enable(self, **kwargs: Any) -> None:
        """Turn on the student's activation (gradient) checkpointing.

        Args:
            **kwargs: passed to the student's own method.
        """
        self.student.activation_checkpointing_enable(**kwargs)

    def forward(self, **kwargs: Any) -> StudentWithProjectionsOutput:
        """Run the student and, when hidden states are requested, project them.

        Args:
            **kwargs: the student's arguments (``output_hidden_states=True`` adds the projected hidden states).

        Returns:
            A `StudentWithProjectionsOutput`.
        """
        outputs = self.student(**kwargs)
        projected = self.projections.project(outputs.hidden_states) if kwargs.get("output_hidden_states") else None
        # A declared output class: DDP rebuilds outputs with their class's own fields.
        return StudentWithProjectionsOutput(
            loss=outputs.get("loss"),
            logits=outputs.logits,
            hidden_states=outputs.get("hidden_states"),
            attentions=outputs.get("attentions"),
            projected_hidden_states=projected,
        )


def split_state_dict(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(student, projections) state dicts, prefixes removed, from a `StudentWithProjections` state dict."""
    student, projections = {}, {}
    for key, value in state_dict.items():
        if key.startswith(_PROJECTIONS_PREFIX):
            projections[key[len(_PROJECTIONS_PREFIX) :]] = value
        elif key.startswith(_STUDENT_PREFIX):
            student[key[len(_STUDENT_PREFIX) :]] = value
        else:
            raise ValueError(f"unexpected key {key!r} in a student-with-projections state dict")
    return student, projections
