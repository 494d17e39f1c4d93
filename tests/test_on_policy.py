"""On-policy (GKD) and sequence-level distillation: data, generation, item counts, accumulation, LoRA, refusals."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import DataCollatorForLanguageModeling, GenerationConfig

from hf_distill import DistillationConfig, DistillationTrainer
from hf_distill.training import on_policy
from hf_distill.training.on_policy import PromptCompletionCollator, tokenize_prompt_completion
from tests import tiny

PROMPT = 4


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
        max_new_tokens=6,
        alpha=1.0,
        temperature=2.0,
    )
    base.update(kw)
    return DistillationConfig(**base)


def models(tok):
    torch.manual_seed(0)
    teacher = tiny.gpt2(tok, num_layers=4)
    with torch.no_grad():
        teacher.lm_head.weight.mul_(20)  # a confident teacher (tied to wte): a KD term far from zero, clear argmaxes
    torch.manual_seed(1)
    student = tiny.gpt2(tok, num_layers=2)
    return teacher, student


def prompt_data(tok, n=8, max_length=24):
    return tokenize_prompt_completion(
        Dataset.from_dict({"text": tiny.CORPUS[:n]}), tok, max_length=max_length, prompt_tokens=PROMPT
    )


def reference_kd(student, teacher, batch, temperature):
    """Forward KL(p_teacher || q_student) · T² per predicted completion token, from scratch."""
    with torch.no_grad():
        s = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        t = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    valid = batch["labels"][:, 1:] != -100
    log_q = F.log_softmax(s[valid] / temperature, -1)
    log_p = F.log_softmax(t[valid] / temperature, -1)
    return (log_p.exp() * (log_p - log_q)).sum() * temperature**2 / valid.sum()


# ---- configuration -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("lmbda", 1.5, "[0, 1]"),
        ("max_new_tokens", 0, ">= 1"),
        ("generation_temperature", -0.1, ">= 0"),
        ("generation_top_p", 0.0, "(0, 1]"),
        ("generation_top_k", -1, ">= 0"),
        ("seq_kd", "yes", "true or false"),
    ],
)
def test_on_policy_fields_are_validated(tmp_path, field, value, words):
    with pytest.raises(ValueError, match=rf"DistillationConfig\.{field}=.*invalid") as err:
        config(tmp_path, **{field: value})
    assert words in str(err.value) and "\n" not in str(err.value)


def test_generates_only_when_lmbda_or_seq_kd(tmp_path):
    assert not config(tmp_path).generates
    assert config(tmp_path, lmbda=0.25).generates and config(tmp_path, seq_kd=True).generates


# ---- data --------------------------------------------------------------------------------------------------------


def test_prompt_completion_columns_and_plain_text(bpe_tokenizer):
    tok = bpe_tokenizer
    pairs = Dataset.from_dict(
        {
            "prompt": ["once upon a time", "the wolf", ""],
            "completion": [" there lived a king", " ate the grandmother", " no prompt"],
        }
    )
    rows = tokenize_prompt_completion(pairs, tok, max_length=32)
    assert len(rows) == 2  # an empty prompt gives nothing to continue from: dropped
    first = rows[0]
    prompt_ids = tok("once upon a time")["input_ids"]
    assert first["prompt_length"] == len(prompt_ids)
    assert first["input_ids"] == prompt_ids + tok(" there lived a king", add_special_tokens=False)["input_ids"] + [
        tok.eos_token_id
    ]

    text = Dataset.from_dict({"text": ["once upon a time there lived a king", "the"]})
    rows = tokenize_prompt_completion(text, tok, max_length=32, prompt_tokens=PROMPT)
    assert [r["prompt_length"] for r in rows] == [PROMPT]  # "the" (one token) has nothing after its prompt
    assert rows[0]["input_ids"] == tok("once upon a time there lived a king")["input_ids"]

    with pytest.raises(ValueError, match="prompt_tokens=N"):
        tokenize_prompt_completion(text, tok, max_length=32)
    with pytest.raises(ValueError, match=r"prompt_tokens=40 must be an integer in \[1, max_length=32\)"):
        tokenize_prompt_completion(text, tok, max_length=32, prompt_tokens=40)


def test_collator_labels_completion_tokens_only_and_left_pads_prompts(bpe_tokenizer):
    tok = bpe_tokenizer
    features = [
        {"input_ids": [5, 6, 7, 8, 9], "attention_mask": [1] * 5, "prompt_length": 2},
        {"input_ids": [10, 11, 12], "attention_mask": [1] * 3, "prompt_length": 1},
    ]
    batch = PromptCompletionCollator(tok)(features)
    pad = tok.pad_token_id
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [10, 11, 12, pad, pad]]
    assert batch["attention_mask"].tolist() == [[1] * 5, [1, 1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 7, 8, 9], [-100, 11, 12, -100, -100]]
    assert batch["prompt_input_ids"].tolist() == [[5, 6], [pad, 10]]
    assert batch["prompt_attention_mask"].tolist() == [[1, 1], [0, 1]]
    # plain rows (evaluation text) are all completion and carry no prompts
    plain = PromptCompletionCollator(tok)([{"input_ids": [5, 6, 7]}])
    assert plain["labels"].tolist() == [[5, 6, 7]] and "prompt_input_ids" not in plain


def test_completion_mask_stops_after_first_eos_even_when_pad_is_eos():
    completions = torch.tensor([[4, 0, 0, 0], [4, 5, 6, 7], [0, 3, 0, 3]])
    assert on_policy.completion_mask(completions, [0]).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert on_policy.completion_mask(completions, None).tolist() == [[1] * 4] * 3


def test_left_padded_generation_and_repacked_rows_equal_unpadded(bpe_tokenizer):
    """Generation reads left-padded prompts; the re-packed training rows give each row's unpadded logits."""
    tok = bpe_tokenizer
    _, student = models(tok)
    student.eval()
    texts = ["once upon a time there lived", "the wolf", "a dull , boring film"]
    features = [{"input_ids": tok(t)["input_ids"], "prompt_length": len(tok(t)["input_ids"])} for t in texts]
    batch = PromptCompletionCollator(tok)(features)
    assert (batch["prompt_attention_mask"] == 0).any()  # some prompts are really left-padded
    gen = GenerationConfig(max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=None)
    completions, mask = on_policy.generate_completions(
        student, batch["prompt_input_ids"], batch["prompt_attention_mask"], gen, seed=0
    )
    packed = on_policy.completion_batch(
        batch["prompt_input_ids"],
        batch["prompt_attention_mask"],
        completions,
        mask,
        tok.pad_token_id,
        on_policy.SOURCE_STUDENT,
    )
    with torch.no_grad():
        logits = student(input_ids=packed["input_ids"], attention_mask=packed["attention_mask"]).logits
        for i, f in enumerate(features):
            alone = torch.tensor([f["input_ids"]])
            out = student.generate(input_ids=alone, attention_mask=torch.ones_like(alone), generation_config=gen)
            assert completions[i].tolist() == out[0, alone.shape[1] :].tolist()
            n = out.shape[1]
            assert packed["input_ids"][i, :n].tolist() == out[0].tolist()
            assert packed["labels"][i].tolist() == [-100] * alone.shape[1] + out[0, alone.shape[1] :].tolist() + [
                -100
            ] * (packed["labels"].shape[1] - n)
            torch.testing.assert_close(logits[i, :n], student(input_ids=out).logits[0], atol=1e-5, rtol=0)


# ---- the trainer -------------------------------------------------------------------------------------------------


def test_lmbda_zero_is_todays_off_policy_kd(tmp_path, bpe_tokenizer):
    tok = bpe_tokenizer
    plain = Dataset.from_dict({"text": tiny.CORPUS[:16]}).map(
        lambda b: tok(b["text"]), batched=True, remove_columns=["text"]
    )
    weights = []
    for extra in ({}, dict(lmbda=0.0, max_new_tokens=3, generation_temperature=0.7, generation_top_k=5)):
        teacher, student = models(tok)
        cfg = config(tmp_path, max_steps=2, alpha=0.5, **extra)
        trainer = DistillationTrainer(
            model=student, teacher_model=teacher, args=cfg, train_dataset=plain, processing_class=tok
        )
        trainer.train()
        weights.append({k: v.clone() for k, v in student.state_dict().items()})
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k

    # prompt-completion data, lmbda = 0: nothing is generated and the KD loss is the reference over completions
    teacher, student = models(tok)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=config(tmp_path),
        processing_class=tok,
        train_dataset=prompt_data(tok),
    )
    student.generate = teacher.generate = None  # would fail if called
    batch = trainer.data_collator([prompt_data(tok)[i] for i in range(4)])
    batches, counts = trainer.get_batch_samples(iter([batch]), 1, torch.device("cpu"))
    assert batches[0] is batch
    assert counts[1] == (batch["labels"][:, 1:] != -100).sum()
    loss = trainer.compute_loss(student, batch, num_items_in_batch=counts)
    torch.testing.assert_close(loss, reference_kd(student, teacher, batch, 2.0), atol=1e-6, rtol=1e-5)


def test_lmbda_one_teacher_scores_exactly_the_generated_sequences(tmp_path, bpe_tokenizer):
    tok = bpe_tokenizer
    teacher, student = models(tok)
    cfg = config(tmp_path, lmbda=1.0, alpha=0.5)  # alpha < 1: CE is still dropped on the student's own samples
    data = prompt_data(tok)
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=cfg, train_dataset=data, processing_class=tok
    )
    generated, seen = [], []
    original = student.generate

    def spy_generate(**kw):
        out = original(**kw)
        generated.append((kw["input_ids"].clone(), kw["attention_mask"].clone(), out.clone()))
        return out

    student.generate = spy_generate
    teacher.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["input_ids"].clone()), with_kwargs=True)
    batch = trainer.data_collator([data[i] for i in range(4)])
    batches, counts = trainer.get_batch_samples(iter([batch]), 1, torch.device("cpu"))
    assert len(generated) == 1 and not seen  # the student generated; the teacher has not run yet
    gen = batches[0]
    loss = trainer.compute_loss(student, gen, num_items_in_batch=counts)
    assert len(seen) == 1

    prompts, prompt_mask, out = generated[0]
    n_new = 0
    for i in range(prompts.shape[0]):
        prompt = prompts[i][prompt_mask[i].bool()].tolist()
        completion = out[i, prompts.shape[1] :].tolist()  # no EOS in max_new_tokens for this model: all kept
        n_new += len(completion)
        row = gen["attention_mask"][i].bool()
        assert seen[0][i][row].tolist() == prompt + completion  # the teacher saw prompt + generated tokens
        assert gen["labels"][i][row].tolist() == [-100] * len(prompt) + completion
        assert prompt == batch["input_ids"][i, :PROMPT].tolist()
    assert counts.tolist() == [0, n_new, int(gen["attention_mask"].sum())]  # KD items = generated tokens; no CE
    assert trainer._component_sums["train"]["loss_ce"] == 0
    # the loss is the forward KL over the generated tokens only, per generated token (alpha · KD, no CE)
    torch.testing.assert_close(loss, 0.5 * reference_kd(student, teacher, gen, 2.0), atol=1e-6, rtol=1e-5)


def grads(trainer, batches):
    model = trainer.model
    model.zero_grad()
    samples, counts = trainer.get_batch_samples(iter(batches), len(batches), torch.device("cpu"))
    for b in samples:
        trainer.compute_loss(model, b, num_items_in_batch=counts).backward()
    return samples, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("mode", [dict(lmbda=1.0), dict(seq_kd=True)])
def test_gradient_accumulation_4x2_equals_1x8(tmp_path, bpe_tokenizer, mode):
    """Greedy decoding (generation_temperature=0) is batch-invariant (left padding is masked, positions follow the
    mask), so the 4 micro-batches generate what the one big batch generates; the test checks it. Sampling is
    reproducible per micro-batch (seeded) but draws other numbers for a batch of 8 than for 4 batches of 2, so it
    cannot be compared this way."""
    tok = bpe_tokenizer
    teacher, student = models(tok)
    cfg = config(tmp_path, generation_temperature=0.0, alpha=0.5, **mode)
    # prompts of 1 to 4 words: prompts and re-packed rows are padded differently in every micro-batch
    words = [line.split() for line in tiny.CORPUS[:8]]
    pairs = {
        "prompt": [" ".join(w[: 1 + i % 4]) for i, w in enumerate(words)],
        "completion": [" " + " ".join(w[1 + i % 4 :]) for i, w in enumerate(words)],
    }
    data = tokenize_prompt_completion(Dataset.from_dict(pairs), tok, max_length=24)
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=cfg, train_dataset=data, processing_class=tok
    )
    rows = [data[i] for i in range(8)]
    micro, g_micro = grads(trainer, [trainer.data_collator(rows[i : i + 2]) for i in range(0, 8, 2)])
    big, g_big = grads(trainer, [trainer.data_collator(rows)])

    def sequences(batches):
        return [r[m.bool()].tolist() for b in batches for r, m in zip(b["input_ids"], b["attention_mask"])]

    assert sequences(micro) == sequences(big)
    assert len({b["input_ids"].shape[1] for b in micro}) > 1  # the micro-batches are padded differently
    assert int(big[0][on_policy.SOURCE_KEY]) == (
        on_policy.SOURCE_STUDENT if "lmbda" in mode else on_policy.SOURCE_TEACHER
    )
    moved = max(g.abs().max().item() for g in g_big.values())
    assert moved > 1e-4
    for name in g_big:
        torch.testing.assert_close(g_micro[name], g_big[name], atol=1e-6, rtol=1e-4, msg=name)


def test_seq_kd_keeps_ce_and_lmbda_draws_are_seeded(tmp_path, bpe_tokenizer):
    tok = bpe_tokenizer
    teacher, student = models(tok)
    data = prompt_data(tok)
    cfg = config(tmp_path, lmbda=0.5, seq_kd=True, alpha=0.5, max_new_tokens=3)
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=cfg, train_dataset=data, processing_class=tok
    )
    batch = trainer.data_collator([data[i] for i in range(2)])
    keys = [(step, i) for step in range(3) for i in range(2)]
    made = {k: trainer.generated_batch(batch, *k) for k in keys}
    again = {k: trainer.generated_batch(batch, *k) for k in keys}
    sources = [int(made[k][on_policy.SOURCE_KEY]) for k in keys]
    assert sources == [int(again[k][on_policy.SOURCE_KEY]) for k in keys]  # draws follow (seed, step, micro-batch)
    assert all(torch.equal(made[k]["input_ids"], again[k]["input_ids"]) for k in keys)  # so does sampling
    assert set(sources) == {on_policy.SOURCE_STUDENT, on_policy.SOURCE_TEACHER}  # on-policy wins only when drawn
    teacher_batch = next(made[k] for k in keys if int(made[k][on_policy.SOURCE_KEY]) == on_policy.SOURCE_TEACHER)
    counts = trainer._count_items(teacher_batch)
    assert counts[0] == counts[1] > 0  # teacher text is ground truth for CE (Kim & Rush)
    trainer.compute_loss(student, teacher_batch)
    assert trainer._component_sums["train"]["loss_ce"] > 0


@pytest.mark.parametrize("lmbda,seq_kd", [(1.0, False), (0.0, True), (0.5, False)])
def test_the_student_generated_share_is_logged(tmp_path, bpe_tokenizer, lmbda, seq_kd):
    tok = bpe_tokenizer
    teacher, student = models(tok)
    cfg = config(
        tmp_path,
        lmbda=lmbda,
        seq_kd=seq_kd,
        max_new_tokens=2,
        max_steps=4,
        gradient_accumulation_steps=2,
        per_device_train_batch_size=2,
        logging_steps=2,
    )
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=cfg, train_dataset=prompt_data(tok), processing_class=tok
    )
    sources = []
    generated = trainer.generated_batch

    def recorded(*args, **kw):
        batch = generated(*args, **kw)
        sources.append(int(batch.get(on_policy.SOURCE_KEY, on_policy.SOURCE_DATA)) == on_policy.SOURCE_STUDENT)
        return batch

    trainer.generated_batch = recorded
    trainer.train()
    shares = [h["student_generated_share"] for h in trainer.state.log_history if "student_generated_share" in h]
    # one value per log (every 2 steps of 2 micro-batches): the share of those 4 micro-batches the student generated
    assert len(shares) == 2 and len(sources) == 8
    assert shares == [sum(sources[:4]) / 4, sum(sources[4:]) / 4]
    if lmbda == 1.0:
        assert shares == [1.0, 1.0]
    if seq_kd:
        assert shares == [0.0, 0.0]


def test_lora_student_trains_on_policy(tmp_path, bpe_tokenizer):
    from peft import LoraConfig

    tok = bpe_tokenizer
    teacher, student = models(tok)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True, task_type="CAUSAL_LM")
    cfg = config(tmp_path, lmbda=1.0, max_steps=3, per_device_train_batch_size=2, learning_rate=5e-2)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=cfg,
        train_dataset=prompt_data(tok),
        processing_class=tok,
        peft_config=lora,
    )
    calls = []
    peft_model = trainer.model
    original = peft_model.generate
    peft_model.generate = lambda **kw: calls.append(1) or original(**kw)
    trainer.train()
    assert len(calls) == 3  # one student generation per step, through the adapters
    assert peft_model.training  # back in train mode after generating
    state = peft_model.state_dict()
    lora_b = [v for k, v in state.items() if "lora_B" in k]
    assert lora_b and max(v.abs().max().item() for v in lora_b) > 0  # the adapters learnt (B starts at zero)
    base = {
        k.replace("base_model.model.", "").replace(".base_layer", ""): v for k, v in state.items() if "lora_" not in k
    }
    for k, v in before.items():
        assert torch.equal(base[k], v), k


def test_refusals_name_the_problem(tmp_path, bpe_tokenizer, wordpiece_tokenizer):
    tok = bpe_tokenizer
    teacher, student = models(tok)
    data = prompt_data(tok)
    with_soft = data.add_column("teacher_logits", [[[0.0] * len(tok)] * len(r) for r in data["input_ids"]])
    with pytest.raises(ValueError, match="cached soft targets cannot serve generated completions"):
        DistillationTrainer(
            model=student,
            teacher_model=teacher,
            args=config(tmp_path, lmbda=0.5),
            train_dataset=with_soft,
            processing_class=tok,
        )
    with pytest.raises(ValueError, match="lmbda > 0 .*needs a live teacher_model"):
        DistillationTrainer(
            model=student,
            teacher_model=None,
            args=config(tmp_path, lmbda=0.5),
            train_dataset=with_soft,
            processing_class=tok,
        )
    with pytest.raises(ValueError, match="seq_kd needs a live teacher_model to score the generated completions"):
        DistillationTrainer(
            model=student,
            teacher_model=None,
            args=config(tmp_path, seq_kd=True, alpha=0.0),
            train_dataset=data,
            processing_class=tok,
        )
    plain = Dataset.from_dict({"text": tiny.CORPUS[:4]}).map(
        lambda b: tok(b["text"]), batched=True, remove_columns=["text"]
    )
    with pytest.raises(ValueError, match="needs prompt-completion data.*tokenize_prompt_completion"):
        DistillationTrainer(
            model=student,
            teacher_model=teacher,
            args=config(tmp_path, lmbda=1.0),
            train_dataset=plain,
            processing_class=tok,
        )
    with pytest.raises(ValueError, match=r"exceed the models' 64 positions: lower max_new_tokens"):
        DistillationTrainer(
            model=student,
            teacher_model=teacher,
            args=config(tmp_path, lmbda=1.0, max_new_tokens=61),
            train_dataset=data,
            processing_class=tok,
        )
    bert_t, bert_s = tiny.bert_cls(wordpiece_tokenizer, 4), tiny.bert_cls(wordpiece_tokenizer, 2)
    with pytest.raises(ValueError, match="applies to causal LMs"):
        DistillationTrainer(
            model=bert_s, teacher_model=bert_t, args=config(tmp_path, lmbda=0.5), processing_class=wordpiece_tokenizer
        )
    # a collator that drops the prompts is caught at the batch
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, args=config(tmp_path, lmbda=1.0), train_dataset=data, processing_class=tok
    )
    lm_batch = DataCollatorForLanguageModeling(tok, mlm=False)(
        [{"input_ids": r["input_ids"]} for r in data.select(range(2))]
    )
    with pytest.raises(ValueError, match="need prompts"):
        trainer.generated_batch(lm_batch, 0, 0)


# ---- hf-distill run ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_run_trains_on_policy_from_a_plain_text_corpus(tmp_path):
    import json

    from hf_distill.pipeline.run import run_from_config
    from tests.test_pipeline import lm_config, markers

    cfg = lm_config(
        tmp_path,
        use_soft_targets=False,
        top_k=None,
        prompt_tokens=PROMPT,
        lmbda=0.5,
        seq_kd=True,
        max_new_tokens=8,
        loss_type="jsd",
        jsd_beta=0.5,
        logging_steps=1,
    )
    results = run_from_config(cfg)
    run = tmp_path / "lmrun"
    assert markers(run) == {"teacher", "student", "evaluate", "card"}
    assert results["student"]["global_step"] == 4
    report = json.loads((run / "student" / "distillation_report.json").read_text())
    assert report["distillation"]["lmbda"] == 0.5 and report["distillation"]["seq_kd"] is True
    assert report["distillation"]["prompt_tokens"] == PROMPT and report["distillation"]["max_new_tokens"] == 8
    assert report["student"]["metrics"]["perplexity"] > 1  # evaluated on whole held-out texts, as off-policy runs


def test_run_check_refuses_on_policy_settings_it_cannot_serve(tmp_path, tiny_bert_cls_dir):
    from hf_distill.pipeline.preflight import PreflightError
    from hf_distill.pipeline.run import run_from_config
    from tests.test_pipeline import cls_config, lm_config

    with pytest.raises(PreflightError) as err:
        run_from_config(lm_config(tmp_path, lmbda=0.5, max_new_tokens=70), check_only=True)
    problems = err.value.problems
    assert any("cached soft targets cannot serve them: set use_soft_targets: false" in p for p in problems)
    assert any("needs prompts: set prompt_tokens: N" in p for p in problems)
    with pytest.raises(PreflightError) as err:
        run_from_config(
            lm_config(tmp_path, lmbda=0.5, max_new_tokens=70, prompt_tokens=4, use_soft_targets=False), check_only=True
        )
    assert err.value.problems == [
        "prompt_tokens=4 + max_new_tokens=70 exceed the teacher's 64 positions: lower one of them"
    ]
    with pytest.raises(PreflightError, match="seq_kd applies to causal-lm .* for sequence-classification"):
        run_from_config(cls_config(tmp_path, tiny_bert_cls_dir, seq_kd=True), check_only=True)
    with pytest.raises(ValueError, match=r"prompt_tokens=32 must be in \[1, max_length=32\)"):
        run_from_config(lm_config(tmp_path, prompt_tokens=32), check_only=True)


def test_seq_kd_with_alpha_zero_is_sequence_level_kd_and_lmbda_needs_alpha(tmp_path, bpe_tokenizer):
    """alpha = 0 with seq_kd is Kim & Rush's sequence-level KD: CE on teacher-generated text only."""
    tok = bpe_tokenizer
    teacher, student = models(tok)
    data = prompt_data(tok)
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        processing_class=tok,
        train_dataset=data,
        args=config(tmp_path, seq_kd=True, alpha=0.0, max_steps=2),
    )
    trainer.train()
    assert trainer.state.log_history[0]["loss_ce"] > 0 and trainer.state.log_history[0]["loss_kd"] == 0
    with pytest.raises(ValueError, match="lmbda > 0 with alpha=0: .* set alpha > 0"):
        DistillationTrainer(
            model=student,
            teacher_model=teacher,
            processing_class=tok,
            train_dataset=data,
            args=config(tmp_path, lmbda=0.5, alpha=0.0),
        )


def test_a_trimmed_student_trains_on_policy_and_seq_kd_is_refused(tmp_path, bpe_tokenizer):
    """On-policy batches of a trimmed student: it samples its own ids, the teacher reads them mapped to its ids and
    its distribution is renormalised over the kept ids (training's map); seq_kd (teacher samples) is refused."""
    from hf_distill.students.vocabulary import restrict_to_kept_ids, to_teacher_ids, trim_vocabulary

    teacher, _ = models(bpe_tokenizer)
    student = tiny.gpt2(bpe_tokenizer, num_layers=2)
    student, tok = trim_vocabulary(student, bpe_tokenizer, tiny.CORPUS[:3] * 5, min_corpus_tokens=10)
    kept = student.config.vocabulary_kept_ids
    assert len(kept) < len(bpe_tokenizer)
    data = tokenize_prompt_completion(
        Dataset.from_dict({"text": tiny.CORPUS[:3] * 2}), tok, max_length=24, prompt_tokens=PROMPT
    )
    trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=config(tmp_path, lmbda=1.0),
        train_dataset=data,
        processing_class=tok,
        teacher_processing_class=bpe_tokenizer,
    )
    seen = []
    teacher.register_forward_pre_hook(lambda m, a, kw: seen.append(kw["input_ids"].clone()), with_kwargs=True)
    batches, counts = trainer.get_batch_samples(
        iter([trainer.data_collator([data[i] for i in range(4)])]), 1, torch.device("cpu")
    )
    gen = batches[0]
    loss = trainer.compute_loss(student, gen, num_items_in_batch=counts)
    assert torch.equal(seen[0], to_teacher_ids(gen["input_ids"], kept))  # the teacher read its own ids
    with torch.no_grad():
        s = student(input_ids=gen["input_ids"], attention_mask=gen["attention_mask"]).logits[:, :-1]
        t = teacher(input_ids=seen[0], attention_mask=gen["attention_mask"]).logits[:, :-1]
    valid = gen["labels"][:, 1:] != -100
    log_q = F.log_softmax(s[valid] / 2.0, -1)
    log_p = F.log_softmax(restrict_to_kept_ids(t[valid], kept) / 2.0, -1)
    expected = (log_p.exp() * (log_p - log_q)).sum() * 4.0 / valid.sum()
    torch.testing.assert_close(loss, expected, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="seq_kd needs the teacher's vocabulary in the student"):
        DistillationTrainer(
            model=student,
            teacher_model=teacher,
            args=config(tmp_path, seq_kd=True),
            train_dataset=data,
            processing_class=tok,
            teacher_processing_class=bpe_tokenizer,
        )
