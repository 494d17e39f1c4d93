"""How closely a student follows its teacher: per-item divergences and top-1 agreement, as pure functions.

The divergences are `losses.py`'s (forward KL and Jensen–Shannon at β = 0.5, without the T² scaling); the
causal-LM valid positions are `losses.causal_lm_valid_mask`, the same rule training uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import losses
from .report import Fidelity


def kl_divergence(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(p‖q) per item in nats, p = softmax(teacher/T), q = softmax(student/T); reduces the last dim only."""
    return losses.distillation_loss(
        student_logits, teacher_logits, "forward_kl", temperature=temperature, scale_by_temperature_squared=False
    )


def js_divergence(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Jensen–Shannon divergence per item in nats (0 ≤ JS ≤ ln 2), M = (p + q) / 2."""
    return losses.distillation_loss(
        student_logits, teacher_logits, "jsd", jsd_beta=0.5, temperature=temperature, scale_by_temperature_squared=False
    ).clamp_min(0.0)


def top1_agreement(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """Per item, whether teacher and student rank the same class/token first."""
    return teacher_logits.argmax(-1) == student_logits.argmax(-1)


def causal_lm_valid_positions(
    input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(valid mask (B, L-1), labels (B, L-1)) for next-token prediction: logits[:, i] predicts token i+1.

    The mask is `losses.causal_lm_valid_mask` without labels: both the predicting and the predicted token are
    real (not padding), which holds for right and left padding alike and does not depend on pad/eos token ids.
    """
    return losses.causal_lm_valid_mask(None, attention_mask, input_ids), input_ids[:, 1:]


def align_vocab(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, vocab_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut both logit tensors to the tokenizer's vocabulary: rows past it are padding that no token maps to."""
    for who, logits in (("teacher", teacher_logits), ("student", student_logits)):
        if logits.shape[-1] < vocab_size:
            raise ValueError(f"{who} logits have {logits.shape[-1]} entries, fewer than the tokenizer's {vocab_size}")
    return teacher_logits[..., :vocab_size], student_logits[..., :vocab_size]


@dataclass
class FidelityAccumulator:
    """Streams (N, C) teacher/student logits over batches; `result()` gives the means over all items."""

    temperature: float = 1.0
    agree: int = 0
    kl_sum: float = 0.0
    js_sum: float = 0.0
    count: int = 0

    def update(self, teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> None:
        """Add items; both tensors are (N, C) for the N items that count (padding already removed)."""
        if teacher_logits.shape != student_logits.shape:
            raise ValueError(
                "teacher/student logits differ in shape: "
                f"{tuple(teacher_logits.shape)} vs {tuple(student_logits.shape)}"
            )
        self.agree += int(top1_agreement(teacher_logits, student_logits).sum())
        self.kl_sum += float(kl_divergence(teacher_logits, student_logits, self.temperature).double().sum())
        self.js_sum += float(js_divergence(teacher_logits, student_logits, self.temperature).double().sum())
        self.count += int(teacher_logits.shape[0])

    def result(self) -> Fidelity:
        """Mean agreement, KL and JS; raises when no item was added."""
        if self.count == 0:
            raise ValueError("no items to compute fidelity on (empty set or everything masked)")
        return Fidelity(
            agreement_top1=self.agree / self.count,
            kl_teacher_student=self.kl_sum / self.count,
            js_divergence=self.js_sum / self.count,
            num_items=self.count,
        )
