"""Token-level distillation without a (B, T, V) logit tensor: the losses of `hf_distill.losses`, in chunks.

A language model's logits are ``head(hidden)``: its final hidden states (B, T, D) through its output embeddings
(``model.get_output_embeddings()``, an ``nn.Linear`` of V × D plus a bias, or a PEFT/LoRA layer around one). For a
large vocabulary V the logits dwarf everything else (8 × 512 × 50,257 float32 = 823 MB, and a KD step holds several
of them: both models' logits, log-probabilities and gradients). Here only the hidden states of the valid positions
(N, D) are kept; they go through each head ``chunk`` positions at a time, the per-item losses of each chunk are
computed by the very functions of `hf_distill.losses` (so every divergence, temperature, T² and label-smoothing
convention is the same by construction) and summed, and each chunk runs under `torch.utils.checkpoint`, so backward
recomputes the chunk's logits instead of keeping them. At most one chunk of logits per model (plus their
intermediates) exists at a time: memory is ``chunk_size`` logits per tensor, whatever B, T and V.

The results are sums over the valid items, like `hf_distill.losses`: dividing by the item count of the whole
accumulated batch stays with the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from . import losses

__all__ = [
    "Head", "linear_head", "positions_per_chunk", "chunked_lm_loss_sums", "output_head", "module_head",
    "capture_head_inputs",
]

# A map from hidden states (n, D) to logits (n, V).
Head = Callable[[torch.Tensor], torch.Tensor]


def linear_head(
    weight: torch.Tensor, bias: torch.Tensor | None = None, rows: Sequence[int] | torch.Tensor | None = None
) -> Head:
    """The head ``h ↦ h Wᵀ + b``, optionally restricted to some vocabulary rows (a trimmed student's kept ids).

    A sharded weight (an FSDP2 `DTensor`) is gathered once here, not per chunk; its gradient flows back to the shards
    through `full_tensor`'s backward.

    Args:
        weight: the (V, D) output-embedding weight.
        bias: its (V,) bias, or None.
        rows: vocabulary ids to keep, in order (the teacher's logits restricted to a trimmed student's ids).
    """
    weight, bias = _full(weight), _full(bias)
    if rows is not None:
        index = torch.as_tensor(rows, dtype=torch.long, device=weight.device)
        weight = weight.index_select(0, index)
        bias = bias.index_select(0, index) if bias is not None else None
    return lambda hidden: F.linear(hidden.to(weight.dtype), weight, bias)


def _full(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return tensor.full_tensor() if tensor is not None and hasattr(tensor, "full_tensor") else tensor


def positions_per_chunk(chunk_size: int, vocab_size: int) -> int:
    """How many positions one chunk holds when a chunk may hold `chunk_size` logits (at least one position)."""
    return max(1, int(chunk_size) // max(1, int(vocab_size)))


def chunked_lm_loss_sums(
    student_hidden: torch.Tensor,
    student_head: Head,
    *,
    teacher_hidden: torch.Tensor | None = None,
    teacher_head: Head | None = None,
    teacher_logits: torch.Tensor | None = None,
    topk: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    labels: torch.Tensor | None = None,
    loss_type: str = "forward_kl",
    temperature: float = 1.0,
    jsd_beta: float = 0.5,
    skew_lambda: float = 0.1,
    scale_by_temperature_squared: bool | None = None,
    label_smoothing: float = 0.0,
    vocab_size: int | None = None,
    chunk_size: int = 2**22,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(KD sum, CE sum) over N valid positions, computed a chunk of positions at a time.

    The teacher is given one of three ways: its hidden states at the same positions and its head (a live teacher:
    its logits are computed per chunk too, without gradient); its logits (N, V) (cached full logits: only the student
    side is chunked); or cached top-k targets ``(ids, log_probs, tail_mass)`` of shapes (N, k), (N, k), (N,). With
    none of them the KD sum is 0.

    Args:
        student_hidden: (N, D) student hidden states at the valid positions (as the head reads them).
        student_head: the student's head (`linear_head`, or the output-embedding module itself, e.g. with LoRA).
        teacher_hidden, teacher_head: a live teacher's hidden states (N, D_t) and head; the head's rows must already be
            the student's vocabulary when that is trimmed (``linear_head(..., rows=kept_ids)``).
        teacher_logits: cached teacher logits (N, V_t), already restricted to a trimmed student's ids.
        topk: cached top-k targets at the valid positions.
        labels: (N,) CE targets (-100 = none); None skips the CE sum.
        loss_type, temperature, jsd_beta, skew_lambda, scale_by_temperature_squared: as in
            `losses.distillation_loss`.
        label_smoothing: of the CE term, over the student's whole vocabulary.
        vocab_size: the student's vocabulary (sizes the chunks); read from the first chunk's logits when None.
        chunk_size: the most logits (positions × vocabulary) one model's chunk holds.

    Returns:
        Two float32 scalars: the KD divergence summed over the N items, and the CE summed over labelled items.
        Vocabularies that differ only by padding rows (50,257 vs 50,304) are compared over their shared first ids.
    """
    n = student_hidden.shape[0]
    if vocab_size is None:
        with torch.no_grad():
            vocab_size = student_head(student_hidden[:1]).shape[-1] if n else 1
    step = positions_per_chunk(chunk_size, vocab_size)
    options = dict(temperature=temperature, jsd_beta=jsd_beta, skew_lambda=skew_lambda,
                   scale_by_temperature_squared=scale_by_temperature_squared)

    def chunk_sums(h, t_part, topk_part, label_part):
        s_logits = student_head(h)
        kd = s_logits.new_zeros((), dtype=torch.float32)
        ce = kd
        if label_part is not None:
            ce = losses.cross_entropy_sum(s_logits, label_part, label_smoothing)
        if topk_part is not None:
            ids, log_p, tail = topk_part
            kd = losses.topk_distillation_loss(s_logits, ids, log_p, tail, loss_type, **options).sum()
        elif t_part is not None:
            if teacher_head is not None:
                with torch.no_grad():
                    t_part = teacher_head(t_part)
            t_part = t_part.to(s_logits.device)
            shared = min(s_logits.shape[-1], t_part.shape[-1])
            kd = losses.distillation_loss(s_logits[..., :shared], t_part[..., :shared], loss_type, **options).sum()
        return kd, ce

    teacher = teacher_hidden if teacher_head is not None else teacher_logits
    kd_total = student_hidden.new_zeros((), dtype=torch.float32)
    ce_total = kd_total
    for start in range(0, n, step):
        part = slice(start, min(n, start + step))
        t_part = teacher[part] if teacher is not None else None
        topk_part = tuple(x[part] for x in topk) if topk is not None else None
        label_part = labels[part] if labels is not None else None
        if torch.is_grad_enabled():
            # Backward recomputes this chunk's logits rather than keeping them.
            kd, ce = checkpoint(chunk_sums, student_hidden[part], t_part, topk_part, label_part, use_reentrant=False)
        else:
            kd, ce = chunk_sums(student_hidden[part], t_part, topk_part, label_part)
        kd_total = kd_total + kd
        ce_total = ce_total + ce
    return kd_total, ce_total


# ---- reading hidden states and heads from models ------------------------------------------------------------------

# Config attributes of architectures that transform the logits after the output embeddings (Gemma 2's soft-capping,
# Cohere's logit scale, Granite's logit scaling): reading the head's input would miss that step, so those models keep
# the materialised path.
LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def output_head(model: nn.Module) -> nn.Module | None:
    """The module that maps a (PEFT/DDP-unwrapped) language model's final hidden states to logits, or None when the
    chunked path cannot stand in for the model's own logits (no output embeddings, or logit post-processing)."""
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    if not isinstance(head, nn.Module):
        return None
    config = getattr(model, "config", None)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    if any(getattr(c, name, None) not in (None, 1, 1.0) for c in (config, text_config) for name in LOGIT_POSTPROCESSING):
        return None
    return head


def module_head(head: nn.Module, rows: Sequence[int] | None = None) -> Head:
    """A `Head` for an output-embedding module: `linear_head` on its weight and bias for an ``nn.Linear`` (a sharded
    FSDP2 weight gathered once), else the module itself (a PEFT/LoRA layer: its adapters are honoured).

    Args:
        head: the model's output embeddings (`output_head`).
        rows: vocabulary ids to keep (a trimmed student's ids in the teacher's vocabulary).
    """
    if isinstance(head, nn.Linear):
        return linear_head(head.weight, head.bias, rows)
    if rows is None:
        return head
    index = torch.as_tensor(list(rows), dtype=torch.long)
    return lambda hidden: head(hidden).index_select(-1, index.to(hidden.device))


class _Captured:
    hidden: torch.Tensor | None = None


@contextmanager
def capture_head_inputs(head: nn.Module | None) -> Iterator[_Captured]:
    """Within the block, calls of `head` record their input (``captured.hidden``) and compute logits for no position.

    The model's forward then returns (B, 0, V) logits, still connected to the head's parameters (so DDP's search for
    unused parameters finds them), and the hidden states go to `chunked_lm_loss_sums` instead. With ``head=None``
    nothing is changed and ``captured.hidden`` stays None.
    """
    captured = _Captured()
    if head is None:
        yield captured
        return

    def record(module, args):
        captured.hidden = args[0]
        return (args[0][..., :0, :], *args[1:])

    handle = head.register_forward_pre_hook(record)
    try:
        yield captured
    finally:
        handle.remove()
