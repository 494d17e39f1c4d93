"""Cached soft targets: loss equal to the live teacher, cache reuse and invalidation, transfer sets."""

from __future__ import annotations

import json

import pytest
import torch
from datasets import Dataset
from transformers import DataCollatorForLanguageModeling

from hf_distill import DistillationConfig, DistillationTrainer
from hf_distill.targets.cache import CACHE_MANIFEST, generate_soft_targets, soft_target_info
from tests import tiny


def config(tmp_path, **kw):
    base = dict(
        output_dir=str(tmp_path / "out"),
        report_to=[],
        use_cpu=True,
        per_device_train_batch_size=4,
        save_strategy="no",
        disable_tqdm=True,
        learning_rate=5e-3,
        logging_steps=1,
        seed=0,
    )
    base.update(kw)
    return DistillationConfig(**base)


class CountingForward:
    """Counts teacher forward calls."""

    def __init__(self, model):
        self.calls = 0
        model.register_forward_hook(self._hook)

    def _hook(self, *args):
        self.calls += 1


@pytest.fixture
def lm_data(bpe_tokenizer):
    texts = [tiny.CORPUS[i][: 10 + 4 * i] for i in range(10)]  # different lengths
    return Dataset.from_dict({"text": texts}).map(
        lambda b: bpe_tokenizer(b["text"]), batched=True, remove_columns=["text"]
    )


@pytest.fixture
def cls_data(wordpiece_tokenizer):
    rows = tiny.SENTIMENT
    ds = Dataset.from_dict({"text": [t for t, _ in rows], "label": [y for _, y in rows]})
    return ds.map(lambda b: wordpiece_tokenizer(b["text"]), batched=True, remove_columns=["text"])


def batch_of(trainer, ds):
    return trainer.data_collator([dict(r) for r in ds])


def live_and_cached_losses(tmp_path, student, teacher, tok, cached, collator=None, **cfg):
    live = DistillationTrainer(
        model=student, teacher_model=teacher, args=config(tmp_path, **cfg), processing_class=tok, data_collator=collator
    )
    off = DistillationTrainer(
        model=student,
        teacher_model=None,
        args=config(tmp_path, **cfg),
        processing_class=tok,
        data_collator=collator,
        train_dataset=cached,
    )
    plain_cols = [c for c in cached.column_names if not c.startswith("teacher_")]
    b_live = batch_of(live, cached.select_columns(plain_cols))
    b_off = batch_of(off, cached)
    assert any(k.startswith("teacher_") for k in b_off)
    with torch.no_grad():
        return live.compute_loss(student, b_live), off.compute_loss(student, b_off)


def test_full_logits_loss_equals_live_teacher_causal_lm(tmp_path, bpe_tokenizer, lm_data):
    teacher, student = tiny.gpt2(bpe_tokenizer, 4), tiny.gpt2(bpe_tokenizer, 2)
    cached = generate_soft_targets(teacher, lm_data, batch_size=3, cache_dir=tmp_path / "cache", progress=False)
    assert len(cached["teacher_logits"][0]) == len(lm_data["input_ids"][0])
    for loss_type in ("forward_kl", "jsd", "mse"):
        live, off = live_and_cached_losses(
            tmp_path, student, teacher, bpe_tokenizer, cached, alpha=0.7, loss_type=loss_type, temperature=2.0
        )
        torch.testing.assert_close(off, live, atol=1e-6, rtol=1e-6)


def test_full_logits_loss_equals_live_teacher_classification(tmp_path, wordpiece_tokenizer, cls_data):
    teacher, student = tiny.bert_cls(wordpiece_tokenizer, 4), tiny.bert_cls(wordpiece_tokenizer, 2)
    cached = generate_soft_targets(teacher, cls_data, batch_size=3, cache_dir=tmp_path / "cache", progress=False)
    assert len(cached["teacher_logits"][0]) == 2
    live, off = live_and_cached_losses(tmp_path, student, teacher, wordpiece_tokenizer, cached, alpha=0.5)
    torch.testing.assert_close(off, live, atol=1e-6, rtol=1e-6)


def test_topk_equal_to_vocab_is_exact_and_small_k_is_bounded(tmp_path, bpe_tokenizer, lm_data):
    teacher, student = tiny.gpt2(bpe_tokenizer, 4), tiny.gpt2(bpe_tokenizer, 2)
    vocab = teacher.config.vocab_size
    full = generate_soft_targets(
        teacher,
        lm_data,
        top_k=vocab,
        temperature=2.0,
        logprob_dtype="float32",
        cache_dir=tmp_path / "c",
        progress=False,
    )
    live, off = live_and_cached_losses(tmp_path, student, teacher, bpe_tokenizer, full, alpha=1.0, temperature=2.0)
    torch.testing.assert_close(off, live, atol=1e-5, rtol=1e-5)
    # float16 storage of the log-probabilities: within 1e-3 relative
    half = generate_soft_targets(
        teacher, lm_data, top_k=vocab, temperature=2.0, cache_dir=tmp_path / "c", progress=False
    )
    _, off16 = live_and_cached_losses(tmp_path, student, teacher, bpe_tokenizer, half, alpha=1.0, temperature=2.0)
    assert abs(off16.item() - live.item()) <= 1e-3 * live.item()
    # small k: the bucketed KL never exceeds the full KL (data-processing inequality)
    for k in (4, 32):
        small = generate_soft_targets(
            teacher, lm_data, top_k=k, temperature=2.0, cache_dir=tmp_path / "c", progress=False
        )
        _, off_k = live_and_cached_losses(tmp_path, student, teacher, bpe_tokenizer, small, alpha=1.0, temperature=2.0)
        assert 0 < off_k.item() <= live.item() + 1e-3


def test_topk_temperature_mismatch_is_refused(tmp_path, bpe_tokenizer, lm_data):
    teacher = tiny.gpt2(bpe_tokenizer, 4)
    cached = generate_soft_targets(teacher, lm_data, top_k=8, temperature=2.0, cache_dir=tmp_path / "c", progress=False)
    assert soft_target_info(cached)["temperature"] == 2.0
    with pytest.raises(ValueError, match="cached at temperature 2.0 but DistillationConfig.temperature=4.0"):
        DistillationTrainer(
            model=tiny.gpt2(bpe_tokenizer, 2),
            teacher_model=None,
            args=config(tmp_path, temperature=4.0),
            train_dataset=cached,
            processing_class=bpe_tokenizer,
        )


def test_cache_reused_without_teacher_forward_and_invalidated(tmp_path, bpe_tokenizer, lm_data):
    teacher = tiny.gpt2(bpe_tokenizer, 4)
    counter = CountingForward(teacher)
    cache = tmp_path / "cache"
    first = generate_soft_targets(teacher, lm_data, top_k=8, batch_size=4, cache_dir=cache, progress=False)
    assert counter.calls == 3  # 10 rows in batches of 4
    second = generate_soft_targets(teacher, lm_data, top_k=8, batch_size=4, cache_dir=cache, progress=False)
    assert counter.calls == 3  # reused: no forward
    assert second["teacher_topk_ids"] == first["teacher_topk_ids"]
    # top_k changes -> regenerate
    generate_soft_targets(teacher, lm_data, top_k=16, batch_size=4, cache_dir=cache, progress=False)
    assert counter.calls == 6
    # data change -> regenerate
    generate_soft_targets(teacher, lm_data.select(range(8)), top_k=8, batch_size=4, cache_dir=cache, progress=False)
    assert counter.calls == 8
    # teacher weights change (same object, retrained in place) -> regenerate
    with torch.no_grad():
        teacher.lm_head.weight.add_(0.01)
    generate_soft_targets(teacher, lm_data, top_k=8, batch_size=4, cache_dir=cache, progress=False)
    assert counter.calls == 11
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 4


def test_truncated_or_corrupted_cache_is_detected_and_regenerated(tmp_path, bpe_tokenizer, lm_data, caplog):
    teacher = tiny.gpt2(bpe_tokenizer, 4)
    counter = CountingForward(teacher)
    cache = tmp_path / "cache"
    good = generate_soft_targets(teacher, lm_data, top_k=8, cache_dir=cache, progress=False)["teacher_topk_ids"][:]
    (folder,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    arrow = max(folder.glob("*.arrow"), key=lambda p: p.stat().st_size)
    data = arrow.read_bytes()
    arrow.write_bytes(data[: len(data) // 2])  # truncated
    calls = counter.calls
    again = generate_soft_targets(teacher, lm_data, top_k=8, cache_dir=cache, progress=False)
    assert counter.calls > calls and "truncated" in caplog.text
    assert again["teacher_topk_ids"][:] == good
    # a flipped byte of the same length
    arrow = max(folder.glob("*.arrow"), key=lambda p: p.stat().st_size)
    data = bytearray(arrow.read_bytes())
    data[len(data) // 2] ^= 0xFF
    arrow.write_bytes(bytes(data))
    calls = counter.calls
    generate_soft_targets(teacher, lm_data, top_k=8, cache_dir=cache, progress=False)
    assert counter.calls > calls and "corrupted" in caplog.text
    # a missing manifest (interrupted write)
    (folder / CACHE_MANIFEST).unlink()
    calls = counter.calls
    generate_soft_targets(teacher, lm_data, top_k=8, cache_dir=cache, progress=False)
    assert counter.calls > calls
    assert json.loads((folder / CACHE_MANIFEST).read_text())["key"]["top_k"] == 8


def test_unlabelled_rows_get_only_the_distillation_term(tmp_path, wordpiece_tokenizer, cls_data):
    teacher, student = tiny.bert_cls(wordpiece_tokenizer, 4), tiny.bert_cls(wordpiece_tokenizer, 2)
    cached = generate_soft_targets(teacher, cls_data, cache_dir=tmp_path / "c", progress=False)
    labelled, unlabelled = cached.select(range(4)), cached.select(range(4, 8))
    unlabelled = unlabelled.map(lambda r: {"label": -1})
    mixed = DistillationTrainer(
        model=student,
        teacher_model=None,
        args=config(tmp_path, alpha=0.5),
        train_dataset=cached,
        processing_class=wordpiece_tokenizer,
    )
    with torch.no_grad():
        b_lab = batch_of(mixed, labelled)
        b_unl = batch_of(mixed, unlabelled)
        mixed._component_sums["train"].clear()
        mixed.compute_loss(student, b_unl)
        assert mixed._component_sums["train"]["loss_ce"].item() == 0.0
        assert mixed._component_sums["train"]["loss_kd"].item() > 0.0
        # CE over a mixed batch equals CE over its labelled rows alone (normalised by labelled count)
        both = mixed.data_collator([dict(r) for r in labelled] + [dict(r) for r in unlabelled])
        mixed._component_sums["train"].clear()
        mixed.compute_loss(student, both)
        ce_mixed = mixed._component_sums["train"]["loss_ce"].item()
        mixed._component_sums["train"].clear()
        mixed.compute_loss(student, b_lab)
        assert ce_mixed == pytest.approx(mixed._component_sums["train"]["loss_ce"].item(), rel=1e-6)
    # rows whose label is missing (None) count as unlabelled too
    none_rows = [dict(r, label=None) for r in unlabelled]
    assert mixed.data_collator(none_rows)["labels"].tolist() == [-1, -1, -1, -1]


def test_training_from_cache_runs_without_teacher_and_keeps_columns(tmp_path, bpe_tokenizer, lm_data):
    teacher = tiny.gpt2(bpe_tokenizer, 4)
    cached = generate_soft_targets(
        teacher, lm_data, top_k=16, temperature=2.0, cache_dir=tmp_path / "c", progress=False
    )
    trainer = DistillationTrainer(
        model=tiny.gpt2(bpe_tokenizer, 2),
        teacher_model=None,
        args=config(tmp_path, max_steps=6, temperature=2.0, alpha=1.0),
        train_dataset=cached,
        processing_class=bpe_tokenizer,
    )
    loader = trainer.get_train_dataloader()
    assert "teacher_topk_ids" in next(iter(loader))  # remove_unused_columns kept them
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert logs[-1]["loss_kd"] > 0 and logs[-1]["loss_kd"] < logs[0]["loss_kd"]


def test_errors(tmp_path, bpe_tokenizer, wordpiece_tokenizer, lm_data, cls_data):
    teacher = tiny.gpt2(bpe_tokenizer, 4)
    with pytest.raises(ValueError, match="top_k=0 is invalid"):
        generate_soft_targets(teacher, lm_data, top_k=0, cache_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="tokenized data set"):
        generate_soft_targets(teacher, Dataset.from_dict({"text": ["a"]}), cache_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="top_k applies to token tasks"):
        generate_soft_targets(
            tiny.bert_cls(wordpiece_tokenizer, 2), cls_data, top_k=2, cache_dir=tmp_path, progress=False
        )
    with pytest.raises(ValueError, match="no teacher"):
        DistillationTrainer(
            model=tiny.gpt2(bpe_tokenizer, 2),
            teacher_model=None,
            args=config(tmp_path),
            train_dataset=lm_data,
            processing_class=bpe_tokenizer,
        )
    mlm_data = generate_soft_targets(
        tiny.bert_mlm(wordpiece_tokenizer, 2), cls_data.remove_columns("label"), cache_dir=tmp_path, progress=False
    )
    with pytest.raises(ValueError, match="random masking"):
        DistillationTrainer(
            model=tiny.bert_mlm(wordpiece_tokenizer, 2),
            teacher_model=None,
            args=config(tmp_path),
            train_dataset=mlm_data,
            processing_class=wordpiece_tokenizer,
            data_collator=DataCollatorForLanguageModeling(wordpiece_tokenizer),
        )
