"""Size and speed measurements of a teacher and its student."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from hf_distill.evaluation.benchmark import (
    BenchmarkSettings,
    benchmark_pair,
    count_parameters,
    disk_size_bytes,
    fixed_threads,
    interleaved_runs,
    interleaved_timings,
    percentile,
)
from tests import tiny

FAST = BenchmarkSettings(
    batch_size=2, warmup=1, latency_runs=3, throughput_runs=2, generation_tokens=4, generation_runs=2, threads=1
)


def _cls(path):
    return AutoModelForSequenceClassification.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def _lm(path):
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def test_percentile_interpolates_linearly():
    values = [4.0, 1.0, 3.0, 2.0, 5.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == pytest.approx(4.8)
    assert percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError, match="percentile of no values"):
        percentile([], 50)


def test_runs_are_interleaved_and_alternate_order():
    calls = []
    sec_t, sec_s, res_t, res_s = interleaved_timings(
        lambda i: calls.append(("t", i)) or i, lambda i: calls.append(("s", i)) or -i, runs=4, warmup=1
    )
    assert calls == [("t", 0), ("s", 0), ("t", 0), ("s", 0), ("s", 1), ("t", 1), ("t", 2), ("s", 2), ("s", 3), ("t", 3)]
    assert res_t == [0, 1, 2, 3] and res_s == [0, -1, -2, -3]
    assert len(sec_t) == len(sec_s) == 4 and all(s >= 0 for s in sec_t + sec_s)


def test_settle_calls_precede_a_timed_call_only_after_a_switch():
    calls = []
    seconds, results = interleaved_runs(
        [lambda i: calls.append(("t", i)) or i, lambda i: calls.append(("s", i)) or -i], runs=3, settle=1
    )
    # round 0 (t, s), round 1 (s, t): s runs twice in a row, so no settle call; round 2 (t, s): t likewise
    assert calls == [("t", 0), ("t", 0), ("s", 0), ("s", 0), ("s", 1), ("t", 1), ("t", 1), ("t", 2), ("s", 2), ("s", 2)]
    # only timed calls are recorded
    assert results == [[0, 1, 2], [0, -1, -2]] and [len(s) for s in seconds] == [3, 3]


def test_thread_count_is_fixed_then_restored():
    before = torch.get_num_threads()
    with fixed_threads(1) as used:
        assert used == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match=r"threads must be >= 1"):
        with fixed_threads(0):
            pass


def test_parameters_count_tied_weights_once_and_exclude_embeddings(bpe_tokenizer):
    model = tiny.gpt2(bpe_tokenizer, num_layers=2)
    total, without = count_parameters(model)
    assert model.lm_head.weight is model.transformer.wte.weight
    assert total == sum(p.numel() for p in model.parameters())
    embeddings = model.transformer.wte.weight.numel() + model.transformer.wpe.weight.numel()
    assert without == total - embeddings
    assert 0 < without < total


def test_student_with_fewer_layers_measures_fewer_parameters_and_bytes(tiny_bert_cls_dir, tiny_bert_cls_student_dir):
    teacher, _ = _cls(tiny_bert_cls_dir)
    student, _ = _cls(tiny_bert_cls_student_dir)
    t_total, t_wo = count_parameters(teacher)
    s_total, s_wo = count_parameters(student)
    assert s_total < t_total and s_wo < t_wo
    # the embeddings are the same, so all of the difference is in the dropped blocks
    assert t_total - s_total == t_wo - s_wo == sum(p.numel() for p in teacher.bert.encoder.layer[2:].parameters())
    t_bytes, s_bytes = disk_size_bytes(teacher), disk_size_bytes(student)
    assert 0 < s_bytes < t_bytes
    # fp32 safetensors: 4 bytes per parameter plus a small header
    assert 4 * t_total <= t_bytes < 4 * t_total + 64_000


def test_benchmark_pair_classifier_gives_positive_finite_figures(tiny_bert_cls_dir, tiny_bert_cls_student_dir):
    teacher, t_tok = _cls(tiny_bert_cls_dir)
    student, s_tok = _cls(tiny_bert_cls_student_dir)
    before = torch.get_num_threads()
    res = benchmark_pair(teacher, student, t_tok, s_tok, [t for t, _ in tiny.SENTIMENT], settings=FAST)
    assert res.threads == 1 and res.settings["threads"] == 1
    assert torch.get_num_threads() == before
    for speed in (res.teacher_speed, res.student_speed):
        for value in (speed.latency_ms_p50, speed.latency_ms_p95, speed.throughput_per_s):
            assert math.isfinite(value) and value > 0
        assert speed.latency_ms_p95 >= speed.latency_ms_p50
        assert speed.generation_tokens_per_s is None
    assert res.student_parameters[0] < res.teacher_parameters[0]
    assert res.student_disk_bytes < res.teacher_disk_bytes


def test_benchmark_pair_causal_lm_measures_generation(tiny_gpt2_dir, tiny_gpt2_student_dir):
    teacher, tok = _lm(tiny_gpt2_dir)
    student, _ = _lm(tiny_gpt2_student_dir)
    res = benchmark_pair(teacher, student, tok, tok, tiny.CORPUS[:4], causal_lm=True, settings=FAST)
    for speed in (res.teacher_speed, res.student_speed):
        assert speed.generation_tokens_per_s is not None
        assert math.isfinite(speed.generation_tokens_per_s) and speed.generation_tokens_per_s > 0


def test_benchmark_refuses_empty_input_and_bad_settings(tiny_bert_cls_dir):
    model, tok = _cls(tiny_bert_cls_dir)
    with pytest.raises(ValueError, match="benchmark needs at least one non-empty text"):
        benchmark_pair(model, model, tok, tok, ["", "  "], settings=FAST)
    with pytest.raises(ValueError, match=r"latency_runs must be >= 1"):
        BenchmarkSettings(latency_runs=0)


def test_max_input_length_is_the_smaller_of_the_model_and_tokenizer_limits():
    from types import SimpleNamespace

    from hf_distill.core.loading import max_positions
    from hf_distill.evaluation.benchmark import max_input_length

    model = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=64))
    assert max_positions(model) == max_input_length(model) == 64
    assert max_input_length(model, SimpleNamespace(model_max_length=32)) == 32
    assert max_input_length(model, SimpleNamespace(model_max_length=128)) == 64
    # transformers' "no limit" placeholder is not a limit
    assert max_input_length(model, SimpleNamespace(model_max_length=int(1e30))) == 64
    unbounded = SimpleNamespace(config=SimpleNamespace())
    assert max_positions(unbounded) is None and max_input_length(unbounded) is None
    assert max_input_length(unbounded, SimpleNamespace(model_max_length=16)) == 16
    # GPT-2 names it n_positions; a few configs max_sequence_length: the same limit for training and evaluation
    assert max_positions(SimpleNamespace(config=SimpleNamespace(n_positions=40))) == 40
    assert max_positions(SimpleNamespace(config=SimpleNamespace(max_sequence_length=24))) == 24
    # a config, or config.json read as a dict (the pipeline's checks read it before loading a model)
    assert max_positions(SimpleNamespace(n_positions=40)) == max_positions({"n_positions": 40, "n_layer": 2}) == 40
    assert max_positions({"vocab_size": 10}) is None


def test_max_positions_reads_a_real_gpt2_config(tiny_gpt2_dir):
    from hf_distill.core.loading import max_positions
    from hf_distill.evaluation.benchmark import max_input_length

    model, tok = _lm(tiny_gpt2_dir)
    assert max_positions(model) == model.config.n_positions == model.config.max_position_embeddings
    expected = min(model.config.n_positions, tok.model_max_length if tok.model_max_length < 1_000_000 else 10**9)
    assert max_input_length(model, tok) == expected
