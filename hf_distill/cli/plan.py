"""`hf-distill plan CONFIG.yaml`: size and speed of candidate students, measured before any training."""

from __future__ import annotations

import argparse
import json
import os
import platform
from dataclasses import asdict
from pathlib import Path

from .messages import print_error

__all__ = ["register", "run_plan"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `plan` subcommand; it sets `func(args) -> int` (an exit code)."""
    plan = subparsers.add_parser(
        "plan",
        help="measure candidate students (layers × FFN width × trimmed vocabulary) against the teacher, "
        "before training",
        description="Build each candidate student from the config's teacher and measure parameters, disk size, "
        "batch-1 latency and batched throughput against the teacher on this machine. Size and speed do not depend "
        "on training, so pick the student for your budget here, then set student_layers / "
        "student_intermediate_size / trim_vocabulary in the config and `hf-distill run` it.",
    )
    plan.add_argument("config", help="the YAML config of `hf-distill run` (teacher, data, max_length, ...)")
    plan.add_argument("--teacher", help="override the config's teacher (a local folder or Hub id)")
    plan.add_argument(
        "--layers", help="comma-separated block counts (default: the config's student_layers and one less)"
    )
    plan.add_argument(
        "--widths", help="comma-separated FFN widths; 'full' keeps the teacher's (default: full and half)"
    )
    plan.add_argument(
        "--trim", choices=["both", "yes", "no"], default="both", help="trimmed vocabulary (default: both)"
    )
    plan.add_argument(
        "--texts", type=int, default=256, help="validation (else training) texts to time on (default 256)"
    )
    plan.add_argument("--json", type=Path, default=Path("plan.json"), help="where to write the figures (plan.json)")
    plan.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    plan.set_defaults(func=run_plan)


def _ints(text: str, what: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--{what} takes comma-separated whole numbers, e.g. 2,3") from None
    if not values or any(v < 1 for v in values):
        raise ValueError(f"--{what} takes comma-separated whole numbers >= 1, e.g. 2,3")
    return values


def run_plan(args: argparse.Namespace) -> int:
    """Entry point of `hf-distill plan`."""
    try:
        return _run_plan(args)
    except ValueError as err:
        print_error("plan", str(err))
        return 2


def _run_plan(args: argparse.Namespace) -> int:
    if args.json.exists() and not args.overwrite:
        raise ValueError(f"{args.json} exists; pass --overwrite to replace it or --json another path")
    from ..core.data import RunData
    from ..evaluation.benchmark import BenchmarkSettings, count_parameters, disk_size_bytes
    from ..pipeline.models import build_teacher, teacher_tokenizer
    from ..pipeline.planning import format_plan, plan_students, plans_to_json
    from ..pipeline.run import parse_run_config
    from ..students.blocks import find_blocks

    pipe_args, config, _ = parse_run_config(args.config, ["--teacher", args.teacher] if args.teacher else None)
    run_data = RunData(pipe_args, seed=config.seed)
    corpus = run_data.train()[run_data.text_column()] if pipe_args.teacher_from_scratch else None
    tokenizer = teacher_tokenizer(pipe_args, config, corpus)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    names = run_data.label_names() if run_data.classification else None
    # Size and speed do not depend on trained weights: the teacher as the run would start from is enough.
    teacher, _ = build_teacher(pipe_args, config, tokenizer, names)
    total = len(find_blocks(teacher)[1])
    chosen = pipe_args.student_layers or max(1, total // 2)
    layers = _ints(args.layers, "layers") if args.layers else sorted({chosen, max(1, chosen - 1)})
    up = teacher.config.to_dict().get("intermediate_size") or teacher.config.to_dict().get("n_inner") or None
    if args.widths:
        widths = [None if w.strip() == "full" else _ints(w, "widths")[0] for w in args.widths.split(",") if w.strip()]
    else:
        widths = [None] + ([up // 2] if up else [])
    trim = {"both": [False, True], "yes": [True], "no": [False]}[args.trim]
    data = run_data.splits()
    text = run_data.text_column()
    split = pipe_args.validation_split if pipe_args.validation_split in data else pipe_args.train_split
    timing = data[split]
    if run_data.selection() is not None:  # choices are made on the selection split, never on the reported one
        split, timing = "selection", run_data.selection()
    texts = [t for t in timing[text][: args.texts] if isinstance(t, str) and t.strip()]
    settings = BenchmarkSettings(
        batch_size=pipe_args.benchmark_batch_size,
        throughput_runs=pipe_args.benchmark_runs,
        latency_runs=max(20, pipe_args.benchmark_runs),
        max_length=pipe_args.max_length,
        threads=pipe_args.benchmark_threads,
    )
    plans = plan_students(
        teacher,
        tokenizer,
        texts,
        layers=layers,
        intermediate_sizes=widths,
        trim=trim,
        trimming_texts=run_data.train()[text] if any(trim) else None,
        settings=settings,
        strategy=pipe_args.student_layer_strategy,
        min_corpus_tokens=pipe_args.trim_min_corpus_tokens,
    )
    params = count_parameters(teacher)[0]
    print(
        f"teacher {pipe_args.teacher}: {total} layers, {params / 1e6:.1f}M parameters, "
        f"{disk_size_bytes(teacher) / 1e6:.1f} MB; timed on {len(texts)} texts of {split}, batch "
        f"{settings.batch_size}, max length {settings.max_length}, on this machine"
    )
    print(format_plan(plans))
    trimmed = next((p for p in plans if p.trimmed), None)
    if trimmed is not None:  # the same corpus trims every candidate: one change for all
        print(
            f"trimming to the {pipe_args.train_split} text changes the encoding of "
            f"{100 * trimmed.trim_changed_token_share:.2f}% of the {len(texts)} {split} texts' tokens "
            f"({100 * trimmed.trim_unk_token_share:.2f}% become [UNK])"
        )
    figures = plans_to_json(
        plans,
        teacher=pipe_args.teacher if not os.path.isabs(pipe_args.teacher) else Path(pipe_args.teacher).name,
        teacher_parameters=params,
        timed_on=f"{len(texts)} texts of the {split} split",
        benchmark=asdict(settings),
        machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
    )
    args.json.write_text(json.dumps(figures, indent=1))
    print(f"plan written to {args.json}")
    return 0
