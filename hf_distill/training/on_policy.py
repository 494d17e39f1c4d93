"""Prompt–completion data and generated completions for on-policy / sequence-level distillation (causal LMs).

The GKD recipe (Agarwal et al. 2024) trains a student on completions it generates itself, scored token by token by
the teacher; sequence-level KD (Kim & Rush 2016) on completions the teacher generates. Both need prompts, so the data
is prompt–completion. Two forms are supported by `tokenize_prompt_completion`:

1. ``prompt`` and ``completion`` text columns (EOS is appended to the completion when the tokenizer has one, so that
   the student learns to stop, as generated completions do);
2. plain text, where the prompt is the first ``prompt_tokens`` tokens of each text and the rest is the completion.

Tokenized rows hold ``input_ids`` / ``attention_mask`` of prompt + completion and ``prompt_length``.
`PromptCompletionCollator` pads them into a training batch whose ``labels`` are -100 on the prompt and on padding
(cross-entropy and distillation cover completion tokens only), plus the prompts alone, left-padded, for generation
(``prompt_input_ids`` / ``prompt_attention_mask``).

Padding convention: generation reads left-padded prompts (transformers derives position ids from the attention mask
while generating); the sequences the models are *trained* on are always right-padded, so the generated batch is
re-packed (`completion_batch`: each row's real prompt tokens, then its completion up to and including the first EOS,
then padding). Right padding keeps every real token at the position it has unpadded, so the student and the teacher
see exactly what they would see one row at a time, without position ids (a left-padded GPT-2 forward without them
shifts every position and changes the logits).

The trainer side lives in `DistillationTrainer.get_batch_samples` (see `DistillationConfig.lmbda` / `seq_kd`)::

    from hf_distill import DistillationConfig, DistillationTrainer
    from hf_distill.on_policy import tokenize_prompt_completion

    train = tokenize_prompt_completion(texts, tokenizer, max_length=128, prompt_tokens=8)
    args = DistillationConfig(output_dir="out", lmbda=0.5, max_new_tokens=32, loss_type="jsd", jsd_beta=0.5, alpha=1.0)
    DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=train,
                        processing_class=tokenizer).train()  # the default collator is PromptCompletionCollator
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..core.lm_data import COMPLETION_MASK, PROMPT_LENGTH, tokenize_prompt_completion
from ..core.losses import IGNORE_INDEX

__all__ = [
    "PROMPT_LENGTH",
    "COMPLETION_MASK",
    "PROMPT_IDS",
    "PROMPT_MASK",
    "BATCH_KEYS",
    "SOURCE_KEY",
    "SOURCE_DATA",
    "SOURCE_STUDENT",
    "SOURCE_TEACHER",
    "PromptCompletionCollator",
    "tokenize_prompt_completion",
    "completion_mask",
    "completion_batch",
    "generate_completions",
    "pack_right",
    "pad_left",
    "generation_seed",
]

# Keys of a collated batch that are not model inputs: the trainer pops them before the forward.
PROMPT_IDS, PROMPT_MASK = "prompt_input_ids", "prompt_attention_mask"
SOURCE_KEY = "completion_source"
BATCH_KEYS = (PROMPT_IDS, PROMPT_MASK, SOURCE_KEY)
# Who wrote a batch's completions: the data set, the student (on-policy) or the teacher (seq_kd).
SOURCE_DATA, SOURCE_STUDENT, SOURCE_TEACHER = 0, 1, 2


def pack_right(
    rows: list[torch.Tensor],
    starts: list[int],
    pad_token_id: int,
    width: int | None = None,
    device: torch.device | None = None,
    masks: list[torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Right-pad token rows into ``input_ids`` / ``attention_mask`` / ``labels``; row i's labels are its tokens from
    ``starts[i]`` on (-100 before and on padding), so the loss covers completion tokens only; with `masks` (one 0/1
    row each, e.g. a conversation's assistant tokens) only the tokens marked 1 from ``starts[i]`` on.

    Args:
        rows: one 1-D tensor of token ids per row.
        starts: where each row's completion starts.
        pad_token_id: fills the padding.
        width: the batch's length (default: the longest row's).
        device: where the tensors are made.
        masks: per row, 1 on the tokens the loss may cover.
    """
    width = width or max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long, device=device)
    attention = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long, device=device)
    for i, (row, start) in enumerate(zip(rows, starts)):
        n = len(row)
        input_ids[i, :n] = row
        attention[i, :n] = 1
        labels[i, start:n] = row[start:]
        if masks is not None:
            labels[i, :n] = labels[i, :n].masked_fill(masks[i].to(labels.device) == 0, IGNORE_INDEX)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def pad_left(
    rows: Sequence[Sequence[int]], pad_token_id: int, width: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token rows to one length: (input_ids, attention_mask), as decoder-only generation wants them."""
    width = width or max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r):
            ids[i, width - len(r) :] = torch.tensor(list(r), dtype=torch.long)
            mask[i, width - len(r) :] = 1
    return ids, mask


class PromptCompletionCollator:
    """Pad prompt–completion rows into a training batch plus the left-padded prompts generation needs.

    Output: ``input_ids`` / ``attention_mask`` (prompt + completion, right-padded), ``labels`` (the completion tokens;
    -100 on prompt and padding; rows with a ``completion_mask``: the tokens it marks, -100 elsewhere),
    ``prompt_input_ids`` / ``prompt_attention_mask`` (prompts alone, left-padded).
    Rows without ``prompt_length`` (e.g. plain evaluation text) are all completion: labels cover every real token
    and the batch carries no prompts.

    Args:
        tokenizer: gives the padding id (its EOS when it has no pad token); padding is masked, never learnt.
        pad_to_multiple_of: round the padded widths up to a multiple of this.
    """

    def __init__(self, tokenizer: Any, pad_to_multiple_of: int | None = None) -> None:
        if tokenizer is None:
            raise ValueError("prompt-completion batches need the tokenizer: pass processing_class=tokenizer")
        pad = getattr(tokenizer, "pad_token_id", None)
        if pad is None:
            pad = getattr(tokenizer, "eos_token_id", None)
        if pad is None:
            raise ValueError("the tokenizer has neither a pad nor an EOS token: set tokenizer.pad_token")
        self.pad_token_id = int(pad)
        self.pad_to_multiple_of = pad_to_multiple_of

    def _width(self, n: int) -> int:
        m = self.pad_to_multiple_of
        return n if not m else -(-n // m) * m

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids = [list(map(int, f["input_ids"])) for f in features]
        has_prompts = all(f.get(PROMPT_LENGTH) is not None for f in features)
        starts = [int(f[PROMPT_LENGTH]) if has_prompts else 0 for f in features]
        rows = [torch.tensor(row, dtype=torch.long) for row in ids]
        masks = None
        if all(f.get(COMPLETION_MASK) is not None for f in features):  # conversations: the assistant tokens
            masks = [torch.tensor(list(map(int, f[COMPLETION_MASK])), dtype=torch.long) for f in features]
            starts = [0] * len(features)  # the mask marks the trained tokens, earlier assistant turns included
        batch = pack_right(rows, starts, self.pad_token_id, width=self._width(max(len(x) for x in ids)), masks=masks)
        starts = [int(f[PROMPT_LENGTH]) if has_prompts else 0 for f in features]
        if has_prompts:
            batch[PROMPT_IDS], batch[PROMPT_MASK] = pad_left(
                [row[:start] for row, start in zip(ids, starts)], self.pad_token_id, width=self._width(max(starts))
            )
        return batch


def completion_mask(completions: torch.Tensor, eos_token_ids: list[int] | None) -> torch.Tensor:
    """1 for generated tokens up to and including the first EOS of each row, 0 after it (what `generate` pads).

    Decided by position, not by token value, so a pad token equal to EOS never masks a real EOS.

    Args:
        completions: (B, T) generated token ids.
        eos_token_ids: the ids that end a completion; None or empty: every token counts.
    """
    mask = torch.ones_like(completions, dtype=torch.long)
    if not eos_token_ids:
        return mask
    is_eos = torch.isin(completions, torch.tensor(eos_token_ids, device=completions.device))
    # Tokens strictly after the first EOS: the running count of EOS before them (exclusive) is > 0.
    before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()
    return mask.masked_fill(before > 0, 0)


def completion_batch(
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completions: torch.Tensor,
    completions_mask: torch.Tensor,
    pad_token_id: int,
    source: int,
) -> dict[str, torch.Tensor]:
    """Re-pack left-padded prompts and their completions into a right-padded training batch.

    Row i becomes its real prompt tokens, then its real completion tokens, then padding; ``labels`` hold the
    completion tokens (-100 elsewhere), so the loss covers generated tokens only. ``completion_source`` records who
    generated them (`SOURCE_STUDENT` / `SOURCE_TEACHER`).

    Args:
        prompt_ids: (B, P) left-padded prompts.
        prompt_mask: (B, P), 1 on real prompt tokens.
        completions: (B, T) generated tokens.
        completions_mask: (B, T), 1 on real completion tokens (`completion_mask`).
        pad_token_id: fills the padding.
        source: `SOURCE_STUDENT` or `SOURCE_TEACHER`.
    """
    rows, starts = [], []
    for p, pm, c, cm in zip(prompt_ids, prompt_mask.bool(), completions, completions_mask.bool()):
        prompt, completion = p[pm], c[cm]
        rows.append(torch.cat([prompt, completion]))
        starts.append(prompt.numel())
    batch = pack_right(rows, starts, pad_token_id, device=prompt_ids.device)
    batch[SOURCE_KEY] = torch.tensor(source, device=prompt_ids.device)
    return batch


def generation_seed(seed: int, step: int, batch_index: int) -> int:
    """A 63-bit seed for one micro-batch's decision and sampling, from the run seed, optimizer step and the
    micro-batch's index in the step's global batch (so DDP matches one process with accumulation).

    Args:
        seed: the run's seed.
        step: the optimizer step.
        batch_index: the micro-batch's index in the step's global batch.
    """
    import numpy as np

    entropy = [int(x) & 0xFFFFFFFFFFFFFFFF for x in (seed, step, batch_index)]  # SeedSequence takes no negatives
    return int(np.random.SeedSequence(entropy).generate_state(2, np.uint64)[0] >> np.uint64(1))


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Sample under `seed`, leaving the training RNG (dropout, data order) where it was."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@torch.no_grad()
def generate_completions(
    model: nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    generation_config: Any,
    *,
    seed: int,
    synced_gpus: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Completions of left-padded prompts by `model` (eval mode, no grad; its mode is restored afterwards).

    Args:
        model: an unwrapped causal LM, or a `PeftModel` around one (generation goes through the adapters).
        prompt_ids: (B, P) left-padded prompt ids; `prompt_mask` their attention mask.
        generation_config: a `transformers.GenerationConfig` (max_new_tokens, sampling, pad and EOS ids).
        seed: sampling seed (greedy decoding ignores it).
        synced_gpus: keep sharded models (ZeRO-3, FSDP) stepping together on every process.

    Returns:
        (completions (B, T), their mask): tokens after the prompt, 1 up to and including the first EOS.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with _seeded(seed, device):
            out = model.generate(
                input_ids=prompt_ids.to(device),
                attention_mask=prompt_mask.to(device),
                generation_config=generation_config,
                synced_gpus=synced_gpus,
            )
    finally:
        model.train(was_training)
    completions = out[:, prompt_ids.shape[1] :].to(prompt_ids.device)
    eos = generation_config.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    return completions, completion_mask(completions, eos)
