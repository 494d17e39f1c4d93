"""Sample quality of causal LMs: distinct-n, repetition rate, the teacher's NLL of samples, and their place in the
report and the card."""

from __future__ import annotations

import argparse
import json
import math
import re

import pytest
import torch

from hf_distill.cli.measure import register
from hf_distill.core.loading import load_model
from hf_distill.core.report import SAMPLE_NLL_LABEL, SCHEMA_MINOR, DistillationReport, InvalidReport, fmt_metric
from hf_distill.evaluation.benchmark import BenchmarkSettings, fixed_threads
from hf_distill.evaluation.eval_data import EvalData
from hf_distill.evaluation.measure import evaluate_pair
from hf_distill.evaluation.sample_quality import (
    SampleFigures,
    SampleQuality,
    SampleSettings,
    completions_of,
    distinct_n,
    generate_completions,
    measure_samples,
    pad_left,
    prompts_from_texts,
    repetition_rate,
    sample_quality,
    teacher_nll,
)
from hf_distill.publishing.card import render_card, write_card
from tests import tiny
from tests.test_report import sample_report


# -- pure functions, against hand-computed values ----------------------------------------------------------------
def test_distinct_n_counts_unique_ngrams_over_all_samples():
    samples = [[1, 2, 3, 1, 2], [1, 2, 4]]
    # unigrams: 5 + 3 = 8, distinct {1, 2, 3, 4} = 4
    assert distinct_n(samples, 1) == pytest.approx(4 / 8)
    # bigrams: (1,2) (2,3) (3,1) (1,2) | (1,2) (2,4) -> 6, distinct {(1,2), (2,3), (3,1), (2,4)} = 4
    assert distinct_n(samples, 2) == pytest.approx(4 / 6)
    # n-grams never cross samples: [1] + [2] holds no bigram (1, 2); a too-short sample adds nothing
    assert distinct_n([[1, 2], [2, 1], [7]], 2) == 1.0
    assert distinct_n([[5, 5, 5, 5]], 1) == 0.25


def test_repetition_rate_is_the_repeated_share_per_sample_averaged():
    # sample 1, bigrams (1,2) (2,1) (1,2) (2,1): the last two repeat earlier ones -> 2/4
    # sample 2, bigrams (3,4) (4,5): none repeats -> 0; sample 3 has no bigram and is left out
    assert repetition_rate([[1, 2, 1, 2, 1], [3, 4, 5], [9]], n=2) == pytest.approx((0.5 + 0.0) / 2)
    # a loop of one token: every 4-gram after the first repeats it -> 3 of 4
    assert repetition_rate([[7] * 7]) == pytest.approx(3 / 4)
    assert repetition_rate([[1, 2, 3, 4, 5, 6]], n=4) == 0.0


@pytest.mark.parametrize("fn", [distinct_n, repetition_rate])
def test_undefined_ngram_measures_and_bad_n_are_refused(fn):
    with pytest.raises(ValueError, match="no sample has 3 tokens"):
        fn([[1, 2], [3]], 3)
    with pytest.raises(ValueError, match="n=0 is invalid"):
        fn([[1, 2]], 0)


def test_pad_left_and_completions_of():
    ids, mask = pad_left([[5, 6, 7], [8]], pad_token_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    # a completion ends at its first EOS (kept), the filler after it is dropped
    assert completions_of(torch.tensor([[4, 2, 9, 2], [4, 5, 6, 7]]), eos_token_id=2) == [[4, 2], [4, 5, 6, 7]]
    assert completions_of(torch.tensor([[4, 2]]), eos_token_id=None) == [[4, 2]]


def test_prompts_are_the_first_tokens_of_the_first_texts_that_long(bpe_tokenizer):
    def ids(text):
        return bpe_tokenizer(text, add_special_tokens=False)["input_ids"]

    long_1, short, long_2, long_3 = "the wolf ate the grandmother", "ah", "once upon a time there", "the little tailor"
    assert len(ids(short)) < 3 <= min(len(ids(t)) for t in (long_1, long_2, long_3))
    texts = [long_1, short, long_2, long_3]
    # a short text is skipped while enough long ones remain
    assert prompts_from_texts(bpe_tokenizer, texts, 2, 3) == [ids(long_1)[:3], ids(long_2)[:3]]
    # and fills in, whole and after the long ones, when there are too few
    assert prompts_from_texts(bpe_tokenizer, texts, 5, 3) == [ids(t)[:3] for t in (long_1, long_2, long_3)] + [
        ids(short)
    ]
    with pytest.raises(ValueError, match="no evaluation text gives a prompt token"):
        prompts_from_texts(bpe_tokenizer, [""], 2, 3)


def test_sample_settings_refuse_bad_values():
    with pytest.raises(ValueError, match="max_new_tokens=0"):
        SampleSettings(max_new_tokens=0)
    with pytest.raises(ValueError, match="top_p=1.5"):
        SampleSettings(top_p=1.5)
    with pytest.raises(ValueError, match="temperature=0"):
        SampleSettings(temperature=0)


# -- teacher NLL against a direct loop ----------------------------------------------------------------------------
def test_teacher_nll_equals_a_token_by_token_loop_on_unpadded_rows(bpe_tokenizer):
    teacher = tiny.gpt2(bpe_tokenizer, num_layers=2).eval()
    rows = [[11, 12, 13, 14, 15, 16, 17], [21, 22, 23, 24], [31, 32, 33, 34, 35]]
    completion_lengths = [3, 2, 4]
    ids, mask = pad_left(rows, pad_token_id=bpe_tokenizer.pad_token_id)
    completion = torch.zeros_like(mask, dtype=torch.bool)
    for i, n in enumerate(completion_lengths):
        completion[i, ids.shape[1] - n :] = True
    total, count = teacher_nll(teacher, ids, completion, mask)

    expected, expected_count = 0.0, 0
    with torch.no_grad():
        for row, n in zip(rows, completion_lengths):
            for j in range(len(row) - n, len(row)):
                logits = teacher(torch.tensor([row[:j]])).logits[0, -1].double()
                expected -= float(torch.log_softmax(logits, -1)[row[j]])
                expected_count += 1
    assert count == expected_count == sum(completion_lengths)
    assert total == pytest.approx(expected, rel=1e-5)
    # batching the rows differently changes nothing: the sum is over tokens
    assert teacher_nll(teacher, ids, completion, mask, batch_size=1) == pytest.approx((total, count), rel=1e-5)
    # scoring over the tokenizer's vocabulary only cuts logits, and is what the report's perplexity does
    cut_total, _ = teacher_nll(teacher, ids, completion, mask, vocab_size=len(bpe_tokenizer) - 10)
    assert cut_total < total


def test_teacher_nll_projects_scored_positions_in_chunks_and_equals_full_logits(bpe_tokenizer, monkeypatch):
    """The teacher's final hidden states go through its lm_head a few scored positions at a time (the model itself
    computes logits for no position), and the sum equals the full-logit cross-entropy, left padding included."""
    from hf_distill.training import chunked_losses

    teacher = tiny.gpt2(bpe_tokenizer, num_layers=2).eval()
    rows = [[11, 12, 13, 14, 15, 16, 17, 18, 19], [21, 22, 23, 24], [31, 32, 33, 34, 35, 36]]
    ids, mask = pad_left(rows, pad_token_id=bpe_tokenizer.pad_token_id)
    completion = torch.zeros_like(mask, dtype=torch.bool)
    completion[:, ids.shape[1] - 3 :] = True
    widths = []
    teacher.lm_head.register_forward_hook(lambda mod, a, out: widths.append(out.shape[-2]))
    monkeypatch.setattr(chunked_losses, "positions_per_chunk", lambda size, vocab: 2)
    total, count = teacher_nll(teacher, ids, completion, mask)
    assert widths and set(widths) == {0}  # the model's own call: hidden states only
    cut_total, _ = teacher_nll(teacher, ids, completion, mask, vocab_size=len(bpe_tokenizer) - 10)
    widths.clear()
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = teacher(input_ids=ids, attention_mask=mask, position_ids=position_ids).logits[:, :-1].double()
    assert widths == [ids.shape[1]]
    scored = completion[:, 1:]
    for vocab, got in ((logits.shape[-1], total), (len(bpe_tokenizer) - 10, cut_total)):
        nll = torch.nn.functional.cross_entropy(logits[..., :vocab].transpose(1, 2), ids[:, 1:], reduction="none")
        assert got == pytest.approx(float(nll[scored].sum()), rel=1e-5)
    assert count == int(scored.sum()) == 9


def test_teacher_nll_refuses_a_mask_on_padding(bpe_tokenizer):
    teacher = tiny.gpt2(bpe_tokenizer, num_layers=1)
    ids, mask = pad_left([[5, 6, 7], [8, 9]], pad_token_id=0)
    with pytest.raises(ValueError, match="marks padding"):
        teacher_nll(teacher, ids, torch.ones_like(ids, dtype=torch.bool), mask)


# -- generation and the whole measure ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_teacher(bpe_tokenizer):
    """A tiny GPT-2 trained on the built-in corpus until it predicts it well: a teacher with something to say."""
    torch.manual_seed(0)
    model = tiny.gpt2(bpe_tokenizer, num_layers=2, hidden=64)
    enc = bpe_tokenizer(sorted(set(tiny.CORPUS)), padding=True, return_tensors="pt")
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    with fixed_threads(1):  # tiny matrices: more threads only contend with each other
        for _ in range(100):
            loss = model(**enc, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
    assert loss.item() < 1.0
    return model.eval()


def test_generation_is_seeded_and_leaves_the_callers_random_state_alone(bpe_tokenizer):
    model = tiny.gpt2(bpe_tokenizer, num_layers=1)
    prompts = prompts_from_texts(bpe_tokenizer, tiny.CORPUS[:6], num_prompts=4, prompt_tokens=3)
    assert len(prompts) == 4 and all(len(p) == 3 for p in prompts)
    kw = dict(pad_token_id=bpe_tokenizer.pad_token_id, eos_token_id=bpe_tokenizer.eos_token_id)
    state = torch.get_rng_state()
    first = generate_completions(model, prompts, settings=SampleSettings(max_new_tokens=6, seed=3), **kw)
    assert torch.equal(torch.get_rng_state(), state)
    assert first == generate_completions(model, prompts, settings=SampleSettings(max_new_tokens=6, seed=3), **kw)
    assert first != generate_completions(model, prompts, settings=SampleSettings(max_new_tokens=6, seed=4), **kw)
    assert all(1 <= len(c) <= 6 for c in first)


def test_left_padding_changes_no_completion(trained_teacher, bpe_tokenizer):
    # greedy: a prompt continued in a batch of prompts of other lengths gives what it gives alone
    prompts = [p[:k] for p, k in zip(prompts_from_texts(bpe_tokenizer, tiny.CORPUS[:5], 5, 8), (8, 2, 5, 8, 3))]
    settings = SampleSettings(do_sample=False, max_new_tokens=6, batch_size=5)
    kw = dict(pad_token_id=bpe_tokenizer.pad_token_id, eos_token_id=None, settings=settings)
    batched = generate_completions(trained_teacher, prompts, **kw)
    assert batched == [generate_completions(trained_teacher, [p], **kw)[0] for p in prompts]


def test_ids_past_the_tokenizer_vocabulary_are_never_sampled(bpe_tokenizer):
    # an embedding matrix padded past the tokenizer (50257 -> 50304 style), with the padding rows made likeliest
    model = tiny.gpt2(bpe_tokenizer, num_layers=1, vocab_size=len(bpe_tokenizer) + 40)
    with torch.no_grad():
        model.lm_head.weight[len(bpe_tokenizer) :] *= 50
    prompts = prompts_from_texts(bpe_tokenizer, tiny.CORPUS[:4], num_prompts=4, prompt_tokens=3)
    out = generate_completions(
        model,
        prompts,
        pad_token_id=bpe_tokenizer.pad_token_id,
        eos_token_id=None,
        settings=SampleSettings(max_new_tokens=8),
        vocab_size=len(bpe_tokenizer),
    )
    assert max(max(c) for c in out) < len(bpe_tokenizer)


def test_the_teacher_finds_its_own_samples_likelier_than_an_untrained_models(trained_teacher, bpe_tokenizer):
    untrained = tiny.gpt2(bpe_tokenizer, num_layers=2, hidden=64).eval()
    q = sample_quality(
        untrained, trained_teacher, bpe_tokenizer, tiny.CORPUS[:10], max_new_tokens=12, seed=0, batch_size=4
    )
    # measured: about 1.3 nats/token for the teacher's samples, 11 for the untrained model's (uniform is 5.7)
    assert q.teacher.teacher_nll < 2.5 and q.student.teacher_nll > math.log(len(bpe_tokenizer))
    assert q.nll_ratio == pytest.approx(q.student.teacher_nll / q.teacher.teacher_nll) and q.nll_ratio > 3
    assert q.num_prompts == 10 and q.generation["max_new_tokens"] == 12 and q.generation["top_k"] == 0
    for fig in (q.teacher, q.student):
        assert 0 < fig.num_tokens <= 10 * 12
        assert 0 < fig.distinct_1 <= 1 and 0 < fig.distinct_2 <= 1 and 0 <= fig.repetition_rate < 1


def test_a_student_identical_to_the_teacher_scores_exactly_like_it(trained_teacher, bpe_tokenizer):
    # same model, same seed, same prompts: the same samples, so every figure is equal and the ratio is 1
    q = measure_samples(
        trained_teacher,
        trained_teacher,
        bpe_tokenizer,
        tiny.CORPUS,
        SampleSettings(num_prompts=6, prompt_tokens=4, max_new_tokens=10, batch_size=4),
    )
    assert q.teacher == q.student and q.nll_ratio == 1.0
    assert q.num_prompts == 6 and q.prompt_tokens == 4 and q.short_prompts == 0


def test_too_long_a_generation_for_the_models_positions_is_refused(bpe_tokenizer):
    model = tiny.gpt2(bpe_tokenizer, num_layers=1)  # 64 positions
    with pytest.raises(ValueError, match="exceed the teacher's 64 positions"):
        sample_quality(model, model, bpe_tokenizer, [[5, 6, 7, 8]], max_new_tokens=61)


def test_greedy_decoding_is_recorded_and_deterministic(trained_teacher, bpe_tokenizer):
    a = sample_quality(
        trained_teacher, trained_teacher, bpe_tokenizer, tiny.CORPUS[:4], max_new_tokens=8, do_sample=False, seed=0
    )
    b = sample_quality(
        trained_teacher, trained_teacher, bpe_tokenizer, tiny.CORPUS[:4], max_new_tokens=8, do_sample=False, seed=1
    )
    assert a.teacher == b.teacher and a.generation["do_sample"] is False
    assert math.isfinite(a.teacher.teacher_nll)


# -- the report, the CLI and the card ----------------------------------------------------------------------------
FAST = BenchmarkSettings(
    batch_size=2, warmup=1, latency_runs=2, throughput_runs=1, generation_tokens=4, generation_runs=1, threads=1
)
SETTINGS = SampleSettings(num_prompts=5, prompt_tokens=4, max_new_tokens=8, batch_size=2, seed=7)
SAMPLE_LABELS = (
    SAMPLE_NLL_LABEL,
    "Distinct-1 of samples",
    "Distinct-2 of samples",
    "Repetition rate of samples (seq-rep-4)",
)


def lm_report_with_samples() -> DistillationReport:
    report = sample_report("text-generation")
    report.sample_quality = SampleQuality(
        teacher=SampleFigures(teacher_nll=2.5, num_tokens=1000, distinct_1=0.4, distinct_2=0.8, repetition_rate=0.02),
        student=SampleFigures(teacher_nll=3.0, num_tokens=990, distinct_1=0.35, distinct_2=None, repetition_rate=0.1),
        nll_ratio=1.2,
        num_prompts=32,
        prompt_tokens=16,
        generation=SampleSettings().generation(),
    )
    return report


@pytest.fixture(scope="module")
def lm_eval(tiny_gpt2_dir, tiny_gpt2_student_dir, tmp_path_factory):
    corpus = tmp_path_factory.mktemp("lm-eval") / "corpus.txt"
    corpus.write_text("\n".join(tiny.CORPUS[:10]) + "\n")
    report = evaluate_pair(tiny_gpt2_dir, tiny_gpt2_student_dir, corpus, benchmark=FAST, samples=SETTINGS)
    return report, corpus


def test_evaluate_pair_reports_what_the_function_measures(lm_eval, tiny_gpt2_dir, tiny_gpt2_student_dir):
    report, _ = lm_eval
    q = report.sample_quality
    teacher, student = load_model(tiny_gpt2_dir, role="teacher"), load_model(tiny_gpt2_student_dir, role="student")
    with fixed_threads(1):
        direct = measure_samples(student.model, teacher.model, teacher.tokenizer, tiny.CORPUS[:10], SETTINGS)
    assert q.num_prompts == 5 and q.prompt_tokens == 4 and q.generation == SETTINGS.generation()
    for who in ("teacher", "student"):
        got, want = getattr(q, who), getattr(direct, who)
        assert got.teacher_nll == pytest.approx(want.teacher_nll, rel=1e-6)
        assert (got.num_tokens, got.distinct_1, got.distinct_2, got.repetition_rate) == (
            want.num_tokens,
            want.distinct_1,
            want.distinct_2,
            want.repetition_rate,
        )
    assert report.evaluation["sample_seconds"] > 0
    # the report's rows are formatted from exactly these figures
    rows = {r[0]: r[1:] for r in report.table_rows()}
    assert rows[SAMPLE_NLL_LABEL] == (
        fmt_metric(q.teacher.teacher_nll),
        fmt_metric(q.student.teacher_nll),
        f"{q.nll_ratio:.2f}× the teacher's NLL of its own samples",
    )
    assert rows["Distinct-2 of samples"][:2] == (fmt_metric(q.teacher.distinct_2), fmt_metric(q.student.distinct_2))
    assert rows["Repetition rate of samples (seq-rep-4)"][:2] == (
        fmt_metric(q.teacher.repetition_rate),
        fmt_metric(q.student.repetition_rate),
    )


def test_the_sample_figures_survive_the_json_round_trip(lm_eval, tmp_path):
    report, _ = lm_eval
    data = json.loads(report.to_json(tmp_path).read_text())
    assert data["schema_minor"] == SCHEMA_MINOR >= 3
    assert data["sample_quality"]["student"]["teacher_nll"] == report.sample_quality.student.teacher_nll
    back = DistillationReport.from_json(tmp_path)
    assert back.sample_quality == report.sample_quality and back == report
    assert [tuple(r) for r in data["table"]] == back.table_rows() == report.table_rows()


def test_a_classifier_pair_gets_no_sample_quality(tiny_bert_cls_dir, tiny_bert_cls_student_dir, monkeypatch):
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    texts, labels = zip(*tiny.SENTIMENT)
    report = evaluate_pair(
        tiny_bert_cls_dir,
        tiny_bert_cls_student_dir,
        EvalData(list(texts), list(labels)),
        benchmark=FAST,
        samples=SETTINGS,
    )
    assert report.sample_quality is None and "sample_seconds" not in report.evaluation
    assert not any(row[0] in SAMPLE_LABELS for row in report.table_rows())


def test_classification_reports_and_older_reports_are_unchanged(tmp_path):
    cls = sample_report()
    assert cls.sample_quality is None
    assert [r[0] for r in cls.table_rows()] == [
        "Parameters",
        "Parameters without embeddings",
        "Size on disk (MB)",
        "Latency p50, batch 1 (ms)",
        "Latency p95, batch 1 (ms)",
        "Throughput, batch 8 (samples/s)",
        "Accuracy",
        "F1",
        "Top-1 agreement with teacher",
        "KL(teacher ‖ student), nats",
        "Jensen–Shannon divergence, nats",
    ]
    assert json.loads(cls.to_json(tmp_path).read_text())["sample_quality"] is None
    # a minor-2 report (written before sample quality existed) reads as it was, with its stored rows
    old = sample_report("text-generation").to_dict()
    old["schema_minor"] = 2
    del old["sample_quality"]
    back = DistillationReport.from_dict(old)
    assert back.sample_quality is None and back.table_rows() == [tuple(r) for r in old["table"]]
    assert not any(label in dict((r[0], r) for r in back.table_rows()) for label in SAMPLE_LABELS)


def test_sample_rows_show_undefined_figures_as_dashes_and_variants_get_none():
    report = lm_report_with_samples()
    rows = {r[0]: r[1:] for r in report.table_rows()}
    assert rows[SAMPLE_NLL_LABEL] == ("2.5000", "3.0000", "1.20× the teacher's NLL of its own samples")
    assert rows["Distinct-2 of samples"] == ("0.8000", "—", "")
    assert rows["Repetition rate of samples (seq-rep-4)"] == ("0.0200", "0.1000", "")
    labels = [r[0] for r in report.table_rows()]
    # after the task metrics, before the fidelity rows
    assert labels.index("Perplexity") < labels.index(SAMPLE_NLL_LABEL) < labels.index("Top-1 agreement with teacher")


@pytest.mark.parametrize(
    "path, value, named",
    [
        (("student", "distinct_2"), 1.5, "sample_quality.student.distinct_2"),
        (("teacher", "teacher_nll"), -0.1, "sample_quality.teacher.teacher_nll"),
        (("teacher", "num_tokens"), 0, "sample_quality.teacher.num_tokens"),
        (("nll_ratio",), 3.0, "sample_quality.nll_ratio"),
        (("short_prompts",), 33, "sample_quality.short_prompts"),
        (("student", "repetition_rate"), float("nan"), "sample_quality.student.repetition_rate"),
    ],
)
def test_impossible_sample_figures_are_refused_naming_the_field(path, value, named):
    data = lm_report_with_samples().to_dict()
    target = data["sample_quality"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(InvalidReport, match=re.escape(named)):
        DistillationReport.from_dict(data)
    data["sample_quality"] = {"teacher": {}}
    with pytest.raises(ValueError, match="sample_quality"):
        DistillationReport.from_dict(data)


def test_card_rows_are_the_report_rows_and_say_where_the_samples_come_from(tmp_path):
    report = lm_report_with_samples()
    text = write_card(report, tmp_path, repo_id="alice/lm-student").read_text()
    section = text.split("## Teacher vs student", 1)[1].split("\n## ", 1)[0]
    card_rows = [
        tuple(c.strip() for c in line.strip().strip("|").split("|"))
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("| |")
    ]
    assert card_rows == report.table_rows()
    assert "same 32 prompts (the first 16 tokens of the first 32 texts of" in section
    assert "up to 32 new tokens (sampled at temperature 1, no top-k or top-p cut, seed 0" in section
    assert "(1000 tokens)" in section and "(990 tokens)" in section
    assert "shorter texts" not in section
    report.sample_quality.short_prompts = 3
    assert "that long; 3 shorter texts are whole prompts) with up to" in render_card(report, repo_id="a/b").text
    # without sample figures the card says nothing about samples
    plain = write_card(sample_report("text-generation"), tmp_path / "plain", repo_id="alice/lm").read_text()
    assert "The sample rows" not in plain and SAMPLE_NLL_LABEL not in plain


def test_cli_evaluate_measures_samples_with_its_flags_and_can_skip_them(
    lm_eval, tiny_gpt2_dir, tiny_gpt2_student_dir, tmp_path, capsys
):
    _, corpus = lm_eval
    parser = argparse.ArgumentParser(prog="hf-distill")
    register(parser.add_subparsers(dest="command", required=True))
    common = [
        "evaluate",
        "--teacher",
        str(tiny_gpt2_dir),
        "--student",
        str(tiny_gpt2_student_dir),
        "--dataset",
        str(corpus),
        "--threads",
        "1",
        "--warmup",
        "1",
        "--latency-runs",
        "2",
        "--throughput-runs",
        "1",
        "--bench-batch-size",
        "2",
        "--generation-tokens",
        "2",
        "--generation-runs",
        "1",
    ]
    args = parser.parse_args(
        common
        + [
            "--output",
            str(tmp_path / "a"),
            "--sample-prompts",
            "3",
            "--sample-prompt-tokens",
            "5",
            "--sample-new-tokens",
            "6",
            "--sample-seed",
            "2",
            "--sample-top-k",
            "20",
            "--sample-temperature",
            "0.8",
        ]
    )
    assert args.func(args) == 0
    q = DistillationReport.from_json(tmp_path / "a").sample_quality
    assert (q.num_prompts, q.prompt_tokens) == (3, 5)
    assert q.generation | {"batch_size": 0} == {
        "max_new_tokens": 6,
        "batch_size": 0,
        "seed": 2,
        "do_sample": True,
        "temperature": 0.8,
        "top_p": 1.0,
        "top_k": 20,
    }
    assert SAMPLE_NLL_LABEL in capsys.readouterr().out
    args = parser.parse_args(common + ["--output", str(tmp_path / "b"), "--sample-prompts", "0"])
    assert args.func(args) == 0
    assert DistillationReport.from_json(tmp_path / "b").sample_quality is None
    with pytest.raises(SystemExit):
        parser.parse_args(common + ["--output", str(tmp_path / "c"), "--sample-prompts", "-1"])


@pytest.mark.slow
def test_the_pipelines_evaluate_stage_measures_samples_with_its_settings(tmp_path):
    from hf_distill.pipeline.run import PipelineArguments, run_from_config
    from tests.test_pipeline import lm_config

    run_from_config(lm_config(tmp_path, eval_sample_prompts=4, eval_sample_new_tokens=5))
    report = DistillationReport.from_json(tmp_path / "lmrun" / "student")
    q = report.sample_quality
    assert q.num_prompts == 4 and q.generation["max_new_tokens"] == 5
    assert 0 < q.student.num_tokens <= 4 * 5
    card = (tmp_path / "lmrun" / "student" / "README.md").read_text()
    assert f"| {SAMPLE_NLL_LABEL} | {fmt_metric(q.teacher.teacher_nll)} | {fmt_metric(q.student.teacher_nll)} |" in card
    with pytest.raises(ValueError, match="eval_sample_prompts=-1 must be >= 0"):
        PipelineArguments(teacher="t", task="causal-lm", eval_sample_prompts=-1)
