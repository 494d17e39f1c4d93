"""Bootstrap intervals of the report's figures: closed-form cases, pairing, seeds, the report and the card's wording."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from hf_distill.core.intervals import (
    Interval,
    ReportIntervals,
    bootstrap_sums,
    fidelity_intervals,
    pair_intervals,
    percentile_interval,
    report_intervals,
)
from hf_distill.core.report import DistillationReport, InvalidReport, compute_ratios
from hf_distill.evaluation.fidelity import FidelityAccumulator
from hf_distill.publishing.card import render_card
from tests.test_report import sample_report

Z = 1.959964  # standard normal 97.5th percentile


def _correct(n: int, p: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(float)


def test_bernoulli_mean_matches_the_normal_approximation_at_large_n():
    x = _correct(20_000, 0.8, seed=1)
    p = x.mean()
    se = math.sqrt(p * (1 - p) / len(x))
    low, high = percentile_interval(bootstrap_sums(x, resamples=2000, seed=3)[:, 0] / len(x))
    # the percentile bootstrap of a mean converges to p ± z·se; 2000 resamples leave a Monte-Carlo error of a few
    # percent of se on each bound
    assert low == pytest.approx(p - Z * se, abs=0.15 * se)
    assert high == pytest.approx(p + Z * se, abs=0.15 * se)


def test_paired_difference_matches_the_normal_approximation_of_the_mean_difference():
    t = _correct(20_000, 0.8, seed=1)
    s = t.copy()
    flip = np.random.default_rng(2).random(len(t)) < 0.1  # the student differs on ~10% of examples
    s[flip] = 1 - s[flip]
    d = s - t
    se = d.std(ddof=0) / math.sqrt(len(d))
    ci = pair_intervals({"correct_teacher": t, "correct_student": s}, resamples=2000, seed=3)["accuracy"]
    assert ci.difference.low == pytest.approx(d.mean() - Z * se, abs=0.15 * se)
    assert ci.difference.high == pytest.approx(d.mean() + Z * se, abs=0.15 * se)
    # pairing: the difference's interval is far narrower than an unpaired one (separate teacher/student widths)
    unpaired = math.sqrt((ci.teacher.high - ci.teacher.low) ** 2 + (ci.student.high - ci.student.low) ** 2)
    assert ci.difference.high - ci.difference.low < 0.8 * unpaired


def test_identical_models_give_a_zero_difference_and_a_ratio_of_one():
    x = _correct(500, 0.7, seed=0)
    nll = np.random.default_rng(0).random(500) * 40
    tokens = np.random.default_rng(1).integers(1, 30, 500).astype(float)
    out = pair_intervals(
        {
            "correct_teacher": x,
            "correct_student": x.copy(),
            "nll_teacher": nll,
            "nll_student": nll.copy(),
            "tokens": tokens,
        }
    )
    for name in ("accuracy", "perplexity"):
        assert out[name].difference.as_tuple() == (0.0, 0.0)
        assert out[name].ratio.as_tuple() == pytest.approx((1.0, 1.0))
        assert out[name].teacher == out[name].student


def test_perplexity_interval_is_token_weighted_over_texts_and_contains_the_figure():
    rng = np.random.default_rng(4)
    tokens = rng.integers(5, 50, 300).astype(float)
    nll_t = tokens * rng.uniform(2.5, 3.5, 300)
    nll_s = nll_t + tokens * 0.1  # the student: 0.1 nats/token worse on every text
    ci = pair_intervals({"nll_teacher": nll_t, "nll_student": nll_s, "tokens": tokens})["perplexity"]
    ppl_t = math.exp(nll_t.sum() / tokens.sum())
    assert ci.teacher.low < ppl_t < ci.teacher.high
    # a constant per-token gap makes student / teacher exactly exp(0.1) in every resample
    assert ci.ratio.as_tuple() == pytest.approx((math.exp(0.1), math.exp(0.1)))


def test_the_same_seed_gives_the_same_intervals_and_another_seed_others():
    x, y = _correct(872, 0.83, 0), _correct(872, 0.82, 1)
    vectors = {"correct_teacher": x, "correct_student": y, "agree": (x == y).astype(float), "items": np.ones(872)}
    a, b = report_intervals(vectors, "examples", seed=7), report_intervals(vectors, "examples", seed=7)
    assert a == b
    c = report_intervals(vectors, "examples", seed=8)
    assert c.metrics["accuracy"].difference != a.metrics["accuracy"].difference
    # the indices depend on n and the seed only: teacher alone gets the same interval as inside the pair
    alone = pair_intervals({"correct_teacher": x, "correct_student": x}, seed=7)["accuracy"].teacher
    assert alone == a.metrics["accuracy"].teacher


def test_fidelity_intervals_are_means_per_item_resampled_by_unit():
    acc = FidelityAccumulator()
    import torch

    g = torch.Generator().manual_seed(0)
    t, s = torch.randn(40, 5, generator=g), torch.randn(40, 5, generator=g)
    acc.update(t[:25], s[:25], units=torch.arange(25) // 5)  # texts 0-4 with 5 positions each
    acc.update(t[25:], s[25:], units=5 + torch.arange(15) // 3)  # texts 5-9 with 3 each
    per_text = acc.per_unit(11)  # text 10 had no scored position
    assert per_text["items"].tolist() == [5] * 5 + [3] * 5 + [0]
    result = acc.result()
    assert per_text["kl"].sum() / per_text["items"].sum() == pytest.approx(result.kl_teacher_student)
    ci = fidelity_intervals(per_text)
    assert ci["agreement_top1"].low <= result.agreement_top1 <= ci["agreement_top1"].high
    assert ci["kl_teacher_student"].low <= result.kl_teacher_student <= ci["kl_teacher_student"].high


def _with_intervals(student_accuracy: float, difference: tuple[float, float]) -> DistillationReport:
    report = sample_report()
    report.student.metrics["accuracy"] = student_accuracy
    report.ratios = compute_ratios(report.teacher, report.student, "accuracy")
    t = report.teacher.metrics["accuracy"]
    acc = pair_intervals({"correct_teacher": _correct(872, 0.9, 0), "correct_student": _correct(872, 0.9, 1)})
    acc = acc["accuracy"]
    acc.difference = Interval(*difference)
    acc.ratio = Interval(1 + difference[0] / t, 1 + difference[1] / t)
    report.intervals = ReportIntervals(
        unit="examples", num_units=872, metrics={"accuracy": acc}, fidelity={"agreement_top1": Interval(0.93, 0.96)}
    )
    return report


def test_card_says_no_measurable_difference_when_the_interval_includes_zero():
    report = _with_intervals(0.903, (-0.008, 0.011))
    cell = dict((row[0], row[-1]) for row in report.table_rows())["Accuracy"]
    assert cell.startswith("no measurable difference: −0.8 to +1.1 points, 872 examples (100.3% retained")
    text = render_card(report, repo_id="alice/sst2-student", license="mit").text
    summary = text.split("## Teacher vs student")[0]
    assert "no measurable difference: −0.8 to +1.1 points, 872 examples" in summary
    assert "confidence intervals: a paired percentile bootstrap over the 872 evaluated examples" in text
    assert "95.0% (93.0%–96.0%)" in text  # agreement with its interval


def test_card_gives_the_difference_and_retention_intervals_when_they_exclude_zero():
    report = _with_intervals(0.81, (-0.112, -0.069))
    cell = dict((row[0], row[-1]) for row in report.table_rows())["Accuracy"]
    assert "no measurable difference" not in cell
    assert cell == ("90.0% retained; −9.0 points (95% CI −11.2 to −6.9; 87.6% to 92.3% retained), 872 examples")
    teacher_cell = dict((row[0], row[1]) for row in report.table_rows())["Accuracy"]
    lo, hi = report.intervals.metrics["accuracy"].teacher.as_tuple()
    assert teacher_cell == f"0.9000 ({lo:.4f}–{hi:.4f})"


def test_intervals_survive_the_json_round_trip_and_old_reports_still_render(tmp_path):
    report = _with_intervals(0.903, (-0.008, 0.011))
    back = DistillationReport.from_json(report.to_json(tmp_path))
    assert back.intervals == report.intervals
    assert back.table_rows() == report.table_rows()
    # a minor-5 report (no intervals) reads and renders as before: no interval wording
    data = json.loads((tmp_path / "distillation_report.json").read_text())
    data.pop("intervals")
    data["schema_minor"] = 5
    data.pop("table")
    old = DistillationReport.from_dict(data)
    assert old.intervals is None
    assert dict((r[0], r[-1]) for r in old.table_rows())["Accuracy"] == "100.3% retained"
    text = render_card(old, repo_id="alice/sst2-student", license="mit").text
    assert "confidence interval" not in text and "no measurable difference" not in text


def test_an_interval_with_low_above_high_is_refused(tmp_path):
    report = _with_intervals(0.903, (-0.008, 0.011))
    data = report.to_dict()
    data["intervals"]["metrics"]["accuracy"]["difference"] = {"low": 0.02, "high": -0.01}
    with pytest.raises(InvalidReport, match="intervals.metrics.accuracy.difference"):
        DistillationReport.from_dict(data)
    assert dataclasses.asdict(report.intervals)["num_units"] == 872


@pytest.mark.parametrize("average,num_classes", [("binary", 2), ("macro", 3)])
def test_f1_from_counts_equals_scikit_learn_and_its_interval_holds_the_figure(average, num_classes):
    from sklearn.metrics import f1_score

    from hf_distill.core.intervals import _confusion_columns, f1_from_counts

    rng = np.random.default_rng(5)
    label = rng.integers(0, num_classes, 400)
    pred_t = np.where(rng.random(400) < 0.8, label, rng.integers(0, num_classes, 400))
    pred_s = np.where(rng.random(400) < 0.75, label, rng.integers(0, num_classes, 400))
    classes = [1] if average == "binary" else list(range(num_classes))
    for pred in (pred_t, pred_s, np.zeros(400, dtype=int)):  # an all-zero prediction: F1 of absent classes
        counts = _confusion_columns(pred, label, classes).sum(0)
        assert f1_from_counts(counts, average) == pytest.approx(f1_score(label, pred, average=average))
    ci = pair_intervals({"label": label, "pred_teacher": pred_t, "pred_student": pred_s}, f1_average=average)["f1"]
    f1_t, f1_s = f1_score(label, pred_t, average=average), f1_score(label, pred_s, average=average)
    assert ci.teacher.low < f1_t < ci.teacher.high and ci.student.low < f1_s < ci.student.high
    assert ci.difference.low < f1_s - f1_t < ci.difference.high
    same = pair_intervals({"label": label, "pred_teacher": pred_t, "pred_student": pred_t}, f1_average=average)
    assert same["f1"].difference.as_tuple() == (0.0, 0.0)


def test_a_variant_is_compared_with_the_student_on_the_same_examples():
    from hf_distill.core.intervals import difference_intervals
    from hf_distill.core.report import VariantFigures

    student = _correct(872, 0.83, 0)
    int8 = student.copy()
    int8[:6] = 1 - int8[:6]  # the int8 file changes six predictions
    diff = difference_intervals({"correct_student": student}, {"correct_student": int8})["accuracy"]
    d = int8 - student
    # six changed predictions among 872: the paired interval is about ±0.5 points, not the ±2.5 of each accuracy
    assert diff.low <= d.mean() <= diff.high and diff.high - diff.low < 0.012
    report = _with_intervals(0.903, (-0.008, 0.011))
    figures = dataclasses.replace(report.student, name_or_path="onnx/model_quantized.onnx")
    report.variants = [
        VariantFigures(
            "Student ONNX int8",
            figures,
            report.ratios,
            report.fidelity,
            difference_vs_student={"accuracy": Interval(-0.009, 0.003)},
        )
    ]
    cell = dict((row[0], row[3]) for row in report.table_rows())["Accuracy"]
    assert cell == "0.9030 (100.3% retained; no measurable difference from the student: −0.9 to +0.3 points)"
    report.variants[0].difference_vs_student["accuracy"] = Interval(-0.02, -0.006)
    cell = dict((row[0], row[3]) for row in report.table_rows())["Accuracy"]
    assert cell.endswith("; −2.0 to −0.6 points vs the student (95% CI))")
    back = DistillationReport.from_dict(report.to_dict())
    assert back.variants[0].difference_vs_student == report.variants[0].difference_vs_student
