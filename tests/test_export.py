"""ONNX / int8 export: float32 equals PyTorch, int8 agrees, generation with the cache, clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from hf_distill.export import (
    INT8_FILE,
    ONNX_DIR,
    OnnxExportError,
    OnnxModel,
    compare_with_pytorch,
    export_onnx,
    load_for_export,
    load_onnx_variants,
)
from tests import tiny

TEXTS = [t for t, _ in tiny.SENTIMENT] + tiny.CORPUS[:10]


def _copy(src, tmp_path, name):
    dst = tmp_path / name
    shutil.copytree(src, dst)
    return dst


def test_bert_classifier_export_matches_pytorch(tmp_path, tiny_bert_cls_dir):
    folder = _copy(tiny_bert_cls_dir, tmp_path, "cls")
    result = export_onnx(folder, texts=TEXTS)
    assert (folder / ONNX_DIR / "model.onnx").is_file() and (folder / ONNX_DIR / INT8_FILE).is_file()
    assert result.input_names == ["input_ids", "attention_mask", "token_type_ids"] and result.output_names == ["logits"]
    fp32, int8 = result.checks
    assert fp32.max_abs_logit_diff <= 1e-4 and fp32.top1_agreement == 1.0 and fp32.positions == len(TEXTS)
    # Stated rate for the tiny random classifier (its two logits are close, the hardest case for int8).
    assert int8.top1_agreement >= 0.8
    assert int8.disk_bytes < fp32.disk_bytes
    saved = json.loads((folder / ONNX_DIR / "export_report.json").read_text())
    assert "output_dir" not in saved and saved["checks"][0]["file"] == "onnx/model.onnx"
    # The ONNX model called on a batch gives the PyTorch logits.
    model, tok = load_for_export(folder)
    enc = tok(TEXTS[:3], padding=True, return_tensors="pt")
    onnx_logits = OnnxModel(folder / ONNX_DIR / "model.onnx", model.config)(**enc).logits
    with torch.no_grad():
        torch.testing.assert_close(onnx_logits, model(**enc).logits, atol=1e-4, rtol=0)


def test_masked_lm_export_matches_pytorch(tmp_path, wordpiece_tokenizer):
    folder = tmp_path / "mlm"
    tiny.bert_mlm(wordpiece_tokenizer, num_layers=2).save_pretrained(folder)
    wordpiece_tokenizer.save_pretrained(folder)
    result = export_onnx(folder, quantize=None, texts=TEXTS)
    assert result.checks[0].max_abs_logit_diff <= 1e-4
    assert not (folder / ONNX_DIR / INT8_FILE).exists()


def test_gpt2_export_generates_like_pytorch(tmp_path, tiny_gpt2_dir):
    folder = _copy(tiny_gpt2_dir, tmp_path, "lm")
    result = export_onnx(folder, texts=TEXTS)
    names = result.input_names
    assert names[:3] == ["input_ids", "attention_mask", "position_ids"] and names[3] == "past_key_values.0.key"
    assert result.output_names[1] == "present.0.key"
    assert result.checks[0].max_abs_logit_diff <= 1e-4
    model, tok = load_for_export(folder)
    prompt = tok("once upon a time", return_tensors="pt")
    expected = model.generate(**prompt, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)[0].tolist()
    onnx_model = OnnxModel(folder / ONNX_DIR / "model.onnx", model.config)
    assert onnx_model.generate_greedy(prompt["input_ids"][0].tolist(), 6) == expected
    # Left-padded batches give the same logits at real tokens as PyTorch (positions count real tokens).
    tok.padding_side = "left"
    enc = tok(["the wolf", "once upon a time there lived"], padding=True, return_tensors="pt")
    got = onnx_model.logits(**enc)
    with torch.no_grad():
        ref = model(**enc, position_ids=(enc["attention_mask"].cumsum(1) - 1).clamp(min=0)).logits.numpy()
    real = enc["attention_mask"].numpy().astype(bool)
    assert np.abs(got[real] - ref[real]).max() <= 1e-4


def test_a_disagreeing_export_is_refused(tmp_path, tiny_bert_cls_dir, wordpiece_tokenizer):
    folder = _copy(tiny_bert_cls_dir, tmp_path, "cls")
    export_onnx(folder, quantize=None, texts=TEXTS)
    other = tiny.bert_cls(wordpiece_tokenizer, num_layers=4)  # other weights: the check must see it
    onnx_model = OnnxModel(folder / ONNX_DIR / "model.onnx", load_for_export(folder)[0].config)
    check = compare_with_pytorch(onnx_model, other, wordpiece_tokenizer, TEXTS)
    assert check.max_abs_logit_diff > 1e-3
    with pytest.raises(OnnxExportError, match="exists: pass overwrite"):
        export_onnx(folder, texts=TEXTS)


def test_missing_or_corrupted_onnx_file_is_a_clear_error(tmp_path, tiny_bert_cls_dir):
    folder = _copy(tiny_bert_cls_dir, tmp_path, "cls")
    export_onnx(folder, texts=TEXTS[:4])
    model, _ = load_for_export(folder)
    int8 = folder / ONNX_DIR / INT8_FILE
    int8.write_bytes(int8.read_bytes()[:1000])  # truncated
    with pytest.raises(OnnxExportError, match="corrupted or truncated"):
        load_onnx_variants(folder, model.config)
    int8.unlink()
    with pytest.raises(OnnxExportError, match="does not exist"):
        load_onnx_variants(folder, model.config)


def test_cli_export_prints_each_variant(tmp_path, tiny_bert_cls_dir, capsys):
    from hf_distill.cli import main

    folder = _copy(tiny_bert_cls_dir, tmp_path, "cls")
    data = tmp_path / "val.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in tiny.SENTIMENT))
    assert main(["export", str(folder), "--dataset", str(data), "--text-column", "sentence"]) == 0
    out = capsys.readouterr().out
    assert "onnx/model.onnx" in out and "onnx/model_quantized.onnx" in out and "over 8 positions" in out
