"""The distillation report: ratios, JSON round trip, schema, table rows, and the end-to-end measurement."""

from __future__ import annotations

import copy
import json
import math

import pytest

from hf_distill.core.report import (
    REPORT_FILENAME,
    SCHEMA_MINOR,
    DistillationReport,
    Fidelity,
    ModelFigures,
    compute_ratios,
    retained_pct,
)
from hf_distill.evaluation.benchmark import BenchmarkSettings
from hf_distill.evaluation.measure import evaluate_pair
from hf_distill.evaluation.pair import EvalData
from tests import tiny

FAST = BenchmarkSettings(
    batch_size=2, warmup=1, latency_runs=3, throughput_runs=2, generation_tokens=4, generation_runs=2, threads=1
)


def sample_report(task: str = "text-classification") -> DistillationReport:
    """A complete hand-made report (no models involved) with easy-to-check numbers."""
    lm = task != "text-classification"
    t_metrics = {"perplexity": 20.0} if lm else {"accuracy": 0.9, "f1": 0.88}
    s_metrics = {"perplexity": 25.0} if lm else {"accuracy": 0.81, "f1": 0.792}
    teacher = ModelFigures(
        "org/teacher-base", 110_000_000, 85_000_000, 440_000_000, 40.0, 50.0, 100.0, 50.0 if lm else None, t_metrics, 12
    )
    student = ModelFigures(
        "org/teacher-small", 66_000_000, 42_500_000, 264_000_000, 20.0, 26.0, 250.0, 125.0 if lm else None, s_metrics, 6
    )
    primary = "perplexity" if lm else "accuracy"
    return DistillationReport(
        task=task,
        teacher=teacher,
        student=student,
        ratios=compute_ratios(teacher, student, primary),
        fidelity=Fidelity(0.95, 0.0312, 0.0071, 872),
        distillation={
            "loss_type": "forward_kl",
            "temperature": 2.0,
            "alpha": 0.5,
            "layers_kept": [0, 2, 4, 6, 8, 10],
            "steps": 1000,
            "dataset": "stanfordnlp/sst2",
            "learning_rate": 5e-5,
        },
        training={"train_seconds": 3725.0},
        environment={
            "python": "3.11.7",
            "torch": "2.13.0",
            "transformers": "5.24.0",
            "cpu": "Test CPU @ 2.50GHz",
            "threads": 2,
            "device": "cpu",
        },
        evaluation={"dataset": "stanfordnlp/sst2", "split": "validation", "num_samples": 872},
        benchmark={"batch_size": 8, "latency_runs": 20, "warmup": 3, "max_length": 128},
    )


def test_ratios_and_retention():
    r = sample_report().ratios
    assert r.size_x == pytest.approx(440 / 264)
    assert r.parameters_x == pytest.approx(110 / 66)
    assert r.speedup_x == pytest.approx(2.5)
    assert r.latency_x == pytest.approx(2.0)
    assert r.metric_retained_pct == pytest.approx(90.0)
    assert r.metric_retained_pct_by_metric["f1"] == pytest.approx(90.0)
    lm = sample_report("text-generation").ratios
    # lower perplexity is better: it is reported as student / teacher, never as a "% retained"
    assert lm.metric_retained_pct is None and "perplexity" not in lm.metric_retained_pct_by_metric
    assert lm.metric_ratio_to_teacher_by_metric == {"perplexity": pytest.approx(1.25)}
    assert lm.generation_speedup_x == pytest.approx(2.5)
    assert retained_pct(20.0, 25.0, lower_is_better=True) == pytest.approx(80.0)
    assert retained_pct(0.9, 0.81) == pytest.approx(90.0)


def test_retention_of_a_zero_score_is_undefined_not_a_number():
    report = sample_report()
    teacher = copy.deepcopy(report.teacher)
    teacher.metrics["f1"] = 0.0
    r = compute_ratios(teacher, report.student, "accuracy")
    assert r.metric_retained_pct_by_metric["f1"] is None
    with pytest.raises(ValueError, match="primary metric"):
        compute_ratios(teacher, report.student, "perplexity")


def test_json_round_trip_keeps_the_documented_shape(tmp_path):
    report = sample_report("text-generation")
    path = report.to_json(tmp_path)
    assert path == tmp_path / REPORT_FILENAME
    data = json.loads(path.read_text())
    for key in (
        "schema_version",
        "task",
        "teacher",
        "student",
        "ratios",
        "fidelity",
        "distillation",
        "training",
        "environment",
    ):
        assert key in data
    for key in (
        "name_or_path",
        "parameters",
        "parameters_without_embeddings",
        "disk_bytes",
        "latency_ms_p50",
        "latency_ms_p95",
        "throughput_per_s",
        "generation_tokens_per_s",
        "metrics",
    ):
        assert key in data["teacher"] and key in data["student"]
    assert set(data["ratios"]) >= {"size_x", "speedup_x", "latency_x", "metric_retained_pct"}
    assert set(data["fidelity"]) >= {"agreement_top1", "kl_teacher_student", "js_divergence"}
    back = DistillationReport.from_json(path)
    assert back == report
    assert DistillationReport.from_json(tmp_path) == report
    assert back.to_dict() == data


def test_classification_report_has_null_generation_speed(tmp_path):
    data = json.loads(sample_report().to_json(tmp_path / "r.json").read_text())
    assert data["teacher"]["generation_tokens_per_s"] is None
    assert data["ratios"]["generation_speedup_x"] is None


def test_incomplete_or_broken_reports_fail_loudly(tmp_path):
    data = sample_report().to_dict()
    del data["student"]["disk_bytes"]
    with pytest.raises(ValueError, match="disk_bytes"):
        DistillationReport.from_dict(data)
    data = sample_report().to_dict()
    del data["fidelity"]
    with pytest.raises(ValueError, match="fidelity"):
        DistillationReport.from_dict(data)
    data = sample_report().to_dict()
    data["schema_version"] = 99
    with pytest.raises(ValueError, match="newer"):
        DistillationReport.from_dict(data)
    report = sample_report()
    report.student.latency_ms_p50 = math.nan
    with pytest.raises(ValueError, match="not JSON compliant: nan"):  # refused, never written as NaN
        report.to_json(tmp_path)
    with pytest.raises(ValueError, match="task"):
        DistillationReport.from_dict({**sample_report().to_dict(), "task": "translation"})


def test_table_rows_are_formatted_from_the_report():
    rows = {r[0]: r[1:] for r in sample_report().table_rows()}
    assert rows["Parameters"] == ("110,000,000", "66,000,000", "1.67× fewer")
    assert rows["Size on disk (MB)"] == ("440.00", "264.00", "1.67× smaller")
    assert rows["Latency p50, batch 1 (ms)"] == ("40.00", "20.00", "2.00× faster")
    assert rows["Throughput, batch 8 (samples/s)"] == ("100.0", "250.0", "2.50× faster")
    assert rows["Accuracy"] == ("0.9000", "0.8100", "90.0% retained")
    assert rows["Top-1 agreement with teacher"][1] == "95.0%"
    assert all(len(r) == 4 and all(isinstance(c, str) for c in r) for r in sample_report().table_rows())
    lm_rows = {r[0]: r[1:] for r in sample_report("text-generation").table_rows()}
    assert lm_rows["Generation (tokens/s)"] == ("50.0", "125.0", "2.50× faster")
    assert lm_rows["Perplexity"] == ("20.0000", "25.0000", "1.25× the teacher's perplexity")
    assert not any("retained" in cell for row in sample_report("text-generation").table_rows() for cell in row)


def test_the_report_json_carries_the_table_rows_read_back_as_they_are(tmp_path):
    report = sample_report()
    data = json.loads(report.to_json(tmp_path).read_text())
    assert data["schema_version"] == 1 and data["schema_minor"] == SCHEMA_MINOR == 6
    assert data["table"] == [list(row) for row in report.table_rows()]
    # the stored rows are what a reader shows: they are built once, when the report is written
    data["table"][0][3] = "1.67× fewer (stored)"
    back = DistillationReport.from_dict(data)
    assert back.table_rows()[0] == ("Parameters", "110,000,000", "66,000,000", "1.67× fewer (stored)")
    assert back.to_dict()["table"][0][3] == "1.67× fewer (stored)"


def test_a_minor_0_report_is_read_with_rows_and_ratios_computed_on_load():
    # what hf-distill wrote before the table was stored: no schema_minor, no table, perplexity "% retained"
    data = sample_report("text-generation").to_dict()
    for key in ("schema_minor", "table"):
        del data[key]
    del data["ratios"]["metric_ratio_to_teacher_by_metric"]
    data["ratios"]["metric_retained_pct"] = 80.0
    data["ratios"]["metric_retained_pct_by_metric"] = {"perplexity": 80.0}
    old = DistillationReport.from_dict(data)
    assert old.schema_minor == SCHEMA_MINOR
    assert old.ratios.metric_retained_pct is None
    assert old.ratios.metric_ratio_to_teacher_by_metric == {"perplexity": pytest.approx(1.25)}
    rows = {r[0]: r[1:] for r in old.table_rows()}
    assert rows["Perplexity"] == ("20.0000", "25.0000", "1.25× the teacher's perplexity")
    assert old.table_rows() == sample_report("text-generation").table_rows()


@pytest.mark.parametrize(
    ("section", "key", "value", "named"),
    [
        ("student", "latency_ms_p50", -3.0, "student.latency_ms_p50"),
        ("student", "disk_bytes", 0, "student.disk_bytes"),
        ("teacher", "parameters", -1, "teacher.parameters"),
        ("student", "parameters", 2.5, "student.parameters"),
        ("student", "throughput_per_s", 0.0, "student.throughput_per_s"),
        ("student", "latency_ms_p95", 10.0, "student.latency_ms_p95"),  # below the median (20)
        ("student", "metrics", {"accuracy": 7.5, "f1": 0.792}, "student.metrics.accuracy"),
        ("teacher", "metrics", {"accuracy": -0.1, "f1": 0.88}, "teacher.metrics.accuracy"),
        ("fidelity", "agreement_top1", 1.2, "fidelity.agreement_top1"),
        ("fidelity", "kl_teacher_student", -0.5, "fidelity.kl_teacher_student"),
        ("fidelity", "js_divergence", 0.9, "fidelity.js_divergence"),
        ("ratios", "size_x", 3.0, "ratios.size_x"),  # the figures give 1.67
        ("ratios", "speedup_x", 0.4, "ratios.speedup_x"),
        ("ratios", "metric_retained_pct", 99.0, "ratios.metric_retained_pct"),
        ("ratios", "metric_retained_pct_by_metric", {"accuracy": 90.0, "f1": 50.0}, "metric_retained_pct_by_metric.f1"),
    ],
)
def test_impossible_figures_are_refused_on_load_naming_the_field(section, key, value, named):
    from hf_distill.core.report import InvalidReport

    data = sample_report().to_dict()
    data[section][key] = value
    with pytest.raises(InvalidReport, match=named.replace(".", r"\.")):
        DistillationReport.from_dict(data)


def test_a_student_that_scores_zero_is_a_valid_report():
    # tiny models often score 0 on some metric: "0.0% retained" is a measurement, not a broken report
    report = sample_report()
    report.student.metrics["f1"] = 0.0
    report.ratios = compute_ratios(report.teacher, report.student, "accuracy")
    back = DistillationReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert {r[0]: r[3] for r in back.table_rows()}["F1"] == "0.0% retained"


def test_impossible_perplexity_and_contradicting_ratio_are_refused():
    from hf_distill.core.report import InvalidReport

    data = sample_report("text-generation").to_dict()
    data["student"]["metrics"]["perplexity"] = 0.5
    with pytest.raises(InvalidReport, match="student.metrics.perplexity"):
        DistillationReport.from_dict(data)
    data = sample_report("text-generation").to_dict()
    data["ratios"]["metric_ratio_to_teacher_by_metric"]["perplexity"] = 0.8  # figures: 25 / 20 = 1.25
    with pytest.raises(InvalidReport, match="perplexity"):
        DistillationReport.from_dict(data)


def test_evaluate_pair_end_to_end_classifier(tiny_bert_cls_dir, tiny_bert_cls_student_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    data = EvalData([t for t, _ in tiny.SENTIMENT], [y for _, y in tiny.SENTIMENT], dataset="tiny-sentiment")
    report = evaluate_pair(
        tiny_bert_cls_dir,
        tiny_bert_cls_student_dir,
        data,
        benchmark=FAST,
        distillation={"loss_type": "forward_kl", "temperature": 2.0},
        training={"train_seconds": 1.5},
        output_dir=tmp_path,
    )
    assert report.task == "text-classification"
    assert report.student.parameters < report.teacher.parameters
    assert (report.teacher.num_layers, report.student.num_layers) == (4, 2)
    assert set(report.student.metrics) == {"accuracy", "f1"}
    assert report.environment["threads"] == 1 and report.environment["torch"]
    assert report.evaluation["num_samples"] == len(tiny.SENTIMENT)
    assert report.evaluation["metric_sources"]["accuracy"].startswith("local:")
    assert report.training == {"train_seconds": 1.5} and report.distillation["temperature"] == 2.0
    assert DistillationReport.from_json(tmp_path / REPORT_FILENAME) == report
    # intervals over the evaluated examples, each containing its figure
    iv = report.intervals
    assert (iv.unit, iv.num_units) == ("examples", len(tiny.SENTIMENT))
    acc = iv.metrics["accuracy"]
    assert acc.teacher.low <= report.teacher.metrics["accuracy"] <= acc.teacher.high
    assert acc.student.low <= report.student.metrics["accuracy"] <= acc.student.high
    gap = report.student.metrics["accuracy"] - report.teacher.metrics["accuracy"]
    assert acc.difference.low <= gap <= acc.difference.high
    f1 = iv.metrics["f1"]
    assert f1.student.low <= report.student.metrics["f1"] <= f1.student.high
    assert iv.fidelity["agreement_top1"].low <= report.fidelity.agreement_top1 <= iv.fidelity["agreement_top1"].high


def test_evaluate_pair_end_to_end_causal_lm(tiny_gpt2_dir, tiny_gpt2_student_dir, tmp_path):
    (tmp_path / "corpus.txt").write_text("\n".join(tiny.CORPUS[:6]) + "\n\n")
    report = evaluate_pair(tiny_gpt2_dir, tiny_gpt2_student_dir, tmp_path / "corpus.txt", benchmark=FAST)
    assert report.task == "text-generation"
    assert report.ratios.primary_metric == "perplexity"
    assert report.teacher.generation_tokens_per_s > 0 and report.student.generation_tokens_per_s > 0
    assert report.ratios.generation_speedup_x > 0
    assert report.evaluation["num_samples"] == 6
    assert 0.0 <= report.fidelity.agreement_top1 <= 1.0 and report.fidelity.kl_teacher_student >= 0
    # perplexity's interval resamples texts (per-text NLL sums and token counts) and contains the figure
    iv = report.intervals
    assert (iv.unit, iv.num_units) == ("texts", 6)
    ppl = iv.metrics["perplexity"]
    assert ppl.teacher.low <= report.teacher.metrics["perplexity"] <= ppl.teacher.high
    assert ppl.student.low <= report.student.metrics["perplexity"] <= ppl.student.high
    kl = iv.fidelity["kl_teacher_student"]
    assert kl.low <= report.fidelity.kl_teacher_student <= kl.high
