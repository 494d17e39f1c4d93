"""Losses against values computed by hand (plain `math` on explicit probabilities)."""

import math

import pytest
import torch

from hf_distill.core import losses


def softmax(z, t=1.0):
    e = [math.exp(v / t) for v in z]
    s = sum(e)
    return [v / s for v in e]


def kl(a, b):
    return sum(x * math.log(x / y) for x, y in zip(a, b) if x > 0)


S = [0.0, 0.0, 0.0]  # uniform student
TCH = [math.log(3.0), 0.0, -1.0]


def run(loss_type, t=1.0, **kw):
    return losses.distillation_loss(torch.tensor([S]), torch.tensor([TCH]), loss_type, temperature=t, **kw).item()


@pytest.mark.parametrize("t", [1.0, 2.0, 4.0])
def test_forward_kl_with_temperature_and_t_squared(t):
    p, q = softmax(TCH, t), softmax(S, t)
    assert run("forward_kl", t) == pytest.approx(kl(p, q) * t * t, rel=1e-5)
    assert run("forward_kl", t, scale_by_temperature_squared=False) == pytest.approx(kl(p, q), rel=1e-5)


def test_forward_kl_hand_value():
    # p = softmax([ln 3, 0, -1]) against the uniform q, worked out on paper: p = (0.6868, 0.2289, 0.0842),
    # KL = 0.4965 - 0.0860 - 0.1159 = 0.2947 nats
    e = [3.0, 1.0, math.exp(-1)]
    p = [v / sum(e) for v in e]
    by_hand = sum(pi * math.log(pi * 3) for pi in p)
    assert by_hand == pytest.approx(0.2947, abs=1e-4)
    assert run("forward_kl") == pytest.approx(by_hand, rel=1e-5)


def test_reverse_kl():
    p, q = softmax(TCH, 2.0), softmax(S, 2.0)
    assert run("reverse_kl", 2.0) == pytest.approx(kl(q, p) * 4, rel=1e-5)


def test_jsd_midpoint_and_endpoints():
    p, q = softmax(TCH), softmax(S)
    beta = 0.3
    m = [beta * a + (1 - beta) * b for a, b in zip(p, q)]
    expected = beta * kl(p, m) + (1 - beta) * kl(q, m)
    assert run("jsd", jsd_beta=beta) == pytest.approx(expected, rel=1e-5)
    assert run("jsd", jsd_beta=0.0) == pytest.approx(kl(p, q), rel=1e-5)  # forward KL
    assert run("jsd", jsd_beta=1.0) == pytest.approx(kl(q, p), rel=1e-5)  # reverse KL
    # symmetric at beta = 0.5
    swapped = losses.distillation_loss(torch.tensor([TCH]), torch.tensor([S]), "jsd", jsd_beta=0.5).item()
    assert run("jsd", jsd_beta=0.5) == pytest.approx(swapped, rel=1e-5)


def test_skew_kls():
    p, q = softmax(TCH), softmax(S)
    lam = 0.1
    mix = [lam * a + (1 - lam) * b for a, b in zip(p, q)]
    assert run("skew_kl", skew_lambda=lam) == pytest.approx(kl(p, mix), rel=1e-5)
    rmix = [(1 - lam) * a + lam * b for a, b in zip(p, q)]
    assert run("skew_reverse_kl", skew_lambda=lam) == pytest.approx(kl(q, rmix), rel=1e-5)
    # lambda = 0 is plain forward KL
    assert run("skew_kl", skew_lambda=0.0) == pytest.approx(kl(p, q), rel=1e-5)


def test_mse_on_logits():
    expected = sum((a - b) ** 2 for a, b in zip(S, TCH)) / 3
    assert run("mse") == pytest.approx(expected, rel=1e-6)
    assert run("mse", 2.0) == pytest.approx(expected / 4, rel=1e-6)  # no T^2 by default for mse
    assert run("mse", 2.0, scale_by_temperature_squared=True) == pytest.approx(expected, rel=1e-6)


def test_identical_distributions_give_zero():
    z = torch.randn(5, 7)
    for lt in ("forward_kl", "reverse_kl", "jsd", "skew_kl", "skew_reverse_kl", "mse"):
        assert losses.distillation_loss(z, z.clone(), lt, temperature=2.0).abs().max().item() < 1e-6


def test_fp16_inputs_are_computed_in_fp32():
    z_s, z_t = torch.randn(4, 11), torch.randn(4, 11)
    ref = losses.distillation_loss(z_s, z_t, temperature=2.0)
    half = losses.distillation_loss(z_s.half(), z_t.half(), temperature=2.0)
    assert half.dtype == torch.float32
    assert torch.allclose(ref, half, atol=5e-3)


def test_causal_mask_excludes_padding_and_ignored_labels():
    input_ids = torch.tensor([[5, 6, 7, 0], [5, 6, 0, 0]])
    attention_mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    labels = torch.tensor([[5, -100, 7, -100], [5, 6, -100, -100]])
    valid = losses.causal_lm_valid_mask(labels, attention_mask, input_ids)
    # logit i predicts token i+1: row 0 -> targets (-100, 7, pad) ; row 1 -> targets (6, pad, pad)
    assert valid.tolist() == [[False, True, False], [True, False, False]]
    # without labels, every real next token counts; an EOS that equals pad but is attended still counts
    assert losses.causal_lm_valid_mask(None, attention_mask, input_ids).tolist() == [
        [True, True, False],
        [True, False, False],
    ]


def test_masked_kd_equals_hand_sum_over_valid_positions():
    torch.manual_seed(0)
    s, t = torch.randn(2, 4, 5), torch.randn(2, 4, 5)
    labels = torch.tensor([[-100, 3, -100, 1], [2, -100, -100, -100]])
    mask = losses.token_valid_mask(labels, torch.ones(2, 4, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long))
    per_item = losses.distillation_loss(s[mask], t[mask], temperature=2.0)
    expected = 0.0
    for b, i in [(0, 1), (0, 3), (1, 0)]:
        expected += kl(softmax(t[b, i].tolist(), 2.0), softmax(s[b, i].tolist(), 2.0)) * 4
    assert per_item.shape == (3,)
    assert per_item.sum().item() == pytest.approx(expected, rel=1e-5)


def test_cross_entropy_sum_ignores_minus_100():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    labels = torch.tensor([0, -100, 1])
    expected = -math.log(softmax([2.0, 0.0])[0]) - math.log(0.5)
    assert losses.cross_entropy_sum(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_with_label_smoothing_by_hand():
    # smoothing eps: the target is (1 - eps) on the label plus eps spread uniformly over the C classes, so each
    # item costs (1 - eps) * -log q_y + eps * mean_c(-log q_c)
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0], [1.0, -1.0, 3.0]])
    labels = torch.tensor([0, -100, 2])
    eps = 0.2
    expected = 0.0
    for row, y in ((0, 0), (2, 2)):
        q = softmax(logits[row].tolist())
        expected += (1 - eps) * -math.log(q[y]) + eps * sum(-math.log(v) for v in q) / 3
    assert losses.cross_entropy_sum(logits, labels, label_smoothing=eps).item() == pytest.approx(expected, rel=1e-6)
    assert losses.cross_entropy_sum(logits, labels).item() != pytest.approx(expected, rel=1e-3)  # eps matters


def _mix(a, b, weight_a):
    return [weight_a * x + (1 - weight_a) * y for x, y in zip(a, b)]


def _divergence_by_hand(loss_type, p, q, beta, lam):
    """The module docstring's definitions, in plain math on explicit probabilities."""
    if loss_type == "forward_kl":
        return kl(p, q)
    if loss_type == "reverse_kl":
        return kl(q, p)
    if loss_type == "jsd":
        m = _mix(p, q, beta)
        return beta * kl(p, m) + (1 - beta) * kl(q, m)
    if loss_type == "skew_kl":
        return kl(p, _mix(p, q, lam))
    return kl(q, _mix(p, q, 1 - lam))  # skew_reverse_kl


DIVERGENCES = ["forward_kl", "reverse_kl", "jsd", "skew_kl", "skew_reverse_kl"]


@pytest.mark.parametrize("loss_type", DIVERGENCES)
def test_topk_loss_is_the_divergence_between_the_bucketed_distributions(loss_type):
    # k + 1 buckets: the teacher's top-k ids, and the tail holding everything else (for both distributions)
    t, beta, lam = 2.0, 0.3, 0.2  # not the defaults: the options must reach the divergence
    z_s = [0.3, -1.2, 2.0, 0.0, 0.7, -0.4]
    z_t = [1.5, 0.2, -0.3, 2.5, -1.0, 0.9]
    p, q = softmax(z_t, t), softmax(z_s, t)
    ids = [3, 0]  # the teacher's two most likely tokens
    assert sorted(range(6), key=lambda i: -p[i])[:2] == ids
    tail = 1 - p[3] - p[0]
    p_b = [p[3], p[0], tail]
    q_b = [q[3], q[0], 1 - q[3] - q[0]]
    expected = _divergence_by_hand(loss_type, p_b, q_b, beta, lam) * t * t
    got = losses.topk_distillation_loss(
        torch.tensor([z_s]),
        torch.tensor([ids]),
        torch.tensor([[math.log(p[3]), math.log(p[0])]]),
        torch.tensor([tail]),
        loss_type,
        temperature=t,
        jsd_beta=beta,
        skew_lambda=lam,
    )
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    full = _divergence_by_hand(loss_type, p, q, beta, lam) * t * t
    assert got.item() < full  # the divergence hidden inside the tail is not counted (data-processing inequality)


@pytest.mark.parametrize("loss_type", DIVERGENCES)
def test_topk_loss_over_the_whole_vocabulary_is_the_full_loss(loss_type):
    torch.manual_seed(0)
    z_s, z_t = torch.randn(4, 7), torch.randn(4, 7) * 2
    log_p = torch.log_softmax(z_t / 2.0, -1)
    top = log_p.topk(7, -1)
    got = losses.topk_distillation_loss(
        z_s, top.indices, top.values, torch.zeros(4), loss_type, temperature=2.0, jsd_beta=0.3, skew_lambda=0.2
    )
    full = losses.distillation_loss(z_s, z_t, loss_type, temperature=2.0, jsd_beta=0.3, skew_lambda=0.2)
    torch.testing.assert_close(got, full, rtol=1e-5, atol=1e-6)


def test_hidden_and_attention_losses_by_hand():
    s = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [9.0, 9.0]]])
    t = torch.tensor([[[0.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, True, False]])
    # mse per token: (1+0)/2 = 0.5 and (0+1)/2 = 0.5; the padded token is ignored
    assert losses.hidden_state_loss_sum(s, t, mask, "mse").item() == pytest.approx(1.0)
    # cosine: token 0 has t = 0 -> cos 0 -> 1; token 1 parallel -> 0
    assert losses.hidden_state_loss_sum(s, t, mask, "cosine").item() == pytest.approx(1.0, abs=1e-6)
    a_s = torch.tensor([[[[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.3, 0.3, 0.4]]]])
    a_t = torch.tensor([[[[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]])
    # query 0: 0.25 + 0.25 ; query 1: 0 ; query 2 is padding
    assert losses.attention_loss_sum(a_s, a_t, mask).item() == pytest.approx(0.5)


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="unknown divergence"):
        losses.divergence_from_log_probs(torch.zeros(1, 2), torch.zeros(1, 2), "kl")
    with pytest.raises(ValueError, match="unknown hidden loss"):
        losses.hidden_state_loss_sum(
            torch.zeros(1, 1, 2), torch.zeros(1, 1, 2), torch.ones(1, 1, dtype=torch.bool), "l1"
        )
