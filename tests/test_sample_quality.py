"""Sample quality of causal LMs: distinct-n, repetition rate, the teacher's NLL of samples, and their place in the
report and the card."""

from __future__ import annotations

import math

import pytest
import torch

from hf_distill.sample_quality import (
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
from tests import tiny


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
    for _ in range(150):
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


def test_ids_past_the_tokenizer_vocabulary_are_never_sampled(bpe_tokenizer):
    # an embedding matrix padded past the tokenizer (50257 -> 50304 style), with the padding rows made likeliest
    model = tiny.gpt2(bpe_tokenizer, num_layers=1, vocab_size=len(bpe_tokenizer) + 40)
    with torch.no_grad():
        model.lm_head.weight[len(bpe_tokenizer) :] *= 50
    prompts = prompts_from_texts(bpe_tokenizer, tiny.CORPUS[:4], num_prompts=4, prompt_tokens=3)
    out = generate_completions(model, prompts, pad_token_id=bpe_tokenizer.pad_token_id, eos_token_id=None,
                               settings=SampleSettings(max_new_tokens=8), vocab_size=len(bpe_tokenizer))
    assert max(max(c) for c in out) < len(bpe_tokenizer)


def test_the_teacher_finds_its_own_samples_likelier_than_an_untrained_models(trained_teacher, bpe_tokenizer):
    untrained = tiny.gpt2(bpe_tokenizer, num_layers=2, hidden=64).eval()
    q = sample_quality(untrained, trained_teacher, bpe_tokenizer, tiny.CORPUS[:10], max_new_tokens=12, seed=0,
                       batch_size=4)
    # measured: about 1.3 nats/token for the teacher's samples, 11 for the untrained model's (uniform is 5.7)
    assert q.teacher.teacher_nll < 2.5 and q.student.teacher_nll > math.log(len(bpe_tokenizer))
    assert q.nll_ratio == pytest.approx(q.student.teacher_nll / q.teacher.teacher_nll) and q.nll_ratio > 3
    assert q.num_prompts == 10 and q.generation["max_new_tokens"] == 12 and q.generation["top_k"] == 0
    for fig in (q.teacher, q.student):
        assert 0 < fig.num_tokens <= 10 * 12
        assert 0 < fig.distinct_1 <= 1 and 0 < fig.distinct_2 <= 1 and 0 <= fig.repetition_rate < 1


def test_a_student_identical_to_the_teacher_scores_exactly_like_it(trained_teacher, bpe_tokenizer):
    # same model, same seed, same prompts: the same samples, so every figure is equal and the ratio is 1
    q = measure_samples(trained_teacher, trained_teacher, bpe_tokenizer, tiny.CORPUS,
                        SampleSettings(num_prompts=6, prompt_tokens=4, max_new_tokens=10, batch_size=4))
    assert q.teacher == q.student and q.nll_ratio == 1.0
    assert q.num_prompts == 6 and q.prompt_tokens == 4


def test_too_long_a_generation_for_the_models_positions_is_refused(bpe_tokenizer):
    model = tiny.gpt2(bpe_tokenizer, num_layers=1)  # 64 positions
    with pytest.raises(ValueError, match="exceed the teacher's 64 positions"):
        sample_quality(model, model, bpe_tokenizer, [[5, 6, 7, 8]], max_new_tokens=61)


def test_greedy_decoding_is_recorded_and_deterministic(trained_teacher, bpe_tokenizer):
    a = sample_quality(trained_teacher, trained_teacher, bpe_tokenizer, tiny.CORPUS[:4], max_new_tokens=8,
                       do_sample=False, seed=0)
    b = sample_quality(trained_teacher, trained_teacher, bpe_tokenizer, tiny.CORPUS[:4], max_new_tokens=8,
                       do_sample=False, seed=1)
    assert a.teacher == b.teacher and a.generation["do_sample"] is False
    assert math.isfinite(a.teacher.teacher_nll)
