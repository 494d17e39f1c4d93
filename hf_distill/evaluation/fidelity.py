"""How closely a student follows its teacher: per-item divergences and top-1 agreement, as pure functions.

The divergences are `losses.py`'s (forward KL and Jensen–Shannon at β = 0.5, without the T² scaling); the
causal-LM valid positions are `losses.causal_lm_valid_mask`, the same rule training uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..core import losses
from ..core.report import Fidelity


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

    Args:
        input_ids: (B, L) token ids; the labels are these shifted left by one.
        attention_mask: (B, L), 1 on real tokens.
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
    """Streams (N, C) teacher/student logits over batches; `result()` gives the means over all items.

    Each item also belongs to a unit (an example, or the text a token position comes from); `per_unit()` gives the
    per-unit sums the report's bootstrap intervals resample (`hf_distill.intervals`).
    """

    temperature: float = 1.0
    agree: int = 0
    kl_sum: float = 0.0
    js_sum: float = 0.0
    count: int = 0
    # per item: (unit, agree, kl, js), kept as float64 numpy arrays (a few bytes per item)
    _items: list[tuple[np.ndarray, ...]] = field(default_factory=list, repr=False)

    def update(
        self, teacher_logits: torch.Tensor, student_logits: torch.Tensor, units: torch.Tensor | None = None
    ) -> None:
        """Add items; both tensors are (N, C) for the N items that count (padding already removed).

        Args:
            teacher_logits: (N, C) teacher logits.
            student_logits: (N, C) student logits.
            units: (N,) the unit index of each item (e.g. its text's row); default: each item is a unit of its own,
                numbered after those added before.
        """
        if teacher_logits.shape != student_logits.shape:
            raise ValueError(
                "teacher/student logits differ in shape: "
                f"{tuple(teacher_logits.shape)} vs {tuple(student_logits.shape)}"
            )
        agree = top1_agreement(teacher_logits, student_logits)
        kl = kl_divergence(teacher_logits, student_logits, self.temperature).double()
        js = js_divergence(teacher_logits, student_logits, self.temperature).double()
        n = int(teacher_logits.shape[0])
        unit = np.arange(self.count, self.count + n) if units is None else units.detach().cpu().numpy()
        self._items.append((unit, *(x.detach().cpu().double().numpy() for x in (agree, kl, js))))
        self.agree += int(agree.sum())
        self.kl_sum += float(kl.sum())
        self.js_sum += float(js.sum())
        self.count += n

    def per_unit(self, num_units: int) -> dict[str, np.ndarray]:
        """Per-unit sums ``agree``, ``kl``, ``js`` and the unit's item count ``items`` (units without items: 0)."""
        parts = list(zip(*self._items)) or [[np.zeros(0)]] * 4
        unit, agree, kl, js = (np.concatenate(p) for p in parts)
        unit = unit.astype(np.int64)
        sums = {
            name: np.bincount(unit, weights=v, minlength=num_units)
            for name, v in (("agree", agree), ("kl", kl), ("js", js), ("items", np.ones_like(agree)))
        }
        if any(len(v) != num_units for v in sums.values()):
            raise ValueError(f"fidelity items name units beyond the {num_units} evaluated")
        return sums

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
