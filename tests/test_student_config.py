"""`student_from_teacher(config_overrides=...)` and the pipeline's `student_config`: a student without the
teacher's dropout (what the Grimm example distils; see benchmarks/grimm_recipe.py)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from hf_distill.pipeline.run import Pipeline, parse_run_config
from hf_distill.students.blocks import student_from_teacher
from tests import tiny

NO_DROPOUT = {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}


def _teacher(tmp_path, num_layers: int = 4):
    """A tiny GPT-2 teacher with GPT-2's default dropout (0.1), which the student copies unless told otherwise."""
    config = tiny.gpt2(tiny.bpe_tokenizer(tmp_path), num_layers=num_layers).config
    for name in NO_DROPOUT:
        setattr(config, name, 0.1)
    return type(tiny.gpt2(tiny.bpe_tokenizer(tmp_path), num_layers=1))(config)


def _dropouts(model: nn.Module) -> list[float]:
    return [m.p for m in model.modules() if isinstance(m, nn.Dropout)]


def test_config_overrides_build_the_student_without_dropout_and_keep_the_weights(tmp_path):
    teacher = _teacher(tmp_path)
    assert set(_dropouts(teacher)) == {0.1}
    student = student_from_teacher(teacher, num_layers=2, config_overrides=NO_DROPOUT)
    assert _dropouts(student) and set(_dropouts(student)) == {0.0}
    assert student.config.resid_pdrop == 0.0 and teacher.config.resid_pdrop == 0.1  # the teacher is not modified
    plain = student_from_teacher(teacher, num_layers=2)
    assert set(_dropouts(plain)) == {0.1}
    for (name, a), (_, b) in zip(student.state_dict().items(), plain.state_dict().items()):
        assert torch.equal(a, b), name
    # in train mode the student without dropout is deterministic, the plain one is not
    ids = torch.randint(0, 100, (2, 12))
    student.train()
    assert torch.equal(student(input_ids=ids).logits, student(input_ids=ids).logits)


def test_config_overrides_reject_an_unknown_attribute(tmp_path):
    teacher = _teacher(tmp_path, 2)
    with pytest.raises(ValueError, match="no attribute 'resid_dropout_typo'"):
        student_from_teacher(teacher, num_layers=1, config_overrides={"resid_dropout_typo": 0.0})


def test_pipeline_student_config_reaches_the_built_student(tmp_path):
    teacher = _teacher(tmp_path)
    args, config, _ = parse_run_config(
        None,
        [
            "--task",
            "causal-lm",
            "--teacher",
            "t",
            "--output_dir",
            str(tmp_path / "run"),
            "--student_layers",
            "2",
            "--student_config",
            json.dumps(NO_DROPOUT),
        ],
    )
    student = Pipeline(args, config).build_student(teacher, tokenizer=None)
    assert set(_dropouts(student)) == {0.0} and student.config.num_hidden_layers == 2
