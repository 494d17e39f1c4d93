"""The maths of distillation, as pure functions.

Conventions (p = teacher, q = student, both softmax(z / T) computed in float32):

* ``forward_kl`` is KL(p‖q) = Σ p (log p − log q): the student covers the teacher's mass (Hinton et al.).
* ``reverse_kl`` is KL(q‖p): mode seeking.
* ``jsd`` is the generalised Jensen–Shannon divergence of GKD, β·KL(p‖M) + (1−β)·KL(q‖M) with
  M = β·p + (1−β)·q. Its value tends to 0 at both ends, so β = 0 and β = 1 are defined, as in GKD/TRL, as
  forward and reverse KL.
* ``skew_kl`` is KL(p‖λp + (1−λ)q) and ``skew_reverse_kl`` is KL(q‖(1−λ)p + λq) (DistiLLM).
* ``mse`` is the mean squared difference of the logits divided by T, averaged over the vocabulary.
* With ``scale_by_temperature_squared`` the divergence is multiplied by T² so that gradient magnitudes do not
  shrink as T grows.

Every function here returns *per-item* values or *sums* over valid items; dividing by the number of valid items
in the whole accumulated batch is left to the caller, because only the caller knows that count.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def _kl(log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """KL(a‖b) along the last axis from log-probabilities; 0·log 0 counts as 0 (so -inf entries of a are safe)."""
    empty = torch.isneginf(log_a)
    safe_a = log_a.masked_fill(empty, 0.0)
    return torch.where(empty, 0.0, safe_a.exp() * (safe_a - log_b)).sum(-1)


def _log_mix(log_a: torch.Tensor, log_b: torch.Tensor, weight_a: float) -> torch.Tensor:
    """log(w·a + (1−w)·b) computed stably from log-probabilities."""
    if weight_a <= 0.0:
        return log_b
    if weight_a >= 1.0:
        return log_a
    return torch.logaddexp(log_a + math.log(weight_a), log_b + math.log(1.0 - weight_a))


def divergence_from_log_probs(
    student_log_probs: torch.Tensor,
    teacher_log_probs: torch.Tensor,
    loss_type: str = "forward_kl",
    *,
    jsd_beta: float = 0.5,
    skew_lambda: float = 0.1,
) -> torch.Tensor:
    """Per-item divergence between two sets of log-probabilities of shape (..., V); returns shape (...)."""
    log_q, log_p = student_log_probs, teacher_log_probs
    if loss_type == "forward_kl":
        return _kl(log_p, log_q)
    if loss_type == "reverse_kl":
        return _kl(log_q, log_p)
    if loss_type == "jsd":
        if jsd_beta == 0.0:
            return _kl(log_p, log_q)
        if jsd_beta == 1.0:
            return _kl(log_q, log_p)
        log_m = _log_mix(log_p, log_q, jsd_beta)
        return jsd_beta * _kl(log_p, log_m) + (1.0 - jsd_beta) * _kl(log_q, log_m)
    if loss_type == "skew_kl":
        return _kl(log_p, _log_mix(log_p, log_q, skew_lambda))
    if loss_type == "skew_reverse_kl":
        return _kl(log_q, _log_mix(log_p, log_q, 1.0 - skew_lambda))
    raise ValueError(f"unknown divergence {loss_type!r}; use forward_kl, reverse_kl, jsd, skew_kl or skew_reverse_kl")


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    loss_type: str = "forward_kl",
    *,
    temperature: float = 1.0,
    jsd_beta: float = 0.5,
    skew_lambda: float = 0.1,
    scale_by_temperature_squared: bool | None = None,
) -> torch.Tensor:
    """Per-item distillation loss between logits of shape (N, V) (or (..., V)); returns shape (N,).

    Computed in float32 whatever the models' dtype. `scale_by_temperature_squared=None` means on for the KL
    family and off for ``mse``.

    Args:
        student_logits: the student's logits.
        teacher_logits: the teacher's logits, the same shape.
        loss_type: ``forward_kl``, ``reverse_kl``, ``jsd``, ``skew_kl``, ``skew_reverse_kl`` or ``mse`` (see the
            module docstring for each one's formula).
        temperature: T; both distributions are softmax(z / T).
        jsd_beta: β of ``jsd``.
        skew_lambda: λ of ``skew_kl`` and ``skew_reverse_kl``.
        scale_by_temperature_squared: multiply by T² (None: on except for ``mse``).

    Returns:
        The loss of each item (all axes but the last); the caller masks and normalises.

    Raises:
        ValueError: the two shapes differ, or an unknown `loss_type`.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} differ"
        )
    s = student_logits.float() / temperature
    t = teacher_logits.float() / temperature
    if scale_by_temperature_squared is None:
        scale_by_temperature_squared = loss_type != "mse"
    if loss_type == "mse":
        per_item = (s - t).pow(2).mean(-1)
    else:
        per_item = divergence_from_log_probs(
            F.log_softmax(s, dim=-1),
            F.log_softmax(t, dim=-1),
            loss_type,
            jsd_beta=jsd_beta,
            skew_lambda=skew_lambda,
        )
    return per_item * (temperature**2) if scale_by_temperature_squared else per_item


def topk_distillation_loss(
    student_logits: torch.Tensor,
    topk_ids: torch.Tensor,
    topk_log_probs: torch.Tensor,
    tail_mass: torch.Tensor,
    loss_type: str = "forward_kl",
    *,
    temperature: float = 1.0,
    jsd_beta: float = 0.5,
    skew_lambda: float = 0.1,
    scale_by_temperature_squared: bool | None = None,
) -> torch.Tensor:
    """Per-item divergence against a cached top-k teacher distribution (student logits (N, V), ids (N, k)).

    The teacher's top-k log-probabilities (already softened at ``temperature`` when cached) and its remaining
    mass form k + 1 buckets; the student's distribution at the same temperature is mapped to the same buckets
    (its probabilities at the k ids, and everything else summed into the tail). When k equals the vocabulary
    size both tails are empty and this equals `distillation_loss` on full logits. For small k the result is the
    divergence between the two bucketed distributions, which by the data-processing inequality is never larger
    than the full-vocabulary KL; the gap is the divergence hidden inside the tail.

    Args:
        student_logits: the student's logits (N, V).
        topk_ids: the vocabulary ids of the teacher's k most likely tokens (N, k).
        topk_log_probs: the teacher's log-probabilities at those ids (N, k).
        tail_mass: the teacher's probability outside them (N,).
        loss_type: ``forward_kl``, ``reverse_kl``, ``jsd``, ``skew_kl`` or ``skew_reverse_kl`` (``mse`` needs full
            logits; see the module docstring for each one's formula).
        temperature: T; both distributions are softmax(z / T).
        jsd_beta: β of ``jsd``.
        skew_lambda: λ of ``skew_kl`` and ``skew_reverse_kl``.
        scale_by_temperature_squared: multiply by T² (None: on).

    Returns:
        The divergence of each item (N,).

    Raises:
        ValueError: ``loss_type="mse"``, or an unknown `loss_type`.
    """
    if loss_type == "mse":
        raise ValueError("loss_type='mse' needs full teacher logits; cache soft targets with top_k=None")
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)
    ids = topk_ids.long()
    log_q_k = log_q.gather(-1, ids)
    outside = torch.ones_like(log_q, dtype=torch.bool).scatter(-1, ids, False)
    log_q_tail = log_q.masked_fill(~outside, float("-inf")).logsumexp(-1, keepdim=True)
    log_p_tail = tail_mass.float().clamp_min(0.0).log().unsqueeze(-1)
    per_item = divergence_from_log_probs(
        torch.cat([log_q_k, log_q_tail], -1),
        torch.cat([topk_log_probs.float(), log_p_tail], -1),
        loss_type,
        jsd_beta=jsd_beta,
        skew_lambda=skew_lambda,
    )
    if scale_by_temperature_squared is None:
        scale_by_temperature_squared = True
    return per_item * (temperature**2) if scale_by_temperature_squared else per_item


def causal_lm_valid_mask(labels: torch.Tensor | None, attention_mask: torch.Tensor | None, input_ids: torch.Tensor):
    """Valid prediction positions of a causal LM, aligned with ``logits[:, :-1]``.

    Logit i predicts token i + 1, so a position is valid when label i + 1 is not -100 and both token i (the one
    predicting) and token i + 1 (the one predicted) are real (attention mask 1). Requiring both makes the rule hold
    for left padding too, where the first real token would otherwise be "predicted" from a padding position; with
    right padding it is the same as checking token i + 1 alone. Without labels every real next token counts.
    This is the one definition of causal-LM valid positions: training, soft targets and evaluation all use it.

    Args:
        labels: (B, L) token labels, -100 where not scored; None to score every real next token.
        attention_mask: (B, L), 1 on real tokens; None when every token is real.
        input_ids: (B, L), for the shape when the other two are None.

    Returns:
        A (B, L - 1) boolean mask.
    """
    valid = torch.ones_like(input_ids[:, 1:], dtype=torch.bool)
    if labels is not None:
        valid &= labels[:, 1:] != IGNORE_INDEX
    if attention_mask is not None:
        mask = attention_mask.bool()
        valid &= mask[:, :-1] & mask[:, 1:]
    return valid


def token_valid_mask(labels: torch.Tensor | None, attention_mask: torch.Tensor | None, input_ids: torch.Tensor):
    """Valid positions for masked LM: labelled (masked) positions that are real tokens."""
    valid = torch.ones_like(input_ids, dtype=torch.bool)
    if labels is not None:
        valid &= labels != IGNORE_INDEX
    if attention_mask is not None:
        valid &= attention_mask.bool()
    return valid


def hidden_state_loss_sum(
    student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, token_mask: torch.Tensor, kind: str = "mse"
) -> torch.Tensor:
    """Sum over valid tokens of the per-token hidden-state loss (shapes (B, L, D) and mask (B, L)).

    ``mse`` averages the squared difference over the hidden dimension; ``cosine`` is 1 − cos(s, t).

    Args:
        student_hidden: the student's hidden states, projected to the teacher's width when they differ.
        teacher_hidden: the teacher's hidden states of the mapped layer.
        token_mask: True on the tokens that count.
        kind: ``mse`` or ``cosine``.

    Returns:
        A scalar: the sum over the valid tokens (the caller divides by the batch's count).

    Raises:
        ValueError: an unknown `kind`.
    """
    s = student_hidden.float()[token_mask]
    t = teacher_hidden.float()[token_mask]
    if kind == "mse":
        per_token = (s - t).pow(2).mean(-1)
    elif kind == "cosine":
        per_token = 1.0 - F.cosine_similarity(s, t, dim=-1)
    else:
        raise ValueError(f"unknown hidden loss {kind!r}; use mse or cosine")
    return per_token.sum()


def attention_loss_sum(
    student_attention: torch.Tensor, teacher_attention: torch.Tensor, token_mask: torch.Tensor
) -> torch.Tensor:
    """Sum over valid query tokens of the squared difference of attention maps (B, H, L, L).

    Summed over keys and averaged over heads; when the head counts differ the maps are head-averaged first.

    Args:
        student_attention: the student's attention probabilities of one layer.
        teacher_attention: the teacher's attention probabilities of the mapped layer.
        token_mask: (B, L), True on real tokens: masks the keys, and selects the queries summed.

    Returns:
        A scalar: the sum over the valid query tokens.
    """
    s, t = student_attention.float(), teacher_attention.float()
    if s.shape[1] != t.shape[1]:
        s, t = s.mean(1, keepdim=True), t.mean(1, keepdim=True)
    key_mask = token_mask[:, None, None, :].to(s.dtype)
    per_query = ((s - t).pow(2) * key_mask).sum(-1).mean(1)  # (B, L)
    return per_query[token_mask].sum()


def cross_entropy_sum(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Sum of the cross-entropy over labels that are not -100 (logits (N, C), labels (N,))."""
    return F.cross_entropy(
        logits.float(), labels, ignore_index=IGNORE_INDEX, reduction="sum", label_smoothing=label_smoothing
    )
