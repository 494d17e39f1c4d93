"""DistillationTrainer on tiny models: normalisation, freezing, training, PEFT, compatibility errors."""

from __future__ import annotations

import json

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from transformers import DataCollatorForLanguageModeling, DataCollatorWithPadding, TrainerCallback

from hf_distill import DistillationConfig, DistillationTrainer, student_from_teacher
from hf_distill.core import losses
from hf_distill.training.trainer import PROJECTIONS_FILE
from tests import tiny


def config(tmp_path, **kw):
    base = dict(
        output_dir=str(tmp_path / "out"),
        report_to=[],
        use_cpu=True,
        per_device_train_batch_size=4,
        learning_rate=5e-3,
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    base.update(kw)
    return DistillationConfig(**base)


def lm_dataset(tok, n=32):
    return Dataset.from_dict({"text": tiny.CORPUS[:n]}).map(
        lambda b: tok(b["text"]), batched=True, remove_columns=["text"]
    )


def cls_dataset(tok, n=32):
    rows = (tiny.SENTIMENT * 8)[:n]
    ds = Dataset.from_dict({"text": [t for t, _ in rows], "label": [y for _, y in rows]})
    return ds.map(lambda b: tok(b["text"]), batched=True, remove_columns=["text"])


def collate_lm(tok, examples):
    return DataCollatorForLanguageModeling(tok, mlm=False)(examples)


# ---- gradient accumulation ---------------------------------------------------------------------------------------


def grads_of(trainer, model, batches):
    model.zero_grad()
    counts = trainer._get_num_items_in_batch(batches, torch.device("cpu"))
    for batch in batches:
        trainer.compute_loss(model, batch, num_items_in_batch=counts).backward()
    named = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    if trainer.projections is not None:
        named.update({f"proj.{n}": p.grad.clone() for n, p in trainer.projections.named_parameters()})
        trainer.projections.zero_grad()
    return named


def test_gradient_accumulation_equals_one_big_batch(tmp_path, bpe_tokenizer):
    tok = bpe_tokenizer
    teacher = tiny.gpt2(tok, num_layers=4, hidden=32)
    student = tiny.gpt2(tok, num_layers=2, hidden=16)  # narrower: exercises the hidden-state projections
    cfg = config(tmp_path, alpha=0.6, temperature=2.0, hidden_loss_weight=0.5, attention_loss_weight=0.5)
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=cfg, processing_class=tok)
    texts = [tiny.CORPUS[i][: 12 + 5 * i] for i in range(8)]  # lengths differ, so padding differs per micro-batch
    features = [tok(t) for t in texts]
    # labels with some -100 inside real tokens, as a prompt mask would produce
    micro = []
    for i in range(0, 8, 2):
        b = collate_lm(tok, features[i : i + 2])
        b["labels"][:, :2] = -100
        micro.append(b)
    big = collate_lm(tok, features)
    big["labels"][:, :2] = -100
    assert len({b["input_ids"].shape[1] for b in micro}) > 1
    student.eval()  # no dropout; tiny configs have none, this is belt and braces
    g_big = grads_of(trainer, student, [big])
    g_acc = grads_of(trainer, student, micro)
    assert g_big.keys() == g_acc.keys() and any(k.startswith("proj.") for k in g_big)
    for name in g_big:
        torch.testing.assert_close(g_acc[name], g_big[name], atol=1e-5, rtol=1e-4, msg=name)


def test_trainer_ga_4x2_matches_1x8_weights(tmp_path, bpe_tokenizer):
    tok = bpe_tokenizer
    teacher = tiny.gpt2(tok, num_layers=4)
    init = tiny.gpt2(tok, num_layers=2).state_dict()
    ds = lm_dataset(tok, n=16)
    finals = []
    for bs, ga in ((8, 1), (2, 4)):
        student = tiny.gpt2(tok, num_layers=2)
        student.load_state_dict(init)
        cfg = config(
            tmp_path / f"{bs}x{ga}",
            per_device_train_batch_size=bs,
            gradient_accumulation_steps=ga,
            max_steps=2,
            optim="sgd",
            learning_rate=0.5,
            lr_scheduler_type="constant",
            max_grad_norm=0.0,
        )
        trainer = DistillationTrainer(
            model=student,
            teacher_model=teacher,
            args=cfg,
            train_dataset=ds,
            processing_class=tok,
            data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
        )
        trainer.train()
        finals.append({k: v.detach().clone() for k, v in student.state_dict().items()})
    moved = max((finals[0][k] - init[k]).abs().max().item() for k in init)
    assert moved > 1e-3  # the step did something
    for k in init:
        torch.testing.assert_close(finals[1][k], finals[0][k], atol=1e-5, rtol=1e-4, msg=k)


# ---- alpha = 0, freezing ------------------------------------------------------------------------------------------


def test_alpha_zero_is_exactly_plain_cross_entropy(tmp_path, bpe_tokenizer, wordpiece_tokenizer):
    tok = bpe_tokenizer
    student = tiny.gpt2(tok, num_layers=2)
    trainer = DistillationTrainer(
        model=student, teacher_model=tiny.gpt2(tok, 4), args=config(tmp_path, alpha=0.0), processing_class=tok
    )
    batch = collate_lm(tok, [tok(t) for t in tiny.CORPUS[:3]])
    ours = trainer.compute_loss(student, batch)
    # The LM loss is chunked over the valid positions: the same CE, summed in another order (float rounding only).
    torch.testing.assert_close(ours, student(**batch).loss.float(), atol=0, rtol=1e-6)

    wtok = wordpiece_tokenizer
    cls_student = tiny.bert_cls(wtok, 2)
    trainer = DistillationTrainer(
        model=cls_student, teacher_model=tiny.bert_cls(wtok, 4), args=config(tmp_path, alpha=0.0), processing_class=wtok
    )
    batch = DataCollatorWithPadding(wtok)([{**wtok(t), "labels": y} for t, y in tiny.SENTIMENT[:4]])
    assert torch.allclose(trainer.compute_loss(cls_student, batch), cls_student(**batch).loss, atol=1e-7, rtol=0)


def test_label_smoothing_factor_reaches_the_hard_label_loss(tmp_path, wordpiece_tokenizer):
    tok, eps = wordpiece_tokenizer, 0.3
    student = tiny.bert_cls(tok, 2)
    with torch.no_grad():
        student.classifier.bias.copy_(torch.tensor([2.0, -1.0]))  # a confident model: smoothing changes its loss
    trainer = DistillationTrainer(
        model=student,
        teacher_model=tiny.bert_cls(tok, 4),
        processing_class=tok,
        args=config(tmp_path, alpha=0.0, label_smoothing_factor=eps),
    )
    rows = [tiny.SENTIMENT[i] for i in (0, 2, 4, 1)]  # 3 positive, 1 negative (balanced, smoothing would cancel)
    batch = DataCollatorWithPadding(tok)([{**tok(t), "labels": y} for t, y in rows])
    with torch.no_grad():
        loss = trainer.compute_loss(student, batch)
        log_q = torch.log_softmax(student(**{k: v for k, v in batch.items() if k != "labels"}).logits, -1)
    # per item: (1 - eps) * -log q_y + eps * mean over classes of -log q_c, averaged over the batch
    per_item = [(1 - eps) * -log_q[i, y] - eps * log_q[i].mean() for i, y in enumerate(batch["labels"].tolist())]
    assert loss.item() == pytest.approx(torch.stack(per_item).mean().item(), rel=1e-5)
    unsmoothed = torch.stack([-log_q[i, y] for i, y in enumerate(batch["labels"].tolist())]).mean().item()
    assert abs(loss.item() - unsmoothed) > 0.05


def test_teacher_frozen_untouched_and_not_in_optimizer(tmp_path, wordpiece_tokenizer):
    tok = wordpiece_tokenizer
    teacher = tiny.bert_cls(tok, 4)
    teacher.train()  # the trainer must put it in eval mode
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = student_from_teacher(teacher, 2)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=config(tmp_path, max_steps=4),
        train_dataset=cls_dataset(tok),
        processing_class=tok,
    )
    trainer.train()
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k
    teacher_ids = {id(p) for p in teacher.parameters()}
    in_optimizer = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert in_optimizer and not (teacher_ids & in_optimizer)
    assert trainer.model is student and trainer.teacher is teacher


# ---- training lowers the loss -------------------------------------------------------------------------------------


def eval_loss(trainer, ds):
    return trainer.evaluate(ds)["eval_loss"]


def train_and_compare(trainer, ds):
    before = eval_loss(trainer, ds)
    trainer.train()
    after = eval_loss(trainer, ds)
    assert after < before, (before, after)
    return before, after


def test_train_bert_sequence_classification(tmp_path, wordpiece_tokenizer):
    tok = wordpiece_tokenizer
    teacher = tiny.bert_cls(tok, 4)
    ds = cls_dataset(tok)
    trainer = DistillationTrainer(
        model=tiny.bert_cls(tok, 2),
        teacher_model=teacher,
        args=config(tmp_path, max_steps=15),
        train_dataset=ds,
        processing_class=tok,
    )
    train_and_compare(trainer, ds)
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert all(k in logged[0] for k in ("loss_ce", "loss_kd", "loss_hidden", "loss_attn"))


def test_train_bert_masked_lm_with_hidden_loss(tmp_path, wordpiece_tokenizer):
    tok = wordpiece_tokenizer
    teacher = tiny.bert_mlm(tok, 4)
    torch.manual_seed(1)
    student = tiny.bert_mlm(tok, 2, hidden=16)
    ds = lm_dataset(tok)
    collator = DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=0.3, seed=0)
    cfg = config(tmp_path, max_steps=15, hidden_loss_weight=1.0, hidden_loss="cosine", layer_mapping="1:2,2:4")
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=cfg, train_dataset=ds, processing_class=tok, data_collator=collator
    )
    assert trainer.layer_pairs == [(1, 2), (2, 4)] and trainer.projections is not None
    trainer.train()
    first, last = trainer.state.log_history[0], [h for h in trainer.state.log_history if "loss" in h][-1]
    assert last["loss_hidden"] < first["loss_hidden"]
    # the projections are saved beside the student, not inside it
    trainer.save_model(str(tmp_path / "saved"))
    proj = load_file(str(tmp_path / "saved" / PROJECTIONS_FILE))
    assert set(proj) == {"0.weight", "0.bias", "1.weight", "1.bias"} and proj["0.weight"].shape == (32, 16)
    student_keys = load_file(str(tmp_path / "saved" / "model.safetensors")).keys()
    assert not any("proj" in k for k in student_keys)


def test_train_gpt2_causal_lm(tmp_path, bpe_tokenizer):
    tok = bpe_tokenizer
    ds = lm_dataset(tok)
    trainer = DistillationTrainer(
        model=tiny.gpt2(tok, 2),
        teacher_model=tiny.gpt2(tok, 4),
        args=config(tmp_path, max_steps=15, loss_type="jsd", jsd_beta=0.5),
        train_dataset=ds,
        processing_class=tok,
        data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
    )
    train_and_compare(trainer, ds)


def test_lora_student_trains_only_adapters_and_saves_adapter(tmp_path, bpe_tokenizer):
    from peft import LoraConfig

    tok = bpe_tokenizer
    teacher = tiny.gpt2(tok, 4)
    base = student_from_teacher(teacher, 2)
    base_before = {k: v.clone() for k, v in base.state_dict().items()}
    ds = lm_dataset(tok)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True, task_type="CAUSAL_LM")
    trainer = DistillationTrainer(
        model=base,
        teacher_model=teacher,
        args=config(tmp_path, max_steps=15, learning_rate=2e-2),
        train_dataset=ds,
        processing_class=tok,
        peft_config=lora,
        data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
    )
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    train_and_compare(trainer, ds)
    for k, v in trainer.model.get_base_model().state_dict().items():
        if "lora_" not in k:
            assert torch.equal(v, base_before[k.replace(".base_layer", "")]), k
    trainer.save_model(str(tmp_path / "adapter"))
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["r"] == 4


# ---- teachers by path, vocabularies, labels -----------------------------------------------------------------------


def test_teacher_given_as_path(tmp_path, tiny_gpt2_dir, tiny_gpt2_student_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_gpt2_student_dir)
    student = AutoModelForCausalLM.from_pretrained(tiny_gpt2_student_dir)
    trainer = DistillationTrainer(
        model=student, teacher_model=str(tiny_gpt2_dir), args=config(tmp_path), processing_class=tok
    )
    assert type(trainer.teacher).__name__ == "GPT2LMHeadModel" and not trainer.teacher.training
    assert trainer.teacher.config.n_layer == 4 and not any(p.requires_grad for p in trainer.teacher.parameters())


def test_padded_teacher_vocabulary_uses_shared_ids(tmp_path, bpe_tokenizer):
    tok = bpe_tokenizer
    teacher = tiny.gpt2(tok, 4, vocab_size=len(tok) + 12)  # e.g. 50257 vs 50304: padding rows
    student = tiny.gpt2(tok, 2)
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=config(tmp_path, alpha=1.0), processing_class=tok
    )
    batch = collate_lm(tok, [tok(t) for t in tiny.CORPUS[:3]])
    loss = trainer.compute_loss(student, batch)
    valid = losses.causal_lm_valid_mask(batch["labels"], batch["attention_mask"], batch["input_ids"])
    with torch.no_grad():
        t_logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1][valid][
            :, : len(tok)
        ]
    s_logits = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1][valid]
    expected = losses.distillation_loss(s_logits, t_logits, temperature=2.0).sum() / valid.sum()
    torch.testing.assert_close(loss, expected)


def test_different_tokenizers_raise_before_training(tmp_path, bpe_tokenizer):
    other = tiny.bpe_tokenizer(tmp_path / "other", vocab_size=280)
    with pytest.raises(ValueError, match="different vocabularies"):
        DistillationTrainer(
            model=tiny.gpt2(bpe_tokenizer, 2),
            teacher_model=tiny.gpt2(bpe_tokenizer, 4),
            args=config(tmp_path),
            processing_class=bpe_tokenizer,
            teacher_processing_class=other,
        )
    small_teacher = tiny.gpt2(other, 4, vocab_size=200)
    with pytest.raises(ValueError, match="differ by more than padding"):
        DistillationTrainer(
            model=tiny.gpt2(bpe_tokenizer, 2),
            teacher_model=small_teacher,
            args=config(tmp_path),
            processing_class=bpe_tokenizer,
        )


def test_teacher_path_with_other_tokenizer_raises(tmp_path, bpe_tokenizer):
    other = tiny.bpe_tokenizer(tmp_path / "other", vocab_size=280)
    path = tmp_path / "other-teacher"
    tiny.gpt2(other, 2, vocab_size=len(bpe_tokenizer)).save_pretrained(path)
    other.save_pretrained(path)
    with pytest.raises(ValueError, match="different vocabularies"):
        DistillationTrainer(
            model=tiny.gpt2(bpe_tokenizer, 2),
            teacher_model=str(path),
            args=config(tmp_path),
            processing_class=bpe_tokenizer,
        )


def test_label_count_mismatch_raises(tmp_path, wordpiece_tokenizer):
    with pytest.raises(ValueError, match="teacher predicts 3 labels but the student 2"):
        DistillationTrainer(
            model=tiny.bert_cls(wordpiece_tokenizer, 2),
            teacher_model=tiny.bert_cls(wordpiece_tokenizer, 4, num_labels=3),
            args=config(tmp_path),
        )


def test_task_mismatch_and_bad_arguments_raise(tmp_path, wordpiece_tokenizer, bpe_tokenizer):
    with pytest.raises(ValueError, match="teacher is a causal-lm model but the student is a sequence-classification"):
        DistillationTrainer(
            model=tiny.bert_cls(wordpiece_tokenizer, 2),
            teacher_model=tiny.gpt2(bpe_tokenizer, 2),
            args=config(tmp_path),
        )
    from transformers import TrainingArguments

    with pytest.raises(TypeError, match="must be a DistillationConfig"):
        DistillationTrainer(
            model=tiny.gpt2(bpe_tokenizer, 2),
            teacher_model=tiny.gpt2(bpe_tokenizer, 2),
            args=TrainingArguments(output_dir=str(tmp_path), report_to=[]),
        )
    with pytest.raises(ValueError, match="layer_mapping pair 3:1 is out of range"):
        DistillationTrainer(
            model=tiny.gpt2(bpe_tokenizer, 2),
            teacher_model=tiny.gpt2(bpe_tokenizer, 4),
            args=config(tmp_path, hidden_loss_weight=1.0, layer_mapping="3:1"),
        )


def test_fully_masked_batch_gives_zero_not_nan(tmp_path, bpe_tokenizer):
    tok = bpe_tokenizer
    student = tiny.gpt2(tok, 2)
    trainer = DistillationTrainer(
        model=student, teacher_model=tiny.gpt2(tok, 4), args=config(tmp_path), processing_class=tok
    )
    batch = collate_lm(tok, [tok(t) for t in tiny.CORPUS[:2]])
    batch["labels"][:] = -100
    loss = trainer.compute_loss(student, batch)
    assert torch.isfinite(loss) and loss.item() == 0.0


def test_components_reach_callbacks(tmp_path, wordpiece_tokenizer):
    seen = []

    class Spy(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            seen.append(dict(logs))

    tok = wordpiece_tokenizer
    ds = cls_dataset(tok, 16)
    trainer = DistillationTrainer(
        model=tiny.bert_cls(tok, 2),
        teacher_model=tiny.bert_cls(tok, 4),
        args=config(tmp_path, max_steps=2, eval_strategy="steps", eval_steps=2),
        train_dataset=ds,
        eval_dataset=ds,
        processing_class=tok,
        callbacks=[Spy()],
    )
    trainer.train()
    train_logs = [s for s in seen if "loss" in s]
    eval_logs = [s for s in seen if "eval_loss" in s]
    assert train_logs and eval_logs
    row = train_logs[0]
    assert row["loss"] == pytest.approx(0.5 * row["loss_kd"] + 0.5 * row["loss_ce"], rel=1e-3)
    # the eval after the last step logs the KD loss of the final student on the eval set, recomputed here
    student, teacher = trainer.model.eval(), trainer.teacher
    with torch.no_grad():
        per_item = [
            losses.distillation_loss(
                student(input_ids=ids).logits,
                teacher(input_ids=ids).logits,
                trainer.args.loss_type,
                temperature=trainer.args.temperature,
            )
            for ids in (torch.tensor([r["input_ids"]]) for r in ds)
        ]
    expected = torch.cat(per_item).mean().item()
    assert expected > 1e-4  # two different models: a KD loss of zero would be a logging bug
    assert eval_logs[0]["eval_loss_kd"] == pytest.approx(expected, rel=1e-4, abs=1e-6)  # logged rounded to 6 places


def test_peft_teacher_is_frozen_and_used(tmp_path, bpe_tokenizer):
    from peft import LoraConfig, get_peft_model

    tok = bpe_tokenizer
    base = tiny.gpt2(tok, 4)
    teacher = get_peft_model(
        base, LoraConfig(r=2, target_modules=["c_attn"], fan_in_fan_out=True, task_type="CAUSAL_LM")
    )
    with torch.no_grad():
        for name, p in teacher.named_parameters():
            if "lora_B" in name:
                p.fill_(0.5)  # a non-zero adapter: the teacher's output differs from its base model
    student = tiny.gpt2(tok, 2)
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=config(tmp_path, alpha=1.0), processing_class=tok
    )
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    batch = collate_lm(tok, [tok(t) for t in tiny.CORPUS[:3]])
    with_adapter = trainer.compute_loss(student, batch).item()
    with teacher.disable_adapter():
        without = trainer.compute_loss(student, batch).item()
    assert with_adapter != pytest.approx(without, rel=1e-3)  # the adapter's output is what the student sees


def test_projections_train_with_the_student_and_resume_from_a_checkpoint(tmp_path, wordpiece_tokenizer):
    from transformers import AutoModelForMaskedLM

    from hf_distill.training.projections import StudentWithProjections

    tok = wordpiece_tokenizer
    teacher = tiny.bert_mlm(tok, 4)
    ds = lm_dataset(tok, 16)

    def make(student):
        cfg = config(
            tmp_path,
            max_steps=2,
            hidden_loss_weight=1.0,
            layer_mapping="1:2,2:4",
            weight_decay=0.1,
            save_strategy="steps",
            save_steps=2,
        )
        return DistillationTrainer(
            model=student,
            teacher_model=teacher,
            args=cfg,
            train_dataset=ds,
            processing_class=tok,
            data_collator=DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=0.3, seed=0),
        )

    student = tiny.bert_mlm(tok, 2, hidden=16)
    trainer = make(student)
    # the Trainer's model is the student with its projections, so its optimizer and checkpoints cover them
    assert isinstance(trainer.model, StudentWithProjections) and trainer.model.student is student
    before = {k: v.clone() for k, v in trainer.projections.state_dict().items()}
    trainer.train()
    proj_ids = {id(p) for p in trainer.projections.parameters()}
    groups = [g for g in trainer.optimizer.param_groups if proj_ids & {id(p) for p in g["params"]}]
    assert groups and all(g["weight_decay"] == 0.0 for g in groups)
    assert any(g["weight_decay"] == 0.1 for g in trainer.optimizer.param_groups)  # the student's weights decay
    assert any(not torch.equal(before[k], v) for k, v in trainer.projections.state_dict().items())
    checkpoint = tmp_path / "out" / "checkpoint-2"
    saved = load_file(str(checkpoint / PROJECTIONS_FILE))
    assert AutoModelForMaskedLM.from_pretrained(checkpoint).config.hidden_size == 16  # a plain student folder
    # a fresh trainer resuming from the checkpoint gets the trained projections back
    resumed = make(tiny.bert_mlm(tok, 2, hidden=16))
    resumed.train(resume_from_checkpoint=str(checkpoint))
    for k, v in saved.items():
        torch.testing.assert_close(resumed.projections.state_dict()[k], v)
