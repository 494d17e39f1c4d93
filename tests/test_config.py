"""DistillationConfig: defaults, HfArgumentParser, and one error per bad value."""

import pytest
from transformers import HfArgumentParser

from hf_distill import DistillationConfig


def make(tmp_path, **kw):
    return DistillationConfig(output_dir=str(tmp_path), report_to=[], **kw)


def test_defaults_and_t_squared_default(tmp_path):
    cfg = make(tmp_path)
    assert cfg.loss_type == "forward_kl" and cfg.scale_by_temperature_squared is True
    assert make(tmp_path, loss_type="mse").scale_by_temperature_squared is False
    assert make(tmp_path, loss_type="jsd").scale_by_temperature_squared is True
    assert make(tmp_path, loss_type="mse", scale_by_temperature_squared=True).scale_by_temperature_squared is True


def test_hf_argument_parser_round_trip(tmp_path):
    (cfg,) = HfArgumentParser(DistillationConfig).parse_args_into_dataclasses(
        [
            "--output_dir",
            str(tmp_path),
            "--temperature",
            "4",
            "--alpha",
            "0.9",
            "--loss_type",
            "jsd",
            "--jsd_beta",
            "0.2",
            "--layer_mapping",
            "1:2,2:4",
            "--hidden_loss",
            "cosine",
            "--report_to",
            "none",
        ]
    )
    assert (cfg.temperature, cfg.alpha, cfg.loss_type, cfg.jsd_beta) == (4.0, 0.9, "jsd", 0.2)
    assert cfg.layer_pairs == [(1, 2), (2, 4)]
    (cfg2,) = HfArgumentParser(DistillationConfig).parse_dict({"output_dir": str(tmp_path), "layer_mapping": "last"})
    assert cfg2.layer_pairs == "last"


def test_layer_mapping_accepts_pairs(tmp_path):
    cfg = make(tmp_path, layer_mapping=[[1, 2], [2, 4]])
    assert cfg.layer_mapping == "1:2,2:4" and cfg.layer_pairs == [(1, 2), (2, 4)]


BAD = [
    ("temperature", 0, "must be > 0"),
    ("temperature", -1.5, "must be > 0"),
    ("temperature", "hot", "expected a number"),
    ("alpha", 1.5, r"\[0, 1\]"),
    ("alpha", -0.1, r"\[0, 1\]"),
    ("loss_type", "kl", "forward_kl, reverse_kl, jsd"),
    ("jsd_beta", 1.2, r"\[0, 1\]"),
    ("skew_lambda", 1.0, r"\[0, 1\)"),
    ("skew_lambda", -0.2, r"\[0, 1\)"),
    ("hidden_loss_weight", -1, ">= 0"),
    ("hidden_loss", "l1", "mse, cosine"),
    ("attention_loss_weight", -0.5, ">= 0"),
    ("layer_mapping", "everything", "uniform"),
    ("layer_mapping", "1-2", "uniform"),
    ("layer_mapping", "1:-2", "non-negative"),
    ("layer_mapping", [[1, 2, 3]], "pairs"),
    ("teacher_dtype", "int8", "float32, bfloat16"),
]


@pytest.mark.parametrize("field,value,allowed", BAD, ids=[f"{f}={v!r}" for f, v, _ in BAD])
def test_bad_value_names_field_value_and_allowed(tmp_path, field, value, allowed):
    with pytest.raises(ValueError) as err:
        make(tmp_path, **{field: value})
    message = str(err.value)
    assert f"DistillationConfig.{field}={value!r}" in message
    assert pytest.importorskip("re").search(allowed, message), message
