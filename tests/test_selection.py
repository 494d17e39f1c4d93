"""The selection split: held out of the training data by seed, never trained on, the only rows that choose."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hf_distill.core.data import parse_selection_size, selection_split
from hf_distill.pipeline.run import Pipeline, parse_run_config, run_from_config
from tests import tiny
from tests.test_pipeline import cls_config


def write_with_ids(tmp_path: Path) -> tuple[Path, Path]:
    """Train rows with ids 0..47, validation rows with ids 1000.. (the texts repeat, the ids do not)."""
    rows = tiny.SENTIMENT * 6
    train, val = tmp_path / "train_ids.tsv", tmp_path / "validation_ids.tsv"
    train.write_text("idx\tsentence\tlabel\n" + "".join(f"{i}\t{t}\t{y}\n" for i, (t, y) in enumerate(rows)))
    val.write_text(
        "idx\tsentence\tlabel\n" + "".join(f"{1000 + i}\t{t}\t{y}\n" for i, (t, y) in enumerate(tiny.SENTIMENT))
    )
    return train, val


def pipeline(tmp_path: Path, teacher: Path, **extra) -> Pipeline:
    tmp_path.mkdir(parents=True, exist_ok=True)
    train, val = write_with_ids(tmp_path)
    args, config, settings = parse_run_config(
        cls_config(tmp_path, teacher, train_file=str(train), validation_file=str(val), **extra)
    )
    return Pipeline(args, config, settings)


def test_selection_size_reads_rows_or_a_share_and_refuses_anything_else():
    assert parse_selection_size("500") == 500 and parse_selection_size(12) == 12
    assert parse_selection_size("0.1") == 0.1 and parse_selection_size(None) is None
    for bad in ("0", "-3", "1.5", "1.0", "ten"):
        with pytest.raises(ValueError, match="selection_size="):
            parse_selection_size(bad)
    with pytest.raises(ValueError, match="holds out 10 of the 10 training rows"):
        selection_split(10, 10, seed=0)
    kept, held = selection_split(10, 0.25, seed=0)
    assert len(held) == 3 and sorted(kept + held) == list(range(10))  # a share is rounded up, as datasets does


def test_selection_rows_never_overlap_training_or_reporting_rows_and_repeat_by_seed(tmp_path, tiny_bert_cls_dir):
    pipe = pipeline(tmp_path, tiny_bert_cls_dir, selection_size="12", selection_seed=3)
    data = pipe.data
    selection = set(data.selection()["idx"])
    assert len(selection) == 12
    labelled, transfer = data.training_rows()
    trained = set(labelled["idx"]) | set(transfer["idx"])
    assert set(data.student_rows(["negative", "positive"])["idx"]) == trained
    reported = set(data.validation()["idx"])
    assert selection.isdisjoint(trained) and selection.isdisjoint(reported)
    assert selection | set(data.train()["idx"]) == set(range(48))  # nothing lost: the rest is the training pool
    # the student's evaluation during training (what load_best_model_at_end / early stopping read) is the selection
    assert set(pipe.choosing_rows()["idx"]) == selection
    # the same seed holds out the same rows; another seed other rows
    again = pipeline(tmp_path / "again", tiny_bert_cls_dir, selection_size="12", selection_seed=3)
    assert set(again.data.selection()["idx"]) == selection
    other = pipeline(tmp_path / "other", tiny_bert_cls_dir, selection_size="12", selection_seed=4)
    assert set(other.data.selection()["idx"]) != selection


def test_without_a_selection_split_the_card_says_the_reported_split_chose(tmp_path, tiny_bert_cls_dir):
    pipe = pipeline(tmp_path, tiny_bert_cls_dir, eval_strategy="steps", eval_steps=2)
    assert pipe.data.selection() is None
    assert set(pipe.choosing_rows()["idx"]) == set(pipe.data.validation()["idx"])
    assert pipe.selected_on().startswith("the validation split, the same rows these figures are measured on")


def test_a_recipe_chosen_outside_the_run_is_stated_before_what_the_run_chose_on(tmp_path, tiny_bert_cls_dir):
    how = "a recipe sweep (benchmarks/sst2_recipe.py) on the selection split"
    pipe = pipeline(tmp_path, tiny_bert_cls_dir, selection_size="12", recipe_chosen_by=how)
    assert pipe.selected_on() == (
        f"the recipe: {how}; within the run: a selection split of 12 rows held out of the train split "
        "(selection_seed 0), never trained on (this run's training evaluated nothing)"
    )
    assert not pipeline(tmp_path / "plain", tiny_bert_cls_dir, selection_size="12").selected_on().startswith("the r")


def test_a_run_chooses_on_the_selection_split_and_the_card_says_so(tmp_path, tiny_bert_cls_dir, monkeypatch):
    from hf_distill.training.trainer import DistillationTrainer

    evaluated: list[int] = []
    original = DistillationTrainer.evaluate

    def evaluate(self, *args, **kwargs):
        evaluated.append(len(self.eval_dataset))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DistillationTrainer, "evaluate", evaluate)
    train, val = write_with_ids(tmp_path)
    cfg = cls_config(
        tmp_path,
        tiny_bert_cls_dir,
        train_file=str(train),
        validation_file=str(val),
        selection_size="8",
        eval_strategy="steps",
        eval_steps=2,
    )
    results = run_from_config(cfg)
    assert evaluated and set(evaluated) == {8}  # every evaluation during and after training read the 8 held-out rows
    assert results["student"]["eval_split"] == "selection"
    student = tmp_path / "run" / "student"
    report = json.loads((student / "distillation_report.json").read_text())
    assert report["evaluation"]["split"] == "validation" and report["evaluation"]["num_samples"] == len(tiny.SENTIMENT)
    assert report["evaluation"]["selected_on"].startswith("a selection split of 8 rows held out of the train split")
    card = (student / "README.md").read_text()
    assert (
        "Chosen on: a selection split of 8 rows held out of the train split (selection_seed 0), never trained on"
        in card
    )
    assert f"Measured on: the validation split ({len(tiny.SENTIMENT)} rows)." in card
    assert yaml.safe_load(cfg.read_text())["selection_size"] == "8"


def test_plan_times_and_measures_on_the_selection_split(tmp_path, tiny_bert_cls_dir, capsys):
    from hf_distill.cli.main import main

    train, val = write_with_ids(tmp_path)
    cfg = cls_config(
        tmp_path,
        tiny_bert_cls_dir,
        train_file=str(train),
        validation_file=str(val),
        selection_size="8",
        benchmark_runs=1,
        benchmark_batch_size=2,
    )
    out = tmp_path / "plan.json"
    assert (
        main(
            ["plan", str(cfg), "--layers", "1", "--widths", "full", "--trim", "no", "--texts", "4", "--json", str(out)]
        )
        == 0
    )
    assert "timed on 4 texts of selection" in capsys.readouterr().out
    assert json.loads(out.read_text())["timed_on"] == "4 texts of the selection split"


def test_a_bad_selection_size_is_one_line_before_anything_runs(tmp_path, tiny_bert_cls_dir):
    from hf_distill.pipeline.preflight import PreflightError

    train, val = write_with_ids(tmp_path)
    with pytest.raises(ValueError, match=r"^selection_size='ten' is invalid: give a number of training rows"):
        parse_run_config(cls_config(tmp_path, tiny_bert_cls_dir, selection_size="ten"))
    # more rows than the 48 training rows: reported by the check, before the teacher trains
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, train_file=str(train), validation_file=str(val), selection_size="48")
    with pytest.raises(PreflightError, match="selection_size=48 holds out 48 of the 48 training rows"):
        run_from_config(cfg)
    assert not (tmp_path / "run" / "teacher").exists()


def test_selection_size_with_published_soft_targets_is_refused(tmp_path, tiny_bert_cls_dir):
    from hf_distill.pipeline.preflight import check_run

    pipe = pipeline(tmp_path, tiny_bert_cls_dir, selection_size="8", soft_targets=str(tmp_path / "targets"))
    problems = check_run(pipe.args, pipe.config, data=pipe.data)
    assert any(
        p.startswith("selection_size with soft_targets: the student trains on the published rows") for p in problems
    )
