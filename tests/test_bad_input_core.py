"""Bad input to the trainer, evaluation and their CLI (issue 11): refused clearly, never a silently wrong result."""

from __future__ import annotations

import copy
import errno
import math
import os
import re
import shutil
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset

from hf_distill import DistillationConfig, DistillationTrainer
from hf_distill.cli.measure import main as measure_main
from hf_distill.core.atomic import DiskFullError, raise_if_disk_full
from hf_distill.core.tasks import get_task
from hf_distill.evaluation.pair import evaluate_models, load_texts
from hf_distill.pipeline.run_state import RunLock
from hf_distill.students.compatibility import check_vocabularies
from hf_distill.students.vocabulary import trim_vocabulary
from tests import tiny
from tests.test_bad_input import cli, one_error_line
from tests.test_report import sample_report


def config(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path / "out"), report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True)
    base.update(kw)
    return DistillationConfig(**base)


@pytest.fixture(scope="module")
def other_wordpiece(tmp_path_factory):
    """A WordPiece tokenizer with another vocabulary than the shared `wordpiece_tokenizer` fixture."""
    return tiny.wordpiece_tokenizer(tmp_path_factory.mktemp("wp-other"), vocab_size=150)


@pytest.fixture
def offline(monkeypatch):
    import evaluate

    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)


# -- classification with another tokenizer -------------------------------------------------------------------------


def test_classifier_teacher_with_other_tokenizer_is_refused_when_it_runs_live(
    tmp_path, wordpiece_tokenizer, other_wordpiece
):
    assert wordpiece_tokenizer.get_vocab() != other_wordpiece.get_vocab()
    student = tiny.bert_cls(wordpiece_tokenizer, 2)
    teacher = tiny.bert_cls(other_wordpiece, 4)
    # the live teacher would read the student's ids, which mean other words in its vocabulary
    with pytest.raises(ValueError, match="different vocabularies.*teacher reads the student's input ids"):
        DistillationTrainer(
            model=student,
            teacher_model=teacher,
            args=config(tmp_path),
            processing_class=wordpiece_tokenizer,
            teacher_processing_class=other_wordpiece,
        )
    # the same when the teacher comes from a folder with its own tokenizer
    path = tmp_path / "teacher"
    teacher.save_pretrained(path)
    other_wordpiece.save_pretrained(path)
    with pytest.raises(ValueError, match="different vocabularies"):
        DistillationTrainer(
            model=tiny.bert_cls(wordpiece_tokenizer, 2),
            teacher_model=str(path),
            args=config(tmp_path),
            processing_class=wordpiece_tokenizer,
        )


def test_classifier_teacher_reading_ids_past_its_vocabulary_is_refused(tmp_path, wordpiece_tokenizer, other_wordpiece):
    # no teacher tokenizer to compare, but the student's tokenizer has more ids than the teacher's embeddings
    assert len(wordpiece_tokenizer) > len(other_wordpiece)
    with pytest.raises(ValueError, match="cannot read the student's input ids"):
        DistillationTrainer(
            model=tiny.bert_cls(wordpiece_tokenizer, 2),
            teacher_model=tiny.bert_cls(other_wordpiece, 4),
            args=config(tmp_path),
            processing_class=wordpiece_tokenizer,
        )


def _batch(tok, texts):
    return {k: torch.as_tensor(v) for k, v in tok(texts, padding=True).items()}


def test_classifier_pairs_that_work_are_still_accepted(tmp_path, wordpiece_tokenizer):
    tok = wordpiece_tokenizer
    texts = [t for t, _ in tiny.SENTIMENT]
    rows = tiny.SENTIMENT[:4]
    labelled = Dataset.from_dict({**tok([t for t, _ in rows]), "label": [y for _, y in rows]})
    # padded teacher vocabulary: the same tokenizer, extra embedding rows; it trains with a live teacher
    padded = tiny.bert_cls(tok, 4)
    padded.resize_token_embeddings(len(tok) + 12)
    trainer = DistillationTrainer(
        model=tiny.bert_cls(tok, 2),
        teacher_model=padded,
        args=config(tmp_path, max_steps=2, learning_rate=1e-2),
        train_dataset=labelled,
        processing_class=tok,
    )
    before = trainer.model.classifier.weight.detach().clone()
    result = trainer.train()
    assert math.isfinite(result.training_loss) and result.training_loss > 0
    assert not torch.equal(trainer.model.classifier.weight, before)
    # cached soft targets: the teacher (another tokenizer) ran on its own tokenization; it never sees the student's ids
    cached = labelled.add_column("teacher_logits", [[0.5, -0.5]] * len(rows))
    trainer = DistillationTrainer(
        model=tiny.bert_cls(tok, 2),
        teacher_model=None,
        args=config(tmp_path, max_steps=1),
        train_dataset=cached,
        processing_class=tok,
    )
    result = trainer.train()
    assert math.isfinite(result.training_loss) and result.training_loss > 0
    # a student whose vocabulary was trimmed from the teacher's: the live teacher reads the student's ids mapped
    # back to its own, so it sees exactly what it sees on the teacher's tokenization
    trimmed, trimmed_tok = trim_vocabulary(tiny.bert_cls(tok, 2), copy.deepcopy(tok), texts, min_corpus_tokens=10)
    assert len(trimmed_tok) < len(tok)
    teacher = tiny.bert_cls(tok, 4).eval()
    trainer = DistillationTrainer(
        model=trimmed,
        teacher_model=teacher,
        args=config(tmp_path),
        processing_class=trimmed_tok,
        teacher_processing_class=tok,
    )
    seen = trainer._teacher_forward(_batch(trimmed_tok, texts), {}).logits
    with torch.no_grad():
        expected = teacher(**_batch(tok, texts)).logits
    torch.testing.assert_close(seen, expected)


def test_a_half_marked_trimmed_student_is_refused(tmp_path, wordpiece_tokenizer, other_wordpiece):
    tok = wordpiece_tokenizer
    # trimmed_from_vocab_size without vocabulary_kept_ids: no id map, so the live teacher would read the student's
    # ids (other words in its vocabulary) unmapped; compatibility and the trainer share one definition and refuse it
    half = tiny.bert_cls(other_wordpiece, 2)
    half.config.trimmed_from_vocab_size = len(tok)
    with pytest.raises(ValueError, match=r"^the model's config marks a trimmed vocabulary inconsistently.*re-trim"):
        DistillationTrainer(
            model=half,
            teacher_model=tiny.bert_cls(tok, 4),
            args=config(tmp_path),
            processing_class=other_wordpiece,
            teacher_processing_class=tok,
        )
    # and the other half: kept ids without the size they were cut from
    other = tiny.bert_cls(other_wordpiece, 2)
    other.config.vocabulary_kept_ids = list(range(len(other_wordpiece)))
    with pytest.raises(ValueError, match="inconsistently"):
        check_vocabularies(
            tiny.bert_cls(tok, 4).config,
            other.config,
            task=get_task("text-classification"),
            teacher_reads_student_ids=True,
        )


# -- evaluation: labels matched by name -----------------------------------------------------------------------------


def _permuted_copy(teacher):
    """The teacher with its two output rows swapped and its id2label swapped to match: the same classifier."""
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        student.classifier.weight.copy_(teacher.classifier.weight.flip(0))
        student.classifier.bias.copy_(teacher.classifier.bias.flip(0))
    student.config.id2label = {0: "positive", 1: "negative"}
    student.config.label2id = {"positive": 0, "negative": 1}
    return student


def test_evaluate_matches_the_students_labels_by_name(wordpiece_tokenizer, offline):
    tok = wordpiece_tokenizer
    teacher = tiny.bert_cls(tok, 2).eval()
    with torch.no_grad():
        teacher.classifier.weight.mul_(50)  # confident, so a wrong label order would disagree everywhere
    student = _permuted_copy(teacher).eval()
    texts, labels = [t for t, _ in tiny.SENTIMENT], [y for _, y in tiny.SENTIMENT]
    ev = evaluate_models(teacher, student, tok, texts, labels, task="text-classification", batch_size=4)
    assert ev.fidelity.agreement_top1 == 1.0
    assert ev.fidelity.kl_teacher_student == pytest.approx(0.0, abs=1e-6)
    assert ev.student_metrics == ev.teacher_metrics
    # names as labels are read through the teacher's label2id
    named = ["positive" if y else "negative" for y in labels]
    assert (
        evaluate_models(teacher, student, tok, texts, named, task="text-classification").teacher_metrics
        == ev.teacher_metrics
    )


def test_evaluate_refuses_labels_that_cannot_be_matched(wordpiece_tokenizer, offline):
    tok = wordpiece_tokenizer
    teacher = tiny.bert_cls(tok, 2).eval()
    student = copy.deepcopy(teacher)
    student.config.id2label = {0: "neg", 1: "pos"}
    student.config.label2id = {"neg": 0, "pos": 1}
    with pytest.raises(ValueError, match="differ by name.*set the student's config id2label"):
        evaluate_models(teacher, student, tok, ["good"], [1], task="text-classification")
    with pytest.raises(ValueError, match="label id 7 is outside the model's labels"):
        evaluate_models(teacher, teacher, tok, ["good"], [7], task="text-classification")


# -- evaluate / card CLI ---------------------------------------------------------------------------------------------


def test_max_samples_must_be_positive(tmp_path, shared_data, capsys):
    data = shared_data / "sst2" / "validation.tsv"
    for bad in ("-5", "0"):
        with pytest.raises(SystemExit) as exit_info:
            measure_main(
                [
                    "evaluate",
                    "--teacher",
                    "t",
                    "--student",
                    "s",
                    "--dataset",
                    str(data),
                    "--output",
                    str(tmp_path),
                    "--max-samples",
                    bad,
                ]
            )
        assert exit_info.value.code == 2
        assert "--max-samples" in capsys.readouterr().err
    for bad in (-5, 0):
        with pytest.raises(ValueError, match=f"max_samples={bad} is invalid"):
            load_texts(data, max_samples=bad)
    assert len(load_texts(data, max_samples=1).texts) == 1


def test_evaluate_and_card_name_the_missing_input(tmp_path, tiny_bert_cls_dir):
    data = tmp_path / "eval.tsv"
    data.write_text("sentence\tlabel\ngood\t1\n")
    with pytest.raises(FileNotFoundError, match="teacher .*no such model folder"):
        measure_main(
            [
                "evaluate",
                "--teacher",
                str(tmp_path / "missing"),
                "--student",
                str(tiny_bert_cls_dir),
                "--dataset",
                str(data),
                "--output",
                str(tmp_path / "out"),
            ]
        )
    with pytest.raises(FileNotFoundError, match="evaluation data .* not found"):
        measure_main(
            [
                "evaluate",
                "--teacher",
                str(tiny_bert_cls_dir),
                "--student",
                str(tiny_bert_cls_dir),
                "--dataset",
                str(tmp_path / "nope.tsv"),
                "--output",
                str(tmp_path / "out"),
            ]
        )
    with pytest.raises(FileNotFoundError, match="no distillation report .* run `hf-distill evaluate"):
        measure_main(["card", "--report", str(tmp_path / "out"), "--output", str(tmp_path / "card")])


def test_card_names_a_report_that_is_not_a_report(tmp_path, capsys):
    # was "hf-distill: error: Expecting value: line 1 column 1 (char 0)", naming no file
    cases = {
        "not json": (b"not json\n", r"is not a distillation report \(not JSON text: Expecting value"),
        "latin-1": (b"caf\xe9", r"is not a distillation report \(not JSON text: 'utf-8' codec"),
        "a list": (b"[1, 2]\n", r"is not a distillation report \(a JSON list, not an object\)"),
        "no fields": (b"{}\n", r": distillation report is missing \['schema_version'"),
    }
    for name, (content, message) in cases.items():
        report = tmp_path / f"{name.replace(' ', '_')}.json"
        report.write_bytes(content)
        code, out, err = cli(capsys, "card", "--report", report, "--output", tmp_path / "card")
        line = one_error_line(err)
        assert code == 1 and line.startswith(f"hf-distill card: error: {report}") and re.search(message, line), line
        if name != "no fields":
            assert line.endswith("pass the distillation_report.json that `hf-distill evaluate` (or `run`) wrote"), line


def _truncated_copy(model_dir, tmp_path):
    folder = tmp_path / "truncated"
    shutil.copytree(model_dir, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return folder, weights


def test_a_truncated_weights_file_is_named(tmp_path, tiny_bert_cls_dir, wordpiece_tokenizer, capsys):
    # was "Error while deserializing header: incomplete metadata, file not fully covered", naming no file
    folder, weights = _truncated_copy(tiny_bert_cls_dir, tmp_path)
    data = tmp_path / "eval.tsv"
    data.write_text("sentence\tlabel\ngood\t1\n")
    code, out, err = cli(
        capsys,
        "evaluate",
        "--teacher",
        tiny_bert_cls_dir,
        "--student",
        folder,
        "--dataset",
        data,
        "--output",
        tmp_path / "out",
    )
    assert code == 1 and one_error_line(err).startswith(
        f"hf-distill evaluate: error: the student's weights file {weights} (Error while deserializing header"
    ), err
    assert "is truncated or damaged (an interrupted copy or download?): copy it again" in err
    with pytest.raises(ValueError, match=re.escape(f"the teacher's weights file {weights} (")):
        DistillationTrainer(
            model=tiny.bert_cls(wordpiece_tokenizer, 2),
            teacher_model=str(folder),
            args=config(tmp_path),
            processing_class=wordpiece_tokenizer,
        )


def test_trainer_refuses_a_student_with_the_teachers_labels_in_another_order(tmp_path, wordpiece_tokenizer):
    tok = wordpiece_tokenizer
    teacher = tiny.bert_cls(tok, 4)
    with pytest.raises(ValueError, match="orders the teacher's labels .* differently"):
        DistillationTrainer(
            model=_permuted_copy(tiny.bert_cls(tok, 2)),
            teacher_model=teacher,
            args=config(tmp_path),
            processing_class=tok,
        )
    # a student with names of its own is index-aligned by construction
    generic = tiny.bert_cls(tok, 2)
    generic.config.id2label, generic.config.label2id = {0: "LABEL_0", 1: "LABEL_1"}, {"LABEL_0": 0, "LABEL_1": 1}
    DistillationTrainer(model=generic, teacher_model=teacher, args=config(tmp_path), processing_class=tok)


# -- a full disk -------------------------------------------------------------------------------------------------------


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")  # as a full disk reports it: no file name


def test_a_full_disk_names_the_folder_and_the_fix(tmp_path, tiny_bert_cls_student_dir, capsys, monkeypatch):
    # was "hf-distill: error: [Errno 28] No space left on device", naming no file (card, export)
    from huggingface_hub import ModelCard

    from hf_distill.export import onnx as export

    report = sample_report().to_json(tmp_path / "report")
    monkeypatch.setattr(ModelCard, "save", _no_space)
    code, out, err = cli(capsys, "card", "--report", report, "--output", tmp_path / "card")
    line = one_error_line(err)
    assert code == 1 and f"no space left on the device holding {tmp_path / 'card'} (" in line, err
    assert line.endswith("free some space there (`df -h` shows what is left), or write to another disk"), line
    monkeypatch.setattr(export, "_export_fp32", _no_space)
    code, out, err = cli(capsys, "export", tiny_bert_cls_student_dir, "--output", tmp_path / "exp")
    assert code == 1 and f"no space left on the device holding {tmp_path / 'exp' / 'onnx'} (" in one_error_line(err)
    assert not (tmp_path / "exp" / "onnx").exists()


def test_a_full_disk_is_recognised_in_other_libraries_errors(tmp_path, monkeypatch):
    safetensors = RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
    with pytest.raises(DiskFullError, match=re.escape(f"holding {tmp_path / 'x'} (") + ".*os error 28"):
        raise_if_disk_full(safetensors, tmp_path / "x")
    torch_save = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    raise_if_disk_full(torch_save, tmp_path)  # another error on a disk with room: left to the caller
    raise_if_disk_full(ValueError("bad value"), tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=10**9, used=10**9, free=4096))
    with pytest.raises(DiskFullError, match="unexpected pos"):  # torch.save's only sign of a full disk
        raise_if_disk_full(torch_save, tmp_path / "not" / "made" / "yet")
    raise_if_disk_full(ValueError("bad value"), tmp_path)  # not a failed write, whatever the disk
    raise_if_disk_full(KeyboardInterrupt(), tmp_path)


def test_a_lock_that_cannot_be_written_is_not_left_behind(tmp_path, monkeypatch):
    # an empty lock file made every later run say "in use by another hf-distill run (process None on None)"
    real_fdopen = os.fdopen

    def full(fd, *args, **kwargs):
        real_fdopen(fd).close()
        _no_space()

    monkeypatch.setattr(os, "fdopen", full)
    with pytest.raises(DiskFullError, match=re.escape(f"holding {tmp_path} (")):
        RunLock(tmp_path).acquire()
    monkeypatch.undo()
    assert not (tmp_path / ".hf_distill" / "lock").exists()
    with RunLock(tmp_path):
        pass
