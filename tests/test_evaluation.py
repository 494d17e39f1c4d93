"""Task metrics (through `evaluate`, offline) and teacher–student fidelity."""

from __future__ import annotations

import math

import evaluate
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from hf_distill.core.tasks import detect_task
from hf_distill.evaluation.measure import distillation_settings
from hf_distill.evaluation.pair import (
    FidelityAccumulator,
    causal_lm_valid_positions,
    evaluate_models,
    js_divergence,
    kl_divergence,
    load_metric,
    load_texts,
    metric_module_path,
    top1_agreement,
)
from tests import tiny


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    # evaluate reads HF_EVALUATE_OFFLINE once, at import
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)


def _load(path):
    return AutoModelForSequenceClassification.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def _load_lm(path):
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


# -- metric modules ---------------------------------------------------------------------------------------
PREDS = [0, 1, 1, 0, 1, 2, 2, 0, 1, 1]
REFS = [0, 1, 0, 0, 2, 2, 1, 0, 1, 0]


def _f1_by_hand(preds, refs, cls):
    tp = sum(p == cls and r == cls for p, r in zip(preds, refs))
    fp = sum(p == cls and r != cls for p, r in zip(preds, refs))
    fn = sum(p != cls and r == cls for p, r in zip(preds, refs))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def test_accuracy_module_matches_direct_computation_offline(offline):
    metric, source = load_metric("accuracy")
    assert source == "local:hf_distill/metrics/accuracy"
    assert metric.compute(predictions=PREDS, references=REFS)["accuracy"] == pytest.approx(6 / 10)
    assert metric.compute(predictions=PREDS, references=REFS, normalize=False)["accuracy"] == 6
    weights = [2.0] + [1.0] * 9
    assert metric.compute(predictions=PREDS, references=REFS, sample_weight=weights)["accuracy"] == pytest.approx(
        7 / 11
    )


def test_f1_module_matches_direct_computation_offline(offline):
    metric, source = load_metric("f1")
    assert source.startswith("local:")
    binary_p, binary_r = [1, 1, 0, 0, 1, 0], [1, 0, 0, 1, 1, 0]
    assert metric.compute(predictions=binary_p, references=binary_r)["f1"] == pytest.approx(
        _f1_by_hand(binary_p, binary_r, 1)
    )
    per_class = [_f1_by_hand(PREDS, REFS, c) for c in (0, 1, 2)]
    assert metric.compute(predictions=PREDS, references=REFS, average="macro")["f1"] == pytest.approx(
        sum(per_class) / 3
    )
    support = [REFS.count(c) for c in (0, 1, 2)]
    weighted = sum(f * n for f, n in zip(per_class, support)) / len(REFS)
    assert metric.compute(predictions=PREDS, references=REFS, average="weighted")["f1"] == pytest.approx(weighted)
    # micro-F1 over all classes of a single-label task equals accuracy
    assert metric.compute(predictions=PREDS, references=REFS, average="micro")["f1"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="binary"):
        metric.compute(predictions=PREDS, references=REFS)


def test_perplexity_module_is_exp_of_token_mean_nll(offline):
    metric, _ = load_metric("perplexity")
    metric.add_batch(negative_log_likelihood=[3.0, 1.0], num_tokens=[2, 1])
    metric.add_batch(negative_log_likelihood=[4.0], num_tokens=[3])
    out = metric.compute()
    assert out["perplexity"] == pytest.approx(math.exp(8.0 / 6))
    assert out["num_tokens"] == 6
    with pytest.raises(ValueError, match="at least one"):
        metric.compute(negative_log_likelihood=[0.0], num_tokens=[0])


def test_modules_load_by_path_with_evaluate_load(offline):
    for name in ("accuracy", "f1", "perplexity"):
        module = evaluate.load(str(metric_module_path(name)), keep_in_memory=True)
        assert isinstance(module, evaluate.EvaluationModule)


def test_no_silent_number_when_hub_is_required_or_input_empty(offline):
    with pytest.raises((FileNotFoundError, ConnectionError)):
        load_metric("accuracy", source="hub")
    metric, _ = load_metric("accuracy", source="local")
    with pytest.raises(ValueError, match="accuracy needs at least one prediction"):
        metric.compute(predictions=[], references=[])
    with pytest.raises(ValueError, match="no Hub module"):
        load_metric("perplexity", source="hub")


# -- fidelity maths --------------------------------------------------------------------------------------
def test_kl_and_js_on_known_distributions():
    p = torch.tensor([[0.5, 0.5]])
    q = torch.tensor([[0.9, 0.1]])
    kl = kl_divergence(p.log(), q.log())
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert kl.item() == pytest.approx(expected, rel=1e-5)
    m = (p + q) / 2
    js_expected = 0.5 * (p * (p / m).log()).sum() + 0.5 * (q * (q / m).log()).sum()
    assert js_divergence(p.log(), q.log()).item() == pytest.approx(js_expected.item(), rel=1e-5)
    assert js_divergence(p.log(), q.log()).item() == pytest.approx(js_divergence(q.log(), p.log()).item(), rel=1e-6)
    far = js_divergence(torch.tensor([[30.0, -30.0]]), torch.tensor([[-30.0, 30.0]]))
    assert far.item() == pytest.approx(math.log(2), rel=1e-4)
    assert top1_agreement(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[2.0, 0.0], [2.0, 0.0]])).tolist() == [
        True,
        False,
    ]


def test_fidelity_accumulator_means_over_items_and_refuses_empty():
    acc = FidelityAccumulator()
    t = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    s = torch.tensor([[2.0, 0.0], [2.0, 0.0], [1.0, 0.0]])
    acc.update(t[:2], s[:2])
    acc.update(t[2:], s[2:])
    res = acc.result()
    assert res.num_items == 3
    assert res.agreement_top1 == pytest.approx(2 / 3)
    assert res.kl_teacher_student == pytest.approx(kl_divergence(t, s).mean().item(), rel=1e-6)
    with pytest.raises(ValueError, match=r"no items to compute fidelity on \(empty set or everything masked\)"):
        FidelityAccumulator().result()


def test_causal_positions_mask_padding_on_either_side():
    ids = torch.tensor([[5, 6, 7, 0], [0, 0, 8, 9]])
    mask = torch.tensor([[1, 1, 1, 0], [0, 0, 1, 1]])
    valid, labels = causal_lm_valid_positions(ids, mask)
    assert valid.tolist() == [[True, True, False], [False, False, True]]
    assert labels[valid].tolist() == [6, 7, 9]


# -- on models ---------------------------------------------------------------------------------------------
def test_detect_task(tiny_bert_cls_dir, tiny_gpt2_dir, wordpiece_tokenizer):
    # one detect_task (hf_distill.tasks) returns the Task; the report stores its pipeline tag
    assert detect_task(_load(tiny_bert_cls_dir)[0]).pipeline_tag == "text-classification"
    assert detect_task(_load_lm(tiny_gpt2_dir)[0]).pipeline_tag == "text-generation"
    assert detect_task(tiny.bert_mlm(wordpiece_tokenizer, num_layers=1)).pipeline_tag == "fill-mask"
    with pytest.raises(
        ValueError, match=r"cannot tell the task from \['Linear'\]: .*AutoModelForSequenceClassification"
    ):
        detect_task(torch.nn.Linear(2, 2))


def test_classifier_against_itself_is_perfectly_faithful(tiny_bert_cls_dir, offline):
    model, tok = _load(tiny_bert_cls_dir)
    texts = [t for t, _ in tiny.SENTIMENT]
    labels = [y for _, y in tiny.SENTIMENT]
    ev = evaluate_models(model, model, tok, texts, labels, task="text-classification", batch_size=3)
    assert ev.fidelity.agreement_top1 == 1.0
    assert ev.fidelity.kl_teacher_student == 0.0
    assert ev.fidelity.js_divergence < 1e-6
    assert ev.fidelity.num_items == len(texts)
    assert ev.teacher_metrics == ev.student_metrics
    preds = model(**tok(texts, padding=True, return_tensors="pt")).logits.argmax(-1).tolist()
    assert ev.teacher_metrics["accuracy"] == pytest.approx(sum(p == y for p, y in zip(preds, labels)) / len(labels))


def test_classifier_student_fidelity_matches_direct_computation(tiny_bert_cls_dir, tiny_bert_cls_student_dir, offline):
    teacher, tok = _load(tiny_bert_cls_dir)
    student, _ = _load(tiny_bert_cls_student_dir)
    texts = [t for t, _ in tiny.SENTIMENT]
    ev = evaluate_models(
        teacher, student, tok, texts, [y for _, y in tiny.SENTIMENT], task="text-classification", batch_size=8
    )
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        lt, ls = teacher(**enc).logits, student(**enc).logits
    p, q = lt.softmax(-1), ls.softmax(-1)
    kl = (p * (p.log() - q.log())).sum(-1).mean().item()
    assert ev.fidelity.kl_teacher_student == pytest.approx(kl, rel=1e-4, abs=1e-7)
    assert ev.fidelity.agreement_top1 == pytest.approx((lt.argmax(-1) == ls.argmax(-1)).float().mean().item())


def test_lm_against_itself_and_padding_invariance(tiny_gpt2_dir, tiny_gpt2_student_dir, offline):
    model, tok = _load_lm(tiny_gpt2_dir)
    student, _ = _load_lm(tiny_gpt2_student_dir)
    texts = ["once upon a time", "the wolf ate the grandmother and waited in her bed", "a king"]
    self_ev = evaluate_models(model, model, tok, texts, task="text-generation", batch_size=3)
    assert self_ev.fidelity.agreement_top1 == 1.0
    assert self_ev.fidelity.kl_teacher_student == 0.0
    n_tokens = sum(len(tok(t)["input_ids"]) - 1 for t in texts)
    assert self_ev.details["scored_tokens"] == n_tokens == self_ev.fidelity.num_items
    # padded in one batch vs one text per batch: identical only if padding is masked everywhere
    batched = evaluate_models(model, student, tok, texts, task="text-generation", batch_size=3)
    single = evaluate_models(model, student, tok, texts, task="text-generation", batch_size=1)
    assert batched.teacher_metrics["perplexity"] == pytest.approx(single.teacher_metrics["perplexity"], rel=1e-5)
    assert batched.fidelity.kl_teacher_student == pytest.approx(single.fidelity.kl_teacher_student, rel=1e-4)
    assert batched.fidelity.agreement_top1 == single.fidelity.agreement_top1
    # perplexity equals exp of the mean next-token cross-entropy computed directly
    nll, count = 0.0, 0
    for text in texts:
        ids = tok(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logits = model(ids).logits[0, :-1]
        nll += torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
        count += ids.shape[1] - 1
    assert batched.teacher_metrics["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-5)


def test_masked_lm_against_itself(wordpiece_tokenizer, offline):
    mlm = tiny.bert_mlm(wordpiece_tokenizer, num_layers=1).eval()
    ev = evaluate_models(mlm, mlm, wordpiece_tokenizer, tiny.CORPUS[:6], task="fill-mask", batch_size=4)
    assert ev.fidelity.agreement_top1 == 1.0 and ev.fidelity.kl_teacher_student == 0.0
    assert ev.fidelity.num_items >= 6  # at least one masked token per text
    assert set(ev.teacher_metrics) == {"perplexity", "accuracy"}
    assert math.isfinite(ev.teacher_metrics["perplexity"]) and ev.teacher_metrics["perplexity"] > 1


def test_lm_with_a_different_tokenizer_is_refused(tiny_gpt2_dir, wordpiece_tokenizer):
    model, tok = _load_lm(tiny_gpt2_dir)
    with pytest.raises(ValueError, match="tokenizers differ"):
        evaluate_models(model, model, tok, ["a king"], task="text-generation", student_tokenizer=wordpiece_tokenizer)


def test_classification_needs_labels_and_matching_heads(tiny_bert_cls_dir, wordpiece_tokenizer):
    model, tok = _load(tiny_bert_cls_dir)
    with pytest.raises(ValueError, match="labels"):
        evaluate_models(model, model, tok, ["a king"], None, task="text-classification")
    three = tiny.bert_cls(wordpiece_tokenizer, num_layers=1, num_labels=3)
    with pytest.raises(ValueError, match="same task"):
        evaluate_models(model, three, tok, ["a king"], [0], task="text-classification")


# -- data -----------------------------------------------------------------------------------------------------
def test_load_texts_from_local_files(shared_data, tmp_path):
    sst = load_texts(shared_data / "sst2" / "validation.tsv", max_samples=5)
    assert len(sst.texts) == 5 and sst.text_column == "sentence" and sst.label_column == "label"
    assert all(y in (0, 1) for y in sst.labels)
    grimm = load_texts(shared_data / "grimm" / "valid.txt", max_samples=7)
    assert len(grimm.texts) == 7 and grimm.labels is None and all(t.strip() for t in grimm.texts)
    path = tmp_path / "rows.jsonl"
    path.write_text('{"review": "good", "y": 1}\n{"review": "bad", "y": 0}\n')
    rows = load_texts(path, text_column="review", label_column="y")
    assert rows.texts == ["good", "bad"] and rows.labels == [1, 0]
    with pytest.raises(ValueError, match="text column"):
        load_texts(path, text_column="nope")


def test_distillation_settings_reads_config_attributes():
    class Cfg:
        loss_type, temperature, alpha, learning_rate = "forward_kl", 2.0, 0.5, 1e-4

    out = distillation_settings(Cfg(), layers_kept=[1, 3], dataset="glue")
    assert out == {
        "loss_type": "forward_kl",
        "temperature": 2.0,
        "alpha": 0.5,
        "learning_rate": 1e-4,
        "layers_kept": [1, 3],
        "dataset": "glue",
    }
