"""ONNX / int8 export: float32 equals PyTorch, int8 agrees, generation with the cache, clear errors."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch

from hf_distill.export.onnx import (
    INT8_FILE,
    ONNX_DIR,
    OnnxExportError,
    OnnxModel,
    export_onnx,
    load_for_export,
    load_onnx_variants,
)
from tests import tiny

TEXTS = [t for t, _ in tiny.SENTIMENT] + tiny.CORPUS[:10]


def _contrib_ops(path) -> dict[str, int]:
    """onnxruntime-only (com.microsoft) operators in an ONNX file, counted."""
    import collections

    import onnx

    return dict(collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node if n.domain == "com.microsoft"))


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
    # Fused for onnxruntime: one Attention per layer (quantized as QAttention), residual LayerNorms, bias + GELU;
    # the checks above were made on these fused files.
    layers = 4
    assert _contrib_ops(folder / ONNX_DIR / "model.onnx") == {
        "Attention": layers,
        "SkipLayerNormalization": 2 * layers,
        "BiasGelu": layers,
    }
    assert _contrib_ops(folder / ONNX_DIR / INT8_FILE)["QAttention"] == layers
    config = json.loads((folder / ONNX_DIR / "ort_config.json").read_text())
    assert config["optimization"]["fusions"]["attention"] == layers
    # The padding mask reaches every QAttention as its mask_index (the quantizer drops an additive attention_bias,
    # and the int8 model would then attend to padding).
    import onnx

    qattention = [n for n in onnx.load(str(folder / ONNX_DIR / INT8_FILE)).graph.node if n.op_type == "QAttention"]
    assert config["optimization"]["attention_mask_index"] == layers
    assert all(n.input[5] == "attention_mask_index" for n in qattention) and len(qattention) == layers
    assert config["quantization"]["operators_to_quantize"] == ["MatMul", "Attention", "Gather"]
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
    assert _contrib_ops(folder / ONNX_DIR / "model.onnx")["Attention"] == 2


def test_gpt2_export_generates_like_pytorch(tmp_path, tiny_gpt2_dir):
    folder = _copy(tiny_gpt2_dir, tmp_path, "lm")
    result = export_onnx(folder, texts=TEXTS)
    names = result.input_names
    assert names[:3] == ["input_ids", "attention_mask", "position_ids"] and names[3] == "past_key_values.0.key"
    assert result.output_names[1] == "present.0.key"
    assert result.checks[0].max_abs_logit_diff <= 1e-4
    _generates_and_pads_like_pytorch(folder, "once upon a time")


def _generates_and_pads_like_pytorch(folder, prompt_text: str):
    """The exported decoder's greedy continuation with the cache equals PyTorch's, and left-padded batches give the
    same logits at real tokens (positions count real tokens). Returns the PyTorch model and the ONNX model."""
    model, tok = load_for_export(folder)
    prompt = tok(prompt_text, return_tensors="pt")
    expected = model.generate(**prompt, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)[0].tolist()
    onnx_model = OnnxModel(folder / ONNX_DIR / "model.onnx", model.config)
    assert onnx_model.generate_greedy(prompt["input_ids"][0].tolist(), 6) == expected
    tok.padding_side = "left"
    enc = tok(["the wolf", "once upon a time there lived"], padding=True, return_tensors="pt")
    got = onnx_model.logits(**enc)
    with torch.no_grad():
        ref = model(**enc, position_ids=(enc["attention_mask"].cumsum(1) - 1).clamp(min=0)).logits.numpy()
    real = enc["attention_mask"].numpy().astype(bool)
    assert np.abs(got[real] - ref[real]).max() <= 1e-4
    return model, onnx_model


@pytest.mark.parametrize("family", ["llama", "qwen3"])
def test_llama_layout_export_generates_like_pytorch(tmp_path, family):
    """A Llama-layout student (grouped-query attention: the cache holds num_key_value_heads heads of head_dim; Qwen3
    sets head_dim apart from hidden_size / heads): fp32 equals PyTorch, greedy generation with the cache equals
    PyTorch's, left-padded batches too; the int8 file is measured."""
    from tests.tiny_decoders import TEXTS as DECODER_TEXTS
    from tests.tiny_decoders import decoder_for, llama3_tokenizer

    tok = llama3_tokenizer()
    model = decoder_for(family, tok, **({"head_dim": 16} if family == "qwen3" else {}))  # not hidden / heads = 8
    folder = tmp_path / family
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    result = export_onnx(folder, quantize="int8", texts=DECODER_TEXTS[:4] + TEXTS[:4])
    assert result.checks[0].max_abs_logit_diff <= 1e-4 and result.checks[0].top1_agreement == 1.0
    assert result.checks[1].file == f"{ONNX_DIR}/{INT8_FILE}" and result.checks[1].top1_agreement > 0.8
    model, onnx_model = _generates_and_pads_like_pytorch(folder, "Once upon a time")
    cache = {i.name: i.shape for i in onnx_model.session.get_inputs()}["past_key_values.0.key"]
    assert cache[1] == model.config.num_key_value_heads == 2 and cache[3] == model.config.head_dim


def test_a_disagreeing_export_is_refused(tmp_path, tiny_bert_cls_dir, wordpiece_tokenizer, monkeypatch):
    import hf_distill.export.onnx as export

    real_export = export._export_fp32
    other = tiny.bert_cls(wordpiece_tokenizer, num_layers=4)  # other weights: the check must see it

    def export_other_weights(model, task, path, opset):  # an exporter that writes a graph with other weights
        real_export(other, task, path, opset)

    monkeypatch.setattr(export, "_export_fp32", export_other_weights)
    folder = _copy(tiny_bert_cls_dir, tmp_path, "cls")
    with pytest.raises(
        OnnxExportError,
        match=r"the float32 ONNX export disagrees with PyTorch: max \|logit difference\| "
        r"\S+ \(allowed 0\.0001\), top-1 agreement .*; nothing was written$",
    ) as info:
        export_onnx(folder, texts=TEXTS, optimize=False)
    assert "--no-optimize" not in str(info.value)  # the graph was not fused: that is not the way out
    assert not (folder / ONNX_DIR).exists() and not list(folder.glob(".onnx-*"))  # no staging folder left
    monkeypatch.setattr(export, "_export_fp32", real_export)
    export_onnx(folder, texts=TEXTS, optimize=False)  # the real exporter agrees
    with pytest.raises(OnnxExportError, match="exists: pass overwrite"):
        export_onnx(folder, texts=TEXTS)


def test_a_fused_graph_that_disagrees_is_refused_naming_no_optimize(tmp_path, tiny_bert_cls_dir, monkeypatch):
    import onnx
    from onnx import numpy_helper

    import hf_distill.export.onnx as export

    def bad_fusion(path):  # a fusion that changes the maths: every float weight doubled
        model = onnx.load(str(path))
        for init in model.graph.initializer:
            if init.data_type == onnx.TensorProto.FLOAT:
                init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 2, init.name))
        onnx.save(model, str(path))
        return {"tool": "test", "fusions": {}}

    monkeypatch.setattr(export, "optimize_for_onnxruntime", bad_fusion)
    folder = _copy(tiny_bert_cls_dir, tmp_path, "cls")
    with pytest.raises(OnnxExportError, match="disagrees with PyTorch.*nothing was written.*--no-optimize"):
        export_onnx(folder, texts=TEXTS)
    assert not (folder / ONNX_DIR).exists()
    export_onnx(folder, texts=TEXTS, optimize=False)  # the way out the message names
    assert _contrib_ops(folder / ONNX_DIR / "model.onnx") == {}


def _truncate(folder):
    int8 = folder / ONNX_DIR / INT8_FILE
    int8.write_bytes(int8.read_bytes()[: int8.stat().st_size // 2])


def _alter_one_byte(folder):
    int8 = folder / ONNX_DIR / INT8_FILE
    data = bytearray(int8.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the checksum can tell
    int8.write_bytes(bytes(data))


def _resave_weights(folder):
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 0.01  # trained further after the export: the ONNX files are stale
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


# damage -> what the one-line refusal says about which file
DAMAGED_EXPORTS = {
    "truncated": (_truncate, rf"{INT8_FILE} is \d+ bytes, but the export checked \d+ bytes \(truncated"),
    "altered": (_alter_one_byte, rf"{INT8_FILE} is not the file the export checked \(its SHA-256 differs"),
    "stale": (_resave_weights, r"onnx was exported from other weights: \S*model.safetensors changed since the export"),
}


@pytest.fixture(scope="module")
def exported_student(tmp_path_factory, tiny_bert_cls_student_dir):
    """The tiny student with its (fused, int8) export, made once; tests damage copies of it."""
    folder = tmp_path_factory.mktemp("exported") / "student"
    shutil.copytree(tiny_bert_cls_student_dir, folder)
    export_onnx(folder, texts=TEXTS[:4])
    return folder


def test_the_export_report_records_sizes_and_checksums(exported_student, tiny_bert_cls_dir, monkeypatch):
    import argparse

    import gradio

    from hf_distill.cli import demo as cli_demo
    from hf_distill.export.onnx import file_digest, verify_export

    report = json.loads((exported_student / ONNX_DIR / "export_report.json").read_text())
    assert set(report["file_digests"]) == {"onnx/model.onnx", f"onnx/{INT8_FILE}", "onnx/ort_config.json"}
    for rel, digest in report["file_digests"].items():
        assert digest == file_digest(exported_student / rel) and len(digest["sha256"]) == 64
    assert report["source_weights"] == {"model.safetensors": file_digest(exported_student / "model.safetensors")}
    assert verify_export(exported_student)["files"] == report["files"]  # an intact export is accepted
    assert set(load_onnx_variants(exported_student, load_for_export(exported_student)[0].config)) == {
        "onnx",
        "onnx-int8",
    }
    launched = []
    monkeypatch.setattr(gradio.Blocks, "launch", lambda self, **kw: launched.append(self))  # the real one blocks
    parser = argparse.ArgumentParser()
    cli_demo.register(parser.add_subparsers())
    args = parser.parse_args(
        ["demo", "--teacher", str(tiny_bert_cls_dir), "--student", str(exported_student), "--port", "0"]
    )
    assert args.func(args) == 0 and len(launched) == 1


@pytest.mark.parametrize("damage", sorted(DAMAGED_EXPORTS))
def test_an_export_that_no_longer_matches_its_check_is_refused_by_evaluate_and_demo(
    damage, tmp_path, exported_student, tiny_bert_cls_dir, capsys
):
    import argparse

    from hf_distill.cli import demo as cli_demo
    from hf_distill.cli.main import main

    folder = _copy(exported_student, tmp_path, "student")
    spoil, message = DAMAGED_EXPORTS[damage]
    spoil(folder)
    with pytest.raises(OnnxExportError, match=message + ".*export again with `hf-distill export "):
        load_onnx_variants(folder, load_for_export(folder)[0].config)  # what evaluate measures the variants with
    data = tmp_path / "val.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in tiny.SENTIMENT))
    code = main(
        [
            "evaluate",
            "--teacher",
            str(tiny_bert_cls_dir),
            "--student",
            str(folder),
            "--dataset",
            str(data),
            "--output",
            str(tmp_path / "eval"),
            "--threads",
            "1",
            "--latency-runs",
            "2",
            "--throughput-runs",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and not (tmp_path / "eval" / "distillation_report.json").exists()
    (line,) = [
        x for x in err.splitlines() if x.startswith("hf-distill evaluate: error:")
    ]  # one line, beside progress bars
    assert re.search(message, line) and f"`hf-distill export {folder} --overwrite`" in line and str(folder) in line
    parser = argparse.ArgumentParser()
    cli_demo.register(parser.add_subparsers())
    args = parser.parse_args(["demo", "--teacher", str(tiny_bert_cls_dir), "--student", str(folder), "--port", "0"])
    assert args.func(args) == 2  # refused before any model is loaded
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("hf-distill demo: ") and re.search(message, line) and "hf-distill export" in line


def test_verify_export_refuses_unchecked_and_missing_files(tmp_path, exported_student):
    from hf_distill.export.onnx import verify_export

    folder = _copy(exported_student, tmp_path, "student")
    (folder / "distillation_projections.safetensors").write_bytes(b"training only")  # not the model's weights
    assert verify_export(folder) is not None
    extra = folder / ONNX_DIR / "model_fp16.onnx"
    extra.write_bytes((folder / ONNX_DIR / "model.onnx").read_bytes())
    with pytest.raises(OnnxExportError, match="model_fp16.onnx is not a file the export checked.*hf-distill export"):
        verify_export(folder)
    extra.unlink()
    (folder / ONNX_DIR / INT8_FILE).unlink()
    with pytest.raises(OnnxExportError, match=f"{INT8_FILE} does not exist.*hf-distill export"):
        verify_export(folder)
    report = folder / ONNX_DIR / "export_report.json"
    old = json.loads(report.read_text())
    del old["file_digests"], old["source_weights"]  # a report written before the checksums were recorded
    report.write_text(json.dumps(old))
    with pytest.raises(OnnxExportError, match="records no checksums.*hf-distill export"):
        verify_export(folder)
    report.unlink()
    with pytest.raises(OnnxExportError, match="model.onnx has no export check"):
        verify_export(folder)
    shutil.rmtree(folder / ONNX_DIR)
    assert verify_export(folder) is None  # no export at all: nothing to check


def test_a_corrupted_onnx_file_read_directly_is_a_clear_error(tmp_path, exported_student):
    folder = _copy(exported_student, tmp_path, "student")
    model, _ = load_for_export(folder)
    int8 = folder / ONNX_DIR / INT8_FILE
    int8.write_bytes(int8.read_bytes()[:1000])  # truncated
    with pytest.raises(OnnxExportError, match="corrupted or truncated"):
        OnnxModel(int8, model.config)
    int8.unlink()
    with pytest.raises(OnnxExportError, match="does not exist"):
        OnnxModel(int8, model.config)


def test_cli_export_prints_each_variant(tmp_path, tiny_bert_cls_dir, capsys):
    from hf_distill.cli.main import main

    folder = _copy(tiny_bert_cls_dir, tmp_path, "cls")
    data = tmp_path / "val.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in tiny.SENTIMENT))
    assert main(["export", str(folder), "--dataset", str(data), "--text-column", "sentence", "--no-optimize"]) == 0
    out = capsys.readouterr().out
    assert "onnx/model.onnx" in out and "onnx/model_quantized.onnx" in out and "over 8 positions" in out
    # --no-optimize: standard ONNX operators only, so any ONNX runtime can load the files.
    assert _contrib_ops(folder / ONNX_DIR / "model.onnx") == {}
    assert "optimization" not in json.loads((folder / ONNX_DIR / "ort_config.json").read_text())


def test_exported_variants_become_report_card_and_app_columns(tmp_path, tiny_bert_cls_dir, tiny_bert_cls_student_dir):
    from huggingface_hub import ModelCard

    from hf_distill.core.report import REPORT_FILENAME, DistillationReport
    from hf_distill.evaluation.benchmark import BenchmarkSettings
    from hf_distill.evaluation.measure import evaluate_pair
    from hf_distill.evaluation.pair import EvalData
    from hf_distill.publishing.card import write_card
    from tests.test_card import _table

    student = _copy(tiny_bert_cls_student_dir, tmp_path, "student")
    export_onnx(student, texts=TEXTS)
    texts = [t for t, _ in tiny.SENTIMENT]
    data = EvalData(
        texts=texts,
        labels=[y for _, y in tiny.SENTIMENT],
        dataset="local",
        split=None,
        text_column="sentence",
        label_column="label",
    )
    report = evaluate_pair(
        tiny_bert_cls_dir,
        student,
        data,
        threads=1,
        metric_source="local",
        benchmark=BenchmarkSettings(batch_size=4, latency_runs=3, throughput_runs=2, warmup=1),
        distillation={
            "loss_type": "forward_kl",
            "temperature": 2.0,
            "alpha": 0.5,
            "layers_kept": [1, 3],
            "dataset": "local",
            "steps": 4,
        },
        training={"train_seconds": 1.0},
    )
    assert [v.name for v in report.variants] == ["Student ONNX fp32", "Student ONNX int8"]
    fp32, int8 = report.variants
    assert fp32.figures.name_or_path == "onnx/model.onnx" and int8.figures.name_or_path == "onnx/model_quantized.onnx"
    # the float32 export gives the PyTorch student's predictions, so the same accuracy and agreement
    assert fp32.figures.metrics["accuracy"] == report.student.metrics["accuracy"]
    assert fp32.fidelity.agreement_top1 == report.fidelity.agreement_top1
    # paired on the same examples, the fp32 file's accuracy differs from the student's by exactly nothing
    assert fp32.difference_vs_student["accuracy"].as_tuple() == (0.0, 0.0)
    assert (
        "no measurable difference from the student: +0.0 to +0.0 points"
        in dict((row[0], row[3]) for row in report.table_rows())["Accuracy"]
    )
    assert int8.figures.disk_bytes < fp32.figures.disk_bytes
    # timed in the same round-robin runs as teacher and student: the ratios read off the table's own columns
    assert int8.ratios.latency_x == pytest.approx(report.teacher.latency_ms_p50 / int8.figures.latency_ms_p50)
    assert int8.ratios.speedup_x == pytest.approx(int8.figures.throughput_per_s / report.teacher.throughput_per_s)
    assert report.table_columns() == [
        "",
        "Teacher",
        "Student",
        "Student ONNX fp32",
        "Student ONNX int8",
        "Student vs teacher",
    ]
    rows = {row[0]: row for row in report.table_rows()}
    assert all(len(row) == 6 for row in rows.values())
    assert rows["Size on disk (MB)"][4].endswith("smaller)")
    # JSON round trip keeps the columns; card and app show the same cells
    out = tmp_path / "card"
    card = write_card(report, out, repo_id="alice/student").read_text()
    stored = json.loads((out / REPORT_FILENAME).read_text())
    assert stored["table_header"][3:5] == ["Student ONNX fp32", "Student ONNX int8"]
    assert DistillationReport.from_dict(stored).table_rows() == report.table_rows()
    assert "| | Teacher | Student | Student ONNX fp32 | Student ONNX int8 | Student vs teacher |" in card
    assert _table(card)["Size on disk (MB)"] == list(rows["Size on disk (MB)"][1:])
    assert 'ort.InferenceSession(hf_hub_download("alice/student", "onnx/' in card
    # a local, unpublished card points at the file in the folder (hf_hub_download cannot read a folder)
    local = write_card(report, tmp_path / "local_card", repo_id=str(student)).read_text()
    assert f'ort.InferenceSession("{student}/onnx/' in local and "hf_hub_download" not in local
    # the fused files name the ONNX Runtime operators they need (in the report and the card), and the way out
    assert fp32.onnxruntime_operators == ["Attention", "BiasGelu", "SkipLayerNormalization"]
    assert int8.onnxruntime_operators == ["BiasGelu", "QAttention", "SkipLayerNormalization"]
    assert stored["variants"][1]["onnxruntime_operators"] == int8.onnxruntime_operators
    assert "`QAttention`" in card and "hf-distill export --no-optimize" in card and "picks `onnx/" not in card
    from tests.test_app import load_app_module

    app = load_app_module()
    md = app.report_markdown(app.read_report(out / REPORT_FILENAME))
    app_rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in md.splitlines()
        if line.startswith("| ") and not line.startswith("| |")
    }
    assert app_rows == {k: list(v[1:]) for k, v in rows.items()}
    assert "Student ONNX int8" in md
    # the model-index reports the form the card recommends (an export that keeps the student's accuracy)
    from hf_distill.core.report import recommended_variant

    chosen = recommended_variant(report)
    expected = (chosen.figures if chosen else report.student).metrics["accuracy"]
    assert ModelCard(card).data.eval_results[0].metric_value == expected
    if chosen:
        assert f"**`{chosen.figures.name_or_path}`** is the one this card recommends" in card


@pytest.mark.slow
def test_pipeline_export_stage_measures_and_publishes_the_int8_student(tmp_path, tiny_bert_cls_dir):
    from hf_distill.hub.selection import select_model_files
    from hf_distill.pipeline.run import run_from_config
    from tests.test_pipeline import cls_config, markers

    cfg = cls_config(tmp_path, tiny_bert_cls_dir, export_onnx=True, quantize="int8")
    results = run_from_config(cfg)
    run = tmp_path / "run"
    assert markers(run) == {"teacher", "soft_targets", "student", "export", "evaluate", "card"}
    assert results["export"]["checks"][0]["max_abs_logit_diff"] <= 1e-4
    report = json.loads((run / "student" / "distillation_report.json").read_text())
    assert [v["name"] for v in report["variants"]] == ["Student ONNX fp32", "Student ONNX int8"]
    assert "Student ONNX int8" in (run / "student" / "README.md").read_text()
    files = set(select_model_files(run / "student"))
    assert {"onnx/model.onnx", "onnx/model_quantized.onnx", "onnx/ort_config.json"} <= files
    # a re-run skips the finished export
    assert run_from_config(cfg)["export"]["skipped"]


def test_quantize_without_export_is_refused(tmp_path, tiny_bert_cls_dir):
    from hf_distill.pipeline.run import parse_run_config
    from tests.test_pipeline import cls_config

    with pytest.raises(ValueError, match="quantize='int8' needs export_onnx"):
        parse_run_config(cls_config(tmp_path, tiny_bert_cls_dir, quantize="int8"))
