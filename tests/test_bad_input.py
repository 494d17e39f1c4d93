"""Bad input to `hf-distill run` and the CLI: one clear line naming the problem and the fix, before any work.

The validation pass (`hf-distill run --check`, and automatically at the start of every run) reports every problem
at once; the CLI turns any error into ``hf-distill <command>: error: <message>`` without a traceback (unless --debug).
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
from pathlib import Path

import pytest
import torch
import yaml

from hf_distill.cli.main import main
from hf_distill.core.data import RunData, load_splits
from hf_distill.pipeline.preflight import PreflightError
from hf_distill.pipeline.run import STATE_DIR, Pipeline, parse_run_config, run_from_config
from tests import tiny
from tests.test_pipeline import cls_config, markers

TOKEN = "hf_BadInputTokenForTests0123456789abcdefAB"


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if re.match(r"hf-distill( [\w-]+)?: error:", line)]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---- the token ----------------------------------------------------------------------------------------------------


def test_hub_token_in_config_or_command_line_is_refused(tmp_path, tiny_bert_cls_dir):
    cfg = cls_config(tmp_path, tiny_bert_cls_dir)
    with pytest.raises(ValueError, match=r"hub_token is refused.*HF_TOKEN.*hf auth login"):
        parse_run_config(cfg, ["--hub_token", TOKEN])
    data = yaml.safe_load(cfg.read_text())
    data["hub_token"] = TOKEN
    cfg.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="hub_token is refused"):
        parse_run_config(cfg)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_token_never_reaches_checkpoints_or_run_settings(tmp_path, tiny_bert_cls_dir, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, save_strategy="steps", save_steps=2)
    args, config, settings = parse_run_config(cfg, ["--stop_after", "student"])
    config = dataclasses.replace(config, hub_token=TOKEN)  # set from Python: still never saved
    pipe = Pipeline(args, config, settings)
    pipe.run()
    run = tmp_path / "run"
    saved = list(run.rglob("training_args.bin"))
    assert saved, "no checkpoint was written"
    for path in saved:
        assert TOKEN.encode() not in path.read_bytes()
        assert torch.load(path, weights_only=False).hub_token is None
    for path in run.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    assert pipe.student_arguments(True).hub_token is None and config.hub_token == TOKEN
    assert pickle.dumps(pipe.student_arguments(True)).find(TOKEN.encode()) == -1


# ---- labels -------------------------------------------------------------------------------------------------------


def write_named_labels(tmp_path: Path) -> tuple[Path, Path]:
    names = ("negative", "positive")
    train, val = tmp_path / "named_train.tsv", tmp_path / "named_val.tsv"
    train.write_text("sentence\tlabel\n" + "".join(f"{t}\t{names[y]}\n" for t, y in tiny.SENTIMENT * 6))
    val.write_text("sentence\tlabel\n" + "".join(f"{t}\t{names[y]}\n" for t, y in tiny.SENTIMENT))
    return train, val


@pytest.mark.slow
def test_string_labels_with_class_names_are_mapped_to_ids(tmp_path, tiny_bert_cls_dir):
    train, val = write_named_labels(tmp_path)
    # class_names in the other order than sorted: the ids must follow class_names, not the data.
    cfg = cls_config(
        tmp_path, tiny_bert_cls_dir, train_file=str(train), validation_file=str(val), class_names="positive,negative"
    )
    results = run_from_config(cfg, ["--stop_after", "student"])
    assert results["student"]["global_step"] == 4 and results["soft_targets"]["rows"] == 40
    teacher = json.loads((tmp_path / "run" / "teacher" / "config.json").read_text())
    assert teacher["id2label"] == {"0": "positive", "1": "negative"}
    from datasets import load_from_disk

    cached = load_from_disk(str(tmp_path / "run" / results["soft_targets"]["path"]))
    labels = cached["label"]
    assert labels[:24].count(-1) == 0 and labels[24:] == [-1] * 16 and set(labels[:24]) == {0, 1}


def test_labels_outside_class_names_are_reported_before_any_stage(tmp_path, tiny_bert_cls_dir):
    train, val = write_named_labels(tmp_path)
    val.write_text(val.read_text() + "so so\tneutral\n")
    cfg = cls_config(
        tmp_path, tiny_bert_cls_dir, train_file=str(train), validation_file=str(val), class_names="negative,good"
    )
    with pytest.raises(PreflightError) as err:
        run_from_config(cfg)
    problems = err.value.problems
    assert any("labels ['positive']" in p and "class_names ['negative', 'good']" in p for p in problems), problems
    assert not (tmp_path / "run").exists()
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, train_file=str(train), validation_file=str(val))
    with pytest.raises(PreflightError, match=r"validation data: label 'neutral' is not one of the model's classes"):
        run_from_config(cfg)


def test_all_unlabelled_training_set_is_reported(tmp_path, tiny_bert_cls_dir):
    train = tmp_path / "unlabelled.tsv"
    train.write_text("sentence\tlabel\n" + "".join(f"{t}\t-1\n" for t, _ in tiny.SENTIMENT * 6))
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, train_file=str(train))
    with pytest.raises(PreflightError, match=r"training rows have no labels"):
        run_from_config(cfg)
    assert not (tmp_path / "run").exists()


def _blank_labels(tmp_path: Path, name: str, every: int) -> Path:
    """The sentiment rows with every `every`-th label cell left empty (an unlabelled row)."""
    path = tmp_path / name
    rows = [(t, "" if i % every == 0 else str(y)) for i, (t, y) in enumerate(tiny.SENTIMENT * 6)]
    path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    return path


def test_empty_label_cells_are_unlabelled_rows_not_float_labels(tmp_path, tiny_bert_cls_dir):
    # pandas reads a label column with an empty cell as floats, and datasets gives the validation split that type:
    # the valid labels 0/1 became 0.0/1.0 and were reported as unknown classes
    train = _blank_labels(tmp_path, "all_blank.tsv", every=1)
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, train_file=str(train))
    with pytest.raises(PreflightError) as err:
        run_from_config(cfg, check_only=True)
    assert len(err.value.problems) == 1 and "training rows have no labels" in err.value.problems[0], err.value
    # JSON: a label column of nulls was given to the validation split ("Couldn't cast array of type int64 to null")
    train, val = tmp_path / "all_null.jsonl", tmp_path / "val.jsonl"
    train.write_text("".join(json.dumps({"sentence": t, "label": None}) + "\n" for t, _ in tiny.SENTIMENT * 6))
    val.write_text("".join(json.dumps({"sentence": t, "label": y}) + "\n" for t, y in tiny.SENTIMENT))
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, train_file=str(train), validation_file=str(val))
    with pytest.raises(PreflightError) as err:
        run_from_config(cfg, check_only=True)
    assert len(err.value.problems) == 1 and "training rows have no labels" in err.value.problems[0], err.value
    train = _blank_labels(tmp_path, "some_blank.tsv", every=3)
    for names in ("negative,positive", None):
        cfg = cls_config(
            tmp_path, tiny_bert_cls_dir, train_file=str(train), class_names=names, num_labelled=None, num_transfer=0
        )
        run_from_config(cfg, check_only=True)
    args, config, _ = parse_run_config(cfg)
    data = RunData(args, seed=0)
    labels = data.student_rows(data.label_names())["label"]
    assert sorted(set(labels)) == [-1, 0, 1] and labels.count(-1) == len(labels) // 3
    assert set(data.validation()["label"]) == {0, 1}


# ---- the validation pass ------------------------------------------------------------------------------------------


def test_student_layers_out_of_range_is_refused_before_the_teacher_stage(tmp_path, tiny_bert_cls_dir):
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, student_layers=9)
    with pytest.raises(
        PreflightError, match=r"student_layers=9 is out of range: the teacher has 4 blocks, choose 1..4"
    ):
        run_from_config(cfg)
    assert not (tmp_path / "run" / "teacher").exists()


def test_check_reports_every_problem_at_once_and_writes_nothing(tmp_path, tiny_bert_cls_dir, capsys):
    train, val = write_named_labels(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cfg = cls_config(
        tmp_path,
        tmp_path / "no" / "such" / "teacher",
        student_layers=3,
        train_file=str(train),
        validation_file=str(val),
        class_names="negative,good",
        top_k=4,
        hub_model_id="not a repo id",
        push_to_hub=True,
        hub_space_id="alice/x/y",
        output_dir=str(blocker / "run"),
    )
    code, out, err = cli(capsys, "run", cfg, "--check")
    assert code == 1 and "Traceback" not in err
    assert "6 problem(s)" in err, err
    for expected in (
        "teacher",
        "does not exist (a local path)",
        "labels ['positive'] in column 'label' are not in class_names",
        "top_k applies to token tasks",
        "hub_model_id='not a repo id'",
        "hub_space_id='alice/x/y'",
        "a-file is a file, not a folder",
    ):
        assert expected in err, (expected, err)
    (teacher_line,) = [line for line in err.splitlines() if "such/teacher" in line]
    assert (
        "does not exist" in teacher_line and "repo id" not in teacher_line.lower() and "hub" not in teacher_line.lower()
    )


def test_check_on_a_good_config_passes_and_writes_nothing(tmp_path, tiny_bert_cls_dir, capsys):
    cfg = cls_config(tmp_path, tiny_bert_cls_dir)
    code, out, err = cli(capsys, "run", cfg, "--check")
    assert code == 0 and "no problems found" in out, err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_check_uses_the_finished_teacher_not_the_hub(tmp_path, tiny_bert_cls_dir, capsys):
    # After the teacher stage the original teacher id is no longer needed (e.g. offline): it is not resolved again.
    cfg = cls_config(tmp_path, tiny_bert_cls_dir)
    run_from_config(cfg, ["--stop_after", "teacher"])
    code, out, err = cli(capsys, "run", cfg, "--check", "--student_layers", "5")
    assert code == 1 and "student_layers=5 is out of range: the teacher has 4 blocks" in err


BAD_CONFIGS = {
    "a list": ("- teacher: x\n- task: causal-lm\n", r"expected a mapping of field: value .* got a list"),
    "bad YAML": ("teacher: [unclosed\n", r"is not valid YAML at line \d"),
    "unknown field": ("teacher: x\ntemprature: 2\n", r"unknown config field\(s\) --temprature"),
    "alpha out of range": ("teacher: x\nalpha: 2\n", r"alpha=2.0 is invalid: must be in \[0, 1\]"),
    "max_length 0": ("teacher: x\nmax_length: 0\n", r"max_length=0: must be > 0"),
    "bad task": ("teacher: x\ntask: translation\n", r"invalid choice|task='translation' is invalid"),
}


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_bad_config_is_one_clear_line(tmp_path, capsys, name):
    text, message = BAD_CONFIGS[name]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    try:
        code, out, err = cli(capsys, "run", path, "--check", "--output_dir", tmp_path / "out")
    except SystemExit as exit_:  # argparse's own usage errors (invalid choice) exit 2 with one line
        code, err = exit_.code, capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
    else:
        assert code == 1
        one_error_line(err)
    import re

    assert re.search(message, err), err


def _ragged(p: Path) -> None:
    p.write_text("sentence\tlabel\na fine film\t1\na\tstray tab\t0\n")


BAD_FILES = {
    "missing": (None, r"data file\(s\) not found|data file .* not found"),
    "empty": (lambda p: p.write_text(""), r"is empty: it needs a header line"),
    "header only": (lambda p: p.write_text("sentence\tlabel\n"), r"has a header but no rows"),
    "ragged": (_ragged, r"line 3: 3 fields where the header has 2 .*stray tab"),
    "not utf-8": (
        lambda p: p.write_bytes("sentence\tlabel\ncaf\xe9 cr\xe8me\t1\n".encode("latin-1")),
        r"is not UTF-8 text .*iconv",
    ),
    # without class_names the header's "label" became a third class; with them all the valid labels were flagged
    "header repeated": (
        lambda p: p.write_text("sentence\tlabel\ngood\t1\nbad\t0\nsentence\tlabel\nfine\t1\n"),
        r"line 4 repeats the header \['sentence', 'label'\] .*delete that line",
    ),
    "unclosed quote": (
        lambda p: p.write_text('sentence,label\ngood,1\n"bad film,0\nfine,1\n'),
        r"line 3: 1 fields where the header has 2 .*runs to line 4: an unclosed quote",
    ),
    "other columns than validation": (
        lambda p: p.write_text("text\tlabel\nfine\t1\n"),
        r"data files have different columns .*use one header in every file",
    ),
    "no text column": (lambda p: p.write_text("words\tlabel\nfine\t1\n"), r"text column 'sentence' not found"),
    "no label column": (lambda p: p.write_text("sentence\ty\nfine\t1\n"), r"label column 'label' not found"),
}
SAME_FILE_FOR_VALIDATION = {"no text column", "no label column"}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_training_file_is_one_clear_line(tmp_path, tiny_bert_cls_dir, capsys, name):
    write, message = BAD_FILES[name]
    train = tmp_path / ("bad_train.csv" if name == "unclosed quote" else "bad_train.tsv")
    if write is not None:
        write(train)
    extra = {"validation_file": str(train)} if name in SAME_FILE_FOR_VALIDATION | {"unclosed quote"} else {}
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, train_file=str(train), **extra)
    code, out, err = cli(capsys, "run", cfg)
    assert code == 1
    one_error_line(err)
    import re

    assert re.search(message, err), err
    assert not (tmp_path / "run").exists()


def _tsv(path: Path, rows: list[tuple[str, str]], prefix: bytes = b"") -> Path:
    path.write_bytes(prefix + ("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows)).encode())
    return path


def test_byte_order_mark_is_read_like_datasets_reads_it(tmp_path, tiny_bert_cls_dir):
    # A BOM (Windows editors) is not part of the first column's name: pandas drops it, so the checks must too
    # (it read as '\ufeffsentence': "the data files have different columns")
    train = _tsv(tmp_path / "bom_train.tsv", [(t, str(y)) for t, y in tiny.SENTIMENT * 6], prefix=b"\xef\xbb\xbf")
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, train_file=str(train))
    run_from_config(cfg, check_only=True)
    assert RunData(parse_run_config(cfg)[0], seed=0).train().column_names == ["sentence", "label"]
    corpus = tmp_path / "bom.txt"
    corpus.write_bytes(b"\xef\xbb\xbfthe first line\nthe second line\n")
    assert load_splits(data_files={"train": str(corpus)})["train"]["text"] == ["the first line", "the second line"]


def test_a_text_longer_than_csvs_field_limit_is_read(tmp_path, tiny_bert_cls_dir):
    # csv's 131,072-character limit is not pandas': the check said "field larger than field limit (131072)", no file
    rows = [(t, str(y)) for t, y in tiny.SENTIMENT * 6] + [("word " * 30_000, "1")]
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, train_file=str(_tsv(tmp_path / "long.tsv", rows)))
    run_from_config(cfg, check_only=True)
    assert len(RunData(parse_run_config(cfg)[0], seed=0).train()[-1]["sentence"]) == 150_000


# ---- the CLI ------------------------------------------------------------------------------------------------------


def test_cli_errors_are_one_line_and_the_traceback_needs_debug(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "missing.json"
    for argv in (
        ["card", "--report", missing, "--output", tmp_path / "card"],
        [
            "evaluate",
            "--teacher",
            tmp_path / "t",
            "--student",
            tmp_path / "s",
            "--dataset",
            tmp_path / "d.tsv",
            "--output",
            tmp_path / "e",
        ],
        ["run", tmp_path / "missing.yaml"],
    ):
        code, out, err = cli(capsys, *argv)
        assert code == 1, (argv, err)
        one_error_line(err)  # exactly one "hf-distill: error:" line, no traceback
    code, out, err = cli(capsys, "run", tmp_path / "missing.yaml")
    assert (
        code == 1 and one_error_line(err) == f"hf-distill run: error: config file {tmp_path / 'missing.yaml'} not found"
    )
    code, out, err = cli(capsys, "--debug", "run", tmp_path / "missing.yaml")
    assert code == 1 and "Traceback" in err and "FileNotFoundError" in err
    code, out, err = cli(capsys, "run", tmp_path / "missing.yaml", "--debug")
    assert code == 1 and "Traceback" in err
    monkeypatch.setenv("HF_DISTILL_DEBUG", "1")
    code, out, err = cli(capsys, "run", tmp_path / "missing.yaml")
    assert code == 1 and "Traceback" in err


def test_evaluate_with_a_causal_lm_student_for_a_classifier_teacher_says_the_tasks_differ(
    tmp_path, capsys, tiny_bert_cls_dir, tiny_gpt2_dir
):
    # It said the two models' labels "differ by name": the LM's head was dropped for a random classifier's, whose
    # LABEL_0/LABEL_1 then failed to match, a symptom rather than the cause.
    data = _tsv(tmp_path / "d.tsv", [(t, str(y)) for t, y in tiny.SENTIMENT])
    args = ["--dataset", data, "--text-column", "sentence", "--output", tmp_path / "e"]
    code, out, err = cli(capsys, "evaluate", "--teacher", tiny_bert_cls_dir, "--student", tiny_gpt2_dir, *args)
    line = one_error_line(err)
    assert code == 1 and "is a text-generation model (GPT2LMHeadModel), not text-classification" in line, err
    assert "differ by name" not in err and not (tmp_path / "e").exists()


def test_usage_errors_are_the_commands_short_usage_and_the_error(tmp_path, capsys):
    # argparse printed the whole usage first: 165 lines of fields for `run --alpha abc`, the top-level usage for
    # `card --bogus`, 28 lines for `evaluate`; now two lines, like git: the command's short usage, then the error
    cases = {
        ("card", "--report", "r", "--output", "o", "--bogus"): (
            "usage: hf-distill card --report REPORT --output OUTPUT [options]  (`hf-distill card --help` lists them)",
            "hf-distill card: error: unrecognized arguments: --bogus",
        ),
        ("evaluate", "--teacher", "t"): (
            "usage: hf-distill evaluate --teacher TEACHER --student STUDENT --dataset DATASET --output OUTPUT "
            "[options]",
            "hf-distill evaluate: error: the following arguments are required: --student, --dataset, --output",
        ),
        ("frob",): (
            "usage: hf-distill COMMAND [options]",
            "hf-distill: error: argument COMMAND: invalid choice: 'frob'",
        ),
    }
    for argv, (usage, error) in cases.items():
        with pytest.raises(SystemExit) as exit_:
            main(list(argv))
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and len(err.splitlines()) == 2, err
        assert err.splitlines()[0].startswith(usage) and err.splitlines()[1].startswith(error), err
    config = tmp_path / "c.yaml"
    config.write_text("teacher: x\n")
    for argv, message in (
        ((config, "--alpha", "abc"), "argument --alpha: invalid float value: 'abc'"),
        (("--alpha=0.5",), "the following arguments are required: --teacher"),
    ):
        code, out, err = cli(capsys, "run", *argv)
        assert code == 1 and len(err.splitlines()) == 2, err
        assert (
            one_error_line(err) == f"hf-distill run: error: {message}: `hf-distill run --help-fields` lists the "
            "fields and their values"
        )


@pytest.mark.slow
def test_run_error_after_a_stage_is_one_line(tmp_path, tiny_bert_cls_dir, capsys):
    cfg = cls_config(tmp_path, tiny_bert_cls_dir)
    run_from_config(cfg, ["--stop_after", "teacher"])
    code, out, err = cli(capsys, "run", cfg, "--alpha", "0.9")
    assert code == 1
    # a field set now and not before is compared at its effective value then (the default), not as None
    assert "other settings (alpha: 0.5 -> 0.9)" in err and "Traceback" not in err
    assert markers(tmp_path / "run") == {"teacher"} and (tmp_path / "run" / STATE_DIR / "run_config.json").is_file()
    # setting a field to its default (or to what a default resolves to) is the same run, not "other settings"
    code, out, err = cli(
        capsys,
        "run",
        cfg,
        "--temperature",
        "2.0",
        "--scale_by_temperature_squared",
        "true",
        "--learning_rate",
        "5e-5",
        "--stop_after",
        "teacher",
    )
    assert code == 0 and "teacher: skipped (finished earlier)" in out, err
