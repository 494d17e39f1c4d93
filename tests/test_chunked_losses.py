"""Chunked token-level losses against the materialised ones (`hf_distill.losses` on full (B, T, V) logits).

The reference below is the trainer's materialised path before chunking: logits of the whole batch, cut to the valid
positions, teacher logits restricted to a trimmed student's ids, divergence and CE summed and divided by the counts.
Values and gradients (student hidden states, head weight and bias) must agree within 1e-5 in float32.
"""

import itertools

import pytest
import torch
import torch.nn.functional as F

from hf_distill.core import losses
from hf_distill.core.tasks import CAUSAL_LM, MASKED_LM
from hf_distill.students import vocabulary
from hf_distill.training import chunked_losses

B, T, D, D_T, V_T = 3, 7, 8, 12, 23
KEPT = [0, 2, 3, 5, 7, 8, 11, 13, 17, 19, 20, 22]  # a trimmed student's teacher ids
LOSS_TYPES = [
    ("forward_kl", {}),
    ("reverse_kl", {}),
    ("jsd", {"jsd_beta": 0.3}),
    ("jsd", {"jsd_beta": 1.0}),
    ("skew_kl", {"skew_lambda": 0.2}),
    ("skew_reverse_kl", {}),
    ("mse", {}),
]


def make(trimmed: bool, masked: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    v_s = len(KEPT) if trimmed else V_T
    data = {
        "hidden": torch.randn(B, T, D, generator=g),
        "weight": torch.randn(v_s, D, generator=g) * 0.7,
        "bias": torch.randn(v_s, generator=g) * 0.3,
        "t_hidden": torch.randn(B, T, D_T, generator=g),
        "t_weight": torch.randn(V_T, D_T, generator=g) * 0.7,
        "t_bias": torch.randn(V_T, generator=g) * 0.3,
    }
    input_ids = torch.randint(0, v_s, (B, T), generator=g)
    labels = input_ids.clone()
    attention = torch.ones(B, T, dtype=torch.long)
    if masked:
        attention[0, -2:] = 0  # right padding
        attention[1, :2] = 0  # left padding
        labels[attention == 0] = -100
        labels[2, 1:4] = -100  # a prompt
    return data, input_ids, labels, attention


def materialised(data, input_ids, labels, attention, task, loss_type, options, alpha, n_items, trimmed, ce=True):
    """The reference: (B, T, V) logits of both models, as the trainer computed the loss before chunking."""
    s_logits = F.linear(data["hidden"], data["weight"], data["bias"])
    t_logits = F.linear(data["t_hidden"], data["t_weight"], data["t_bias"])
    valid = task.valid_mask(labels, attention, input_ids)
    s_valid = task.at_valid(s_logits, valid)
    t_valid = task.at_valid(t_logits, valid)
    if trimmed:
        t_valid = vocabulary.restrict_to_kept_ids(t_valid, KEPT)
    kd_options = {k: v for k, v in options.items() if k != "label_smoothing"}
    kd = losses.distillation_loss(s_valid, t_valid, loss_type, **kd_options).sum()
    ce_sum = s_logits.new_zeros(())
    if ce:
        ce_logits, ce_labels = task.ce_targets(s_logits, labels, valid)
        ce_sum = losses.cross_entropy_sum(ce_logits, ce_labels, options.get("label_smoothing", 0.0))
    return alpha * kd / n_items + (1 - alpha) * ce_sum / n_items


def chunked(data, input_ids, labels, attention, task, loss_type, options, alpha, n_items, trimmed, chunk, ce=True):
    valid = task.valid_mask(labels, attention, input_ids)
    hidden = task.at_valid(data["hidden"], valid)
    t_hidden = task.at_valid(data["t_hidden"], valid)
    targets = task.targets(labels)[valid] if ce else None
    loss, _, _ = chunked_losses.chunked_lm_loss(
        hidden,
        chunked_losses.linear_head(data["weight"], data["bias"]),
        teacher_hidden=t_hidden,
        teacher_head=chunked_losses.linear_head(data["t_weight"], data["t_bias"], rows=KEPT if trimmed else None),
        labels=targets,
        kd_weight=alpha / n_items,
        ce_weight=(1 - alpha) / n_items,
        loss_type=loss_type,
        label_smoothing=options.get("label_smoothing", 0.0),
        chunk_size=chunk,
        **{k: v for k, v in options.items() if k != "label_smoothing"},
    )
    return loss


def values_and_grads(fn, data, *args):
    leaves = {k: data[k].clone().requires_grad_(True) for k in ("hidden", "weight", "bias")}
    loss = fn({**data, **leaves}, *args)
    loss.backward()
    return loss.detach(), {k: v.grad for k, v in leaves.items()}


def assert_close(a, b):
    value_a, grads_a = a
    value_b, grads_b = b
    torch.testing.assert_close(value_a, value_b, rtol=1e-5, atol=1e-5)
    for k in grads_a:
        torch.testing.assert_close(grads_a[k], grads_b[k], rtol=1e-5, atol=1e-5, msg=f"gradient of {k}")


@pytest.mark.parametrize("trimmed,masked", list(itertools.product([False, True], [False, True])))
@pytest.mark.parametrize("task", [CAUSAL_LM, MASKED_LM], ids=str)
def test_chunked_equals_materialised_over_the_grid(task, trimmed, masked):
    data, input_ids, labels, attention = make(trimmed, masked)
    n_items = float(task.valid_mask(labels, attention, input_ids).sum())
    v_s = data["weight"].shape[0]
    for (loss_type, extra), temperature, alpha in itertools.product(LOSS_TYPES, [1.0, 2.5], [0.0, 0.5, 1.0]):
        options = {"temperature": temperature, **extra}
        if alpha == 0.5:
            options["label_smoothing"] = 0.1
        args = (input_ids, labels, attention, task, loss_type, options, alpha, n_items, trimmed)
        reference = values_and_grads(materialised, data, *args)
        for chunk in (v_s * 4, 10**9):  # 4 positions per chunk (a ragged last one); one chunk
            assert_close(values_and_grads(chunked, data, *args, chunk), reference)


def test_positions_per_chunk():
    assert chunked_losses.positions_per_chunk(2**22, 50_257) == 83
    assert chunked_losses.positions_per_chunk(10, 50_257) == 1


@pytest.mark.parametrize("loss_type,extra", LOSS_TYPES[:-1])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_chunked_topk_and_cached_logits_equal_materialised(loss_type, extra, temperature):
    data, input_ids, labels, attention = make(False, True)
    task = CAUSAL_LM
    valid = task.valid_mask(labels, attention, input_ids)
    options = {"temperature": temperature, **extra}
    t_logits = F.linear(data["t_hidden"], data["t_weight"], data["t_bias"])
    log_p = torch.log_softmax(task.at_valid(t_logits, valid) / temperature, -1)
    top_logp, top_ids = log_p.topk(5, -1)
    tail = 1 - top_logp.exp().sum(-1)

    def reference(d, cache):
        s = task.at_valid(F.linear(d["hidden"], d["weight"], d["bias"]), valid)
        if cache == "topk":
            return losses.topk_distillation_loss(s, top_ids, top_logp, tail, loss_type, **options).sum()
        return losses.distillation_loss(s, task.at_valid(t_logits, valid), loss_type, **options).sum()

    def chunk(d, cache):
        source = (
            {"topk": (top_ids, top_logp, tail)}
            if cache == "topk"
            else {"teacher_logits": task.at_valid(t_logits, valid)}
        )
        kd, _, _ = chunked_losses.chunked_lm_loss(
            task.at_valid(d["hidden"], valid),
            chunked_losses.linear_head(d["weight"], d["bias"]),
            loss_type=loss_type,
            chunk_size=V_T * 3,
            **source,
            **options,
        )
        return kd

    for cache in ("topk", "logits"):
        assert_close(values_and_grads(chunk, data, cache), values_and_grads(reference, data, cache))


def test_accumulation_two_micro_batches_equal_one_batch():
    """Each micro-batch divided by the whole step's item count, summed: the same loss and gradients as one batch."""
    data, input_ids, labels, attention = make(False, True)
    task = CAUSAL_LM
    n_items = float(task.valid_mask(labels, attention, input_ids).sum())
    args = ("jsd", {"temperature": 2.0, "jsd_beta": 0.4}, 0.5, n_items, False, V_T * 2)
    whole = values_and_grads(chunked, data, input_ids, labels, attention, task, *args)

    leaves = {k: data[k].clone().requires_grad_(True) for k in ("hidden", "weight", "bias")}
    total = 0.0
    for rows in (slice(0, 1), slice(1, B)):
        part = {k: (v[rows] if k in ("hidden", "t_hidden") else v) for k, v in {**data, **leaves}.items()}
        loss = chunked(part, input_ids[rows], labels[rows], attention[rows], task, *args)
        loss.backward()
        total = total + loss.detach()
    assert_close((total, {k: v.grad for k, v in leaves.items()}), whole)
    # and the materialised reference agrees with both
    reference = values_and_grads(materialised, data, input_ids, labels, attention, task, *args[:-1])
    assert_close(whole, reference)


def test_no_teacher_and_no_labels_give_zero_sums():
    hidden = torch.randn(4, D, requires_grad=True)
    loss, kd, ce = chunked_losses.chunked_lm_loss(hidden, chunked_losses.linear_head(torch.randn(V_T, D)))
    assert loss.item() == kd.item() == ce.item() == 0.0
    loss, kd, ce = chunked_losses.chunked_lm_loss(
        hidden[:0], chunked_losses.linear_head(torch.randn(V_T, D)), labels=torch.zeros(0, dtype=torch.long)
    )
    assert loss.item() == kd.item() == ce.item() == 0.0


@pytest.mark.parametrize(
    "loss_type,beta", [("forward_kl", 0.0), ("jsd", 0.0), ("reverse_kl", 0.0), ("jsd", 1.0)], ids=str
)
@pytest.mark.parametrize("temperature,scaled", [(1.0, None), (2.5, None), (2.5, False)])
@pytest.mark.parametrize("narrow", [False, True], ids=["same-vocab", "narrower-teacher"])
def test_kl_and_ce_in_closed_form_keep_the_masked_path_for_infinite_logits(
    loss_type, beta, temperature, scaled, narrow, monkeypatch
):
    """Forward KL (JSD at beta 0) and reverse KL (JSD at beta 1) with CE take closed-form gradients, never
    `losses.distillation_loss`, and equal the materialised loss and gradients, also when the teacher has fewer ids
    than the student (compared over the shared ids); a chunk whose teacher logits hold -inf (a masked vocabulary)
    goes through the masked functions instead: exact for forward KL, infinite in both for reverse KL."""
    data, input_ids, labels, attention = make(False, True)
    task = CAUSAL_LM
    valid = task.valid_mask(labels, attention, input_ids)
    t_logits = task.at_valid(F.linear(data["t_hidden"], data["t_weight"], data["t_bias"]), valid)
    if narrow:  # a teacher with fewer ids than the student (50,257 vs a padded 50,304): compared over its ids
        t_logits = t_logits[:, : V_T - 3]
    t_masked = t_logits.clone()
    t_masked[:3, ::4] = float("-inf")  # the first chunk only: ids its teacher forbids
    targets = task.targets(labels)[valid]
    n = float(valid.sum())
    options = dict(loss_type=loss_type, jsd_beta=beta, temperature=temperature, scale_by_temperature_squared=scaled)
    calls = []
    original = losses.distillation_loss
    monkeypatch.setattr(losses, "distillation_loss", lambda *a, **k: calls.append(1) or original(*a, **k))

    def reference(d, teacher):
        s = task.at_valid(F.linear(d["hidden"], d["weight"], d["bias"]), valid)
        kd = original(s[:, : teacher.shape[-1]], teacher, **options).sum()
        return 0.7 * kd / n + 0.3 * losses.cross_entropy_sum(s, targets, 0.1) / n

    def chunk(d, teacher):
        loss, _, _ = chunked_losses.chunked_lm_loss(
            task.at_valid(d["hidden"], valid),
            chunked_losses.linear_head(d["weight"], d["bias"]),
            teacher_logits=teacher,
            labels=targets,
            kd_weight=0.7 / n,
            ce_weight=0.3 / n,
            label_smoothing=0.1,
            chunk_size=V_T * 3,
            **options,
        )
        return loss

    assert_close(values_and_grads(chunk, data, t_logits), values_and_grads(reference, data, t_logits))
    assert calls == []  # closed form throughout
    forward = loss_type == "forward_kl" or (loss_type == "jsd" and beta == 0.0)
    if forward:
        assert_close(values_and_grads(chunk, data, t_masked), values_and_grads(reference, data, t_masked))
    else:  # KL(q‖p) is infinite where the teacher forbids an id the student allows, materialised or chunked
        assert chunk(data, t_masked).item() == reference(data, t_masked).item() == float("inf")
    assert len(calls) == 1  # only the chunk with -inf logits took the masked path
