"""What the Grimm GPT-2 example's recipe costs: one change at a time, through `hf-distill run` itself.

Every variant is `examples/grimm_gpt2.yaml` plus a few ``--field value`` overrides, run by
`hf_distill.pipeline.run.run_from_config` into its own folder. Variants that share a teacher recipe share one trained
teacher (and its tokenizer): the teacher stage runs once per teacher recipe (``--stop_after teacher``) and the
variants load it with ``--teacher <dir> --teacher_from_scratch false --train_teacher no``. Held-out perplexities
(teacher and student, on grimm/valid.txt) come from each run's ``student/distillation_report.json``; the CE-only
baseline is the same student, same steps, with ``alpha 0``.

    python benchmarks/grimm_recipe.py --variants example ce            # the example and its CE-only baseline
    python benchmarks/grimm_recipe.py --variants dropout top64_a05_dropout --student-steps 150 --profile
    python benchmarks/grimm_recipe.py --list

``--profile`` also measures the teacher's probability mass outside its top 64/256/1024 tokens and the size a
full-logit cache of the training file would have.

Results are appended (one JSON object per run) to ``<work>/results.jsonl`` and printed as a Markdown table. A run
folder that already holds a finished evaluation is read, not re-run, so the script can be resumed after a kill.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "grimm_gpt2.yaml"

# Teacher recipes: overrides of the example's teacher_* fields (the example's own is "example": 3 epochs).
TEACHERS: dict[str, list[str]] = {
    "example": [],
    "ep6": ["--teacher_epochs", "6"],  # the example before issue 16
}

NO_DROPOUT = "{student_without_dropout}"
WITH_DROPOUT = ["--student_config", "{}"]  # the student keeps the teacher's dropout (0.1)

# Student recipes: overrides of the example's student fields, applied on top of the chosen teacher. The example
# distils from the live teacher's full logits, alpha 1, a student without dropout, 300 steps.
VARIANTS: dict[str, list[str]] = {
    "example": [],
    "ce": ["--alpha", "0"],  # CE-only baseline: same student, same steps
    "ce_dropout": ["--alpha", "0", *WITH_DROPOUT],
    "dropout": WITH_DROPOUT,  # live teacher, alpha 1, teacher's dropout
    "top64_a05_dropout": ["--use_soft_targets", "true", "--top_k", "64", "--alpha", "0.5", *WITH_DROPOUT],  # before
    "top64_a1_dropout": ["--use_soft_targets", "true", "--top_k", "64", "--alpha", "1", *WITH_DROPOUT],
    "top256": ["--use_soft_targets", "true", "--top_k", "256"],
    "full_cache": ["--use_soft_targets", "true"],  # full-logit cache: same loss, 2.3 GB on disk
    "T2": ["--temperature", "2"],
    "lr5e-4": ["--learning_rate", "5e-4"],
    "first_blocks": ["--student_layer_strategy", "first"],
    # the student saved by student_without_dropout, loaded with --student (how it was measured before student_config)
    "no_dropout_saved": ["--student", NO_DROPOUT],
}


def _report(run_dir: Path) -> dict | None:
    path = run_dir / "student" / "distillation_report.json"
    return (
        json.loads(path.read_text())
        if path.is_file() and (run_dir / ".hf_distill" / "evaluate.json").is_file()
        else None
    )


def _config(work: Path, overrides: list[str]) -> tuple[Path, list[str]]:
    """The example's YAML, minus the fields that `overrides` sets to "null" (e.g. ``--top_k null`` = full logits,
    which a command-line value cannot say); returns the YAML to use and the remaining overrides."""
    nulls = {overrides[i][2:] for i in range(len(overrides) - 1) if overrides[i + 1] == "null"}
    if not nulls:
        return EXAMPLE, overrides
    import yaml

    values = {k: v for k, v in yaml.safe_load(EXAMPLE.read_text()).items() if k not in nulls}
    path = work / "configs" / ("grimm_gpt2-without-" + "-".join(sorted(nulls)) + ".yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    rest = [x for i, x in enumerate(overrides) if x != "null" and not (x[2:] in nulls and x.startswith("--"))]
    return path, rest


def student_without_dropout(teacher_dir: Path) -> Path:
    """`student_from_teacher(teacher, num_layers=2)` saved with every dropout probability set to 0."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_distill import student_from_teacher

    out = teacher_dir.parent / "student-without-dropout"
    if not (out / "config.json").is_file():
        student = student_from_teacher(AutoModelForCausalLM.from_pretrained(teacher_dir), num_layers=2)
        for name in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
            setattr(student.config, name, 0.0)
        student.save_pretrained(out)
        AutoTokenizer.from_pretrained(teacher_dir).save_pretrained(out)
    return out


def teacher_profile(teacher_dir: Path, rows: int = 400, ks: tuple[int, ...] = (64, 256, 1024)) -> dict:
    """How much of the teacher's next-token distribution a top-k cache keeps, on training rows (where the cache
    is used), and what a full-logit cache of the whole training file would weigh (vocab × 4 bytes per token)."""
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    teacher = AutoModelForCausalLM.from_pretrained(teacher_dir).eval()
    tok = AutoTokenizer.from_pretrained(teacher_dir)
    texts = [
        t
        for t in load_dataset(
            "text", data_files=str(ROOT.parent / "shared" / "data" / "grimm" / "train.txt"), split="train"
        )["text"]
        if t.strip()
    ]
    lengths = [min(len(ids), 128) for ids in tok(texts)["input_ids"]]
    entropy, tails, count = 0.0, {k: 0.0 for k in ks}, 0
    with torch.no_grad():
        for i in range(0, rows, 16):
            enc = tok(texts[i : i + 16], return_tensors="pt", padding=True, truncation=True, max_length=128)
            log_p = torch.log_softmax(teacher(**enc).logits[:, :-1].float(), -1)[enc["attention_mask"][:, 1:].bool()]
            entropy += float(-(log_p.exp() * log_p).sum())
            for k in ks:
                tails[k] += float((1 - log_p.topk(k, -1).values.exp().sum(-1)).sum())
            count += log_p.shape[0]
    vocab = teacher.config.vocab_size
    return {
        "vocab": vocab,
        "train_tokens": sum(lengths),
        "entropy_nats": round(entropy / count, 3),
        **{f"tail_mass_top{k}": round(tails[k] / count, 3) for k in ks},
        "full_logit_cache_gb": round(sum(lengths) * vocab * 4 / 1e9, 2),
        "scored_positions": count,
    }


def train_teacher(work: Path, name: str, common: list[str]) -> Path:
    """Run the example's teacher stage once for a teacher recipe; returns the teacher folder."""
    from hf_distill.pipeline.run import run_from_config

    out = work / f"teacher-{name}"
    if not (out / ".hf_distill" / "teacher.json").is_file():
        started = time.perf_counter()
        run_from_config(EXAMPLE, [*common, *TEACHERS[name], "--output_dir", str(out), "--stop_after", "teacher"])
        print(f"[grimm_recipe] teacher {name}: {time.perf_counter() - started:.0f} s", flush=True)
    return out / "teacher"


def run_variant(
    work: Path, teacher_name: str, teacher_dir: Path, variant: str, common: list[str], student: list[str]
) -> dict:
    from hf_distill.pipeline.run import run_from_config

    suffix = "-".join(x.lstrip("-") for x in student) if student else "full"
    out = work / f"{teacher_name}--{variant}--{suffix}"
    report = _report(out)
    wall = None
    if report is None:
        wanted = [str(student_without_dropout(teacher_dir)) if x == NO_DROPOUT else x for x in VARIANTS[variant]]
        config, overrides = _config(work, [*common, *student, *wanted])
        started = time.perf_counter()
        results = run_from_config(
            config,
            [
                *overrides,
                "--output_dir",
                str(out),
                "--teacher",
                str(teacher_dir),
                "--teacher_from_scratch",
                "false",
                "--train_teacher",
                "no",
                "--stop_after",
                "evaluate",
                "--benchmark_runs",
                "3",
            ],
        )
        wall = round(time.perf_counter() - started, 1)
        report = _report(out)
        stage_seconds = {k: v.get("stage_seconds") for k, v in results.items()}
    else:
        stage_seconds = {}
    teacher_ppl = report["teacher"]["metrics"]["perplexity"]
    student_ppl = report["student"]["metrics"]["perplexity"]
    teacher_marker = json.loads((teacher_dir.parent / ".hf_distill" / "teacher.json").read_text())
    return {
        "teacher": teacher_name,
        "variant": variant,
        "schedule": " ".join(student) or "example",
        "overrides": VARIANTS[variant],
        "teacher_ppl": round(teacher_ppl, 2),
        "student_ppl": round(student_ppl, 2),
        "ratio": round(student_ppl / teacher_ppl, 3),
        "top1": round(report["fidelity"]["agreement_top1"], 3),
        "steps": report["distillation"].get("steps"),
        "train_seconds": report["training"].get("train_seconds"),
        "teacher_train_seconds": teacher_marker.get("train_seconds"),
        "stage_seconds": stage_seconds,
        "wall_seconds": wall,
        "dir": str(out.relative_to(work)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default="example", choices=list(TEACHERS))
    p.add_argument("--variants", nargs="*", default=["example", "ce"])
    p.add_argument(
        "--student-steps", type=int, default=None, help="max_steps of the student (default: the example's epochs)"
    )
    p.add_argument(
        "--eval-max-samples", type=int, default=None, help="evaluation rows of the student stage's eval loss"
    )
    p.add_argument("--work", default=str(ROOT / "runs" / "grimm-recipe"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--profile", action="store_true", help="also measure the teacher's tail mass outside the top k")
    p.add_argument("--list", action="store_true", help="print the teacher recipes and variants and exit")
    a = p.parse_args()
    if a.list:
        for name, ov in {**{f"teacher {k}": v for k, v in TEACHERS.items()}, **VARIANTS}.items():
            print(f"{name}: {' '.join(ov) or '(the example as it is)'}")
        return
    import torch

    torch.set_num_threads(a.threads)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    common = ["--disable_tqdm", "true", "--benchmark_threads", str(a.threads)]
    teacher_dir = train_teacher(work, a.teacher, common)
    if a.profile:
        print(f"[grimm_recipe] teacher {a.teacher} profile: {json.dumps(teacher_profile(teacher_dir))}", flush=True)
    student = ["--max_steps", str(a.student_steps)] if a.student_steps else []
    if a.eval_max_samples:
        student += ["--eval_max_samples", str(a.eval_max_samples)]
    rows = []
    for variant in a.variants:
        row = run_variant(work, a.teacher, teacher_dir, variant, common, student)
        rows.append(row)
        with open(work / "results.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"[grimm_recipe] {json.dumps(row)}", flush=True)
    print(f"\n# Grimm GPT-2 recipe variants — {platform.processor() or platform.machine()}, {a.threads} threads")
    print(f"# command: python {' '.join(sys.argv)}")
    print(
        "| teacher | variant | overrides | steps | teacher ppl | student ppl | × teacher | top-1 agree "
        "| student train s | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['teacher']} | {r['variant']} | {' '.join(r['overrides']) or '—'} | {r['steps']} "
            f"| {r['teacher_ppl']} | "
            f"{r['student_ppl']} | {r['ratio']} | {r['top1']} | {r['train_seconds']} | {r['wall_seconds']} |"
        )


if __name__ == "__main__":
    main()
