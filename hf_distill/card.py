"""Write a distilled model's card (README.md) and chart from its `distillation_report.json`.

Every number in the card is taken from the report. A field the card needs but the report lacks
raises `MissingCardField` before anything is written, and the template is rendered with jinja2's
StrictUndefined first, so a gap can never reach a published card.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import jinja2
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from hf_distill.report import (
    REPORT_FILENAME,
    DistillationReport,
    check_finite,
    fmt_mb,
    fmt_metric,
    fmt_pct,
    fmt_rate,
    fmt_x,
    metric_label,
)

logger = logging.getLogger(__name__)

TEMPLATE_NAME = "distilled_model_card.md"
CHART_FILENAME = "distillation_chart.png"
CARD_FILENAME = "README.md"
# the canonical template lives at the repo top level; installed wheels carry the copy in hf_distill/templates
REPO_TEMPLATE = Path(__file__).resolve().parents[1] / "model_cards" / TEMPLATE_NAME

REQUIRED_FIELDS = {
    "distillation": ("loss_type", "temperature", "alpha", "layers_kept", "steps", "dataset"),
    "training": ("train_seconds",),
    "evaluation": ("dataset", "num_samples"),
    "environment": ("cpu", "threads", "device", "python", "torch", "transformers"),
    "benchmark": ("batch_size",),
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_PLACEHOLDER = re.compile(
    r"\bNone\b|\bnan\b|\binf\b|\{\{|\}\}|\{%|%\}|\[More Information Needed\]|\bTODO\b", re.IGNORECASE
)
_USAGE_INPUT = {
    "text-classification": 'print(pipe("I loved every minute of it."))',
    "fill-mask": 'print(pipe(f"The capital of France is {pipe.tokenizer.mask_token}."))',
    "text-generation": 'print(pipe("Once upon a time", max_new_tokens=40)[0]["generated_text"])',
}


class MissingCardField(ValueError):
    """The report lacks a value the card must show; the message lists every missing field."""


def template_path() -> Path:
    """The card template: top-level `model_cards/` in a source checkout, else the copy packaged in hf_distill."""
    if REPO_TEMPLATE.is_file():
        return REPO_TEMPLATE
    packaged = importlib.resources.files("hf_distill") / "templates" / TEMPLATE_NAME
    if packaged.is_file():
        return Path(str(packaged))
    raise FileNotFoundError(
        f"card template {TEMPLATE_NAME} found neither at {REPO_TEMPLATE} nor in the hf_distill package"
    )


def looks_like_hub_id(value: str | None) -> bool:
    """True for 'name' or 'owner/name' strings that are not a local path or a data file name."""
    from .data import LOCAL_FORMATS

    return (
        bool(value)
        and bool(_HUB_ID.match(value))
        and ".." not in value
        and Path(value).suffix.lower() not in LOCAL_FORMATS
        and not Path(value).exists()
    )


def missing_fields(report: DistillationReport) -> list[str]:
    """Dotted names of the fields the card needs but the report does not have (None counts as missing,
    except `distillation.layers_kept`, where null states that no teacher layers were copied)."""
    missing = []
    for section, keys in REQUIRED_FIELDS.items():
        data = getattr(report, section)
        for key in keys:
            if key not in data or (data[key] is None and (section, key) != ("distillation", "layers_kept")):
                missing.append(f"{section}.{key}")
    return missing


# -- chart ----------------------------------------------------------------------------------------------
def write_chart(report: DistillationReport, path: str | os.PathLike) -> Path:
    """Bar charts of size, latency, throughput and the primary metric, teacher vs student (PNG, Agg)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("the model card's chart needs matplotlib: pip install 'hf-distill[card]'") from err

    t, s = report.teacher, report.student
    primary = report.ratios.primary_metric
    panels = [
        ("Size on disk (MB)", t.disk_bytes / 1e6, s.disk_bytes / 1e6, lambda v: f"{v:.2f}"),
        ("Latency p50, batch 1 (ms)", t.latency_ms_p50, s.latency_ms_p50, lambda v: f"{v:.2f}"),
        ("Throughput (samples/s)", t.throughput_per_s, s.throughput_per_s, fmt_rate),
        (metric_label(primary), t.metrics[primary], s.metrics[primary], fmt_metric),
    ]
    # a Figure with its own Agg canvas leaves pyplot's global backend alone
    fig = Figure(figsize=(11, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels))
    for ax, (title, tv, sv, fmt) in zip(axes, panels):
        bars = ax.bar(["teacher", "student"], [tv, sv], color=["#8c8c8c", "#ff9d00"])
        ax.bar_label(bars, labels=[fmt(tv), fmt(sv)], padding=2, fontsize=9)
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, max(tv, sv) * 1.2 or 1)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(
        f"{fmt_x(report.ratios.size_x)} smaller, {fmt_x(report.ratios.speedup_x)} the throughput, "
        f"{_retained_text(report.ratios.metric_retained_pct)} {metric_label(primary).lower()} retained",
        fontsize=11,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _retained_text(pct: float | None) -> str:
    return "undefined (teacher scores 0)" if pct is None else fmt_pct(pct)


# -- card -------------------------------------------------------------------------------------------------
def _duration(seconds: float) -> str:
    seconds = float(seconds)
    h, rest = divmod(int(round(seconds)), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d} ({seconds:.1f} s)"


def _layers_text(layers: Any, report: DistillationReport) -> str:
    if layers is None:
        return "none (the student was not initialised from teacher blocks)"
    layers = list(layers) if isinstance(layers, (list, tuple)) else [layers]
    of = f" of {report.teacher.num_layers}" if report.teacher.num_layers else ""
    return f"{len(layers)}{of} teacher blocks: {', '.join(str(x) for x in layers)} (0-based)"


def _short_path(value: str) -> str:
    # a local path means nothing on the Hub and may expose the author's file system: keep its last two parts
    p = Path(value)
    return "/".join(p.parts[-2:]) if p.is_absolute() else value


def _dataset_display(dataset: str) -> str:
    if looks_like_hub_id(dataset):
        return f"[`{dataset}`](https://huggingface.co/datasets/{dataset})"
    return f"`{_short_path(dataset)}` (local file)" if Path(dataset).is_file() else f"`{_short_path(dataset)}`"


def _dataset_type(dataset: str) -> str:
    if looks_like_hub_id(dataset):
        return dataset
    p = Path(dataset)
    return re.sub(r"[^\w.-]+", "-", f"{p.parent.name}-{p.stem}").strip("-") or "local"


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else (f"{value:g}" if isinstance(value, float) else str(value))
    return text.replace("|", "\\|").replace("\n", " ")


def build_card_data(
    report: DistillationReport,
    *,
    model_name: str,
    base_model: str | None = None,
    license: str = "unknown",
    language: str | list[str] | None = None,
) -> ModelCardData:
    """YAML metadata: library, tags, base model, datasets, pipeline tag, license and a model-index for the student."""
    ev = report.evaluation
    datasets = [
        d for d in dict.fromkeys([report.distillation.get("dataset"), ev.get("dataset")]) if looks_like_hub_id(d)
    ]
    eval_results = [
        EvalResult(
            task_type=report.task,
            dataset_type=_dataset_type(ev["dataset"]),
            dataset_name=str(ev.get("dataset_name") or _short_path(ev["dataset"])),
            dataset_split=ev.get("split"),
            metric_type=name,
            metric_name=metric_label(name),
            metric_value=float(value),
        )
        for name, value in report.student.metrics.items()
    ]
    return ModelCardData(
        language=language,
        license=license,
        library_name="transformers",
        tags=["distillation", "knowledge-distillation", report.task],
        base_model=base_model,
        datasets=datasets or None,
        pipeline_tag=report.task,
        metrics=list(report.student.metrics),
        model_name=model_name,
        eval_results=eval_results,
    )


def card_variables(
    report: DistillationReport, *, repo_id: str, model_name: str, chart_file: str = CHART_FILENAME
) -> dict[str, Any]:
    """Everything the template shows, formatted from the report (raises MissingCardField on gaps)."""
    missing = missing_fields(report)
    if missing:
        raise MissingCardField(
            "the report lacks fields the model card needs: "
            + ", ".join(missing)
            + ". Pass the distillation settings and training time to `hf-distill evaluate` "
            "(--distillation FILE, --train-seconds, ...) or to evaluate_pair(distillation=..., training=...)."
        )
    check_finite(report)
    t, s, r, f = report.teacher, report.student, report.ratios, report.fidelity
    d, ev, env, bench = report.distillation, report.evaluation, report.environment, report.benchmark
    primary = r.primary_metric
    label = metric_label(primary)
    retained = (
        f"keeps {fmt_pct(r.metric_retained_pct)} of the teacher's {label.lower()}"
        if r.metric_retained_pct is not None
        else f"has a {label.lower()} whose retention is undefined because the teacher scores 0"
    )
    layers = f"{s.num_layers}-layer " if s.num_layers else ""
    summary = (
        f"**{model_name}** is a {layers}student distilled from {_model_display(t.name_or_path)} "
        f"for {report.task}. On {_dataset_display(ev['dataset'])} it {retained} "
        f"({fmt_metric(s.metrics[primary])} vs {fmt_metric(t.metrics[primary])}) "
        f"while being {fmt_x(r.size_x)} smaller on disk "
        f"({fmt_mb(s.disk_bytes)} MB vs {fmt_mb(t.disk_bytes)} MB) with {fmt_x(r.speedup_x)} the teacher's throughput "
        f"at batch {bench['batch_size']}, and its top-1 prediction agrees with the teacher's on "
        f"{fmt_pct(100 * f.agreement_top1)} of {_items(report)}."
    )
    stages = d.get("stages") or []
    if isinstance(stages, str):
        # "teacher fine-tuning → soft targets → student" style summaries become numbered steps
        stages = [part.strip() for part in re.split(r"→|->", stages) if part.strip()]
    stages = [str(x) for x in stages]
    if not stages:
        if d["layers_kept"] is not None:
            stages.append(f"Initialise the student from the teacher, keeping {_layers_text(d['layers_kept'], report)}.")
        stages.append(
            f"Train the student for {d['steps']} steps on {_dataset_display(str(d['dataset']))} with the "
            f"`{d['loss_type']}` distillation loss (temperature {_cell(d['temperature'])}, alpha {_cell(d['alpha'])})."
        )
        stages.append(f"Measure teacher and student side by side on {_dataset_display(ev['dataset'])} (this card).")
    distillation_rows = [
        ("Distillation loss", f"`{d['loss_type']}`"),
        ("Temperature", _cell(d["temperature"])),
        ("Alpha (weight of the distillation term)", _cell(d["alpha"])),
        ("Layers kept", _layers_text(d["layers_kept"], report)),
        ("Training data", _dataset_display(str(d["dataset"]))),
        ("Training steps", _cell(d["steps"])),
        ("Training time", _duration(report.training["train_seconds"])),
    ]
    shown = {"loss_type", "temperature", "alpha", "layers_kept", "dataset", "steps", "stages"}
    for key, value in d.items():
        if key not in shown and value is not None and not isinstance(value, (dict, list)):
            distillation_rows.append((key.replace("_", " ").capitalize(), _cell(value)))
    environment_rows = [
        ("CPU", _cell(env["cpu"])),
        ("Device", _cell(env["device"])),
    ]
    if env.get("gpu"):
        environment_rows.append(("GPU", _cell(env["gpu"])))
    environment_rows += [
        ("Threads (torch.set_num_threads)", _cell(env["threads"])),
        ("Python", _cell(env["python"])),
        ("torch", _cell(env["torch"])),
        ("transformers", _cell(env["transformers"])),
    ]
    for key in ("evaluate", "platform"):
        if env.get(key):
            environment_rows.append((key, _cell(env[key])))
    environment_rows.append(
        (
            "Benchmark",
            f"batch-1 latency over {bench.get('latency_runs')} runs after {bench.get('warmup')} warm-up runs; "
            f"throughput at batch {bench['batch_size']}; max length {bench.get('max_length')} tokens; "
            "teacher and student runs interleaved",
        )
    )
    pipe = f'pipe = pipeline("{report.task}", model="{repo_id}")'
    usage = "\n".join(["from transformers import pipeline", "", pipe, _USAGE_INPUT[report.task]])
    return {
        "model_name": model_name,
        "summary": summary,
        "eval_dataset": _dataset_display(ev["dataset"]),
        "eval_samples": _cell(ev["num_samples"]),
        "table_rows": [tuple(_cell(c) for c in row) for row in report.table_rows()],
        "primary_metric_label": label.lower(),
        "chart_file": chart_file,
        "report_file": REPORT_FILENAME,
        "stages": stages,
        "distillation_rows": distillation_rows,
        "usage_snippet": usage,
        "teacher": _model_display(t.name_or_path),
        "distillation_data": _dataset_display(str(d["dataset"])),
        "agreement": fmt_pct(100 * f.agreement_top1),
        "fidelity_items": _items(report),
        "environment_rows": environment_rows,
        "hf_distill_version": _version(),
    }


def _items(report: DistillationReport) -> str:
    n = report.fidelity.num_items
    unit = {"text-classification": "examples", "fill-mask": "masked tokens", "text-generation": "next-token positions"}
    return f"{n} {unit[report.task]}"


def _model_display(name_or_path: str) -> str:
    if looks_like_hub_id(name_or_path):
        return f"[`{name_or_path}`](https://huggingface.co/{name_or_path})"
    return f"`{_short_path(name_or_path)}`"


def _version() -> str:
    try:
        return importlib.metadata.version("hf-distill")
    except importlib.metadata.PackageNotFoundError:
        from hf_distill import __version__

        return __version__


def render_card(
    report: DistillationReport,
    *,
    repo_id: str | None = None,
    base_model: str | None = None,
    license: str | None = None,
    language: str | list[str] | None = None,
    model_name: str | None = None,
    template: str | os.PathLike | None = None,
) -> ModelCard:
    """The card as a `ModelCard` (built with `ModelCard.from_template`), without writing files.

    repo_id defaults to the student's name_or_path and base_model to the teacher's (when that is a Hub id).
    """
    repo_id = repo_id or report.student.name_or_path
    model_name = model_name or repo_id.rstrip("/").split("/")[-1]
    if base_model is None:
        if looks_like_hub_id(report.teacher.name_or_path):
            base_model = report.teacher.name_or_path
        else:
            logger.warning(
                "teacher %r is not a Hub id: the card has no base_model (pass base_model=)", report.teacher.name_or_path
            )
    if license is None:
        logger.warning("no license given: the card says 'unknown'; pass the teacher's license")
        license = "unknown"
    tpl = Path(template) if template is not None else template_path()
    variables = card_variables(report, repo_id=repo_id, model_name=model_name)
    card_data = build_card_data(
        report, model_name=model_name, base_model=base_model, license=license, language=language
    )
    text = tpl.read_text(encoding="utf-8")
    # huggingface_hub renders with jinja2's default Undefined (a missing name becomes ""), so render strictly first
    strict = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True).from_string(text)
    try:
        strict.render(card_data=card_data.to_yaml(), **variables)
    except jinja2.UndefinedError as err:
        raise MissingCardField(f"the card template uses a value that was not provided: {err}") from err
    card = ModelCard.from_template(card_data, template_str=text, **variables)
    hit = _PLACEHOLDER.search(card.text)
    if hit:
        raise MissingCardField(
            f"the rendered card contains placeholder text {hit.group(0)!r}: "
            f"{card.text[max(0, hit.start() - 60) : hit.end() + 60]!r}"
        )
    return card


def write_card(
    report: DistillationReport | str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    repo_id: str | None = None,
    base_model: str | None = None,
    license: str | None = None,
    language: str | list[str] | None = None,
    model_name: str | None = None,
    template: str | os.PathLike | None = None,
) -> Path:
    """Write README.md, the chart and (if not there yet) a copy of the report into output_dir; return the card path."""
    report_path = None
    if not isinstance(report, DistillationReport):
        report_path = Path(report)
        if report_path.is_dir():
            report_path = report_path / REPORT_FILENAME
        report = DistillationReport.from_json(report_path)
    card = render_card(
        report,
        repo_id=repo_id,
        base_model=base_model,
        license=license,
        language=language,
        model_name=model_name,
        template=template,
    )
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_chart(report, out / CHART_FILENAME)
    card_path = out / CARD_FILENAME
    card.save(card_path)
    # the card links the report, so it travels with it
    target = out / REPORT_FILENAME
    if report_path is not None and report_path.is_file() and report_path.resolve() != target.resolve():
        shutil.copyfile(report_path, target)
    elif not target.exists():
        report.to_json(target)
    return card_path


__all__ = [
    "CARD_FILENAME",
    "CHART_FILENAME",
    "MissingCardField",
    "build_card_data",
    "card_variables",
    "missing_fields",
    "render_card",
    "template_path",
    "write_card",
    "write_chart",
]
