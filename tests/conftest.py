"""Shared fixtures: tiny models and locally trained tokenizers (nothing comes from the Hub)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from tests import tiny  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# Session models are built when the first test asks for them, after whatever earlier tests drew from the RNG: each
# has its own seed, so its weights are the same whichever tests run and in whatever order.
SESSION_SEEDS = {"tiny-bert-cls": 1, "tiny-bert-cls-student": 2, "tiny-gpt2": 3, "tiny-gpt2-student": 4}


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"the shared data sets are missing: expected them at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def wordpiece_tokenizer(tmp_path_factory):
    """A BERT WordPiece tokenizer trained on a small built-in corpus."""
    return tiny.wordpiece_tokenizer(tmp_path_factory.mktemp("wp"))


@pytest.fixture(scope="session")
def bpe_tokenizer(tmp_path_factory):
    """A GPT-2 byte-level BPE tokenizer trained on a small built-in corpus."""
    return tiny.bpe_tokenizer(tmp_path_factory.mktemp("bpe"))


def _saved(tmp_path_factory, name: str, model, tokenizer) -> Path:
    path = tmp_path_factory.mktemp(name)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert_cls_dir(tmp_path_factory, wordpiece_tokenizer) -> Path:
    """A saved tiny BERT sequence classifier (4 layers, 2 labels) with its tokenizer."""
    model = tiny.bert_cls(wordpiece_tokenizer, num_layers=4, seed=SESSION_SEEDS["tiny-bert-cls"])
    return _saved(tmp_path_factory, "tiny-bert-cls", model, wordpiece_tokenizer)


@pytest.fixture(scope="session")
def tiny_bert_cls_student_dir(tmp_path_factory, wordpiece_tokenizer) -> Path:
    """A saved tiny BERT sequence classifier with 2 layers (a student for `tiny_bert_cls_dir`)."""
    model = tiny.bert_cls(wordpiece_tokenizer, num_layers=2, seed=SESSION_SEEDS["tiny-bert-cls-student"])
    return _saved(tmp_path_factory, "tiny-bert-cls-student", model, wordpiece_tokenizer)


@pytest.fixture(scope="session")
def exported_cls_student_dir(tmp_path_factory, tiny_bert_cls_dir, tiny_bert_cls_student_dir) -> Path:
    """The tiny classifier student with its ONNX exports (fp32, int8) and, beside them, the evaluation against
    `tiny_bert_cls_dir` (distillation_report.json and evaluation_examples.json), as the showcase app finds them."""
    import shutil

    from hf_distill.evaluation.benchmark import BenchmarkSettings
    from hf_distill.evaluation.eval_data import EvalData
    from hf_distill.evaluation.measure import evaluate_pair
    from hf_distill.export.onnx import export_onnx

    folder = tmp_path_factory.mktemp("exported") / "student"
    shutil.copytree(tiny_bert_cls_student_dir, folder)
    export_onnx(folder, quantize="int8", texts=[t for t, _ in tiny.SENTIMENT])
    data = EvalData([t for t, _ in tiny.SENTIMENT], [y for _, y in tiny.SENTIMENT], dataset="tiny-sentiment")
    bench = BenchmarkSettings(batch_size=2, warmup=0, latency_runs=1, throughput_runs=1, max_length=16, threads=1)
    os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
    evaluate_pair(tiny_bert_cls_dir, folder, data, benchmark=bench, output_dir=folder)
    return folder


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory, bpe_tokenizer) -> Path:
    """A saved tiny GPT-2 causal LM (4 layers) with its tokenizer."""
    model = tiny.gpt2(bpe_tokenizer, num_layers=4, seed=SESSION_SEEDS["tiny-gpt2"])
    return _saved(tmp_path_factory, "tiny-gpt2", model, bpe_tokenizer)


@pytest.fixture(scope="session")
def tiny_gpt2_student_dir(tmp_path_factory, bpe_tokenizer) -> Path:
    """A saved tiny GPT-2 causal LM with 2 layers (a student for `tiny_gpt2_dir`)."""
    model = tiny.gpt2(bpe_tokenizer, num_layers=2, seed=SESSION_SEEDS["tiny-gpt2-student"])
    return _saved(tmp_path_factory, "tiny-gpt2-student", model, bpe_tokenizer)


@pytest.fixture(scope="session")
def exported_gpt2_student_dir(tmp_path_factory, tiny_gpt2_student_dir) -> Path:
    """The tiny GPT-2 student with its ONNX exports (fp32 and int8, with the key/value cache inputs)."""
    import shutil

    from hf_distill.export.onnx import export_onnx

    folder = tmp_path_factory.mktemp("exported-lm") / "student"
    shutil.copytree(tiny_gpt2_student_dir, folder)
    export_onnx(folder, quantize="int8", texts=["once upon a time there lived a king", "the wolf ate the grandmother"])
    return folder


@pytest.fixture
def logs():
    """Capture every record of our logger, the Hub client's and the HTTP library's, at DEBUG."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    names = ["hf_distill", "huggingface_hub", "httpx2", "httpx", ""]
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    for logger, _ in saved:
        logger.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    yield records
    logging.getLogger().removeHandler(handler)
    for logger, level in saved:
        logger.setLevel(level)
