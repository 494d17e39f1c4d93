"""DistillationTrainer's default LM loss is the chunked one: equal (values and gradients) to the materialised path.

`compute_loss(..., return_outputs=True)` still asks the model for its logits, so it runs the materialised loss: the
reference each case compares the default (chunked) call against, on the same trainer and batch.
"""

from __future__ import annotations

import copy

import pytest
import torch
from datasets import Dataset
from torch import nn
from transformers import DataCollatorForLanguageModeling

from hf_distill import DistillationConfig, DistillationTrainer
from hf_distill.core.tasks import CAUSAL_LM, unwrap
from hf_distill.students.vocabulary import trim_vocabulary
from hf_distill.targets.cache import SoftTargetCollator, generate_soft_targets
from hf_distill.training import on_policy
from tests import tiny


def config(tmp_path, **kw):
    base = dict(
        output_dir=str(tmp_path / "out"),
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        temperature=2.0,
        alpha=0.5,
        chunk_size=64,
    )  # a few positions per chunk
    base.update(kw)
    return DistillationConfig(**base)


def lm_batch(tok, n=3, pad_left=False):
    tok.padding_side = "left" if pad_left else "right"
    return DataCollatorForLanguageModeling(tok, mlm=False)([tok(t) for t in tiny.CORPUS[:n]])


def loss_and_grads(trainer, model, batch, materialised):
    model.zero_grad()
    heads = []
    handle = unwrap(model).get_output_embeddings().register_forward_hook(lambda m, a, out: heads.append(out.shape[-2]))
    try:
        result = trainer.compute_loss(model, batch, return_outputs=materialised)
    finally:
        handle.remove()
    loss = result[0] if materialised else result
    loss.backward()
    # the chunked call never lets the model compute logits for its positions
    assert (heads[0] == 0) != materialised
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same(trainer, model, batch):
    chunked = loss_and_grads(trainer, model, batch, materialised=False)
    reference = loss_and_grads(trainer, model, batch, materialised=True)
    torch.testing.assert_close(chunked[0], reference[0], rtol=1e-5, atol=1e-5)
    assert chunked[1].keys() == reference[1].keys() and reference[1]
    for name in reference[1]:
        torch.testing.assert_close(chunked[1][name], reference[1][name], rtol=1e-5, atol=1e-5, msg=name)
    return chunked[0]


@pytest.mark.parametrize("loss_type,alpha", [("forward_kl", 0.5), ("jsd", 1.0), ("skew_reverse_kl", 0.0), ("mse", 0.3)])
def test_live_teacher_causal_lm_tied_embeddings(tmp_path, bpe_tokenizer, loss_type, alpha):
    tok = bpe_tokenizer
    student, teacher = tiny.gpt2(tok, 1), tiny.gpt2(tok, 2)
    assert student.lm_head.weight is student.transformer.wte.weight  # tied
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        processing_class=tok,
        args=config(tmp_path, loss_type=loss_type, alpha=alpha, label_smoothing_factor=0.1),
    )
    assert_same(trainer, student, lm_batch(tok, pad_left=True))


def test_lm_head_with_bias_and_padded_teacher_vocabulary(tmp_path, bpe_tokenizer):
    tok = bpe_tokenizer
    student, teacher = tiny.gpt2(tok, 1), tiny.gpt2(tok, 2, vocab_size=len(tok) + 12)  # 300 vs 312 (padding rows)
    torch.manual_seed(0)
    student.lm_head = nn.Linear(32, len(tok), bias=True)  # untied, with a bias
    student.config.tie_word_embeddings = False
    trainer = DistillationTrainer(model=student, teacher_model=teacher, processing_class=tok, args=config(tmp_path))
    _, grads = loss_and_grads(trainer, student, lm_batch(tok), materialised=False)
    assert "lm_head.bias" in grads
    assert_same(trainer, student, lm_batch(tok))


def test_masked_lm(tmp_path, wordpiece_tokenizer):
    tok = wordpiece_tokenizer
    student, teacher = tiny.bert_mlm(tok, 1), tiny.bert_mlm(tok, 2)
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, processing_class=tok, args=config(tmp_path, loss_type="reverse_kl")
    )
    torch.manual_seed(0)
    batch = DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=0.3)([tok(t) for t in tiny.CORPUS[:4]])
    assert_same(trainer, student, batch)


@pytest.mark.parametrize("top_k", [None, 8])
def test_cached_soft_targets(tmp_path, bpe_tokenizer, top_k):
    tok = bpe_tokenizer
    teacher, student = tiny.gpt2(tok, 2), tiny.gpt2(tok, 1)
    data = Dataset.from_dict({"text": tiny.CORPUS[:6]}).map(
        lambda b: tok(b["text"]), batched=True, remove_columns=["text"]
    )
    cached = generate_soft_targets(
        teacher, data, top_k=top_k, temperature=2.0, cache_dir=tmp_path / "c", progress=False, logprob_dtype="float32"
    )
    trainer = DistillationTrainer(
        model=student,
        teacher_model=None,
        processing_class=tok,
        train_dataset=cached,
        args=config(tmp_path, loss_type="jsd", jsd_beta=0.3),
    )
    collator = SoftTargetCollator(DataCollatorForLanguageModeling(tok, mlm=False), CAUSAL_LM)
    batch = collator([cached[i] for i in range(4)])
    assert_same(trainer, student, batch)


def test_trimmed_student_live_teacher(tmp_path, bpe_tokenizer):
    teacher = tiny.gpt2(bpe_tokenizer, 2)
    student, tok = trim_vocabulary(tiny.gpt2(bpe_tokenizer, 1), bpe_tokenizer, tiny.CORPUS[:3], min_corpus_tokens=10)
    assert student.config.vocab_size < teacher.config.vocab_size
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, processing_class=tok, args=config(tmp_path, loss_type="skew_kl")
    )
    assert_same(trainer, student, lm_batch(tok))


def test_peft_lora_on_lm_head_is_honoured(tmp_path, bpe_tokenizer):
    from peft import LoraConfig

    tok = bpe_tokenizer
    student, teacher = tiny.gpt2(tok, 1), tiny.gpt2(tok, 2)
    student.config.tie_word_embeddings = False
    student.lm_head.weight = nn.Parameter(student.lm_head.weight.detach().clone())
    lora = LoraConfig(r=4, target_modules=["c_attn", "lm_head"], lora_dropout=0.0, init_lora_weights=False)
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, processing_class=tok, args=config(tmp_path), peft_config=lora
    )
    model = trainer.model
    loss = assert_same(trainer, model, lm_batch(tok))
    # the adapters of lm_head change the loss: they are part of the head the chunks use
    head = model.get_output_embeddings()
    with torch.no_grad():
        head.lora_B["default"].weight.mul_(3.0)
    assert abs(trainer.compute_loss(model, lm_batch(tok)).item() - loss.item()) > 1e-4
    _, grads = loss_and_grads(trainer, model, lm_batch(tok), materialised=False)
    assert any("lm_head.lora_A" in n for n in grads)


def test_student_generated_batch_has_no_ce(tmp_path, bpe_tokenizer):
    tok = bpe_tokenizer
    student, teacher = tiny.gpt2(tok, 1), tiny.gpt2(tok, 2)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, processing_class=tok, args=config(tmp_path))
    batch = {**lm_batch(tok), on_policy.SOURCE_KEY: torch.tensor(on_policy.SOURCE_STUDENT)}
    assert_same(trainer, student, batch)
    assert trainer._component_sums["train"]["loss_ce"].item() == 0.0


def test_hidden_state_loss_alongside(tmp_path, bpe_tokenizer):
    tok = bpe_tokenizer
    student, teacher = tiny.gpt2(tok, 1), tiny.gpt2(tok, 2, hidden=48)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        processing_class=tok,
        args=config(tmp_path, hidden_loss_weight=0.5, layer_mapping="last"),
    )
    assert_same(trainer, trainer.model, lm_batch(tok))


def test_eval_loss_only_is_chunked_and_equal(tmp_path, bpe_tokenizer):
    tok = bpe_tokenizer
    student, teacher = tiny.gpt2(tok, 1), tiny.gpt2(tok, 2)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, processing_class=tok, args=config(tmp_path))
    batch = lm_batch(tok)
    student.eval()
    loss, logits, _ = trainer.prediction_step(student, batch, prediction_loss_only=True)
    assert logits is None
    reference, _, _ = trainer.prediction_step(copy.deepcopy(student), batch, prediction_loss_only=False)
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6)


def test_lm_evaluation_is_chunked_and_equals_full_logits(bpe_tokenizer, monkeypatch):
    """evaluate_models on LMs projects hidden states a few positions at a time: the same perplexity and fidelity
    as the full logits, and no model computes logits for its positions."""
    from hf_distill.evaluation import pair as evaluation
    from hf_distill.evaluation.fidelity import FidelityAccumulator
    from hf_distill.training import chunked_losses

    tok = bpe_tokenizer
    teacher, student = tiny.gpt2(tok, 2).eval(), tiny.gpt2(tok, 1).eval()
    texts = tiny.CORPUS[:5]
    widths = []
    for m in (teacher, student):
        m.lm_head.register_forward_hook(lambda mod, a, out: widths.append(out.shape[-2]))
    monkeypatch.setattr(chunked_losses, "positions_per_chunk", lambda size, vocab: 7)
    ev = evaluation.evaluate_models(teacher, student, tok, texts, task="text-generation", batch_size=5)
    assert widths and set(widths) == {0}
    tok.padding_side = "right"
    enc = tok(texts, padding=True, return_tensors="pt")
    valid = CAUSAL_LM.valid_mask(enc["input_ids"], enc["attention_mask"], enc["input_ids"])
    with torch.no_grad():
        lt, ls = (m(**enc).logits[:, :-1][valid] for m in (teacher, student))
    targets = enc["input_ids"][:, 1:][valid]
    fid = FidelityAccumulator()
    fid.update(lt, ls)
    expected = fid.result()
    assert ev.fidelity.agreement_top1 == expected.agreement_top1
    assert ev.fidelity.kl_teacher_student == pytest.approx(expected.kl_teacher_student, rel=1e-5)
    assert ev.fidelity.js_divergence == pytest.approx(expected.js_divergence, rel=1e-5)
    for logits, metrics in ((lt, ev.teacher_metrics), (ls, ev.student_metrics)):
        ppl = torch.nn.functional.cross_entropy(logits, targets).exp().item()
        assert metrics["perplexity"] == pytest.approx(ppl, rel=1e-5)
