"""Factories for tiny models and tokenizers trained locally, for fast offline tests."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
)

from hf_distill.students.tokenizer_training import train_bpe_tokenizer, train_wordpiece_tokenizer

CORPUS = [
    "the movie was wonderful and the actors were great",
    "a dull , boring film with a terrible plot",
    "once upon a time there lived a king and a queen",
    "the wolf ate the grandmother and waited in her bed",
    "i loved every minute of this charming story",
    "the worst film i have seen this year",
    "the little tailor killed seven flies at one blow",
    "a masterpiece of quiet beauty and sharp wit",
    "it was slow , clumsy and far too long",
    "hansel and gretel found a house made of bread",
] * 20

SENTIMENT = [
    ("the movie was wonderful and the actors were great", 1),
    ("a dull , boring film with a terrible plot", 0),
    ("i loved every minute of this charming story", 1),
    ("the worst film i have seen this year", 0),
    ("a masterpiece of quiet beauty and sharp wit", 1),
    ("it was slow , clumsy and far too long", 0),
    ("great actors and a wonderful story", 1),
    ("boring , terrible and far too slow", 0),
]


FROZEN_TOKENIZERS = Path(__file__).resolve().parent / "data"


def wordpiece_tokenizer(save_dir: Path, vocab_size: int = 200) -> PreTrainedTokenizerFast:
    """A lower-casing WordPiece tokenizer with BERT's special tokens, trained on CORPUS.

    The `tokenizers` WordPiece trainer breaks ties between equally frequent merges differently in every process,
    so each test run would get another vocabulary (and every tiny BERT other outputs). The sizes the tests use were
    trained once, with `train_wordpiece_tokenizer(CORPUS, vocab_size, model_max_length=64)`, and are read from
    tests/data; another size is trained.
    """
    frozen = FROZEN_TOKENIZERS / f"wordpiece-{vocab_size}"
    if frozen.is_dir():
        fast = PreTrainedTokenizerFast.from_pretrained(frozen)
    else:
        fast = train_wordpiece_tokenizer(CORPUS, vocab_size, model_max_length=64)
    fast.save_pretrained(save_dir)
    return fast


def bpe_tokenizer(save_dir: Path, vocab_size: int = 300) -> PreTrainedTokenizerFast:
    """Train a GPT-2-style byte-level BPE tokenizer; pad is a distinct token (not EOS)."""
    fast = train_bpe_tokenizer(CORPUS, vocab_size, model_max_length=64)
    fast.save_pretrained(save_dir)
    return fast


def bert_config(tokenizer, num_layers: int = 4, hidden: int = 32, **kw) -> BertConfig:
    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        intermediate_size=hidden * 2,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=tokenizer.pad_token_id,
        **kw,
    )


def _init(model_class, config, seed: int | None):
    """`model_class(config)`, its weights drawn from `seed` when given (leaving the global RNG as it was), else from
    the current RNG state (conftest seeds it at the start of every test)."""
    if seed is None:
        return model_class(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_class(config)


def bert_cls(
    tokenizer, num_layers: int = 4, hidden: int = 32, num_labels: int = 2, seed: int | None = None
) -> BertForSequenceClassification:
    cfg = bert_config(tokenizer, num_layers, hidden, num_labels=num_labels)
    cfg.id2label = {i: ("negative", "positive")[i] if num_labels == 2 else f"LABEL_{i}" for i in range(num_labels)}
    cfg.label2id = {v: k for k, v in cfg.id2label.items()}
    return _init(BertForSequenceClassification, cfg, seed)


def bert_mlm(tokenizer, num_layers: int = 4, hidden: int = 32, seed: int | None = None) -> BertForMaskedLM:
    return _init(BertForMaskedLM, bert_config(tokenizer, num_layers, hidden), seed)


def gpt2(
    tokenizer, num_layers: int = 4, hidden: int = 32, vocab_size: int | None = None, seed: int | None = None
) -> GPT2LMHeadModel:
    cfg = GPT2Config(
        vocab_size=vocab_size or len(tokenizer),
        n_positions=64,
        n_embd=hidden,
        n_layer=num_layers,
        n_head=4,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return _init(GPT2LMHeadModel, cfg, seed)
