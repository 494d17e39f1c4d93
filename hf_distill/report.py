"""The distillation report: teacher vs student figures, ratios, fidelity and settings, as JSON.

`distillation_report.json` is read by the model card, the Hub upload and the demo Space, so its
field names are a contract: new fields may be added, existing ones keep their names.
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

SCHEMA_VERSION = 1
REPORT_FILENAME = "distillation_report.json"
TASKS = ("text-classification", "fill-mask", "text-generation")
# the metric whose retention headlines the report, per task
PRIMARY_METRIC = {"text-classification": "accuracy", "fill-mask": "perplexity", "text-generation": "perplexity"}
LOWER_IS_BETTER = frozenset({"perplexity", "mean_nll", "loss"})


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
    # None where retention is undefined: the teacher scores 0 (or the student 0 on a lower-is-better metric)
    metric_retained_pct_by_metric: dict[str, float | None] = field(default_factory=dict)


@dataclass
class Fidelity:
    """How closely the student reproduces the teacher's output distribution (at temperature 1, in nats)."""

    agreement_top1: float
    kl_teacher_student: float
    js_divergence: float
    num_items: int = 0


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

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")

    # -- JSON -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, keys as in the documented schema."""
        return dataclasses.asdict(self)

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
        return cls(**kwargs)

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write the report; a directory path gets `distillation_report.json` inside it. NaN/inf are refused."""
        path = Path(path)
        if path.is_dir() or not path.suffix:
            path = path / REPORT_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        # allow_nan=False: a NaN written here would surface later as a silent gap in the card
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False, sort_keys=False)
        path.write_text(text + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> DistillationReport:
        """Read a report written by `to_json` (a directory path means its `distillation_report.json`)."""
        path = Path(path)
        if path.is_dir():
            path = path / REPORT_FILENAME
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    # -- presentation ---------------------------------------------------------------------------
    def table_rows(self) -> list[tuple[str, str, str, str]]:
        """(metric, teacher, student, student-vs-teacher) rows, already formatted, for the card and the app."""
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
            if name in r.metric_retained_pct_by_metric:
                pct = r.metric_retained_pct_by_metric[name]
            else:
                pct = _retained_or_none(t.metrics[name], s.metrics[name], name in LOWER_IS_BETTER)
            rows.append(
                (metric_label(name), fmt_metric(t.metrics[name]), fmt_metric(s.metrics[name]), fmt_retained(pct))
            )
        f = self.fidelity
        rows.append(("Top-1 agreement with teacher", "—", fmt_pct(100.0 * f.agreement_top1), ""))
        rows.append(("KL(teacher ‖ student), nats", "—", fmt_metric(f.kl_teacher_student), ""))
        rows.append(("Jensen–Shannon divergence, nats", "—", fmt_metric(f.js_divergence), ""))
        return rows


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


def compute_ratios(teacher: ModelFigures, student: ModelFigures, primary_metric: str) -> Ratios:
    """Size, speed and metric-retention ratios of the student relative to the teacher."""
    if primary_metric not in teacher.metrics or primary_metric not in student.metrics:
        raise ValueError(f"primary metric {primary_metric!r} missing from the teacher's or the student's metrics")
    by_metric = {
        name: _retained_or_none(teacher.metrics[name], student.metrics[name], name in LOWER_IS_BETTER)
        for name in teacher.metrics
        if name in student.metrics
    }
    gen = None
    if teacher.generation_tokens_per_s is not None and student.generation_tokens_per_s is not None:
        gen = _ratio(student.generation_tokens_per_s, teacher.generation_tokens_per_s)
    return Ratios(
        size_x=_ratio(teacher.disk_bytes, student.disk_bytes),
        speedup_x=_ratio(student.throughput_per_s, teacher.throughput_per_s),
        latency_x=_ratio(teacher.latency_ms_p50, student.latency_ms_p50),
        metric_retained_pct=by_metric[primary_metric],
        primary_metric=primary_metric,
        parameters_x=_ratio(teacher.parameters, student.parameters),
        generation_speedup_x=gen,
        metric_retained_pct_by_metric=by_metric,
    )


# -- formatting (shared by the card and the app so both show the same digits) ----------------------
def fmt_int(n: int) -> str:
    """12345678 -> '12,345,678'."""
    return f"{int(n):,}"


def fmt_mb(n_bytes: int) -> str:
    """Bytes as decimal megabytes, two decimals."""
    return f"{n_bytes / 1e6:.2f}"


def fmt_ms(ms: float) -> str:
    return f"{ms:.2f}"


def fmt_rate(per_s: float) -> str:
    return f"{per_s:.1f}"


def fmt_metric(value: float) -> str:
    return f"{value:.4f}"


def fmt_pct(pct: float) -> str:
    return f"{pct:.1f}%"


def fmt_retained(pct: float | None) -> str:
    """'97.3% retained', or why there is no percentage (retention of a zero score is undefined)."""
    return "undefined (teacher scores 0)" if pct is None else f"{fmt_pct(pct)} retained"


def fmt_x(x: float) -> str:
    return f"{x:.2f}×"


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
