"""Top-k cached soft targets for a causal LM on the Grimm corpus: fidelity, storage, and what KD buys.

1. Train a byte-level BPE tokenizer (vocabulary --vocab) and a GPT-2-family teacher from scratch on grimm/train.txt.
2. Per valid token (shifted, padding masked), on 400 training rows (where cached targets are used) and on valid.txt:
   - KL(full ‖ top-k): the full teacher distribution against its top-k reconstruction (top-k probabilities kept,
     the tail mass spread evenly over the other ids), in nats/token;
   - |KD(top-k) − KD(full)|: how far the training loss of a student moves when it reads top-k instead of full targets;
   - bytes/token actually stored by `generate_soft_targets` (sizes of the Arrow files divided by tokens).
3. Train two students (2 blocks copied from the teacher) for the same steps: CE only, and KD (alpha 0.5) from top-64
   cached targets; report held-out perplexity on valid.txt.

    python benchmarks/lm_topk.py [--vocab 8000 --teacher-steps 600 --student-steps 600 --threads 2]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from datasets import load_dataset  # noqa: E402
from transformers import DataCollatorForLanguageModeling, GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments  # noqa: E402

from hf_distill import DistillationConfig, DistillationTrainer, student_from_teacher  # noqa: E402
from hf_distill.core import losses
from hf_distill.students.tokenizer_training import train_bpe_tokenizer  # noqa: E402
from hf_distill.targets.cache import generate_soft_targets  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "grimm"


def arrow_bytes(ds) -> int:
    return sum(os.path.getsize(f["filename"]) for f in ds.cache_files)


@torch.no_grad()
def perplexity(model, data, collator, batch_size=32) -> float:
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(data), batch_size):
        batch = collator([data[j] for j in range(i, min(i + batch_size, len(data)))])
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        valid = losses.causal_lm_valid_mask(batch["labels"], batch["attention_mask"], batch["input_ids"])
        total += F.cross_entropy(logits[valid].float(), batch["labels"][:, 1:][valid], reduction="sum").item()
        count += int(valid.sum())
    return math.exp(total / count)


def grimm_text():
    """grimm/train.txt and valid.txt, one text per non-empty line."""
    raw = load_dataset("text", data_files={"train": str(DATA / "train.txt"), "valid": str(DATA / "valid.txt")})
    return raw.filter(lambda r: r["text"].strip() != "")


def grimm_lm_data(vocab: int, max_length: int):
    """Byte-level BPE tokenizer (up to `vocab` ids) trained on grimm/train.txt; train/valid tokenized; the collator."""
    raw = grimm_text()
    tok = train_bpe_tokenizer(raw["train"]["text"], vocab, model_max_length=max_length)
    data = raw.map(
        lambda b: tok(b["text"], truncation=True, max_length=max_length), batched=True, remove_columns=["text"]
    )
    return tok, data, DataCollatorForLanguageModeling(tok, mlm=False)


def train_args(seed: int) -> dict:
    """Trainer settings every run of these Grimm benchmarks shares (teacher and students)."""
    return dict(
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        seed=seed,
        logging_steps=100,
        per_device_train_batch_size=16,
        warmup_steps=50,
        lr_scheduler_type="cosine",
    )


def train_teacher(tok, data, collator, steps: int, max_length: int, seed: int, output_dir: str):
    """The GPT-2 4x256 teacher trained from scratch on grimm/train.txt; returns (teacher in eval mode, seconds)."""
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_layer=4,
        n_embd=256,
        n_head=4,
        n_positions=max_length,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    teacher = GPT2LMHeadModel(cfg)
    t0 = time.perf_counter()
    Trainer(
        model=teacher,
        args=TrainingArguments(output_dir=output_dir, max_steps=steps, learning_rate=1e-3, **train_args(seed)),
        train_dataset=data["train"],
        data_collator=collator,
    ).train()
    return teacher.eval(), time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--teacher-steps", type=int, default=600)
    p.add_argument("--student-steps", type=int, default=600)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    tok, data, collator = grimm_lm_data(a.vocab, a.max_length)
    tmp = Path(tempfile.mkdtemp())
    common = train_args(a.seed)
    teacher, teacher_seconds = train_teacher(tok, data, collator, a.teacher_steps, a.max_length, a.seed, str(tmp / "t"))
    teacher_ppl = perplexity(teacher, data["valid"], collator)

    # fidelity and storage: on training rows (where cached targets are used) and on held-out rows
    probe_student = student_from_teacher(teacher, num_layers=2).eval()
    fidelity = {}
    for split, ds in (("train", data["train"].select(range(400))), ("valid", data["valid"])):
        batch = collator([dict(r) for r in ds])
        with torch.no_grad():
            t_logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
            s_logits = probe_student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[
                :, :-1
            ]
        valid = losses.causal_lm_valid_mask(batch["labels"], batch["attention_mask"], batch["input_ids"])
        t_logits, s_logits = t_logits[valid], s_logits[valid]
        kd_full = losses.distillation_loss(s_logits, t_logits, temperature=1.0).mean().item()
        log_p = F.log_softmax(t_logits.float(), -1)
        entropy = -(log_p.exp() * log_p).sum(-1).mean().item()
        for k in (16, 64):
            top = log_p.topk(k, -1)
            tail = (1 - top.values.exp().sum(-1)).clamp_min(1e-12)
            recon = (tail / (log_p.shape[-1] - k)).log().unsqueeze(-1).expand_as(log_p).clone()
            recon.scatter_(-1, top.indices, top.values)
            kl_recon = (log_p.exp() * (log_p - recon)).sum(-1).mean().item()
            kd_k = (
                losses.topk_distillation_loss(s_logits, top.indices, top.values.half().float(), tail, temperature=1.0)
                .mean()
                .item()
            )
            fidelity[(split, k)] = (kl_recon, abs(kd_k - kd_full), tail.mean().item(), entropy)
    n_tokens = sum(len(x) for x in data["valid"]["input_ids"])
    storage = {
        "full": arrow_bytes(generate_soft_targets(teacher, data["valid"], cache_dir=tmp / "c", progress=False))
        / n_tokens
    }
    for k in (16, 64):
        cached = generate_soft_targets(
            teacher, data["valid"], top_k=k, temperature=1.0, cache_dir=tmp / "c", progress=False
        )
        storage[k] = arrow_bytes(cached) / n_tokens
    # Storage does not depend on the weights: measure it too at GPT-2's real vocabulary size (random tiny model).
    big = GPT2LMHeadModel(GPT2Config(vocab_size=50257, n_layer=1, n_embd=32, n_head=2, n_positions=a.max_length))
    few = data["valid"].select(range(40)).map(lambda r: {"input_ids": [i % 50257 for i in r["input_ids"]]})
    few_tokens = sum(len(x) for x in few["input_ids"])
    gpt2_storage = {
        "full": arrow_bytes(generate_soft_targets(big, few, cache_dir=tmp / "g", progress=False)) / few_tokens
    }
    gpt2_storage[64] = (
        arrow_bytes(generate_soft_targets(big, few, top_k=64, cache_dir=tmp / "g", progress=False)) / few_tokens
    )

    # students: CE only vs KD from top-64 cached targets, same steps and init
    train_cached = generate_soft_targets(
        teacher, data["train"], top_k=64, temperature=1.0, cache_dir=tmp / "c", progress=False
    )
    init = student_from_teacher(teacher, num_layers=2).state_dict()
    ppl = {}
    for name, alpha, ds in (("ce_only", 0.0, data["train"]), ("kd_top64", 0.5, train_cached)):
        student = student_from_teacher(teacher, num_layers=2)
        student.load_state_dict(init)
        args = DistillationConfig(
            output_dir=str(tmp / name),
            max_steps=a.student_steps,
            learning_rate=1e-3,
            alpha=alpha,
            temperature=1.0,
            **common,
        )
        DistillationTrainer(
            model=student, teacher_model=None, args=args, train_dataset=ds, processing_class=tok
        ).train()
        ppl[name] = perplexity(student, data["valid"], collator)

    print(
        f"# Grimm causal LM, top-k soft targets — {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {a.threads} threads"
    )
    print(f"# command: python {' '.join(sys.argv)}")
    print(
        f"teacher: GPT-2 4x256, vocab {len(tok)} (all merges this corpus allows up to --vocab {a.vocab}), "
        f"{a.teacher_steps} steps ({teacher_seconds:.0f} s), held-out perplexity {teacher_ppl:.2f}"
    )
    print(
        "| rows | k | KL(full ‖ top-k) nats/token | abs(KD top-k − KD full) nats/token | mean tail mass "
        "| teacher entropy |"
    )
    print("|---|---|---|---|---|---|")
    for (split, k), (kl, dkd, tail, ent) in fidelity.items():
        print(f"| {split} | {k} | {kl:.4f} | {dkd:.4f} | {tail:.3f} | {ent:.2f} |")
    print(
        f"storage, vocab {len(tok)}: full {storage['full']:.0f} B/token; top-16 {storage[16]:.0f} B/token "
        f"(1/{storage['full'] / storage[16]:.0f}); top-64 {storage[64]:.0f} B/token "
        f"(1/{storage['full'] / storage[64]:.0f})"
    )
    print(
        f"storage, GPT-2 vocab 50257: full {gpt2_storage['full']:.0f} B/token; top-64 {gpt2_storage[64]:.0f} B/token "
        f"(1/{gpt2_storage['full'] / gpt2_storage[64]:.0f})"
    )
    print(
        f"students (2 blocks, {a.student_steps} steps): held-out perplexity CE-only {ppl['ce_only']:.2f}, "
        f"KD top-64 {ppl['kd_top64']:.2f}"
    )


if __name__ == "__main__":
    main()
