"""`hf-distill evaluate` and `hf-distill card`: measure teacher vs student, then write the model card."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from .messages import print_error

__all__ = ["register", "run_evaluate", "run_card", "main"]

logger = logging.getLogger(__name__)


def _int_at_least(minimum: int):
    """argparse type: a whole number >= `minimum`, refused at parse time with the value and the fix."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is invalid: give a whole number >= {minimum}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evaluate` and `card` subcommands; each sets `func(args) -> int` (an exit code)."""
    from hf_distill.core.tasks import all_tasks

    ev = subparsers.add_parser(
        "evaluate",
        help="measure teacher vs student (size, speed, task metrics, fidelity) and write distillation_report.json",
        description=(
            "Evaluate and benchmark a teacher and its student on the same data in one process, and write "
            "OUTPUT/distillation_report.json. The task (text-classification, fill-mask, text-generation) is "
            "detected from the models' configs."
        ),
    )
    ev.add_argument("--teacher", required=True, help="teacher: local folder or Hub id")
    ev.add_argument("--student", required=True, help="student: local folder or Hub id")
    ev.add_argument("--dataset", required=True, help="local .csv/.tsv/.json/.jsonl/.txt file, or a Hub dataset id")
    ev.add_argument("--output", required=True, type=Path, help="folder for distillation_report.json")
    ev.add_argument("--dataset-config", help="Hub dataset configuration name")
    ev.add_argument("--split", help="split of a Hub dataset (default: validation)")
    ev.add_argument("--text-column", help="text column (default: text, sentence or content)")
    ev.add_argument("--label-column", help="label column for classification (default: label or labels)")
    ev.add_argument("--max-samples", type=_positive_int, help="evaluate on the first N rows only (N >= 1)")
    ev.add_argument(
        "--task",
        choices=[t.pipeline_tag for t in all_tasks()] + [t.name for t in all_tasks()],
        help="override detection (a pipeline tag or an hf-distill task name)",
    )
    ev.add_argument("--batch-size", type=_positive_int, default=16, help="evaluation batch size (default 16)")
    ev.add_argument(
        "--bench-batch-size", type=_positive_int, default=8, help="batch size of the throughput measurement (default 8)"
    )
    ev.add_argument(
        "--max-length", type=_positive_int, default=128, help="truncate inputs to this many tokens (default 128)"
    )
    ev.add_argument(
        "--threads", type=_positive_int, help="torch threads for every measurement (default: torch's current count)"
    )
    ev.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    ev.add_argument("--warmup", type=int, default=3, help="untimed runs per model before timing (default 3)")
    ev.add_argument("--latency-runs", type=int, default=20, help="timed batch-1 runs per model (default 20)")
    ev.add_argument("--throughput-runs", type=int, default=5, help="timed batches per model (default 5)")
    ev.add_argument("--generation-tokens", type=int, default=32, help="new tokens per generation run (causal LMs)")
    ev.add_argument("--generation-runs", type=int, default=3, help="timed generation runs per model (causal LMs)")
    samples = ev.add_argument_group(
        "sample quality (causal LMs): both models continue the first tokens of evaluation texts, the teacher "
        "scores each model's samples"
    )
    samples.add_argument(
        "--sample-prompts",
        type=_non_negative_int,
        default=32,
        help="prompts, from the first evaluation texts (default 32; 0 skips the measure)",
    )
    samples.add_argument(
        "--sample-prompt-tokens",
        type=_positive_int,
        default=16,
        help="tokens of each text kept as its prompt (default 16)",
    )
    samples.add_argument(
        "--sample-new-tokens", type=_positive_int, default=32, help="new tokens per sample (default 32)"
    )
    samples.add_argument("--sample-seed", type=int, default=0, help="generation seed (default 0)")
    samples.add_argument("--sample-temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    samples.add_argument("--sample-top-p", type=float, default=1.0, help="nucleus cut (default 1.0: none)")
    samples.add_argument("--sample-top-k", type=_non_negative_int, default=0, help="top-k cut (default 0: none)")
    samples.add_argument("--sample-greedy", action="store_true", help="decode greedily instead of sampling")
    ev.add_argument(
        "--metric-source",
        choices=["auto", "hub", "local"],
        default="auto",
        help="accuracy/F1 from the Hub's evaluate modules (auto: when online) or hf-distill's identical local ones",
    )
    ev.add_argument("--trust-remote-code", action="store_true", help="allow custom model code (off by default)")
    settings = ev.add_argument_group("distillation settings recorded in the report (needed by `hf-distill card`)")
    settings.add_argument("--distillation", type=Path, help="JSON or YAML file with loss_type, temperature, alpha, ...")
    settings.add_argument("--loss-type", help="e.g. forward_kl")
    settings.add_argument("--temperature", type=float)
    settings.add_argument("--alpha", type=float)
    settings.add_argument("--layers-kept", help="comma-separated teacher blocks copied into the student, or 'none'")
    settings.add_argument("--steps", type=int, help="training steps")
    settings.add_argument("--train-dataset", help="the data the student was distilled on")
    settings.add_argument("--train-seconds", type=float, help="training wall time in seconds")
    ev.set_defaults(func=run_evaluate)

    card = subparsers.add_parser(
        "card",
        help="write README.md (model card) and its chart from distillation_report.json",
        description="Render the model card from a distillation report: every number comes from the report.",
    )
    card.add_argument("--report", required=True, type=Path, help="distillation_report.json (or its folder)")
    card.add_argument("--output", required=True, type=Path, help="folder for README.md and distillation_chart.png")
    card.add_argument("--repo-id", help="the student's Hub repo id, used in the usage snippet (default: its path)")
    card.add_argument("--base-model", help="base_model metadata (default: the teacher, when it is a Hub id)")
    card.add_argument(
        "--teacher-repo-id",
        help="the teacher's Hub id (needs --repo-id): write the card and report as `hf-distill push` publishes them, "
        "naming the two repo ids, with local paths replaced",
    )
    card.add_argument("--license", help="license metadata, e.g. apache-2.0 (default: unknown)")
    card.add_argument("--language", action="append", help="language code(s), repeatable")
    card.add_argument("--model-name", help="title of the card (default: last part of the repo id)")
    card.add_argument(
        "--template", type=Path, help="custom Jinja template (default: model_cards/distilled_model_card.md)"
    )
    card.set_defaults(func=run_card)


def _read_settings(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of distillation settings")
    return data


def _distillation_from_args(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    distillation = _read_settings(args.distillation) if args.distillation else {}
    training: dict[str, Any] = {}
    if isinstance(distillation.get("training"), dict):
        training.update(distillation.pop("training"))
    for key in ("loss_type", "temperature", "alpha", "steps"):
        if getattr(args, key) is not None:
            distillation[key] = getattr(args, key)
    if args.train_dataset is not None:
        distillation["dataset"] = args.train_dataset
    if args.layers_kept is not None:
        text = args.layers_kept.strip().lower()
        distillation["layers_kept"] = None if text in ("none", "") else [int(x) for x in text.split(",")]
    if args.train_seconds is not None:
        training["train_seconds"] = args.train_seconds
    return distillation, training


def run_evaluate(args: argparse.Namespace) -> int:
    """Entry point of `hf-distill evaluate`."""
    from hf_distill.evaluation.benchmark import BenchmarkSettings
    from hf_distill.evaluation.measure import evaluate_pair
    from hf_distill.evaluation.sample_quality import SampleSettings

    distillation, training = _distillation_from_args(args)
    samples = None
    if args.sample_prompts:
        samples = SampleSettings(
            num_prompts=args.sample_prompts,
            prompt_tokens=args.sample_prompt_tokens,
            max_new_tokens=args.sample_new_tokens,
            seed=args.sample_seed,
            do_sample=not args.sample_greedy,
            temperature=args.sample_temperature,
            top_p=args.sample_top_p,
            top_k=args.sample_top_k,
        )
    bench = BenchmarkSettings(
        batch_size=args.bench_batch_size,
        warmup=args.warmup,
        latency_runs=args.latency_runs,
        throughput_runs=args.throughput_runs,
        generation_tokens=args.generation_tokens,
        generation_runs=args.generation_runs,
        max_length=args.max_length,
        threads=args.threads,
        device=args.device,
    )
    report = evaluate_pair(
        args.teacher,
        args.student,
        args.dataset,
        task=args.task,
        split=args.split,
        dataset_config=args.dataset_config,
        text_column=args.text_column,
        label_column=args.label_column,
        max_samples=args.max_samples,
        batch_size=args.batch_size,
        max_length=args.max_length,
        device=args.device,
        trust_remote_code=args.trust_remote_code,
        metric_source=args.metric_source,
        benchmark=bench,
        distillation=distillation,
        training=training,
        samples=samples,
        measure_sample_quality=samples is not None,
    )
    path = report.to_json(args.output)
    from hf_distill.evaluation.measure import write_examples

    examples_path = write_examples(report, path.parent)
    width = max(len(r[0]) for r in report.table_rows())
    for name, *cells, comparison in report.table_rows():
        figures = "  ".join(f"{c:>14}" for c in cells)
        print(f"{name:<{width}}  {figures}  {comparison}")
    print(f"report written to {path}" + (f", evaluation examples to {examples_path}" if examples_path else ""))
    return 0


def run_card(args: argparse.Namespace) -> int:
    """Entry point of `hf-distill card`."""
    from hf_distill.core.report import REPORT_FILENAME
    from hf_distill.publishing.card import MissingCardField, write_card

    report_path = args.report / REPORT_FILENAME if args.report.is_dir() else args.report
    if not report_path.is_file():
        raise FileNotFoundError(
            f"no distillation report at {report_path}: run `hf-distill evaluate ... --output DIR` first and pass "
            "--report DIR (or the report file)"
        )

    try:
        path = write_card(
            args.report,
            args.output,
            repo_id=args.repo_id,
            base_model=args.base_model,
            license=args.license,
            language=args.language,
            model_name=args.model_name,
            template=args.template,
            teacher_repo_id=args.teacher_repo_id,
        )
    except MissingCardField as err:
        print_error("card", str(err))
        return 2
    print(f"model card written to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m hf_distill.cli_measure evaluate ...`) for when the top-level CLI is absent."""
    parser = argparse.ArgumentParser(prog="hf-distill")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
