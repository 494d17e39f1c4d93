"""What a causal LM writes, as its teacher judges it: the quality measure on-policy distillation is meant to improve.

Perplexity scores a student on fixed text (teacher forcing); a student trained only that way never sees its own
mistakes (exposure bias). This module scores the student's *own samples*: both models continue the same prompts
(the first tokens of held-out texts), the teacher scores each model's completions token by token, and the
samples' diversity is counted.

* `teacher_nll`: the teacher's summed negative log-likelihood of the completion tokens (nats, temperature 1).
  Of the teacher's own samples it is the reference (at sampling temperature 1 it estimates the teacher's
  per-token entropy on these prompts); a student whose samples the teacher finds likelier is closer to the teacher.
* `distinct_n`: corpus-level distinct-n (Li et al., 2016): unique n-grams / all n-grams over every sample.
* `repetition_rate`: seq-rep-n (Welleck et al., 2019): per sample, the share of its n-grams that repeat an
  earlier n-gram of the same sample, averaged over samples.
* `sample_quality`: generates from both models (``model.generate``, left padding, fixed seed, eval mode, no grad)
  and returns a `SampleQuality` with all of the above; `measure_samples` first builds the prompts from texts.

Every count is over completion tokens only: the prompt is the data's, not the model's.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..core.loading import max_positions
from ..core.report import DEFAULT_REPETITION_N, SampleFigures, SampleQuality
from ..core.tasks import get_task
from ..training import chunked_losses, on_policy
from ..training.on_policy import pad_left

CAUSAL_LM = get_task("text-generation")

__all__ = [
    "DEFAULT_REPETITION_N",
    "SampleFigures",
    "SampleQuality",
    "SampleSettings",
    "completions_of",
    "distinct_n",
    "generate_completions",
    "measure_samples",
    "pad_left",
    "prompts_from_texts",
    "repetition_rate",
    "sample_quality",
    "teacher_nll",
]


# -- pure maths ------------------------------------------------------------------------------------------------
def _ngrams(tokens: Sequence[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} is invalid: n-grams need a whole number n >= 1")


def distinct_n(token_lists: Sequence[Sequence[int]], n: int) -> float:
    """Corpus-level distinct-n: the number of distinct n-grams over all samples divided by the number of n-grams.

    N-grams never cross from one sample into the next; a sample shorter than `n` adds none. 1.0 means no n-gram
    occurs twice anywhere; a model that says the same thing to every prompt scores low.

    Args:
        token_lists: one list of token ids per sample (completion tokens only).
        n: the n-gram length (1 for distinct-1, 2 for distinct-2).

    Returns:
        unique n-grams / total n-grams, in [0, 1].

    Raises:
        ValueError: a bad `n`, or no sample with at least `n` tokens (the ratio is then undefined).
    """
    _check_n(n)
    unique: set[tuple[int, ...]] = set()
    total = 0
    for tokens in token_lists:
        grams = _ngrams(list(tokens), n)
        total += len(grams)
        unique.update(grams)
    if total == 0:
        raise ValueError(f"distinct-{n} is undefined: no sample has {n} tokens; generate longer samples")
    return len(unique) / total


def repetition_rate(token_lists: Sequence[Sequence[int]], n: int = DEFAULT_REPETITION_N) -> float:
    """seq-rep-n (Welleck et al., 2019): the share of a sample's n-grams that already occurred earlier in the same
    sample, averaged over the samples that have at least one n-gram.

    For one sample this is 1 - distinct n-grams / n-grams; 0.0 means no n-gram repeats inside any sample, values
    near 1 mean the model loops. Averaging per sample (not pooling the n-grams) keeps one long degenerate sample
    from outweighing the rest.

    Args:
        token_lists: one list of token ids per sample (completion tokens only).
        n: the n-gram length (default 4).

    Returns:
        The mean repeated share, in [0, 1).

    Raises:
        ValueError: a bad `n`, or no sample with at least `n` tokens.
    """
    _check_n(n)
    rates = []
    for tokens in token_lists:
        grams = _ngrams(list(tokens), n)
        if grams:
            rates.append((len(grams) - len(set(grams))) / len(grams))
    if not rates:
        raise ValueError(f"the repetition rate (seq-rep-{n}) is undefined: no sample has {n} tokens")
    return sum(rates) / len(rates)


# -- scoring ----------------------------------------------------------------------------------------------------
def _position_ids(model: nn.Module, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Positions counted from each row's first real token, as `generate` counts them for left-padded prompts.

    Without them a left-padded row's tokens would sit at shifted positions, and the same sample would score
    differently depending on the longest row of its batch.
    """
    params = inspect.signature(model.forward).parameters
    if "position_ids" not in params:
        return {}
    return {"position_ids": (attention_mask.long().cumsum(-1) - 1).clamp(min=0)}


def teacher_nll(
    teacher: nn.Module,
    sequences: torch.Tensor,
    completion_mask: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    vocab_size: int | None = None,
    batch_size: int | None = None,
) -> tuple[float, int]:
    """The teacher's negative log-likelihood of the completion tokens of `sequences`, summed, at temperature 1.

    Token ``j`` is scored by the teacher's distribution at position ``j - 1`` (the causal shift), so only tokens
    with a preceding token can be scored; prompt and padding tokens are context only. The sum is over tokens (not
    rows), so sums of batches add up to the sum of one big batch; divide by the count for nats per token.

    Args:
        teacher: a causal LM (put in eval mode here; no gradients are taken).
        sequences: (B, L) token ids, prompt followed by completion; rows may be left-padded.
        completion_mask: (B, L) bool, True on the tokens to score (the completion, never padding).
        attention_mask: (B, L) 1 on real tokens, 0 on padding (default: all ones).
        vocab_size: score over the first `vocab_size` logits only (the tokenizer's vocabulary; rows past it are
            padding of the embedding matrix that no token maps to), as the report's perplexity does.
        batch_size: rows per forward pass (default: all at once).

    Returns:
        (sum of NLL in nats, number of scored tokens).

    Raises:
        ValueError: shapes that differ, or a completion mask that marks padding.
    """
    if sequences.dim() != 2 or completion_mask.shape != sequences.shape:
        raise ValueError(
            f"sequences {tuple(sequences.shape)} and completion_mask {tuple(completion_mask.shape)} must both be (B, L)"
        )
    if attention_mask is None:
        attention_mask = torch.ones_like(sequences)
    if attention_mask.shape != sequences.shape:
        raise ValueError(
            f"attention_mask {tuple(attention_mask.shape)} does not match sequences {tuple(sequences.shape)}"
        )
    completion_mask = completion_mask.bool()
    if (completion_mask & ~attention_mask.bool()).any():
        raise ValueError("completion_mask marks padding positions: only real completion tokens can be scored")
    teacher.eval()
    device = next(teacher.parameters()).device
    total, count = 0.0, 0
    step = batch_size or sequences.shape[0]
    vocab = vocab_size or getattr(getattr(teacher, "config", None), "vocab_size", None) or 1  # sizes the chunks
    for start in range(0, sequences.shape[0], step):
        ids = sequences[start : start + step].to(device)
        mask = attention_mask[start : start + step].to(device)
        scored = completion_mask[start : start + step, 1:]
        targets = ids[:, 1:].cpu()[scored]
        inputs = [dict(input_ids=ids, attention_mask=mask, **_position_ids(teacher, mask))]
        # the scored positions' logits a chunk at a time: long samples never hold a (B, L, V) tensor
        for part, _, (logits,) in chunked_losses.valid_logits_in_chunks([teacher], inputs, CAUSAL_LM, scored, vocab):
            logits = logits[..., :vocab_size] if vocab_size is not None else logits
            total += float(F.cross_entropy(logits, targets[part], reduction="none").double().sum())
        count += int(scored.sum())
    return total, count


# -- generation -------------------------------------------------------------------------------------------------
@dataclass
class SampleSettings:
    """How the samples are drawn: prompts from the evaluation texts, then one completion per prompt and model.

    The defaults sample from the model's own distribution (temperature 1, no top-k/top-p cut), the distribution
    on-policy training draws from; a cut would hide exactly the low-probability tokens the measure looks for.
    """

    num_prompts: int = 32
    prompt_tokens: int = 16
    max_new_tokens: int = 32
    # the default prompts in one `generate` call: one decoding loop instead of two (a small model's decoding step
    # costs little more at batch 32 than at 16)
    batch_size: int = 32
    seed: int = 0
    do_sample: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0

    def __post_init__(self) -> None:
        for name in ("num_prompts", "prompt_tokens", "max_new_tokens", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"sample setting {name}={value!r} is invalid: give a whole number >= 1")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"sample setting top_k={self.top_k!r} is invalid: give 0 (no cut) or a whole number >= 1")
        if not self.temperature > 0:
            raise ValueError(f"sample setting temperature={self.temperature!r} is invalid: it must be > 0")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"sample setting top_p={self.top_p!r} is invalid: it must be in (0, 1]")

    def generation(self) -> dict[str, Any]:
        """The generation settings, as the report records them."""
        return {k: v for k, v in asdict(self).items() if k not in ("num_prompts", "prompt_tokens")}


def prompts_from_texts(tokenizer: Any, texts: Sequence[str], num_prompts: int, prompt_tokens: int) -> list[list[int]]:
    """The first `prompt_tokens` tokens of the first `num_prompts` texts that have that many tokens.

    Texts are taken in order, so the prompts are reproducible; shorter texts (a line such as "Ah!") are skipped
    while enough longer ones remain, and only fill the set, whole and in order, when there are too few. Special
    tokens are not added: a prompt is the text's own start, as a user would type it.

    Args:
        tokenizer: the shared tokenizer.
        texts: the evaluation texts, in order.
        num_prompts: the most prompts returned.
        prompt_tokens: the length of a full prompt.

    Returns:
        Token-id lists, at most `num_prompts` of them.

    Raises:
        ValueError: no text gives a token.
    """
    full: list[list[int]] = []
    short: list[list[int]] = []
    for text in texts:
        ids = list(tokenizer(text, add_special_tokens=False, truncation=True, max_length=prompt_tokens)["input_ids"])
        if len(ids) == prompt_tokens:
            full.append(ids)
            if len(full) == num_prompts:
                break
        elif ids and len(short) < num_prompts:
            short.append(ids)
    prompts = full + short[: num_prompts - len(full)]
    if not prompts:
        raise ValueError("no evaluation text gives a prompt token: sample quality needs non-empty texts")
    return prompts


def completions_of(generated: torch.Tensor, eos_token_id: int | None) -> list[list[int]]:
    """The new tokens of each row of a `generate` output (prompt already cut off), up to and including the
    first EOS: what follows it is filler `generate` adds once a row has finished (`on_policy.completion_mask`,
    the rule training uses for generated completions).

    Args:
        generated: (B, T) new token ids.
        eos_token_id: the EOS id, or None when completions end only at the length limit.
    """
    mask = on_policy.completion_mask(generated, None if eos_token_id is None else [eos_token_id]).bool()
    return [row[keep].tolist() for row, keep in zip(generated, mask)]


def generate_completions(
    model: nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    pad_token_id: int,
    eos_token_id: int | None,
    settings: SampleSettings,
    vocab_size: int | None = None,
) -> list[list[int]]:
    """One completion per prompt from `model.generate` (left padding, eval mode, no grad, seeded).

    The global RNG is seeded with `settings.seed` inside `torch.random.fork_rng`, so the caller's random state is
    left as it was, and every model starts from the same seed. Ids past `vocab_size` (embedding rows no token maps
    to) are suppressed, so the teacher never reads an id outside the shared vocabulary.

    Args:
        model: the causal LM that generates.
        prompts: token-id lists.
        pad_token_id: pads the prompts (on the left) of a batch.
        eos_token_id: ends a completion; None: completions run to `settings.max_new_tokens`.
        settings: the sampling settings (length, batch size, seed, temperature, top-p, top-k).
        vocab_size: the shared vocabulary's size, when the model has more embedding rows.

    Returns:
        The new tokens of each prompt, up to and including the first EOS.
    """
    from transformers import GenerationConfig

    model.eval()
    model_vocab = getattr(model.config, "vocab_size", None) or model.get_output_embeddings().weight.shape[0]
    suppress = list(range(vocab_size, model_vocab)) if vocab_size is not None and model_vocab > vocab_size else None
    # The sampling knobs are explicit, so a generation_config.json beside the model (top_k=50, a repetition
    # penalty...) cannot change them, and both models sample the same way.
    config = GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        do_sample=settings.do_sample,
        temperature=settings.temperature if settings.do_sample else None,
        top_p=settings.top_p if settings.do_sample else None,
        top_k=settings.top_k if settings.do_sample else None,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        num_beams=1,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        suppress_tokens=suppress,
    )
    completions: list[list[int]] = []
    for index, start in enumerate(range(0, len(prompts), settings.batch_size)):
        ids, mask = pad_left(prompts[start : start + settings.batch_size], pad_token_id)
        # The generation training uses (eval mode, no grad, seeded without touching the caller's RNG); each batch
        # gets its own seed derived from settings.seed, so results do not depend on what ran before.
        new, new_mask = on_policy.generate_completions(
            model, ids, mask, config, seed=on_policy.generation_seed(settings.seed, 0, index)
        )
        completions += [row[keep].tolist() for row, keep in zip(new, new_mask.bool())]
    return completions


def _figures(nll_sum: float, count: int, completions: list[list[int]], repetition_n: int) -> SampleFigures:
    if count == 0:
        raise ValueError("no completion token to score: every sample is empty")

    def defined(fn, *args):
        try:
            return fn(completions, *args)
        except ValueError:
            return None  # too short for the n-gram: stated as missing, never as 0

    return SampleFigures(
        teacher_nll=nll_sum / count,
        num_tokens=count,
        distinct_1=defined(distinct_n, 1),
        distinct_2=defined(distinct_n, 2),
        repetition_rate=defined(repetition_rate, repetition_n),
    )


def _score(teacher: nn.Module, prompts, completions, pad_token_id: int, vocab_size: int | None, batch_size: int):
    """Re-pad prompt + completion rows on the left and let the teacher score the completion tokens."""
    rows = [list(p) + list(c) for p, c in zip(prompts, completions)]
    ids, mask = pad_left(rows, pad_token_id)
    completion = torch.zeros_like(mask, dtype=torch.bool)
    for i, c in enumerate(completions):
        if c:
            completion[i, ids.shape[1] - len(c) :] = True
    return teacher_nll(teacher, ids, completion, mask, vocab_size=vocab_size, batch_size=batch_size)


def sample_quality(
    student: nn.Module,
    teacher: nn.Module,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]] | Sequence[str],
    *,
    max_new_tokens: int = 32,
    seed: int = 0,
    batch_size: int = 32,
    do_sample: bool = True,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    repetition_n: int = DEFAULT_REPETITION_N,
) -> SampleQuality:
    """Both models continue the same prompts; the teacher scores each model's completions; diversity is counted.

    Teacher and student share the tokenizer's vocabulary (as for the report's perplexity): the teacher reads the
    student's ids as they are. A completion ends at its first EOS (which is scored) or after `max_new_tokens`.

    Args:
        student: the student causal LM.
        teacher: the teacher causal LM (on the device it should run on; the student too).
        tokenizer: the shared tokenizer (its pad token, or EOS when it has none, pads; its length is the vocabulary).
        prompts: token-id lists, or texts (tokenized whole, without special tokens).
        max_new_tokens: the longest completion.
        seed: the generation seed (each model's generation starts from it).
        batch_size: prompts per `generate` call and rows per scoring pass.
        do_sample: sample (True) or decode greedily.
        temperature: sampling temperature (of generation, not of scoring: scoring is at temperature 1).
        top_p: nucleus cut (1.0: none).
        top_k: top-k cut (0: none).
        repetition_n: the n of the repetition rate (seq-rep-n).

    Returns:
        A `SampleQuality`.

    Raises:
        ValueError: bad settings, no prompt, or prompts plus new tokens longer than a model accepts.
    """
    if isinstance(prompts, (str, bytes)):
        raise ValueError("prompts must be a list of texts or token-id lists, not one string")
    prompt_ids = [
        list(tokenizer(p, add_special_tokens=False)["input_ids"]) if isinstance(p, str) else list(p) for p in prompts
    ]
    prompt_ids = [p for p in prompt_ids if p]
    if not prompt_ids:
        raise ValueError("no non-empty prompt: sample quality needs at least one prompt token")
    settings = SampleSettings(
        num_prompts=len(prompt_ids),
        prompt_tokens=max(len(p) for p in prompt_ids),
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        seed=seed,
        do_sample=do_sample,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
    )
    _check_n(repetition_n)
    longest = settings.prompt_tokens + max_new_tokens
    for who, model in (("teacher", teacher), ("student", student)):
        limit = max_positions(model)
        if limit is not None and longest > limit:
            raise ValueError(
                f"prompts of {settings.prompt_tokens} tokens plus {max_new_tokens} new tokens exceed the {who}'s "
                f"{limit} positions: lower the sample prompt tokens or new tokens"
            )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("the tokenizer has neither a pad nor an EOS token to pad prompts with")
    eos = tokenizer.eos_token_id
    vocab = len(tokenizer)
    figures = {}
    for who, model in (("teacher", teacher), ("student", student)):
        completions = generate_completions(
            model, prompt_ids, pad_token_id=pad, eos_token_id=eos, settings=settings, vocab_size=vocab
        )
        nll_sum, count = _score(teacher, prompt_ids, completions, pad, vocab, batch_size)
        figures[who] = _figures(nll_sum, count, completions, repetition_n)
    t, s = figures["teacher"], figures["student"]
    return SampleQuality(
        teacher=t,
        student=s,
        nll_ratio=s.teacher_nll / t.teacher_nll if t.teacher_nll > 0 else None,
        num_prompts=settings.num_prompts,
        prompt_tokens=settings.prompt_tokens,
        repetition_n=repetition_n,
        generation=settings.generation(),
        short_prompts=sum(len(p) < settings.prompt_tokens for p in prompt_ids),
    )


def measure_samples(
    student: nn.Module, teacher: nn.Module, tokenizer: Any, texts: Sequence[str], settings: SampleSettings | None = None
) -> SampleQuality:
    """`sample_quality` on prompts made from `texts` by `prompts_from_texts` (the first `settings.prompt_tokens`
    tokens of the first `settings.num_prompts` texts that long), as `hf-distill evaluate` measures causal LMs.

    Args:
        student: the student causal LM.
        teacher: the teacher causal LM, which scores both models' samples.
        tokenizer: the shared tokenizer.
        texts: the evaluation texts the prompts are made from.
        settings: how the samples are drawn (default `SampleSettings()`).

    Raises:
        ValueError: no text gives a prompt token.
    """
    settings = settings or SampleSettings()
    prompts = prompts_from_texts(tokenizer, texts, settings.num_prompts, settings.prompt_tokens)
    return sample_quality(student, teacher, tokenizer, prompts, **settings.generation())
