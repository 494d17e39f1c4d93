"""Side by side with TRL 1.16's `DistillationTrainer` on a tiny Llama pair: the same `Dataset` goes into both trainers
unchanged, and on the identical batch TRL generated, both compute the same loss where their definitions agree.

    python benchmarks/trl_parity.py [--json OUT.json]

For each data set (standard prompt-only: ``prompt`` strings; conversational prompt-only: ``prompt`` message lists,
rendered by the tokenizer's chat template, here a continuation template that renders them as the same text, so the
two data sets give the same tokens) and each divergence (TRL's ``beta`` 0 / 0.5 / 1 against our
``loss_type`` forward_kl / jsd with ``jsd_beta`` 0.5 / reverse_kl), TRL's trainer generates completions for a batch
(its own ``_generate_and_score_completions``) and computes its loss; the same prompts and completions are packed for
our trainer (`hf_distill.training.on_policy.completion_batch`, as our on-policy batches are) and our
`compute_loss` runs on that batch (generation happens before it, in `get_batch_samples`), so nothing is
re-sampled. Both trainers are built from the same `Dataset` object, as a TRL user's script would pass it.

Where the definitions agree (temperature 1, alpha 1: distillation only, loss per completion token, no T² factor at
T = 1) the two losses must match within 1e-5; the script exits 1 otherwise. Where they differ (documented, not
compared): TRL's ``temperature`` is also the sampling temperature and its loss has no T² factor, while ours
(`temperature`) softens the loss only, scaled by T² by default, with sampling at ``generation_temperature``; our
``alpha < 1`` mixes a CE term (TRL has none; on student-generated batches ours drops it too); TRL pads prompts on the
left and concatenates completions, ours packs each row right (rotary positions are relative, so a Llama gives the
same logits either way, up to float rounding).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import torch

TOLERANCE = 1e-5
PAIRS = {0.0: ("forward_kl", 0.5), 0.5: ("jsd", 0.5), 1.0: ("reverse_kl", 0.5)}
TEMPLATE = (
    "{%- for message in messages -%}{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ message['content'] }}{{ eos_token }}{% endgeneration %}"
    "{%- else -%}{{ message['content'] }}{%- endif -%}{%- endfor -%}"
)
TEXTS = [
    "once upon a time there lived a king and a queen who had no children",
    "the wolf ate the grandmother and waited in her bed for the girl",
    "hansel and gretel found a house made of bread and cake and sugar",
    "the little tailor killed seven flies at one blow and was proud of it",
] * 8


def tiny_pair(vocab: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    def build(layers: int, seed: int):
        torch.manual_seed(seed)
        config = LlamaConfig(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=64,
            tie_word_embeddings=True,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=0,
        )
        return LlamaForCausalLM(config).eval()

    teacher = build(4, 0)
    with torch.no_grad():  # a confident teacher (head tied to the embeddings): divergences far from zero
        teacher.lm_head.weight.mul_(20)
    return teacher, build(2, 1)


def datasets():
    from datasets import Dataset

    prompts = [" ".join(t.split()[:4]) for t in TEXTS[:8]]
    return {
        "standard prompt-only": Dataset.from_dict({"prompt": prompts}),
        "conversational prompt-only": Dataset.from_dict(
            {"prompt": [[{"role": "user", "content": p}] for p in prompts]}
        ),
    }


def compare(data, tok, teacher, student, beta: float, out: Path) -> dict:
    from trl import DistillationConfig as TRLConfig
    from trl import DistillationTrainer as TRLTrainer

    from hf_distill import DistillationConfig, DistillationTrainer, on_policy

    tok.padding_side = "left"  # TRL needs left padding
    trl = TRLTrainer(
        model=student,
        teacher_model=teacher,
        train_dataset=data,
        processing_class=tok,
        args=TRLConfig(
            output_dir=str(out / "trl"),
            report_to=[],
            use_cpu=True,
            beta=beta,
            temperature=1.0,
            max_completion_length=8,
            per_device_train_batch_size=4,
            max_steps=1,
            disable_tqdm=True,
            seed=0,
        ),
    )
    trl.model.train()
    batch = trl._generate_and_score_completions([data[i] for i in range(4)])
    theirs = float(trl.compute_loss(trl.model, batch))
    loss_type, jsd_beta = PAIRS[beta]
    ours_trainer = DistillationTrainer(
        model=student,
        teacher_model=teacher,
        train_dataset=data,
        processing_class=tok,
        args=DistillationConfig(
            output_dir=str(out / "ours"),
            report_to=[],
            use_cpu=True,
            loss_type=loss_type,
            jsd_beta=jsd_beta,
            temperature=1.0,
            alpha=1.0,
            max_new_tokens=8,
            lmbda=1.0,  # the user's setting for prompt-only rows; compute_loss itself generates nothing
            per_device_train_batch_size=4,
            max_steps=1,
            disable_tqdm=True,
            seed=0,
        ),
    )
    packed = on_policy.completion_batch(
        batch["prompt_ids"],
        batch["prompt_mask"],
        batch["completion_ids"],
        batch["completion_mask"],
        tok.pad_token_id,
        on_policy.SOURCE_STUDENT,
    )
    ours = float(ours_trainer.compute_loss(student, packed))
    return {
        "beta": beta,
        "ours": f"{loss_type}" + (f" (jsd_beta {jsd_beta})" if loss_type == "jsd" else ""),
        "trl_loss": theirs,
        "our_loss": ours,
        "abs_diff": abs(theirs - ours),
        "completion_tokens": int(batch["completion_mask"].sum()),
        "ok": math.isfinite(theirs) and abs(theirs - ours) <= TOLERANCE,
    }


def main(argv: list[str] | None = None) -> int:
    import transformers
    import trl

    from hf_distill.students.tokenizer_training import train_bpe_tokenizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    transformers.logging.set_verbosity_error()
    tok = train_bpe_tokenizer(TEXTS, 300, model_max_length=64)
    tok.chat_template = TEMPLATE
    teacher, student = tiny_pair(len(tok))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in datasets().items():
            for beta in PAIRS:
                row = {"data": name, **compare(data, tok, teacher, student, beta, Path(tmp))}
                rows.append(row)
                print(
                    f"{name:28s} TRL beta {beta:<4} vs ours {row['ours']:22s} TRL {row['trl_loss']:.8f} "
                    f"ours {row['our_loss']:.8f} |diff| {row['abs_diff']:.2e} ({row['completion_tokens']} tokens) "
                    f"{'ok' if row['ok'] else 'DIFFERENT'}"
                )
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
