"""The model card and chart written from a distillation report, and the `evaluate` / `card` subcommands."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from PIL import Image

from hf_distill.cli.measure import register
from hf_distill.core.report import REPORT_FILENAME, DistillationReport
from hf_distill.publishing import card as card_mod
from hf_distill.publishing.card import CHART_FILENAME, MissingCardField, render_card, template_path, write_card
from tests import tiny
from tests.test_report import sample_report

ROOT = Path(__file__).resolve().parents[1]


def _table(text: str) -> dict[str, list[str]]:
    """Rows of the teacher-vs-student table, keyed by their first cell."""
    section = text.split("## Teacher vs student", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| |"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def _num(cell: str) -> float:
    return float(re.match(r"[\d,.]+", cell).group(0).replace(",", ""))


def test_card_metadata_loads_with_tags_and_model_index(tmp_path):
    report = sample_report()
    path = write_card(report, tmp_path, repo_id="alice/sst2-student", license="apache-2.0")
    card = ModelCard.load(path)
    data = card.data.to_dict()
    assert data["library_name"] == "transformers"
    assert {"distillation", "knowledge-distillation", "text-classification"} <= set(data["tags"])
    assert data["base_model"] == "org/teacher-base"
    assert data["pipeline_tag"] == "text-classification"
    assert data["license"] == "apache-2.0"
    assert data["datasets"] == ["stanfordnlp/sst2"]
    results = {r.metric_type: r for r in card.data.eval_results}
    assert results["accuracy"].metric_value == report.student.metrics["accuracy"]
    assert results["f1"].metric_value == report.student.metrics["f1"]
    assert results["accuracy"].dataset_type == "stanfordnlp/sst2"
    assert results["accuracy"].dataset_split == "validation"
    assert card.data.model_name == "sst2-student"
    assert (tmp_path / REPORT_FILENAME).is_file()


def test_card_table_numbers_equal_the_report(tmp_path):
    report = sample_report()
    text = write_card(report, tmp_path, repo_id="alice/sst2-student").read_text()
    rows = _table(text)
    t, s, r = report.teacher, report.student, report.ratios
    assert [_num(c) for c in rows["Parameters"][:2]] == [t.parameters, s.parameters]
    assert _num(rows["Size on disk (MB)"][0]) == pytest.approx(t.disk_bytes / 1e6, abs=0.005)
    assert _num(rows["Size on disk (MB)"][1]) == pytest.approx(s.disk_bytes / 1e6, abs=0.005)
    assert _num(rows["Size on disk (MB)"][2]) == pytest.approx(r.size_x, abs=0.005)
    assert _num(rows["Latency p50, batch 1 (ms)"][1]) == pytest.approx(s.latency_ms_p50, abs=0.005)
    assert _num(rows["Latency p50, batch 1 (ms)"][2]) == pytest.approx(r.latency_x, abs=0.005)
    throughput = rows["Throughput, batch 8 (samples/s)"]
    assert _num(throughput[0]) == pytest.approx(t.throughput_per_s, abs=0.05)
    assert _num(throughput[2]) == pytest.approx(r.speedup_x, abs=0.005)
    assert _num(rows["Accuracy"][0]) == pytest.approx(t.metrics["accuracy"], abs=5e-5)
    assert _num(rows["Accuracy"][1]) == pytest.approx(s.metrics["accuracy"], abs=5e-5)
    assert _num(rows["Accuracy"][2]) == pytest.approx(r.metric_retained_pct, abs=0.05)
    assert _num(rows["Top-1 agreement with teacher"][1]) == pytest.approx(
        100 * report.fidelity.agreement_top1, abs=0.05
    )
    # the card's table is exactly the report's table_rows(), which the Space shows too
    assert rows == {row[0]: list(row[1:]) for row in report.table_rows()}


def test_card_body_sections_come_from_the_report(tmp_path):
    text = write_card(sample_report(), tmp_path, repo_id="alice/sst2-student").read_text()
    for heading in (
        "## How it was distilled",
        "## How to use",
        "## Limitations and biases",
        "## Hardware and software",
        "## Citation",
    ):
        assert heading in text
    assert 'pipeline("text-classification", model="alice/sst2-student")' in text
    assert "Test CPU @ 2.50GHz" in text and "1:02:05 (3725.0 s)" in text
    assert "6 of 12 teacher blocks: 0, 2, 4, 6, 8, 10" in text
    assert "arXiv:1503.02531" in text and "arXiv:1910.01108" in text
    assert f"]({CHART_FILENAME})" in text
    assert "90.0%" in text.split("## Teacher vs student")[0]  # the summary states the retention


def test_stages_given_as_text_become_numbered_steps():
    report = sample_report()
    report.distillation["stages"] = "teacher fine-tuning → soft targets → student"
    text = render_card(report, repo_id="alice/x").text
    assert "1. teacher fine-tuning\n2. soft targets\n3. student\n" in text


def test_chart_is_a_valid_png(tmp_path):
    write_card(sample_report("text-generation"), tmp_path, repo_id="alice/gpt-student")
    chart = tmp_path / CHART_FILENAME
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(chart) as img:
        img.verify()
    with Image.open(chart) as img:
        assert img.format == "PNG" and img.size[0] > 300 and img.size[1] > 100


def test_missing_field_fails_loudly_and_writes_nothing(tmp_path):
    report = sample_report()
    del report.distillation["temperature"]
    report.training.pop("train_seconds")
    with pytest.raises(MissingCardField, match=r"distillation\.temperature.*training\.train_seconds"):
        write_card(report, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_template_variable_without_value_fails_instead_of_a_gap(tmp_path):
    custom = tmp_path / "tpl.md"
    custom.write_text(template_path().read_text() + "\nSpeed-up on GPU: {{ gpu_speedup }}\n")
    with pytest.raises(MissingCardField, match="gpu_speedup"):
        render_card(sample_report(), repo_id="alice/x", template=custom)
    # huggingface_hub alone would have rendered the gap silently
    gap = ModelCard.from_template(
        card_mod.build_card_data(sample_report(), model_name="x"), template_str="a {{ gpu_speedup }} b"
    )
    assert "a  b" in gap.text


def test_placeholder_text_never_reaches_a_card(tmp_path):
    report = sample_report()
    report.distillation["loss_type"] = "None"
    with pytest.raises(MissingCardField, match="placeholder"):
        render_card(report, repo_id="alice/x")


def test_a_given_student_without_teacher_blocks_gets_a_card_through_the_card_command(tmp_path, capsys):
    # layers_kept null: the student was given, not built from teacher blocks; the card says so in its own words,
    # which the placeholder check must not mistake for a missing value
    report = sample_report()
    report.distillation["layers_kept"] = None
    report.to_json(tmp_path / REPORT_FILENAME)
    parser = argparse.ArgumentParser(prog="hf-distill")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "card",
            "--report",
            str(tmp_path / REPORT_FILENAME),
            "--output",
            str(tmp_path / "card"),
            "--repo-id",
            "alice/tiny",
            "--license",
            "mit",
        ]
    )
    assert args.func(args) == 0, capsys.readouterr().err
    text = (tmp_path / "card" / "README.md").read_text()
    assert "| Layers kept | no teacher blocks (the student was given" in text
    assert not re.search(r"\bnone\b", text, re.IGNORECASE)


def test_the_templates_own_wording_is_not_a_placeholder_but_a_rendered_none_is(tmp_path):
    custom = tmp_path / "tpl.md"
    custom.write_text(template_path().read_text() + "\nNone of the figures above were measured on a GPU.\n")
    assert "None of the figures" in render_card(sample_report(), repo_id="alice/x", template=custom).text
    rendered = tmp_path / "tpl2.md"
    rendered.write_text(template_path().read_text() + "\nMeasured on: {{ summary and None }}\n")
    with pytest.raises(MissingCardField, match="placeholder text 'None'"):
        render_card(sample_report(), repo_id="alice/x", template=rendered)


def test_local_teacher_gives_no_base_model_and_no_local_path_in_metadata(tmp_path):
    report = sample_report()
    report.teacher.name_or_path = str(tmp_path / "teacher")
    (tmp_path / "teacher").mkdir()
    report.evaluation["dataset"] = str(tmp_path / "data" / "validation.tsv")
    card = render_card(report, repo_id="alice/x")
    assert "base_model" not in card.data.to_dict()
    assert str(tmp_path) not in card.content
    assert card.data.eval_results[0].dataset_type == "data-validation"


def test_one_card_template_packaged_with_hf_distill():
    # one template, shipped in the package (installed wheels and checkouts render the same card)
    assert template_path() == ROOT / "hf_distill" / "templates" / "distilled_model_card.md"
    copies = [p for p in ROOT.rglob("distilled_model_card.md") if ".venv" not in p.parts and ".git" not in p.parts]
    assert copies == [template_path()]


def test_cli_evaluate_then_card(tiny_bert_cls_dir, tiny_bert_cls_student_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    data = tmp_path / "sentiment.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in tiny.SENTIMENT))
    parser = argparse.ArgumentParser(prog="hf-distill")
    register(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "eval"
    args = parser.parse_args(
        [
            "evaluate",
            "--teacher",
            str(tiny_bert_cls_dir),
            "--student",
            str(tiny_bert_cls_student_dir),
            "--dataset",
            str(data),
            "--output",
            str(out),
            "--max-samples",
            "6",
            "--threads",
            "1",
            "--warmup",
            "1",
            "--latency-runs",
            "3",
            "--throughput-runs",
            "1",
            "--bench-batch-size",
            "2",
            "--loss-type",
            "forward_kl",
            "--temperature",
            "2",
            "--alpha",
            "0.5",
            "--layers-kept",
            "1,3",
            "--steps",
            "10",
            "--train-dataset",
            "stanfordnlp/sst2",
            "--train-seconds",
            "12.5",
        ]
    )
    assert args.func(args) == 0
    report = DistillationReport.from_json(out / REPORT_FILENAME)
    assert report.evaluation["num_samples"] == 6
    assert report.distillation["layers_kept"] == [1, 3] and report.training["train_seconds"] == 12.5
    assert "Parameters" in capsys.readouterr().out

    args = parser.parse_args(
        [
            "card",
            "--report",
            str(out / REPORT_FILENAME),
            "--output",
            str(tmp_path / "card"),
            "--repo-id",
            "alice/tiny",
            "--base-model",
            "org/teacher",
            "--license",
            "mit",
        ]
    )
    assert args.func(args) == 0
    card = ModelCard.load(tmp_path / "card" / "README.md")
    assert card.data.base_model == "org/teacher" and card.data.license == "mit"
    assert card.data.eval_results[0].metric_value == report.student.metrics[card.data.eval_results[0].metric_type]
    assert (tmp_path / "card" / CHART_FILENAME).is_file()
    assert json.loads((tmp_path / "card" / REPORT_FILENAME).read_text()) == report.to_dict()

    # a report without the distillation settings cannot make a card: exit code 2 and a message
    bare = report.to_dict()
    bare["distillation"] = {}
    (tmp_path / "bare.json").write_text(json.dumps(bare))
    args = parser.parse_args(["card", "--report", str(tmp_path / "bare.json"), "--output", str(tmp_path / "bare")])
    assert args.func(args) == 2
    assert "distillation.loss_type" in capsys.readouterr().err
    assert not (tmp_path / "bare" / "README.md").exists()


def test_perplexity_is_a_multiple_of_the_teachers_in_card_and_chart(tmp_path):
    report = sample_report("text-generation")
    text = write_card(report, tmp_path, repo_id="alice/lm-student").read_text()
    assert "has 1.25× the teacher's perplexity (25.0000 vs 20.0000)" in text
    assert _table(text)["Perplexity"] == ["20.0000", "25.0000", "1.25× the teacher's perplexity"]
    assert "retained" not in text
    assert card_mod._primary_comparison(report) == "1.25× the teacher's perplexity"
    assert card_mod._primary_comparison(sample_report()) == "90.0% accuracy retained"


def test_card_refuses_a_report_with_impossible_figures(tmp_path):
    from hf_distill.core.report import InvalidReport

    report = sample_report()
    report.student.metrics["accuracy"] = 7.5
    with pytest.raises(InvalidReport, match="student.metrics.accuracy"):
        write_card(report, tmp_path / "card", repo_id="alice/x")
    assert not (tmp_path / "card" / "README.md").exists()


def test_a_card_for_two_repo_ids_names_them_and_renders_again_to_the_same_bytes(tmp_path, capsys):
    import dataclasses

    report = sample_report()
    local = dataclasses.replace(
        report,
        teacher=dataclasses.replace(report.teacher, name_or_path=str(tmp_path / "run" / "teacher")),
        student=dataclasses.replace(report.student, name_or_path=str(tmp_path / "run" / "student")),
        evaluation={**report.evaluation, "dataset": str(tmp_path / "data" / "validation.tsv")},
    )
    local.to_json(tmp_path / "run" / "student" / REPORT_FILENAME)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    ids = ["--repo-id", "alice/sst2-student", "--teacher-repo-id", "alice/sst2-teacher", "--license", "mit"]
    args = parser.parse_args(
        ["card", "--report", str(tmp_path / "run" / "student"), "--output", str(tmp_path / "a"), *ids]
    )
    assert args.func(args) == 0
    written = json.loads((tmp_path / "a" / REPORT_FILENAME).read_text())
    assert written["student"]["name_or_path"] == "alice/sst2-student"
    assert written["teacher"]["name_or_path"] == "alice/sst2-teacher"
    for name in ("README.md", REPORT_FILENAME):  # nothing of this machine's file system
        assert str(tmp_path) not in (tmp_path / "a" / name).read_text()
    assert ModelCard.load(tmp_path / "a" / "README.md").data.base_model == "alice/sst2-teacher"
    # the written report renders the same card again (what a gallery of committed cards relies on)
    args = parser.parse_args(["card", "--report", str(tmp_path / "a"), "--output", str(tmp_path / "b"), *ids])
    assert args.func(args) == 0
    for name in ("README.md", REPORT_FILENAME):
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()
