"""The distillation report: teacher vs student figures, ratios, fidelity and settings, as JSON.

`distillation_report.json` is read by the model card, the Hub upload and the demo Space, so its
field names are a contract: new fields may be added, existing ones keep their names.

Versioning: `schema_version` is the major version (a reader refuses a newer one); `schema_minor` counts
additive changes a reader of the same major can ignore. Minor 1 added `table` (the formatted
teacher-vs-student rows, built once here and rendered as they are by the card and the Space app) and the
teacher-relative ratios of lower-is-better metrics (`metric_ratio_to_teacher_by_metric`). Reports of minor 0
are still read: their rows and ratios are computed on load. Minor 2 added `variants` (exported forms of the
student, e.g. ONNX int8, measured like the student) and `table_header` (the table's column names: a column per
variant sits between the student's and the comparison column). Minor 3 added `sample_quality` (causal LMs: the
teacher's NLL of each model's samples, their distinct-n and repetition rate, see `hf_distill.sample_quality`) and
its rows; reports of earlier minors have none, and read as they are. Minor 4 added a variant's
`onnxruntime_operators` (the ONNX Runtime-only operators its file uses; None where unknown). Minor 5: a student
trained on published soft targets has `distillation.dataset` name the targets dataset (its repo id), with
`soft_targets_revision` (the commit read) and `labelled_rows` / `transfer_rows` counted in its rows, not the run's
train file and settings; a trimmed student has `distillation.vocabulary_changes` (the share of the validation
text's tokens the trimming encodes differently). Minor 6 added `intervals` (95% paired percentile-bootstrap
intervals of each model's metrics, of student − teacher and student / teacher, and of the fidelity figures, with the
unit resampled and how many; see `hf_distill.intervals`), a variant's `difference_vs_student` (the paired interval of
variant − PyTorch student per metric), the table cells that show them, and
`evaluation.selected_on` (which rows chose among settings, e.g. a selection split held out of the training data);
reports of earlier minors have none of these, and read and render as they are.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import HfDistillError
from .atomic import disk_space_for
from .intervals import Interval, ReportIntervals, contains

SCHEMA_VERSION = 1
SCHEMA_MINOR = 6
REPORT_FILENAME = "distillation_report.json"
# A report names its task by pipeline tag; the per-task rules (headline metric, which way is good) are the Task's.
# The pipeline tags of `hf_distill.core.tasks` (tests/test_report.py checks they agree): spelled out, because
# this module reads and validates reports without importing torch, which the tasks module loads.
TASKS = ("text-classification", "text-generation", "fill-mask")
LOWER_IS_BETTER = frozenset({"perplexity", "mean_nll", "loss"})


# seq-rep-4, as in Welleck et al. (2019): a 4-gram repeated inside one sample is a loop, not a common phrase.
DEFAULT_REPETITION_N = 4


@dataclass
class SampleFigures:
    """One model's samples: how likely the teacher finds them, and how diverse they are.

    `distinct_*` and `repetition_rate` are None when no sample is long enough to hold an n-gram.
    """

    teacher_nll: float  # nats per completion token, under the teacher at temperature 1
    num_tokens: int  # completion tokens scored
    distinct_1: float | None
    distinct_2: float | None
    repetition_rate: float | None


@dataclass
class SampleQuality:
    """Teacher-judged quality and diversity of the student's samples, with the teacher's own as the reference.

    `nll_ratio` is student / teacher of `teacher_nll` (1.0: the teacher finds the student's samples as likely as
    its own); None when the teacher's own NLL is 0.
    """

    teacher: SampleFigures
    student: SampleFigures
    nll_ratio: float | None
    num_prompts: int
    prompt_tokens: int  # the longest prompt
    repetition_n: int = DEFAULT_REPETITION_N
    generation: dict[str, Any] = field(default_factory=dict)
    short_prompts: int = 0  # prompts shorter than `prompt_tokens` (whole texts, when too few texts were that long)


@dataclass
class ModelFigures:
    """What was measured for one model (teacher or student)."""

    name_or_path: str
    parameters: int
    parameters_without_embeddings: int
    disk_bytes: int
    latency_ms_p50: float
    latency_ms_p95: float
    throughput_per_s: float
    generation_tokens_per_s: float | None
    metrics: dict[str, float]
    num_layers: int | None = None


@dataclass
class Ratios:
    """Teacher-relative figures; every "x" ratio is > 1 when the student is better (smaller/faster)."""

    size_x: float
    speedup_x: float
    latency_x: float
    metric_retained_pct: float | None
    primary_metric: str
    parameters_x: float
    generation_speedup_x: float | None = None
    # Higher-is-better metrics only; None where retention is undefined (the teacher scores 0).
    metric_retained_pct_by_metric: dict[str, float | None] = field(default_factory=dict)
    # Lower-is-better metrics (perplexity...): student / teacher, read as "1.03× the teacher's perplexity".
    # Nobody reads perplexity as "% retained", so these metrics never get a percentage.
    metric_ratio_to_teacher_by_metric: dict[str, float | None] = field(default_factory=dict)


@dataclass
class Fidelity:
    """How closely the student reproduces the teacher's output distribution (at temperature 1, in nats)."""

    agreement_top1: float
    kl_teacher_student: float
    js_divergence: float
    num_items: int = 0


@dataclass
class VariantFigures:
    """An exported form of the student (e.g. ONNX int8), measured on the same data and hardware as the student.

    `figures.name_or_path` is the file inside the student's repository (``onnx/model_quantized.onnx``);
    `ratios` and `fidelity` compare the variant with the teacher, timed in a session interleaved with it.
    """

    name: str
    figures: ModelFigures
    ratios: Ratios
    fidelity: Fidelity
    # Largest |logit difference| from the PyTorch student on the evaluation texts (how faithful the export is).
    max_abs_logit_diff_vs_student: float | None = None
    # ONNX Runtime-only (``com.microsoft``) operators in the file, e.g. a fused ``Attention``: [] means standard ONNX
    # operators only (any runtime), None unknown (reports of minor < 4).
    onnxruntime_operators: list[str] | None = None
    # 95% interval of variant − PyTorch student per metric, paired on the same examples (minor >= 6; {} before).
    difference_vs_student: dict[str, Interval | None] = field(default_factory=dict)


_REQUIRED_TOP = (
    "schema_version",
    "task",
    "teacher",
    "student",
    "ratios",
    "fidelity",
    "distillation",
    "training",
    "environment",
)


@dataclass
class DistillationReport:
    """Everything the card, the Hub upload and the Space need to show what distillation bought."""

    task: str
    teacher: ModelFigures
    student: ModelFigures
    ratios: Ratios
    fidelity: Fidelity
    distillation: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    benchmark: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    schema_version: int = SCHEMA_VERSION
    schema_minor: int = SCHEMA_MINOR
    # The formatted rows (label, teacher, student, student vs teacher). Filled when the report is written and
    # read back as is, so the card and the Space show the same cells; None on a report built in memory (the
    # rows are then formatted from its current figures). Not part of equality: it is derived data.
    table: list[list[str]] | None = field(default=None, compare=False)
    variants: list[VariantFigures] = field(default_factory=list)
    # Column names of `table` (first the row label's empty header), stored beside the rows for the same reason.
    table_header: list[str] | None = field(default=None, compare=False)
    # Causal LMs: how the teacher scores each model's own samples, and their diversity (None for other tasks,
    # when the measure was switched off, and in reports of minor < 3). The prompts come from `evaluation`'s data.
    sample_quality: SampleQuality | None = None
    # 95% confidence intervals of the metrics and fidelity (None in reports of minor < 6 and where no per-item
    # figures were kept, e.g. a report built by hand).
    intervals: ReportIntervals | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")

    # -- JSON -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, keys as in the documented schema, with the formatted `table` rows."""
        data = dataclasses.asdict(self)
        data["schema_minor"] = SCHEMA_MINOR
        data["table"] = [list(row) for row in self.table_rows()]
        data["table_header"] = self.table_columns()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DistillationReport:
        """Rebuild a report, failing with the missing key's name on an incomplete dict."""
        missing = [k for k in _REQUIRED_TOP if k not in data]
        if missing:
            raise ValueError(f"distillation report is missing {missing}")
        if int(data["schema_version"]) > SCHEMA_VERSION:
            raise ValueError(
                f"report schema_version {data['schema_version']} is newer than "
                f"this hf-distill understands ({SCHEMA_VERSION})"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["teacher"] = _build(ModelFigures, data["teacher"], "teacher")
        kwargs["student"] = _build(ModelFigures, data["student"], "student")
        kwargs["ratios"] = _build(Ratios, data["ratios"], "ratios")
        kwargs["fidelity"] = _build(Fidelity, data["fidelity"], "fidelity")
        kwargs["variants"] = [_build_variant(v, f"variants[{i}]") for i, v in enumerate(data.get("variants") or [])]
        if data.get("sample_quality") is not None:
            kwargs["sample_quality"] = _build_sample_quality(data["sample_quality"])
        if data.get("intervals") is not None:
            kwargs["intervals"] = ReportIntervals.from_dict(data["intervals"])
        minor = data.get("schema_minor", 0)
        if not isinstance(minor, int) or isinstance(minor, bool) or minor < 0:
            raise ValueError(f"report field 'schema_minor' must be a non-negative integer, got {minor!r}")
        if minor < 1:
            # Written before the rows and the lower-is-better ratios were stored: derive both from the figures.
            kwargs["ratios"] = _upgrade_ratios(kwargs["ratios"], kwargs["teacher"], kwargs["student"])
            kwargs["table"] = None
        if minor < 2 or kwargs.get("table_header") is None:
            kwargs["table_header"] = None if kwargs.get("table") is None else default_header(len(kwargs["variants"]))
        kwargs["schema_minor"] = SCHEMA_MINOR
        report = cls(**kwargs)
        validate_report(report)
        if report.table is None:
            report.table = [list(row) for row in report.table_rows()]
            report.table_header = report.table_columns()
        return report

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write the report; a directory path gets `distillation_report.json` inside it. NaN/inf are refused."""
        path = Path(path)
        if path.is_dir() or not path.suffix:
            path = path / REPORT_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        # allow_nan=False: a NaN written here would surface later as a silent gap in the card
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False, sort_keys=False)
        with disk_space_for(path):
            path.write_text(text + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> DistillationReport:
        """Read a report written by `to_json` (a directory path means its `distillation_report.json`)."""
        path = Path(path)
        if path.is_dir():
            path = path / REPORT_FILENAME
        made_by = "pass the distillation_report.json that `hf-distill evaluate` (or `run`) wrote"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not a distillation report (not JSON text: {err}): {made_by}") from None
        if not isinstance(data, dict):
            raise ValueError(
                f"{path} is not a distillation report (a JSON {type(data).__name__}, not an object): {made_by}"
            )
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as err:
            raise type(err)(f"{path}: {err}") from err

    # -- presentation ---------------------------------------------------------------------------
    def table_columns(self) -> list[str]:
        """The table's header: "", Teacher, Student, one column per variant, Student vs teacher."""
        if self.table is not None and self.table_header is not None:
            return list(self.table_header)
        return default_header(len(self.variants), [v.name for v in self.variants])

    def table_rows(self) -> list[tuple[str, ...]]:
        """(metric, teacher, student, [variants...], student-vs-teacher) rows, formatted, for the card and the app.

        A report read from JSON returns the rows stored in it; one built in memory formats its figures.
        """
        if self.table is not None:
            return [tuple(str(c) for c in row) for row in self.table]
        return format_table_rows(self)

    def _format_rows(self) -> list[tuple[str, ...]]:
        return _with_variant_cells(self, self._base_rows())

    def _base_rows(self) -> list[tuple[str, str, str, str]]:
        t, s, r = self.teacher, self.student, self.ratios
        batch = self.benchmark.get("batch_size")
        rows = [
            ("Parameters", fmt_int(t.parameters), fmt_int(s.parameters), f"{fmt_x(r.parameters_x)} fewer"),
            (
                "Parameters without embeddings",
                fmt_int(t.parameters_without_embeddings),
                fmt_int(s.parameters_without_embeddings),
                f"{fmt_x(_ratio(t.parameters_without_embeddings, s.parameters_without_embeddings))} fewer",
            ),
            ("Size on disk (MB)", fmt_mb(t.disk_bytes), fmt_mb(s.disk_bytes), f"{fmt_x(r.size_x)} smaller"),
            (
                "Latency p50, batch 1 (ms)",
                fmt_ms(t.latency_ms_p50),
                fmt_ms(s.latency_ms_p50),
                f"{fmt_x(r.latency_x)} faster",
            ),
            (
                "Latency p95, batch 1 (ms)",
                fmt_ms(t.latency_ms_p95),
                fmt_ms(s.latency_ms_p95),
                f"{fmt_x(_ratio(t.latency_ms_p95, s.latency_ms_p95))} faster",
            ),
            (
                f"Throughput, batch {batch} (samples/s)" if batch else "Throughput (samples/s)",
                fmt_rate(t.throughput_per_s),
                fmt_rate(s.throughput_per_s),
                f"{fmt_x(r.speedup_x)} faster",
            ),
        ]
        if t.generation_tokens_per_s is not None and s.generation_tokens_per_s is not None:
            gen_x = r.generation_speedup_x or _ratio(s.generation_tokens_per_s, t.generation_tokens_per_s)
            rows.append(
                (
                    "Generation (tokens/s)",
                    fmt_rate(t.generation_tokens_per_s),
                    fmt_rate(s.generation_tokens_per_s),
                    f"{fmt_x(gen_x)} faster",
                )
            )
        for name in ordered_metrics(t.metrics, r.primary_metric):
            if name not in s.metrics:
                continue
            ci = self.intervals.metrics.get(name) if self.intervals else None
            rows.append(
                (
                    metric_label(name),
                    fmt_metric(t.metrics[name]) + fmt_bounds(ci and ci.teacher, fmt_metric),
                    fmt_metric(s.metrics[name]) + fmt_bounds(ci and ci.student, fmt_metric),
                    metric_comparison(self, name),
                )
            )
        rows += _sample_rows(self.sample_quality)
        f = self.fidelity
        fid = self.intervals.fidelity if self.intervals else {}
        rows.append(
            (
                "Top-1 agreement with teacher",
                "—",
                fmt_pct(100.0 * f.agreement_top1) + fmt_bounds(fid.get("agreement_top1"), lambda v: fmt_pct(100.0 * v)),
                "",
            )
        )
        rows.append(
            (
                "KL(teacher ‖ student), nats",
                "—",
                fmt_metric(f.kl_teacher_student) + fmt_bounds(fid.get("kl_teacher_student"), fmt_metric),
                "",
            )
        )
        rows.append(
            (
                "Jensen–Shannon divergence, nats",
                "—",
                fmt_metric(f.js_divergence) + fmt_bounds(fid.get("js_divergence"), fmt_metric),
                "",
            )
        )
        return rows


SAMPLE_NLL_LABEL = "Teacher NLL of each model's samples (nats/token)"


def _sample_rows(q: SampleQuality | None) -> list[tuple[str, str, str, str]]:
    """The sample-quality rows: the teacher column holds the teacher's own samples, the student column the
    student's, both scored by the teacher (see `hf_distill.sample_quality`)."""
    if q is None:
        return []
    t, s = q.teacher, q.student
    ratio = (
        "undefined (the teacher's NLL of its own samples is 0)"
        if q.nll_ratio is None
        else (f"{fmt_x(q.nll_ratio)} the teacher's NLL of its own samples")
    )
    return [
        (SAMPLE_NLL_LABEL, fmt_metric(t.teacher_nll), fmt_metric(s.teacher_nll), ratio),
        ("Distinct-1 of samples", fmt_optional(t.distinct_1), fmt_optional(s.distinct_1), ""),
        ("Distinct-2 of samples", fmt_optional(t.distinct_2), fmt_optional(s.distinct_2), ""),
        (
            f"Repetition rate of samples (seq-rep-{q.repetition_n})",
            fmt_optional(t.repetition_rate),
            fmt_optional(s.repetition_rate),
            "",
        ),
    ]


def default_header(num_variants: int, names: list[str] | None = None) -> list[str]:
    """The table header for a report with `num_variants` exported variants."""
    names = names or [f"Variant {i + 1}" for i in range(num_variants)]
    return ["", "Teacher", "Student", *names, "Student vs teacher"]


def _variant_cell(report: DistillationReport, variant: VariantFigures, label: str) -> str:
    """The cell of one variant in the row labelled `label`: its figure and its ratio to the teacher."""
    f, r = variant.figures, variant.ratios
    if label == "Parameters":
        return fmt_int(f.parameters)
    if label == "Size on disk (MB)":
        return f"{fmt_mb(f.disk_bytes)} ({fmt_x(r.size_x)} smaller)"
    if label == "Latency p50, batch 1 (ms)":
        return f"{fmt_ms(f.latency_ms_p50)} ({fmt_x(r.latency_x)} faster)"
    if label == "Latency p95, batch 1 (ms)":
        return fmt_ms(f.latency_ms_p95)
    if label.startswith("Throughput"):
        return f"{fmt_rate(f.throughput_per_s)} ({fmt_x(r.speedup_x)} faster)"
    if label == "Top-1 agreement with teacher":
        return fmt_pct(100.0 * variant.fidelity.agreement_top1)
    if label == "KL(teacher ‖ student), nats":
        return fmt_metric(variant.fidelity.kl_teacher_student)
    if label == "Jensen–Shannon divergence, nats":
        return fmt_metric(variant.fidelity.js_divergence)
    for name, value in f.metrics.items():
        if metric_label(name) == label:
            vs_student = _vs_student(variant.difference_vs_student.get(name), name)
            if name in LOWER_IS_BETTER:
                ratio = r.metric_ratio_to_teacher_by_metric.get(name)
                return f"{fmt_metric(value)} ({fmt_ratio_to_teacher(ratio, name)}{vs_student})"
            return f"{fmt_metric(value)} ({fmt_retained(r.metric_retained_pct_by_metric.get(name))}{vs_student})"
    return "—"


def _vs_student(difference: Interval | None, name: str) -> str:
    """'; no measurable difference from the student: −0.3 to +0.2 points' (a variant's paired interval), or ''."""
    if difference is None:
        return ""
    scale, unit = (100.0, " points") if name in FRACTION_METRICS else (1.0, "")
    bounds = f"{fmt_signed(scale * difference.low, scale)} to {fmt_signed(scale * difference.high, scale)}{unit}"
    if contains(difference.as_tuple(), 0.0):
        return f"; {NO_DIFFERENCE} from the student: {bounds}"
    return f"; {bounds} vs the student (95% CI)"


def _with_variant_cells(report: DistillationReport, rows: list[tuple[str, str, str, str]]) -> list[tuple[str, ...]]:
    """Insert one column per variant between the student's and the comparison column."""
    if not report.variants:
        return rows
    return [
        (label, t, s, *[_variant_cell(report, v, label) for v in report.variants], cmp) for label, t, s, cmp in rows
    ]


def recommended_variant(report: DistillationReport, tolerance: float = 0.005) -> VariantFigures | None:
    """The exported variant to recommend for CPU deployment: the smallest one whose headline metric is within
    `tolerance` of the PyTorch student's (absolute for scores such as accuracy, relative for perplexity).

    Args:
        report: a report with `variants`.
        tolerance: how much worse than the PyTorch student a variant may score and still be recommended.

    Returns:
        The variant, or None when none qualifies (the PyTorch student is then the recommendation).
    """
    primary = report.ratios.primary_metric
    base = report.student.metrics.get(primary)
    fits = []
    for v in report.variants:
        value = v.figures.metrics.get(primary)
        if value is None or base is None:
            continue
        ok = value <= base * (1 + tolerance) if primary in LOWER_IS_BETTER else value >= base - tolerance
        if ok:
            fits.append(v)
    return min(fits, key=lambda v: v.figures.disk_bytes) if fits else None


def _build_variant(data: Any, where: str) -> VariantFigures:
    if not isinstance(data, dict) or "name" not in data:
        raise ValueError(f"report field {where!r} must be an object with a name")
    return VariantFigures(
        name=str(data["name"]),
        figures=_build(ModelFigures, data.get("figures"), f"{where}.figures"),
        ratios=_build(Ratios, data.get("ratios"), f"{where}.ratios"),
        fidelity=_build(Fidelity, data.get("fidelity"), f"{where}.fidelity"),
        max_abs_logit_diff_vs_student=data.get("max_abs_logit_diff_vs_student"),
        onnxruntime_operators=data.get("onnxruntime_operators"),
        difference_vs_student={
            k: None if v is None else _build(Interval, v, f"{where}.difference_vs_student.{k}")
            for k, v in (data.get("difference_vs_student") or {}).items()
        },
    )


def _build_sample_quality(data: Any) -> SampleQuality:
    if not isinstance(data, dict):
        raise ValueError(f"report field 'sample_quality' must be an object, got {type(data).__name__}")
    quality = _build(SampleQuality, data, "sample_quality")
    quality.teacher = _build(SampleFigures, data["teacher"], "sample_quality.teacher")
    quality.student = _build(SampleFigures, data["student"], "sample_quality.student")
    return quality


def _build(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise ValueError(f"report field {where!r} must be an object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    required = {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    missing = sorted(required - data.keys())
    if missing:
        raise ValueError(f"report field {where!r} is missing {missing}")
    return cls(**{k: v for k, v in data.items() if k in names})


# -- pure maths ------------------------------------------------------------------------------------
def _ratio(numerator: float, denominator: float) -> float:
    if denominator == 0:
        raise ZeroDivisionError("ratio with a zero denominator: a measurement is missing or broken")
    return float(numerator) / float(denominator)


def retained_pct(teacher_value: float, student_value: float, lower_is_better: bool = False) -> float:
    """Percent of the teacher's metric the student keeps; for lower-is-better metrics, teacher/student × 100."""
    if lower_is_better:
        return 100.0 * _ratio(teacher_value, student_value)
    return 100.0 * _ratio(student_value, teacher_value)


def _retained_or_none(teacher_value: float, student_value: float, lower_is_better: bool) -> float | None:
    try:
        return retained_pct(teacher_value, student_value, lower_is_better)
    except ZeroDivisionError:
        return None


def ratio_to_teacher(teacher_value: float, student_value: float) -> float | None:
    """Student / teacher for a lower-is-better metric (1.03 reads "1.03× the teacher's perplexity");
    None when the teacher's value is 0.

    Args:
        teacher_value: the teacher's figure.
        student_value: the student's figure.
    """
    try:
        return _ratio(student_value, teacher_value)
    except ZeroDivisionError:
        return None


def compute_ratios(teacher: ModelFigures, student: ModelFigures, primary_metric: str) -> Ratios:
    """Size, speed and metric ratios of the student relative to the teacher.

    Higher-is-better metrics get "% retained" (student / teacher × 100); lower-is-better ones (perplexity,
    losses) get the plain ratio student / teacher instead, and no percentage.

    Args:
        teacher: the teacher's measured figures.
        student: the student's measured figures.
        primary_metric: the metric the headline "% retained" is of (`Task.primary_metric`).

    Returns:
        The `Ratios` of the report.

    Raises:
        ValueError: `primary_metric` is missing from either model's metrics.
    """
    if primary_metric not in teacher.metrics or primary_metric not in student.metrics:
        raise ValueError(f"primary metric {primary_metric!r} missing from the teacher's or the student's metrics")
    shared = [name for name in teacher.metrics if name in student.metrics]
    by_metric = {
        name: _retained_or_none(teacher.metrics[name], student.metrics[name], False)
        for name in shared
        if name not in LOWER_IS_BETTER
    }
    ratio_by_metric = {
        name: ratio_to_teacher(teacher.metrics[name], student.metrics[name])
        for name in shared
        if name in LOWER_IS_BETTER
    }
    gen = None
    if teacher.generation_tokens_per_s is not None and student.generation_tokens_per_s is not None:
        gen = _ratio(student.generation_tokens_per_s, teacher.generation_tokens_per_s)
    return Ratios(
        size_x=_ratio(teacher.disk_bytes, student.disk_bytes),
        speedup_x=_ratio(student.throughput_per_s, teacher.throughput_per_s),
        latency_x=_ratio(teacher.latency_ms_p50, student.latency_ms_p50),
        metric_retained_pct=by_metric.get(primary_metric),
        primary_metric=primary_metric,
        parameters_x=_ratio(teacher.parameters, student.parameters),
        generation_speedup_x=gen,
        metric_retained_pct_by_metric=by_metric,
        metric_ratio_to_teacher_by_metric=ratio_by_metric,
    )


def _upgrade_ratios(ratios: Ratios, teacher: ModelFigures, student: ModelFigures) -> Ratios:
    """Ratios of a minor-0 report in today's convention: lower-is-better metrics lose their "% retained"
    (teacher / student × 100 then) and get student / teacher instead."""
    by_metric = {k: v for k, v in ratios.metric_retained_pct_by_metric.items() if k not in LOWER_IS_BETTER}
    ratio_by_metric = {
        name: ratio_to_teacher(teacher.metrics[name], student.metrics[name])
        for name in teacher.metrics
        if name in LOWER_IS_BETTER and name in student.metrics
    }
    primary_pct = None if ratios.primary_metric in LOWER_IS_BETTER else ratios.metric_retained_pct
    return dataclasses.replace(
        ratios,
        metric_retained_pct=primary_pct,
        metric_retained_pct_by_metric=by_metric,
        metric_ratio_to_teacher_by_metric={**ratio_by_metric, **ratios.metric_ratio_to_teacher_by_metric},
    )


def format_table_rows(report: DistillationReport) -> list[tuple[str, str, str, str]]:
    """Format the report's figures as (label, teacher, student, student vs teacher) rows.

    This is the one place where the table's rounding and labels are decided; `DistillationReport.to_dict`
    stores the result in the JSON, which the card and the Space app render as it is.

    Args:
        report: the report to format.
    """
    return report._format_rows()


def metric_comparison(report: DistillationReport, name: str) -> str:
    """The "student vs teacher" cell of metric `name`: "97.3% retained" for higher-is-better metrics,
    "1.03× the teacher's perplexity" for lower-is-better ones; with the report's intervals, their 95% intervals
    and the number of units behind them, or "no measurable difference: ..." where the interval of the paired
    difference includes 0 (see `interval_phrase`).

    Args:
        report: the report holding both models' metrics (and, optionally, their intervals).
        name: a metric both models have.
    """
    t, s, r = report.teacher.metrics[name], report.student.metrics[name], report.ratios
    if name in LOWER_IS_BETTER:
        ratio = r.metric_ratio_to_teacher_by_metric.get(name, ratio_to_teacher(t, s))
        cell = fmt_ratio_to_teacher(ratio, name)
    else:
        if name in r.metric_retained_pct_by_metric:
            pct = r.metric_retained_pct_by_metric[name]
        else:
            pct = _retained_or_none(t, s, False)
        cell = fmt_retained(pct)
    phrase = interval_phrase(report, name)
    if phrase is None:
        return cell
    return f"{phrase} ({cell})" if phrase.startswith(NO_DIFFERENCE) else f"{cell}; {phrase}"


NO_DIFFERENCE = "no measurable difference"


def interval_phrase(report: DistillationReport, name: str) -> str | None:
    """How the paired intervals of metric `name` read, or None without intervals.

    "no measurable difference: −0.8 to +1.1 points, 872 examples" when the 95% interval of student − teacher
    includes 0 (for lower-is-better metrics: when that of student / teacher includes 1, shown as ratios);
    otherwise the interval of the difference, e.g. "−2.6 points (95% CI −4.1 to −1.0), 872 examples", and for
    higher-is-better metrics the interval of the retained percentage. Fraction metrics (accuracy...) differ in
    points (× 100), others in their own unit.

    Args:
        report: the report; its `intervals` hold the paired bootstrap intervals.
        name: a metric both models have.
    """
    iv = report.intervals
    ci = iv.metrics.get(name) if iv is not None else None
    if ci is None or ci.difference is None:
        return None
    count = f"{iv.num_units} {iv.unit}"
    t, s = report.teacher.metrics[name], report.student.metrics[name]
    if name in LOWER_IS_BETTER:
        if ci.ratio is None:
            return None
        bounds = f"{fmt_x(ci.ratio.low)} to {fmt_x(ci.ratio.high)} the teacher's"
        if contains(ci.ratio.as_tuple(), 1.0):
            return f"{NO_DIFFERENCE}: {bounds}, {count}"
        return f"95% CI {bounds}, {count}"
    scale, unit = (100.0, " points") if name in FRACTION_METRICS else (1.0, "")
    low, high = (fmt_signed(scale * v, scale) for v in ci.difference.as_tuple())
    if contains(ci.difference.as_tuple(), 0.0):
        return f"{NO_DIFFERENCE}: {low} to {high}{unit}, {count}"
    retained = (
        "" if ci.ratio is None else (f"; {fmt_pct(100 * ci.ratio.low)} to {fmt_pct(100 * ci.ratio.high)} retained")
    )
    return f"{fmt_signed(scale * (s - t), scale)}{unit} (95% CI {low} to {high}{retained}), {count}"


def fmt_signed(value: float, scale: float = 100.0) -> str:
    """A signed difference with a true minus sign: '+1.1', '−0.8' (one decimal in points, four otherwise)."""
    text = f"{value:+.1f}" if scale == 100.0 else f"{value:+.4f}"
    return text.replace("-", "−")


def fmt_bounds(interval: Interval | None, fmt) -> str:
    """' (0.8016–0.8509)': a figure's 95% interval appended to its cell, '' without one."""
    return "" if not interval else f" ({fmt(interval.low)}–{fmt(interval.high)})"


# -- formatting (shared by the card and the app so both show the same digits) ----------------------
def fmt_int(n: int) -> str:
    """12345678 -> '12,345,678'."""
    return f"{int(n):,}"


def fmt_mb(n_bytes: int) -> str:
    """Bytes as decimal megabytes, two decimals."""
    return f"{n_bytes / 1e6:.2f}"


def fmt_ms(ms: float) -> str:
    """A latency in milliseconds, to two decimals (the table's rounding)."""
    return f"{ms:.2f}"


def fmt_rate(per_s: float) -> str:
    """A throughput (items or tokens per second), to one decimal."""
    return f"{per_s:.1f}"


def fmt_metric(value: float) -> str:
    """A metric value, to four decimals."""
    return f"{value:.4f}"


def fmt_optional(value: float | None) -> str:
    """A metric, or '—' where it is undefined (e.g. distinct-2 of samples too short to hold a bigram)."""
    return "—" if value is None else fmt_metric(value)


def fmt_pct(pct: float) -> str:
    """A percentage, to one decimal, with the % sign."""
    return f"{pct:.1f}%"


def fmt_retained(pct: float | None) -> str:
    """'97.3% retained', or why there is no percentage (retention of a zero score is undefined)."""
    return "undefined (teacher scores 0)" if pct is None else f"{fmt_pct(pct)} retained"


def fmt_x(x: float) -> str:
    """A ratio, to two decimals, with the × sign ("3.20×")."""
    return f"{x:.2f}×"


def fmt_ratio_to_teacher(ratio: float | None, name: str) -> str:
    """'1.03× the teacher's perplexity' (student / teacher of a lower-is-better metric)."""
    what = metric_label(name)
    what = what if what.isupper() else what.lower()
    return f"undefined (teacher's {what} is 0)" if ratio is None else f"{fmt_x(ratio)} the teacher's {what}"


_LABELS = {"accuracy": "Accuracy", "f1": "F1", "perplexity": "Perplexity"}


def metric_label(name: str) -> str:
    """Display name of a metric key ('f1' -> 'F1')."""
    return _LABELS.get(name, name.replace("_", " ").capitalize())


def ordered_metrics(metrics: dict[str, float], primary: str) -> list[str]:
    """Metric names with the primary one first, the rest in insertion order."""
    return [primary] * (primary in metrics) + [m for m in metrics if m != primary]


# -- environment -------------------------------------------------------------------------------------
def cpu_model() -> str:
    """Human-readable CPU name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def collect_environment(threads: int, device: str) -> dict[str, Any]:
    """The hardware and software the measurements come from."""
    import torch
    import transformers

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": int(threads),
        "device": device,
        "platform": platform.platform(),
    }
    try:
        import evaluate

        env["evaluate"] = evaluate.__version__
    except ImportError:
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    env["python_implementation"] = sys.implementation.name
    return env


def check_finite(report: DistillationReport) -> None:
    """Raise if any measured figure is NaN or infinite (a broken measurement must not reach a card)."""
    for who in ("teacher", "student"):
        fig = getattr(report, who)
        for key, value in dataclasses.asdict(fig).items():
            values = value.items() if isinstance(value, dict) else [(key, value)]
            for k, v in values:
                if isinstance(v, float) and not math.isfinite(v):
                    raise ValueError(f"{who}.{k} is {v}")


# -- validation ---------------------------------------------------------------------------------------
# Metrics that are fractions of items (a value above 1 is a broken measurement, not a good model).
FRACTION_METRICS = frozenset({"accuracy", "f1", "precision", "recall", "exact_match", "agreement_top1"})
# How far a stored ratio may stray from the one its figures give (rounding by hand-edited reports).
_RATIO_RTOL = 0.01


class InvalidReport(HfDistillError, ValueError):
    """The report holds a figure no measurement can produce; the message names the field."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_number(
    where: str,
    value: Any,
    *,
    low: float,
    low_inclusive: bool = False,
    high: float | None = None,
    optional: bool = False,
    integer: bool = False,
) -> None:
    if value is None and optional:
        return
    if not _is_number(value) or (integer and not float(value).is_integer()):
        kind = "an integer" if integer else "a number"
        raise InvalidReport(f"report field {where!r} must be {kind}, got {value!r}")
    if not math.isfinite(value):
        raise InvalidReport(f"report field {where!r} is {value}: a broken measurement")
    too_low = value < low if low_inclusive else value <= low
    if too_low or (high is not None and value > high):
        bound = f"{'≥' if low_inclusive else '>'} {low:g}" + (f" and ≤ {high:g}" if high is not None else "")
        raise InvalidReport(
            f"report field {where!r} is {value!r}, but it must be {bound}: the report is corrupted "
            "or was edited by hand; measure again with `hf-distill evaluate`"
        )


def _check_ratio(where: str, stored: Any, expected: float | None) -> None:
    if stored is None or expected is None:
        return
    # 0 is a real outcome (a student that scores 0 keeps 0% of the teacher's score)
    _check_number(where, stored, low=0.0, low_inclusive=True)
    if not math.isclose(float(stored), expected, rel_tol=_RATIO_RTOL):
        raise InvalidReport(
            f"report field {where!r} is {stored!r}, but its figures give {expected:.4g}: the ratio contradicts the "
            "measurements (the report was edited by hand or is corrupted); measure again with `hf-distill evaluate`"
        )


def validate_report(report: DistillationReport) -> None:
    """Raise `InvalidReport` (naming the field) for figures no measurement produces: negative or zero sizes and
    times, fractions outside [0, 1], a perplexity below 1, divergences below 0, or a stored ratio that
    contradicts the figures it was computed from.

    Args:
        report: the report to check, as built or as read from JSON.

    Raises:
        InvalidReport: one line naming the first field in error and why.
    """
    for who in ("teacher", "student"):
        fig: ModelFigures = getattr(report, who)
        if not isinstance(fig.name_or_path, str) or not fig.name_or_path.strip():
            raise InvalidReport(f"report field '{who}.name_or_path' must be a non-empty string")
        _check_number(f"{who}.parameters", fig.parameters, low=1, low_inclusive=True, integer=True)
        _check_number(
            f"{who}.parameters_without_embeddings",
            fig.parameters_without_embeddings,
            low=0,
            low_inclusive=True,
            high=fig.parameters,
            integer=True,
        )
        _check_number(f"{who}.disk_bytes", fig.disk_bytes, low=0, integer=True)
        _check_number(f"{who}.latency_ms_p50", fig.latency_ms_p50, low=0)
        _check_number(f"{who}.latency_ms_p95", fig.latency_ms_p95, low=0)
        if fig.latency_ms_p95 < fig.latency_ms_p50:
            raise InvalidReport(
                f"report field '{who}.latency_ms_p95' ({fig.latency_ms_p95}) is below '{who}.latency_ms_p50' "
                f"({fig.latency_ms_p50}): a 95th percentile cannot be smaller than the median"
            )
        _check_number(f"{who}.throughput_per_s", fig.throughput_per_s, low=0)
        _check_number(f"{who}.generation_tokens_per_s", fig.generation_tokens_per_s, low=0, optional=True)
        _check_number(f"{who}.num_layers", fig.num_layers, low=1, low_inclusive=True, optional=True, integer=True)
        if not isinstance(fig.metrics, dict):
            raise InvalidReport(f"report field '{who}.metrics' must be an object")
        for name, value in fig.metrics.items():
            where = f"{who}.metrics.{name}"
            if name in FRACTION_METRICS:
                _check_number(where, value, low=0, low_inclusive=True, high=1)
            elif name == "perplexity":
                _check_number(where, value, low=1, low_inclusive=True)
            elif name in LOWER_IS_BETTER:
                _check_number(where, value, low=0, low_inclusive=True)
            else:
                _check_number(where, value, low=-math.inf)
    f = report.fidelity
    _check_number("fidelity.agreement_top1", f.agreement_top1, low=0, low_inclusive=True, high=1)
    # KL and JS are >= 0; float accumulation can leave a tiny negative number on identical models.
    _check_number("fidelity.kl_teacher_student", f.kl_teacher_student, low=-1e-6, low_inclusive=True)
    _check_number("fidelity.js_divergence", f.js_divergence, low=-1e-6, low_inclusive=True, high=math.log(2) + 1e-6)
    _check_number("fidelity.num_items", f.num_items, low=0, low_inclusive=True, integer=True)

    t, s, r = report.teacher, report.student, report.ratios
    if r.primary_metric not in t.metrics or r.primary_metric not in s.metrics:
        raise InvalidReport(
            f"report field 'ratios.primary_metric' names {r.primary_metric!r}, which the teacher's or the "
            "student's metrics lack"
        )
    _check_ratio("ratios.size_x", r.size_x, t.disk_bytes / s.disk_bytes)
    _check_ratio("ratios.parameters_x", r.parameters_x, t.parameters / s.parameters)
    _check_ratio("ratios.latency_x", r.latency_x, t.latency_ms_p50 / s.latency_ms_p50)
    _check_ratio("ratios.speedup_x", r.speedup_x, s.throughput_per_s / t.throughput_per_s)
    if t.generation_tokens_per_s and s.generation_tokens_per_s:
        _check_ratio(
            "ratios.generation_speedup_x", r.generation_speedup_x, s.generation_tokens_per_s / t.generation_tokens_per_s
        )
    for name, pct in r.metric_retained_pct_by_metric.items():
        if name in t.metrics and name in s.metrics and t.metrics[name]:
            _check_ratio(f"ratios.metric_retained_pct_by_metric.{name}", pct, 100.0 * s.metrics[name] / t.metrics[name])
    for name, ratio in r.metric_ratio_to_teacher_by_metric.items():
        if name in t.metrics and name in s.metrics and t.metrics[name]:
            _check_ratio(f"ratios.metric_ratio_to_teacher_by_metric.{name}", ratio, s.metrics[name] / t.metrics[name])
    if r.primary_metric not in LOWER_IS_BETTER and t.metrics[r.primary_metric]:
        _check_ratio(
            "ratios.metric_retained_pct",
            r.metric_retained_pct,
            100.0 * s.metrics[r.primary_metric] / t.metrics[r.primary_metric],
        )
    if report.sample_quality is not None:
        _validate_sample_quality(report.sample_quality)
    if report.intervals is not None:
        _validate_intervals(report.intervals)
    for i, v in enumerate(report.variants):
        where = f"variants[{i}]"
        vf = v.figures
        _check_number(f"{where}.figures.disk_bytes", vf.disk_bytes, low=0, integer=True)
        _check_number(f"{where}.figures.latency_ms_p50", vf.latency_ms_p50, low=0)
        _check_number(f"{where}.figures.throughput_per_s", vf.throughput_per_s, low=0)
        _check_number(f"{where}.fidelity.agreement_top1", v.fidelity.agreement_top1, low=0, low_inclusive=True, high=1)
        for name, interval in v.difference_vs_student.items():
            if interval is not None and not interval.low <= interval.high:
                raise InvalidReport(
                    f"report field '{where}.difference_vs_student.{name}' has low {interval.low} "
                    f"above high {interval.high}"
                )
        for name, value in vf.metrics.items():
            if name in FRACTION_METRICS:
                _check_number(f"{where}.figures.metrics.{name}", value, low=0, low_inclusive=True, high=1)
    width = 4 + len(report.variants)
    if report.table is not None:
        if not isinstance(report.table, list) or not all(
            isinstance(row, (list, tuple)) and len(row) == width and all(isinstance(c, str) for c in row)
            for row in report.table
        ):
            raise InvalidReport(f"report field 'table' must be a list of rows of {width} strings")
    if report.table_header is not None and (
        not isinstance(report.table_header, list) or len(report.table_header) != width
    ):
        raise InvalidReport(f"report field 'table_header' must be a list of {width} column names")


def _validate_intervals(iv: ReportIntervals) -> None:
    """Whole positive counts, a coverage in (0, 1), and every interval two finite numbers, low <= high."""
    if not isinstance(iv.unit, str) or not iv.unit:
        raise InvalidReport("report field 'intervals.unit' must name what was resampled, e.g. 'examples'")
    _check_number("intervals.num_units", iv.num_units, low=1, low_inclusive=True, integer=True)
    _check_number("intervals.resamples", iv.resamples, low=1, low_inclusive=True, integer=True)
    _check_number("intervals.confidence", iv.confidence, low=0, high=1)
    named = [
        (f"metrics.{m}.{k}", getattr(f, k))
        for m, f in iv.metrics.items()
        for k in ("teacher", "student", "difference", "ratio")
    ]
    for where, interval in named + [(f"fidelity.{k}", v) for k, v in iv.fidelity.items()]:
        if interval is None:
            continue
        _check_number(f"intervals.{where}.low", interval.low, low=-math.inf)
        _check_number(f"intervals.{where}.high", interval.high, low=-math.inf)
        if interval.low > interval.high:
            raise InvalidReport(f"report field 'intervals.{where}' has low {interval.low} above high {interval.high}")


def _validate_sample_quality(q: SampleQuality) -> None:
    """NLLs >= 0, distinct-n and repetition rates in [0, 1], whole counts, and a ratio that matches its NLLs."""
    for who in ("teacher", "student"):
        fig = getattr(q, who)
        if not isinstance(fig, SampleFigures):
            raise InvalidReport(f"report field 'sample_quality.{who}' must be an object")
        where = f"sample_quality.{who}"
        _check_number(f"{where}.teacher_nll", fig.teacher_nll, low=0, low_inclusive=True)
        _check_number(f"{where}.num_tokens", fig.num_tokens, low=1, low_inclusive=True, integer=True)
        for name in ("distinct_1", "distinct_2", "repetition_rate"):
            _check_number(f"{where}.{name}", getattr(fig, name), low=0, low_inclusive=True, high=1, optional=True)
    _check_number("sample_quality.num_prompts", q.num_prompts, low=1, low_inclusive=True, integer=True)
    _check_number("sample_quality.prompt_tokens", q.prompt_tokens, low=1, low_inclusive=True, integer=True)
    _check_number("sample_quality.repetition_n", q.repetition_n, low=1, low_inclusive=True, integer=True)
    _check_number(
        "sample_quality.short_prompts", q.short_prompts, low=0, low_inclusive=True, high=q.num_prompts, integer=True
    )
    if q.teacher.teacher_nll > 0:
        _check_ratio("sample_quality.nll_ratio", q.nll_ratio, q.student.teacher_nll / q.teacher.teacher_nll)
    if not isinstance(q.generation, dict):
        raise InvalidReport("report field 'sample_quality.generation' must be an object")
