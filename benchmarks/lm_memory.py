"""Peak memory and step time of an LM distillation step against plain fine-tuning and TRL (issue 21).

Models: a GPT-2-family student (1 block, n_embd 64) and teacher (2 blocks, n_embd 64), random init, vocabulary
``--vocab``, ``--seq`` positions, batch ``--batch`` (8), random token ids (a word-level tokenizer ``t0 t1 ...`` makes
the same ids readable to TRL). Every row runs in a fresh process, one at a time, under an address-space limit
(``--limit-gb``; a row over it reports "does not fit"), for ``--steps`` optimizer steps (SGD); it reports the peak
RSS growth over the process's size before training (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and the median
step time of the steps after the first.

Rows:
  ce               plain `transformers.Trainer`, the student's own CE (it materialises its logits)
  kd_materialised  our DistillationTrainer as it was before the chunked loss (the model's full logits, both models);
                   kept here only, as the reference (alpha 1, live teacher)
  kd_live          ours now: live teacher, alpha 1, forward KL, chunked (the default)
  kd_topk          ours now, from a top-64 soft-target cache (built once by a separate process)
  kd_onpolicy      ours now, lmbda 1: the student generates the completion (``--seq``/2 prompt + ``--seq``/2 new
                   tokens), the teacher scores it
  trl_gkd          TRL 1.16 `GKDTrainer`, lmbda 0, beta 0 (forward KL), the same batches as kd_live
  trl_distill      TRL 1.16 `DistillationTrainer` (on-policy, beta 0), the same prompt and completion lengths as
                   kd_onpolicy

    python benchmarks/lm_memory.py --vocab 50257 --seq 512
    python benchmarks/lm_memory.py --vocab 151936 --seq 1024 --rows ce kd_live
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
ROWS = ["ce", "kd_materialised", "kd_live", "kd_topk", "kd_onpolicy", "trl_gkd", "trl_distill"]


def tokenizer(vocab: int):
    """A word-level tokenizer whose token ``t<i>`` is id i (eos = pad = the last id)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = {f"t{i}": i for i in range(vocab)}
    backend = Tokenizer(models.WordLevel(words, unk_token="t0"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    last = f"t{vocab - 1}"
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=last, pad_token=last, unk_token="t0")


def models(a):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    def gpt2(layers: int):
        torch.manual_seed(a.seed + layers)
        return GPT2LMHeadModel(
            GPT2Config(
                vocab_size=a.vocab,
                n_positions=a.seq,
                n_embd=64,
                n_layer=layers,
                n_head=2,
                resid_pdrop=0.0,
                embd_pdrop=0.0,
                attn_pdrop=0.0,
                bos_token_id=a.vocab - 1,
                eos_token_id=a.vocab - 1,
                pad_token_id=a.vocab - 1,
            )
        )

    return gpt2(1), gpt2(2)


def data(a):
    import torch
    from datasets import Dataset

    g = torch.Generator().manual_seed(a.seed)
    ids = torch.randint(0, a.vocab - 1, (a.batch * a.steps, a.seq), generator=g).tolist()
    return Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * a.seq for _ in ids], "labels": ids})


def common_args(a, out: str) -> dict:
    return dict(
        output_dir=out,
        report_to=[],
        use_cpu=True,
        per_device_train_batch_size=a.batch,
        max_steps=a.steps,
        optim="sgd",
        learning_rate=1e-3,
        save_strategy="no",
        logging_steps=10_000,
        disable_tqdm=True,
        seed=a.seed,
        dataloader_num_workers=0,
    )


def topk_cache(a, teacher, train):
    from hf_distill.targets.cache import generate_soft_targets

    cache = Path(a.work) / f"topk-v{a.vocab}-t{a.seq}-b{a.batch}-s{a.steps}"
    return generate_soft_targets(
        teacher, train, top_k=64, temperature=1.0, cache_dir=cache, progress=False, batch_size=1
    )


def trainer_for(row: str, a, out: str):
    import torch
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments, default_data_collator

    from hf_distill import DistillationConfig, DistillationTrainer
    from hf_distill.training import on_policy

    student, teacher = models(a)
    train = data(a)
    tok = tokenizer(a.vocab)
    if row == "ce":
        return Trainer(
            model=student,
            args=TrainingArguments(**common_args(a, out)),
            train_dataset=train,
            data_collator=default_data_collator,
        )
    kd = dict(common_args(a, out), alpha=1.0, temperature=1.0, loss_type="forward_kl")
    if row == "kd_materialised":

        class Materialised(DistillationTrainer):
            def _chunked_head(self, model, return_outputs):  # the model's full logits, as before chunking
                return None

        return Materialised(
            model=student,
            teacher_model=teacher,
            args=DistillationConfig(**kd),
            train_dataset=train,
            data_collator=default_data_collator,
        )
    if row == "kd_live":
        return DistillationTrainer(
            model=student,
            teacher_model=teacher,
            args=DistillationConfig(**kd),
            train_dataset=train,
            data_collator=default_data_collator,
        )
    if row == "kd_topk":
        cached = topk_cache(a, teacher, train.remove_columns("labels"))
        return DistillationTrainer(
            model=student, teacher_model=None, args=DistillationConfig(**kd), train_dataset=cached, processing_class=tok
        )
    half = a.seq // 2
    prompts = [ids[:half] for ids in train["input_ids"]]
    if row == "kd_onpolicy":
        pc = Dataset.from_dict({"input_ids": [p + p for p in prompts], on_policy.PROMPT_LENGTH: [half] * len(prompts)})
        args = DistillationConfig(**kd, lmbda=1.0, max_new_tokens=half, generation_temperature=1.0)
        return DistillationTrainer(
            model=student, teacher_model=teacher, args=args, train_dataset=pc, processing_class=tok
        )
    if row == "trl_gkd":
        from trl.experimental.gkd import GKDConfig, GKDTrainer

        def collate(rows):
            batch = default_data_collator(rows)
            batch["prompts"] = batch["input_ids"][:, :half]
            batch["prompt_attention_mask"] = batch["attention_mask"][:, :half]
            return batch

        args = GKDConfig(
            **common_args(a, out),
            lmbda=0.0,
            beta=0.0,
            temperature=1.0,
            max_new_tokens=half,
            bf16=False,
            gradient_checkpointing=False,
            max_length=a.seq,
            disable_dropout=True,
        )
        return GKDTrainer(
            model=student,
            teacher_model=teacher,
            args=args,
            train_dataset=train,
            processing_class=tok,
            data_collator=collate,
        )
    if row == "trl_distill":
        from trl import DistillationConfig as TrlConfig
        from trl import DistillationTrainer as TrlTrainer

        text = Dataset.from_dict({"prompt": [" ".join(f"t{i}" for i in p) for p in prompts]})
        args = TrlConfig(
            **common_args(a, out),
            beta=0.0,
            temperature=1.0,
            max_completion_length=half,
            bf16=False,
            gradient_checkpointing=False,
            disable_dropout=True,
        )
        trainer = TrlTrainer(model=student, teacher_model=teacher, args=args, train_dataset=text, processing_class=tok)
        torch.manual_seed(a.seed)
        return trainer
    raise ValueError(f"unknown row {row!r}; choose from {', '.join(ROWS)}")


def run_row(row: str, a) -> dict:
    """Train one row in this (fresh) process; peak RSS growth and step times."""
    import torch
    from transformers import TrainerCallback

    torch.set_num_threads(a.threads)
    out = tempfile.mkdtemp()
    trainer = trainer_for(row, a, out)
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *args, **kw):
            self.start = time.perf_counter()

        def on_step_end(self, *args, **kw):
            times.append(time.perf_counter() - self.start)

    trainer.add_callback(Clock())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    trainer.train()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return {"row": row, "peak_bytes": peak, "step_s": statistics.median(times[1:] or times), "steps": len(times)}


SAME_BATCH = ["ce", "kd", "kd_full", "trl_distill", "trl_gkd"]


def same_batch(a) -> dict:
    """Loss + backward of one fixed prompt–completion batch, alternating the trainers round by round in this process.

    The batch stands for a generated one (``--seq``/2 prompt ids, ``--seq``/2 completion ids, the loss on the
    completion only), so generation, which differs between the trainers, is left out: ``kd`` is our
    `DistillationTrainer.compute_loss` (live teacher, chunked, forward KL), ``trl_distill`` TRL's
    `DistillationTrainer.compute_loss` (beta 0) on the same ids as prompt/completion tensors, ``trl_gkd`` TRL's
    `GKDTrainer.compute_loss` (beta 0, full logits), ``ce`` the student's own CE over the whole sequence (the ``ce``
    row's step without the optimizer) and ``kd_full`` ours over the whole sequence (the ``kd_live`` row's step).
    Returns the median seconds of each after the first round, and its loss.
    """
    import torch

    torch.set_num_threads(a.threads)
    half = a.seq // 2
    g = torch.Generator().manual_seed(a.seed)
    ids = torch.randint(0, a.vocab - 1, (a.batch, a.seq), generator=g)
    mask = torch.ones_like(ids)
    completion_labels = ids.clone()
    completion_labels[:, :half] = -100
    n_items = torch.tensor(float(a.batch * half))
    calls = {}
    for name in a.same_batch:
        row = {"kd": "kd_live", "kd_full": "kd_live"}.get(name, name)
        trainer = trainer_for(row, a, tempfile.mkdtemp())
        model = trainer.model.train()
        if name in ("ce", "kd_full"):
            inputs = {"input_ids": ids, "attention_mask": mask, "labels": ids}
        elif name == "trl_distill":
            inputs = {
                "prompt_ids": ids[:, :half],
                "prompt_mask": mask[:, :half],
                "completion_ids": ids[:, half:],
                "completion_mask": mask[:, half:],
                "num_items_in_batch": n_items,
            }
        else:
            inputs = {"input_ids": ids, "attention_mask": mask, "labels": completion_labels}
        calls[name] = (trainer, model, inputs)

    def step(name):
        trainer, model, inputs = calls[name]
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        if name == "ce":
            loss = model(**inputs).loss
        else:
            loss = trainer.compute_loss(model, dict(inputs), num_items_in_batch=n_items)
        loss.backward()
        return time.perf_counter() - start, loss.item()

    times = {name: [] for name in calls}
    values = {}
    for _ in range(a.rounds):
        for name in calls:
            seconds, values[name] = step(name)
            times[name].append(seconds)
    if a.profile:
        from torch.profiler import ProfilerActivity, profile

        for name in calls:
            if name == "ce":
                continue
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                step(name)
            print(f"--- profile of {name}", file=sys.stderr)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12), file=sys.stderr)
    # (seconds, loss): the KD losses agree where the trainers compute the same divergence on the same batch
    return {name: (statistics.median(t[1:] or t), values[name]) for name, t in times.items()}


def measure(row: str, a) -> dict:
    """`run_row` in a fresh process under the memory limit."""
    limit = int(a.limit_gb * 2**30)

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    cmd = [sys.executable, __file__, "--one", row, *sys.argv[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "TOKENIZERS_PARALLELISM": "false"}
    if row == "kd_topk":  # the cache is built by its own process first, so its peak is not counted
        subprocess.run([sys.executable, __file__, "--prepare", *sys.argv[1:]], env=env, check=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, preexec_fn=limit_memory)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        fits = "MemoryError" in proc.stderr or "memory" in tail.lower() or proc.returncode < 0
        return {"row": row, "error": "does not fit" if fits else tail[:200]}
    return json.loads(lines[-1])


def table(rows: list[dict], a) -> str:
    by = {r["row"]: r for r in rows}
    # A row given twice (e.g. `--rows ce ... ce`, bracketing the others on a loaded machine) is compared by its mean.
    ces = [r for r in rows if r["row"] == "ce" and "error" not in r]
    ce = {k: statistics.mean(r[k] for r in ces) for k in ("peak_bytes", "step_s")} if ces else {}
    trl = {"kd_live": by.get("trl_gkd", {}), "kd_onpolicy": by.get("trl_distill", {})}
    head = (
        f"V {a.vocab}, T {a.seq}, B {a.batch}; one (B, T, V) float32 tensor = "
        f"{a.batch * a.seq * a.vocab * 4 / 2**30:.2f} GiB\n"
        "| row | peak RSS growth | x CE | x TRL | step time | x CE | x TRL |\n|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['row']} | {r['error']} | | | | | |")
            continue

        def ratio(key, other, r=r):
            return f"{r[key] / other[key]:.2f}" if other.get(key) else ""

        peer = trl.get(r["row"], {})
        lines.append(
            f"| {r['row']} | {r['peak_bytes'] / 2**30:.2f} GiB | {ratio('peak_bytes', ce)} | "
            f"{ratio('peak_bytes', peer)} | {r['step_s']:.2f} s | {ratio('step_s', ce)} | "
            f"{ratio('step_s', peer)} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=3, help="optimizer steps per row (the first is not timed)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit-gb", type=float, default=20.0, help="address-space limit of each row's process")
    p.add_argument("--rows", nargs="+", default=ROWS, choices=ROWS)
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "hf-distill-lm-memory"))
    p.add_argument("--json", help="append the rows to this JSON-lines file")
    p.add_argument(
        "--same-batch",
        nargs="+",
        choices=SAME_BATCH,
        help="instead of the rows: time loss + backward of these trainers on one fixed prompt-completion batch",
    )
    p.add_argument("--rounds", type=int, default=4, help="alternating rounds of --same-batch (the first not timed)")
    p.add_argument("--profile", action="store_true", help="with --same-batch: print a torch.profiler table of each")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.prepare:
        student, teacher = models(a)
        topk_cache(a, teacher, data(a).remove_columns("labels"))
        return
    if a.same_batch:
        limit = int(a.limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        seconds = same_batch(a)
        ce = seconds.get("ce")
        print(json.dumps({"same_batch": seconds, "vocab": a.vocab, "seq": a.seq, "batch": a.batch}))
        print(f"V {a.vocab}, T {a.seq}, B {a.batch}, {a.rounds} alternating rounds (median after the first)")
        print("| loss + backward | seconds | x CE | x TRL DistillationTrainer |\n|---|---|---|---|")
        trl = seconds.get("trl_distill")
        for name, (sec, loss) in seconds.items():
            x_ce = f"{sec / ce[0]:.2f}" if ce else ""
            x_trl = f"{sec / trl[0]:.2f}" if trl else ""
            print(f"| {name} (loss {loss:.6f}) | {sec:.2f} | {x_ce} | {x_trl} |")
        return
    if a.one:
        print(json.dumps(run_row(a.one, a)))
        return
    rows = []
    for row in a.rows:
        result = measure(row, a)
        rows.append(result)
        print(json.dumps(result), flush=True)
        if a.json:
            with open(a.json, "a") as f:
                f.write(json.dumps({**result, "vocab": a.vocab, "seq": a.seq, "batch": a.batch}) + "\n")
    print(table(rows, a))


if __name__ == "__main__":
    main()
