"""Token-level distillation without a (B, T, V) logit tensor: the losses of `hf_distill.losses`, in chunks.

A language model's logits are ``head(hidden)``: its final hidden states (B, T, D) through its output embeddings
(``model.get_output_embeddings()``, an ``nn.Linear`` of V × D plus a bias, or a PEFT/LoRA layer around one). For a
large vocabulary V the logits dwarf everything else (8 × 512 × 50,257 float32 = 823 MB, and a KD step holds several
of them: both models' logits, log-probabilities and gradients). Here only the hidden states of the valid positions
(N, D) are kept; they go through each head ``chunk`` positions at a time, the per-item losses of each chunk are
computed by the very functions of `hf_distill.losses` (so every divergence, temperature, T² and label-smoothing
convention is the same by construction) and summed. Each chunk is differentiated as soon as it is computed (a
custom `torch.autograd.Function`, as fused linear cross-entropy kernels do): only the gradients with respect to the
hidden states and the head survive a chunk, and backward merely scales them. At most one chunk of logits per
model (plus their intermediates) exists at a time: memory is ``chunk_size`` logits per tensor, whatever B, T and V.
Forward KL (the default, and JSD at β 0), reverse KL (and JSD at β 1) and the CE term have closed-form gradients
with respect to the logits, ``(q − p)·T``, ``q·(log q − log p − KL)·T`` and ``softmax(s) − target``: those chunks
compute them directly, in the buffers of one log-softmax per model (shared by KD and CE at T = 1), and leave only
the head's own backward to autograd; a chunk holding -inf logits, and every other divergence and the top-k cache,
are differentiated through `hf_distill.losses` itself.

What the soft-target caches cost (there is no teacher head to chunk there): a top-k cache brings B × T × k ids and
log-probabilities per batch (k = 64: a few MB), and the student side is chunked as above. A full-logit cache is
itself a (B, T, V) tensor of the teacher (float32, as the collator loads it: 4·B·T·V bytes, e.g. 823 MB at
8 × 512 × 50,257): its rows are gathered a chunk at a time and never copied, so that one tensor is the whole
overhead of the path; use a top-k cache, or the live teacher, where it does not fit.

The KD and CE terms are sums over the valid items, like `hf_distill.losses`, weighted by the caller: dividing by
the item count of the whole accumulated batch stays with the caller, which alone knows it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..core import losses
from ..core.tasks import unwrap

__all__ = [
    "Head",
    "linear_head",
    "positions_per_chunk",
    "chunked_lm_loss",
    "output_head",
    "module_head",
    "capture_head_inputs",
    "valid_logits_in_chunks",
]


@dataclass(frozen=True)
class Head:
    """A map from hidden states (n, D) to logits (n, V) as a function of explicit tensors: ``fn(hidden, params)``.

    The tensors are explicit so that the chunked loss can differentiate each chunk with respect to them (and the
    hidden states) as it goes. Calling the head applies it with its own tensors.
    """

    fn: Callable[[torch.Tensor, Sequence[torch.Tensor]], torch.Tensor]
    params: tuple[torch.Tensor, ...] = ()

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.fn(hidden, self.params)


def linear_head(
    weight: torch.Tensor, bias: torch.Tensor | None = None, rows: Sequence[int] | torch.Tensor | None = None
) -> Head:
    """The head ``h ↦ h Wᵀ + b``, optionally restricted to some vocabulary rows (a trimmed student's kept ids).

    A sharded weight (an FSDP2 `DTensor`) is gathered once here, not per chunk; its gradient flows back to the shards
    through `full_tensor`'s backward, averaged over the processes (`_full`).

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
    params = (weight,) if bias is None else (weight, bias)
    return Head(lambda hidden, p: F.linear(hidden.to(p[0].dtype), p[0], p[1] if len(p) > 1 else None), params)


def _full(tensor: torch.Tensor | None) -> torch.Tensor | None:
    """A sharded (FSDP2 `DTensor`) weight gathered whole; other tensors as they are.

    Each process's gradient of the gathered weight covers its own batch only: it is a partial gradient, averaged over
    the processes on the way back to the shards (as FSDP averages the gradients of the layers it gathers itself; the
    trainer scales its loss for that average, as under DDP). The default `full_tensor()` would treat it as replicated
    (identical everywhere) and keep each process's own part only.
    """
    if tensor is None or not hasattr(tensor, "full_tensor"):
        return tensor
    from torch.distributed.tensor import Partial

    return tensor.full_tensor(grad_placements=[Partial("avg")] * tensor.device_mesh.ndim)


def positions_per_chunk(chunk_size: int, vocab_size: int) -> int:
    """How many positions one chunk holds when a chunk may hold `chunk_size` logits (at least one position)."""
    return max(1, int(chunk_size) // max(1, int(vocab_size)))


class _ChunkedLoss(torch.autograd.Function):
    """Forward runs every chunk and differentiates it at once (as fused linear cross-entropy kernels do), keeping
    only the gradients with respect to the inputs: (N, D) for the hidden states and the head's own sizes. Backward
    scales them by the incoming gradient. No chunk's logits survive its turn, in forward or backward."""

    @staticmethod
    def forward(ctx, run, hidden, *params):
        loss, kd, ce, grads = run(hidden, params, [t.requires_grad for t in (hidden, *params)])
        ctx.save_for_backward(*grads)
        ctx.mark_non_differentiable(kd, ce)
        return loss, kd, ce

    @staticmethod
    def backward(ctx, grad_loss, _grad_kd, _grad_ce):
        return (None, *(g * grad_loss.to(g.dtype) if g is not None else None for g in ctx.saved_tensors))


def chunked_lm_loss(
    student_hidden: torch.Tensor,
    student_head: Head,
    *,
    teacher_hidden: torch.Tensor | None = None,
    teacher_head: Callable[[torch.Tensor], torch.Tensor] | None = None,
    teacher_logits: torch.Tensor | None = None,
    topk: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    labels: torch.Tensor | None = None,
    kd_weight: float | torch.Tensor = 1.0,
    ce_weight: float | torch.Tensor = 1.0,
    loss_type: str = "forward_kl",
    temperature: float = 1.0,
    jsd_beta: float = 0.5,
    skew_lambda: float = 0.1,
    scale_by_temperature_squared: bool | None = None,
    label_smoothing: float = 0.0,
    vocab_size: int | None = None,
    chunk_size: int = 2**22,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``kd_weight · KD sum + ce_weight · CE sum`` over N valid positions, computed a chunk of positions at a time.

    The teacher is given one of three ways: its hidden states at the same positions and its head (a live teacher:
    its logits are computed per chunk too, without gradient); its logits (N, V) or any tensor ``teacher_head`` maps
    to them per chunk (cached full logits: only the student side is chunked); or cached top-k targets
    ``(ids, log_probs, tail_mass)`` of shapes (N, k), (N, k), (N,). With none of them the KD sum is 0.

    Args:
        student_hidden: (N, D) student hidden states at the valid positions (as the head reads them).
        student_head: the student's head (`linear_head`, or `module_head` for e.g. a LoRA layer).
        teacher_hidden, teacher_head: a live teacher's hidden states (N, D_t) and head; the head's rows must already be
            the student's vocabulary when that is trimmed (``linear_head(..., rows=kept_ids)``).
        teacher_logits: cached teacher logits (N, V_t), already restricted to a trimmed student's ids.
        topk: cached top-k targets at the valid positions.
        labels: (N,) CE targets (-100 = none); None skips the CE sum.
        kd_weight, ce_weight: the weights of the two sums in the differentiable loss (e.g. alpha / items).
        loss_type, temperature, jsd_beta, skew_lambda, scale_by_temperature_squared: as in
            `losses.distillation_loss`.
        label_smoothing: of the CE term, over the student's whole vocabulary.
        vocab_size: the student's vocabulary (sizes the chunks); read from the first chunk's logits when None.
        chunk_size: the most logits (positions × vocabulary) one model's chunk holds.

    Returns:
        ``(loss, kd_sum, ce_sum)``: the weighted loss (differentiable with respect to the student's hidden states
        and head tensors), and the two float32 sums, detached (for logging). Vocabularies that differ only by padding
        rows (50,257 vs 50,304) are compared over their shared first ids.
    """
    n = student_hidden.shape[0]
    if vocab_size is None:
        with torch.no_grad():
            vocab_size = student_head(student_hidden[:1]).shape[-1] if n else 1
    step = positions_per_chunk(chunk_size, vocab_size)
    options = dict(
        temperature=temperature,
        jsd_beta=jsd_beta,
        skew_lambda=skew_lambda,
        scale_by_temperature_squared=scale_by_temperature_squared,
    )
    teacher = teacher_hidden if teacher_head is not None else teacher_logits

    # Forward and reverse KL (JSD at beta 0 and 1 are these) and the CE term have closed-form gradients with respect
    # to the logits: those chunks skip autograd through the vocabulary-wide maths (`_closed_form_chunk`).
    forward_kl = loss_type == "forward_kl" or (loss_type == "jsd" and jsd_beta == 0)
    reverse_kl = loss_type == "reverse_kl" or (loss_type == "jsd" and jsd_beta == 1)
    closed_form = topk is None and (teacher is None or forward_kl or reverse_kl)
    kd_scale = temperature if scale_by_temperature_squared in (None, True) else 1.0 / temperature
    weights = (float(kd_weight), float(ce_weight)) if closed_form else None  # (read once, not once per chunk)

    def teacher_logits_of(part, s_logits):
        with torch.no_grad():
            t_logits = teacher[part] if teacher_head is None else teacher_head(teacher[part])
        return t_logits.to(s_logits.device)

    def chunk_sums(s_logits, part):
        kd = s_logits.new_zeros((), dtype=torch.float32)
        ce = kd
        if labels is not None:
            ce = losses.cross_entropy_sum(s_logits, labels[part], label_smoothing)
        if topk is not None:
            ids, log_p, tail = (x[part] for x in topk)
            kd = losses.topk_distillation_loss(s_logits, ids, log_p, tail, loss_type, **options).sum()
        elif teacher is not None:
            t_logits = teacher_logits_of(part, s_logits)
            shared = min(s_logits.shape[-1], t_logits.shape[-1])
            kd = losses.distillation_loss(s_logits[..., :shared], t_logits[..., :shared], loss_type, **options).sum()
        return kd, ce

    def run(hidden, params, needs):
        inputs = (hidden, *params)
        grads = [torch.zeros_like(t, dtype=torch.float32) if need else None for t, need in zip(inputs, needs)]
        kd_total = hidden.new_zeros((), dtype=torch.float32)
        ce_total = kd_total
        for start in range(0, n, step):
            part = slice(start, min(n, start + step))
            h = hidden[part].detach().requires_grad_(needs[0])
            ps = [p.detach().requires_grad_(need) for p, need in zip(params, needs[1:])]
            with torch.enable_grad() if any(needs) else torch.no_grad():
                s_logits = student_head.fn(h, ps)
                wanted = [t for t, need in zip((h, *ps), needs) if need]
                closed = None
                if closed_form and (labels is not None or teacher is not None):
                    with torch.no_grad():
                        t_logits = teacher_logits_of(part, s_logits) if teacher is not None else None
                        closed = _closed_form_chunk(
                            s_logits,
                            t_logits,
                            labels[part] if labels is not None else None,
                            temperature,
                            kd_scale,
                            label_smoothing,
                            weights[0],
                            weights[1],
                            bool(wanted),
                            reverse_kl,
                        )
                if closed is not None:
                    kd, ce, grad_logits = closed
                    # only the head's own backward (two matrix products for a linear head) is left to autograd
                    chunk_grads = (
                        torch.autograd.grad(s_logits, wanted, grad_logits, allow_unused=True) if wanted else ()
                    )
                else:
                    kd, ce = chunk_sums(s_logits, part)
                    total = kd_weight * kd + ce_weight * ce
                    chunk_grads = ()
                    if wanted and total.requires_grad:  # (no term at all: nothing to differentiate)
                        chunk_grads = torch.autograd.grad(total, wanted, allow_unused=True)
                if chunk_grads:
                    chunk_grads = iter(chunk_grads)
                    for i, need in enumerate(needs):
                        g = next(chunk_grads) if need else None
                        if g is None:
                            continue
                        if i == 0:
                            grads[0][part] += g
                        else:
                            grads[i] += g
            kd_total = kd_total + kd.detach()
            ce_total = ce_total + ce.detach()
        grads = [g.to(t.dtype) if g is not None else None for g, t in zip(grads, inputs)]
        return kd_weight * kd_total + ce_weight * ce_total, kd_total, ce_total, grads

    if not (torch.is_grad_enabled() and any(t.requires_grad for t in (student_hidden, *student_head.params))):
        loss, kd, ce, _ = run(student_hidden, student_head.params, [False] * (1 + len(student_head.params)))
        return loss, kd, ce
    return _ChunkedLoss.apply(run, student_hidden, *student_head.params)


def _closed_form_chunk(
    s_logits, t_logits, labels, temperature, kd_scale, label_smoothing, kd_weight, ce_weight, with_grad, reverse=False
):
    """``(kd_sum, ce_sum, d loss / d s_logits)`` of one chunk in closed form, or None where a row is not finite.

    KD is forward KL, Σ p (log p − log q) with p, q the softmaxes at `temperature` over the shared vocabulary (the
    `losses` convention); its gradient with respect to the student's logits is ``(q − p) · kd_scale`` (T for the
    T²-scaled loss, 1/T without it). With `reverse` it is KL(q‖p) = Σ q (log q − log p), whose gradient is
    ``q · (log q − log p − KL) · kd_scale``, KL being the row's own value. CE (with label smoothing ε over the
    student's V ids) has gradient
    ``softmax(s) − ((1 − ε)·onehot(y) + ε / V)`` on labelled rows. One log-softmax per model per chunk serves both
    terms at T = 1. A chunk whose values are not finite (−inf logits: a masked vocabulary) returns None, and the
    caller computes it with `hf_distill.losses`' masked functions instead, so such chunks stay exact.
    """
    s = s_logits.detach().float()
    vocab = s.shape[-1]
    shared = vocab if t_logits is None else min(vocab, t_logits.shape[-1])
    shares_log_q = temperature == 1 and shared == vocab  # then one log-softmax serves KD and CE
    log_q1 = torch.log_softmax(s, -1)
    kd = ce = s.new_zeros(())
    log_q = p = q = diff = rows = None
    if t_logits is not None:
        log_q = log_q1 if shares_log_q else torch.log_softmax(s[..., :shared] / temperature, -1)
        t = t_logits[..., :shared].float()
        log_p = torch.log_softmax(t / temperature if temperature != 1 else t, -1)
        if reverse:
            q = log_q.exp()
            diff = log_p.neg_().add_(log_q)  # log q − log p, in log p's buffer
            rows = torch.linalg.vecdot(q, diff)
            kd = rows.sum()
        else:
            p = log_p.exp()
            kd = torch.linalg.vecdot(p, log_p.sub_(log_q)).sum()  # (log p is spent: the difference takes its place)
        if not torch.isfinite(kd):
            return None
        kd = kd * (kd_scale * temperature)  # the T² of the value (kd_scale is T, or 1/T without the scaling)
    if labels is not None:
        valid = labels != losses.IGNORE_INDEX
        safe = labels.masked_fill(~valid, 0).unsqueeze(-1)
        weights = valid.to(s.dtype)
        per_row = (1 - label_smoothing) * -log_q1.gather(-1, safe).squeeze(-1)
        if label_smoothing:
            per_row = per_row - label_smoothing / vocab * log_q1.sum(-1)
        ce = (per_row * weights).sum()
        if not torch.isfinite(ce):
            return None
    if not with_grad:
        return kd, ce, None
    # The values are taken: the log-probabilities' buffers now become probabilities and the gradient, in place.
    kd_w = kd_weight * kd_scale if t_logits is not None else 0.0
    coef = (weights * ce_weight).unsqueeze(-1) if labels is not None and ce_weight else None
    grad = None
    if reverse:
        if kd_w:  # q·(log q − log p − KL)·w in the difference's buffer
            grad = diff.sub_(rows.unsqueeze(-1)).mul_(q).mul_(kd_w)
            if shared < vocab:
                grad = F.pad(grad, (0, vocab - shared))
        if coef is not None:  # + c·softmax(s) (q is that softmax when it shares the log-softmax)
            probs = q.mul_(coef) if shares_log_q else log_q1.exp_().mul_(coef)
            grad = probs if grad is None else grad.add_(probs)
    elif kd_w and shares_log_q:  # softmax(s)·(w + c) − w·p: one buffer, three passes
        grad = log_q1.exp_().mul_(kd_w if coef is None else coef + kd_w).add_(p, alpha=-kd_w)
    else:
        if kd_w:  # (q − p)·w in p's buffer
            grad = p.mul_(-kd_w).add_(log_q.exp_(), alpha=kd_w)
            if shared < vocab:
                grad = F.pad(grad, (0, vocab - shared))
        if coef is not None:
            probs = log_q1.exp_()
            grad = probs.mul_(coef) if grad is None else grad.addcmul_(probs, coef)
    if coef is not None:  # − c·((1 − ε)·onehot(y) + ε / V)
        grad.scatter_add_(-1, safe, -(1 - label_smoothing) * coef)
        if label_smoothing:
            grad.sub_(coef * (label_smoothing / vocab))
    if grad is None:  # both weights 0
        grad = torch.zeros_like(s)
    return kd, ce, grad.to(s_logits.dtype)


# ---- reading hidden states and heads from models ------------------------------------------------------------------

# Config attributes of architectures that transform the logits after the output embeddings (Gemma 2's soft-capping,
# Cohere's logit scale, Granite's logit scaling): reading the head's input would miss that step, so those models keep
# the materialised path.
LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def output_head(model: nn.Module) -> nn.Module | None:
    """The module that maps a (PEFT/DDP-unwrapped) language model's final hidden states to logits, or None when the
    chunked path cannot stand in for the model's own logits (no output embeddings, or logit post-processing).

    Args:
        model: the unwrapped language model.
    """
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    if not isinstance(head, nn.Module):
        return None
    config = getattr(model, "config", None)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    configs = (config, text_config)
    if any(getattr(c, name, None) not in (None, 1, 1.0) for c in configs for name in LOGIT_POSTPROCESSING):
        return None
    return head


def module_head(head: nn.Module, rows: Sequence[int] | None = None) -> Head:
    """A `Head` for an output-embedding module: `linear_head` on its weight and bias for an ``nn.Linear`` (a sharded
    FSDP2 weight gathered once), else the module itself applied with its parameters as explicit tensors
    (`torch.func.functional_call`): a PEFT/LoRA layer's adapters are honoured and trained.

    Args:
        head: the model's output embeddings (`output_head`).
        rows: vocabulary ids to keep (a trimmed student's ids in the teacher's vocabulary).
    """
    if isinstance(head, nn.Linear):
        return linear_head(head.weight, head.bias, rows)
    names, params = zip(*head.named_parameters()) if any(True for _ in head.parameters()) else ((), ())
    index = torch.as_tensor(list(rows), dtype=torch.long) if rows is not None else None

    def apply(hidden: torch.Tensor, p: Sequence[torch.Tensor]) -> torch.Tensor:
        logits = torch.func.functional_call(head, dict(zip(names, p)), (hidden,))
        return logits if index is None else logits.index_select(-1, index.to(logits.device))

    return Head(apply, tuple(params))


class _Captured:
    hidden: torch.Tensor | None = None


@contextmanager
def capture_head_inputs(head: nn.Module | None) -> Iterator[_Captured]:
    """Within the block, calls of `head` record their input (``captured.hidden``) and compute logits for no position.

    The model's forward then returns (B, 0, V) logits, still connected to the head's parameters (so DDP's search for
    unused parameters finds them), and the hidden states go to `chunked_lm_loss` instead. With ``head=None``
    nothing is changed and ``captured.hidden`` stays None.

    Args:
        head: the model's output head (`output_head`), or None.
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


def valid_logits_in_chunks(
    models: Sequence[nn.Module],
    inputs: Sequence[dict[str, torch.Tensor]],
    task,
    valid: torch.Tensor,
    vocab: int,
    chunk_size: int = 2**22,
):
    """(positions slice, batch rows, [float32 CPU logits of each model]) for the valid positions, a chunk at a time.

    Each model's final hidden states are read at its output embeddings (`capture_head_inputs`: the model computes
    no logits) and projected a chunk of positions at a time, so a long text never holds a (batch, length,
    vocabulary) tensor of either model. A model whose logits need its own post-processing (`output_head` is None)
    gives its full logits, as before. Evaluation (perplexity, fidelity) and the teacher's NLL of samples read
    logits this way.

    Args:
        models: the models, each called (no gradient) with its own keyword arguments.
        inputs: one dict of forward keyword arguments per model (already filtered to what its forward accepts).
        task: the `hf_distill.tasks.Task` whose ``at_valid`` picks the valid positions of a (B, L, ...) tensor.
        valid: the task's valid-position mask (e.g. (B, L-1) for a causal LM).
        vocab: the vocabulary size that sizes the chunks.
        chunk_size: the most logits (positions × vocabulary) one model's chunk holds.
    """
    finals, heads = [], []
    for model, kwargs in zip(models, inputs):
        head = output_head(unwrap(model))
        with torch.inference_mode(), capture_head_inputs(head) as captured:
            logits = model(**kwargs).logits
        final = captured.hidden if head is not None else logits
        finals.append(task.at_valid(final, valid))
        heads.append(module_head(head) if head is not None else None)
    rows = valid.nonzero()[:, 0]
    step = positions_per_chunk(chunk_size, vocab)
    for start in range(0, int(rows.shape[0]), step):
        part = slice(start, start + step)
        with torch.inference_mode():
            yield (
                part,
                rows[part],
                [(h[part] if head is None else head(h[part])).float().cpu() for h, head in zip(finals, heads)],
            )
