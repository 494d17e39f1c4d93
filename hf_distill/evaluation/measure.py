"""The whole teacher-vs-student measurement: load both models, evaluate and benchmark them on the same data, and
assemble the `DistillationReport` (the JSON schema lives in `hf_distill.report`)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from torch import nn

from ..core.intervals import difference_intervals, report_intervals
from ..core.loading import load_model
from ..core.report import DistillationReport, ModelFigures, VariantFigures, collect_environment, compute_ratios
from ..core.tasks import Task
from ..students.vocabulary import evaluation_teacher
from .benchmark import BenchmarkSettings, benchmark_pair, fixed_threads
from .eval_data import EvalData, load_texts
from .pair import evaluate_models
from .sample_quality import SampleSettings, measure_samples


def read_trainer_state(model_dir: str | os.PathLike) -> dict[str, Any]:
    """train_seconds / steps from a transformers `trainer_state.json` in the student's folder, if there is one."""
    path = Path(model_dir) / "trainer_state.json"
    if not path.is_file():
        return {}
    state = json.loads(path.read_text())
    out: dict[str, Any] = {}
    if state.get("global_step"):
        out["steps"] = int(state["global_step"])
    for entry in reversed(state.get("log_history", [])):
        if "train_runtime" in entry:
            out["train_seconds"] = float(entry["train_runtime"])
            break
    return out


DISTILLATION_KEYS = (
    "loss_type",
    "temperature",
    "alpha",
    "jsd_beta",
    "skew_lambda",
    "hidden_loss",
    "hidden_loss_weight",
    "attention_loss_weight",
    "layer_mapping",
    "learning_rate",
    "max_steps",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "seed",
)


def distillation_settings(config: Any, **extra: Any) -> dict[str, Any]:
    """The report's `distillation` dict from a training config (e.g. DistillationConfig) plus extra keys
    such as layers_kept=, steps=, dataset=. Attributes the config lacks are left out.

    Args:
        config: the training config the student was trained with (its `DISTILLATION_KEYS` attributes are read).
        **extra: more entries, which override the config's.
    """
    out = {k: getattr(config, k) for k in DISTILLATION_KEYS if getattr(config, k, None) is not None}
    out.update(extra)
    return out


def _num_layers(model: nn.Module) -> int | None:
    cfg = model.config
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int):
            return value
    return None


def evaluate_pair(
    teacher: str | os.PathLike,
    student: str | os.PathLike,
    dataset: str | os.PathLike | EvalData,
    *,
    task: str | Task | None = None,
    split: str | None = None,
    dataset_config: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    max_samples: int | None = None,
    batch_size: int = 16,
    max_length: int = 128,
    threads: int | None = None,
    device: str = "cpu",
    trust_remote_code: bool = False,
    metric_source: str = "auto",
    benchmark: BenchmarkSettings | None = None,
    distillation: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    output_dir: str | os.PathLike | None = None,
    include_exports: bool = True,
    samples: SampleSettings | None = None,
    measure_sample_quality: bool = True,
    selected_on: str | None = None,
) -> DistillationReport:
    """Load both models, evaluate and benchmark them on the same data, and build the report.

    With `include_exports`, the student's exported variants (``onnx/model.onnx``, ``onnx/model_quantized.onnx``
    written by `hf_distill.export.export_onnx`) are measured the same way, timed in the same round-robin runs as
    teacher and student with onnxruntime on the same thread count, and become the report's `variants` (a column
    each in the card's table).

    `distillation` (loss_type, temperature, alpha, layers_kept, steps, dataset, ...) and `training`
    (train_seconds, ...) are copied into the report; `training` is completed from the student's
    `trainer_state.json` when present. With `output_dir`, the report is also written there, and beside it
    `evaluation_examples.json` (`hf_distill.evaluation.disagreements`: where teacher and student disagree most;
    also kept as `report.examples`).

    For causal LMs (unless `measure_sample_quality` is False) both models also continue prompts made from the
    evaluation texts, and the teacher scores each model's samples (`hf_distill.evaluation.sample_quality`):
    the report's `sample_quality`.

    The report's `intervals` are 95% paired bootstrap intervals over the evaluated examples (texts for LMs), see
    `hf_distill.core.intervals`.

    Args:
        teacher: the teacher's folder or Hub id.
        student: the student's folder or Hub id.
        dataset: a local data file, a Hub dataset id, or texts already loaded (`EvalData`).
        task: a task name, pipeline tag or `Task`; detected from the teacher's config when None.
        split: the split of a Hub dataset (default "validation").
        dataset_config: the Hub dataset's configuration.
        text_column: the text column (default: the obvious one).
        label_column: the label column of classification data (default "label"/"labels").
        max_samples: evaluate on the first N non-empty rows; None: all of them.
        batch_size: the evaluation batch size.
        max_length: truncate inputs to this many tokens (and to what both models accept).
        threads: torch's (and onnxruntime's) thread count while measuring; None keeps the current one.
        device: where the models run.
        trust_remote_code: let transformers run code from the models' repos (off by default).
        metric_source: where accuracy/F1 come from: "auto", "hub" or "local" (see `load_metric`).
        benchmark: how long and how hard to time (default `BenchmarkSettings` from `threads`, `device`,
            `max_length`).
        distillation: the training settings to record (see `distillation_settings`).
        training: training facts to record (train_seconds, ...).
        output_dir: write the report and the examples file there.
        include_exports: also measure the student's ONNX exports found beside it.
        samples: how the samples are drawn (default `SampleSettings()`).
        measure_sample_quality: causal LMs: measure the samples (False: skip).
        selected_on: which rows chose among settings (e.g. a selection split held out of the training data),
            recorded as `evaluation.selected_on`; the card states it beside the split that measured.

    Returns:
        The validated `DistillationReport`.

    Raises:
        ValueError: the two models are of different tasks, or the data is unusable (see `load_texts`).
        OnnxExportError: an export beside the student does not match its export check.
    """
    t = load_model(teacher, task, trust_remote_code=trust_remote_code, role="teacher")
    s = load_model(student, task or t.task, trust_remote_code=trust_remote_code, role="student")
    if t.task != s.task:
        raise ValueError(f"the teacher is a {t.task.pipeline_tag} model but the student a {s.task.pipeline_tag} model")
    data = (
        dataset
        if isinstance(dataset, EvalData)
        else load_texts(
            dataset,
            split=split,
            dataset_config=dataset_config,
            text_column=text_column,
            label_column=label_column,
            max_samples=max_samples,
        )
    )
    bench = benchmark or BenchmarkSettings(threads=threads, device=device, max_length=max_length)
    if threads is not None:
        bench.threads = threads
    started = time.perf_counter()
    with fixed_threads(bench.threads) as used_threads:
        # onnxruntime gets torch's thread count, so the exports are timed under the same conditions.
        exported = _load_exports(student, s, used_threads) if include_exports else {}
        ev = evaluate_models(
            t.model,
            s.model,
            t.tokenizer,
            data.texts,
            data.labels,
            task=t.task,
            student_tokenizer=s.tokenizer,
            batch_size=batch_size,
            max_length=max_length,
            metric_source=metric_source,
            device=bench.device,
        )
        bench.threads = used_threads
        pb = benchmark_pair(
            t.model,
            s.model,
            t.tokenizer,
            s.tokenizer,
            data.texts[: max(bench.batch_size * bench.throughput_runs, bench.latency_runs)],
            causal_lm=t.task.generates,
            settings=bench,
            extra=[(model, s.tokenizer) for model in exported.values()],
        )
        quality = None
        if t.task.generates and measure_sample_quality:
            sample_started = time.perf_counter()
            # the tokenizer the perplexity was measured with (shared by both models, its pad token set); a trimmed
            # student's teacher generates and scores over the student's kept ids, as evaluation compares them
            judge, tokenizer = evaluation_teacher(t.model, t.tokenizer, s.model, s.tokenizer, t.task)
            quality = measure_samples(s.model, judge, tokenizer, data.texts, samples or SampleSettings())
            sample_seconds = round(time.perf_counter() - sample_started, 3)
        variant_evals = {
            name: evaluate_models(
                t.model,
                model,
                t.tokenizer,
                data.texts,
                data.labels,
                task=t.task,
                student_tokenizer=s.tokenizer,
                batch_size=batch_size,
                max_length=max_length,
                metric_source=metric_source,
                device="cpu",
            )
            for name, model in exported.items()
        }
    figures = []
    for loaded, params, disk, speed, metrics in (
        (t, pb.teacher_parameters, pb.teacher_disk_bytes, pb.teacher_speed, ev.teacher_metrics),
        (s, pb.student_parameters, pb.student_disk_bytes, pb.student_speed, ev.student_metrics),
    ):
        figures.append(
            ModelFigures(
                name_or_path=loaded.name_or_path,
                parameters=params[0],
                parameters_without_embeddings=params[1],
                disk_bytes=disk,
                latency_ms_p50=speed.latency_ms_p50,
                latency_ms_p95=speed.latency_ms_p95,
                throughput_per_s=speed.throughput_per_s,
                generation_tokens_per_s=speed.generation_tokens_per_s,
                metrics=metrics,
                num_layers=_num_layers(loaded.model),
            )
        )
    training_info = read_trainer_state(student) if Path(student).is_dir() else {}
    training_info.update(training or {})
    distillation = dict(distillation or {})
    kept = getattr(s.model.config, "distilled_from_layers", None)
    if "layers_kept" not in distillation and kept is not None:
        # student_from_teacher records the copied teacher blocks in the student's config
        distillation["layers_kept"] = list(kept)
    if "architecture" not in distillation:  # the student's architecture and family (a card row)
        from ..students.blocks import architecture_name

        architecture = architecture_name(s.model.config)
        if architecture:
            distillation["architecture"] = architecture
    if "steps" not in distillation and "steps" in training_info:
        distillation["steps"] = training_info["steps"]
    variants = [
        _variant_figures(
            name, exported[name], figures[0], figures[1], ev_v, speed, disk, t.task.primary_metric, student
        )
        for (name, ev_v), speed, disk in zip(variant_evals.items(), pb.extra_speeds, pb.extra_disk_bytes)
    ]
    for variant, ev_v in zip(variants, variant_evals.values()):
        if ev.per_item and ev_v.per_item:  # the same texts in the same order: paired on them
            variant.difference_vs_student = difference_intervals(
                ev.per_item, ev_v.per_item, f1_average=ev.details.get("f1_average")
            )
    report = DistillationReport(
        task=t.task.pipeline_tag,
        variants=variants,
        teacher=figures[0],
        student=figures[1],
        ratios=compute_ratios(figures[0], figures[1], t.task.primary_metric),
        fidelity=ev.fidelity,
        distillation=distillation,
        training=training_info,
        environment=collect_environment(pb.threads, bench.device),
        evaluation={
            "dataset": data.dataset,
            "split": data.split,
            "text_column": data.text_column,
            "label_column": data.label_column,
            "num_samples": ev.num_samples,
            "metric_sources": ev.metric_sources,
            "measure_seconds": round(time.perf_counter() - started, 3),
            **ev.details,
            **({"sample_seconds": sample_seconds} if quality is not None else {}),
            **({"selected_on": selected_on} if selected_on else {}),
        },
        benchmark=pb.settings,
        sample_quality=quality,
        # paired bootstrap over the evaluated examples/texts (per-item figures kept in memory by evaluate_models)
        intervals=report_intervals(ev.per_item, ev.unit, f1_average=ev.details.get("f1_average"))
        if ev.per_item
        else None,
    )
    # Not a report field (the report stays small and its schema unchanged): written beside it, linked by the card.
    report.examples = ev.examples
    if output_dir is not None:
        report.to_json(Path(output_dir))
        write_examples(report, Path(output_dir))
    return report


def write_examples(report: DistillationReport, folder: str | os.PathLike) -> Path | None:
    """Write the examples `evaluate_pair` kept (`report.examples`) as `evaluation_examples.json` in `folder`, where
    the report is; a stale file from an earlier evaluation is removed when there are none.

    Args:
        report: the report `evaluate_pair` built.
        folder: the folder the report is written to.

    Returns:
        The path written, or None when the report kept no examples.
    """
    from .disagreements import EXAMPLES_FILENAME

    path = Path(folder) / EXAMPLES_FILENAME
    examples = getattr(report, "examples", None)
    if examples is None:
        path.unlink(missing_ok=True)  # hf-distill's own output: it would describe another evaluation
        return None
    return examples.to_json(path)


def _load_exports(student: str | os.PathLike, s: Any, threads: int) -> dict[str, Any]:
    """The student's exported variants, if `hf-distill export` wrote any beside it."""
    if not Path(student).is_dir():
        return {}
    from ..export.onnx import load_onnx_variants
    from .benchmark import count_parameters

    variants = load_onnx_variants(student, s.model.config, threads=threads)
    for model in variants.values():
        model.parameter_counts = count_parameters(s.model)
    return variants


def _variant_figures(
    name: str,
    model: Any,
    teacher: ModelFigures,
    student: ModelFigures,
    ev: Any,
    speed: Any,
    disk_bytes: int,
    primary_metric: str,
    student_dir: str | os.PathLike,
) -> VariantFigures:
    """An exported variant's figures, timed in the same round-robin runs as teacher and student."""
    from ..export.onnx import VARIANT_NAMES, export_checks

    file = f"{model.path.parent.name}/{model.path.name}"
    figures = ModelFigures(
        name_or_path=file,
        parameters=student.parameters,
        parameters_without_embeddings=student.parameters_without_embeddings,
        disk_bytes=disk_bytes,
        latency_ms_p50=speed.latency_ms_p50,
        latency_ms_p95=speed.latency_ms_p95,
        throughput_per_s=speed.throughput_per_s,
        generation_tokens_per_s=None,
        metrics=ev.student_metrics,
        num_layers=student.num_layers,
    )
    check = export_checks(student_dir).get(file)
    return VariantFigures(
        name=VARIANT_NAMES[name],
        figures=figures,
        ratios=compute_ratios(teacher, figures, primary_metric),
        fidelity=ev.fidelity,
        max_abs_logit_diff_vs_student=check.max_abs_logit_diff if check else None,
        onnxruntime_operators=model.onnxruntime_operators,
    )
