"""Vocabulary trimming: keep only the tokens a corpus uses, in the tokenizer and in every vocabulary-indexed weight.

A small BERT spends half its parameters on word embeddings (MiniLM-L6: 30,522 × 384 = 11.7M of 22.7M) while one
task's text uses a fraction of them (SST-2's training text: 11,572 ids). `trim_vocabulary` keeps the special tokens
and the tokens the given texts use, rebuilds the fast tokenizer with that vocabulary and slices the input embeddings
and the LM / MLM head (and its bias) to the same ids, so the trimmed model computes the same function on that text.

Why encodings do not change on the trimming corpus:

- WordPiece splits a word greedily, longest match first. Every piece the corpus used is kept and the vocabulary only
  shrinks, so each longest match is still the longest: the corpus splits identically.
- BPE applies merges in rank order. We keep the 256 byte symbols (byte-level BPE: GPT-2, Llama 3, Qwen, whatever
  regex splits the words first; SentencePiece BPE with byte fallback: Llama 2, Mistral, the ``<0xNN>`` tokens), every
  symbol BPE builds on its way to a kept token (a token is built inside a word as it is built alone), and the merges
  among kept symbols, in their original order. Every merge the original applied on the corpus builds a piece of a
  kept token, so it is kept, and the lowest-ranked applicable merge is the same at every step. With
  ``ignore_merges`` (Llama 3) a word that is a token stays one token: it was kept.

What is lost on other text: a word made of pieces the corpus never used falls back to shorter kept pieces (WordPiece
keeps the single-character pieces, plain and ``##``, of every character the corpus contains, so such a word splits
into shorter pieces, down to characters; only a character the corpus never contains becomes ``[UNK]``; BPE keeps the
256 bytes: shorter tokens, down to single bytes, never unknown). Those encodings differ from the teacher's, so the
student sees longer, rarer sequences there. A SentencePiece BPE without byte fallback (unseen characters would become
unknown), Unigram and WordLevel tokenizers are refused.

The kept teacher ids are recorded in ``config.vocabulary_kept_ids`` (new id = position in that list) together with
``config.trimmed_from_vocab_size``, so the trimming is reproducible and the teacher's outputs can be mapped onto the
student's vocabulary (`restrict_to_kept_ids`, `remap_ids`).

Distilling a language model into a trimmed student: the teacher's distribution over the full vocabulary is
**renormalised over the kept ids** (`restrict_to_kept_ids`): the loss is the divergence between the teacher's
distribution conditioned on a kept token and the student's. A live teacher reads the student's ids mapped back to its
own (`to_teacher_ids`). Cached full logits are restricted the same way. Cached top-k targets hold teacher ids and a tail
whose kept and dropped parts cannot be separated, so the trainer refuses them for a trimmed student (cache full
logits, or use the live teacher).
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.tasks import Task, get_task

__all__ = [
    "MIN_CORPUS_TOKENS",
    "TrimmingChange",
    "trim_vocabulary",
    "trimming_change",
    "kept_ids_of",
    "remap_ids",
    "teacher_to_student_ids",
    "restrict_to_kept_ids",
    "to_teacher_ids",
    "teacher_logits_for_student",
    "teacher_on_kept_ids",
    "evaluation_teacher",
    "check_trimming_corpus",
    "check_trimmed_tokenizers",
    "check_trimmed_student",
    "remap_dataset",
]

# The smallest trimming corpus accepted by default, in tokens of the original tokenizer. A corpus smaller than this
# (an empty file, the wrong column, a handful of test sentences) keeps a vocabulary so small that ordinary words of
# other text split into single characters or become [UNK]; the real training text of a task has far more (SST-2's:
# ~0.7M). A deliberate small corpus is accepted with `min_corpus_tokens=`.
MIN_CORPUS_TOKENS = 1000

_SUPPORTED_TOKENIZERS = (
    "WordPiece (BERT family), byte-level BPE (GPT-2, Llama 3, Qwen) and SentencePiece BPE with "
    "byte fallback (Llama 2, Mistral)"
)

# Config attributes that hold token ids and must follow the new numbering.
_ID_ATTRIBUTES = (
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "sep_token_id",
    "cls_token_id",
    "unk_token_id",
    "mask_token_id",
    "decoder_start_token_id",
)


def _texts(texts: Any) -> Iterable[str]:
    if isinstance(texts, str):
        raise ValueError("texts must be an iterable of strings (a list, or a datasets column), not one string")
    for text in texts:
        if not isinstance(text, str):
            raise ValueError(f"texts must hold strings; found {type(text).__name__}")
        yield text


def _count_tokens(backend, texts: Iterable[str], batch_size: int = 4096) -> tuple[Counter, set[str]]:
    """How often the corpus uses each id, and the characters of its normalised text."""
    counts: Counter = Counter()
    chars: set[str] = set()
    normalizer = backend.normalizer
    batch: list[str] = []

    def flush() -> None:
        for enc in backend.encode_batch(batch, add_special_tokens=False):
            counts.update(enc.ids)
        for text in batch:
            chars.update(normalizer.normalize_str(text) if normalizer is not None else text)
        batch.clear()

    for text in _texts(texts):
        batch.append(text)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return counts, chars


def _refuse_small_corpus(total: int, min_corpus_tokens: int) -> None:
    if total < min_corpus_tokens:
        raise ValueError(
            f"the trimming corpus holds {total:,} tokens but trim_vocabulary needs at least {min_corpus_tokens:,} "
            "(min_corpus_tokens): so little text keeps a vocabulary in which ordinary words split into characters or "
            "become [UNK]; trim to the training text (the text column of the whole training split), or lower "
            "min_corpus_tokens for a corpus that is all the model will read"
        )


def check_trimming_corpus(tokenizer, texts: Iterable[str], min_corpus_tokens: int = MIN_CORPUS_TOKENS) -> None:
    """Refuse, before anything is trained, a corpus `trim_vocabulary` would refuse for holding too few tokens.

    Counts only until the minimum is reached, so a large training text costs little.

    Args:
        tokenizer: the fast tokenizer that will be trimmed (the teacher's).
        texts: the trimming corpus.
        min_corpus_tokens: the rule of `trim_vocabulary`.

    Raises:
        ValueError: the same one line `trim_vocabulary` raises.
    """
    backend = _plain_backend(tokenizer)
    total, batch = 0, []
    for text in _texts(texts):
        batch.append(text)
        if len(batch) == 1024:
            total += sum(len(e.ids) for e in backend.encode_batch(batch, add_special_tokens=False))
            batch.clear()
            if total >= min_corpus_tokens:
                return
    total += sum(len(e.ids) for e in backend.encode_batch(batch, add_special_tokens=False))
    _refuse_small_corpus(total, min_corpus_tokens)


def _is_byte_level(pre_tokenizer: Any) -> bool:
    return '"ByteLevel"' in json.dumps(pre_tokenizer or {})


def _bpe_base_symbols(model: dict[str, Any], byte_level: bool) -> set[str]:
    """The symbols every text can fall back to: the 256 byte-level characters (GPT-2, Llama 3, Qwen) or the 256
    ``<0xNN>`` byte tokens of a SentencePiece BPE with byte fallback (Llama 2, Mistral)."""
    from tokenizers import pre_tokenizers

    symbols = pre_tokenizers.ByteLevel.alphabet() if byte_level else [f"<0x{b:02X}>" for b in range(256)]
    return {s for s in symbols if s in model["vocab"]}


def _bpe_pairs(merges: list) -> list[tuple[str, str]]:
    return [tuple(m) if isinstance(m, (list, tuple)) else tuple(m.split(" ", 1)) for m in merges]


def _bpe_derivation(token: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """Every symbol BPE builds on its way from the characters of `token` to `token` (empty when the merges never
    build it, e.g. a byte-fallback or added token).

    BPE applies the lowest-ranked merge of adjacent symbols first (leftmost on a tie). Inside the span of a final
    token no merge crosses the span's edges (its result could not be part of that token), so a token is built the
    same way in every word it ends up in: as it is built alone. Following this path rather than "the first merge
    producing the string" matters for vocabularies converted from tiktoken (Llama 3, Qwen), where several merges
    produce the same token and a later one may be the one that fires.
    """
    symbols, built = list(token), list(token)
    while len(symbols) > 1:
        rank, i = min(((ranks.get(pair, len(ranks)), i) for i, pair in enumerate(zip(symbols, symbols[1:]))))
        if rank == len(ranks):
            break
        symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
        built.append(symbols[i])
    return built if symbols == [token] else []


def _bpe_closure(model: dict[str, Any], keep_tokens: set[str], byte_level: bool) -> tuple[set[str], list]:
    """The kept tokens plus the byte symbols and every intermediate BPE builds a kept token from, and the merges
    among them (in their original order, so their ranks keep their order)."""
    merges = model["merges"]
    pairs = _bpe_pairs(merges)
    ranks: dict[tuple[str, str], int] = {}
    for rank, pair in enumerate(pairs):
        ranks.setdefault(pair, rank)
    keep = _bpe_base_symbols(model, byte_level) | set(keep_tokens)
    for token in list(keep):
        keep.update(_bpe_derivation(token, ranks))
    # Every merge the original applies to a corpus word builds a piece of one of its final tokens, so it is kept;
    # a kept merge the original did not apply there is not applicable there either: the encoding is the same.
    kept_merges = [m for m, (a, b) in zip(merges, pairs) if a in keep and b in keep and a + b in keep]
    return keep, kept_merges


def _remap_post_processor(node: Any, new_id: dict[int, int]) -> Any:
    """Renumber the special-token ids inside a post-processor (Template, Bert, Roberta, Sequence) description."""
    if isinstance(node, dict):
        kind = node.get("type")
        out = {}
        for key, value in node.items():
            if kind in ("BertProcessing", "RobertaProcessing") and key in ("sep", "cls"):
                out[key] = [value[0], new_id[int(value[1])]]
            elif key == "ids" and isinstance(value, list) and all(isinstance(v, int) for v in value):
                out[key] = [new_id[v] for v in value]
            else:
                out[key] = _remap_post_processor(value, new_id)
        return out
    if isinstance(node, list):
        return [_remap_post_processor(v, new_id) for v in node]
    return node


def _trim_tokenizer(tokenizer, kept_ids: list[int], merges: list | None):
    """Save the tokenizer, rewrite its tokenizer.json / tokenizer_config.json for the kept ids, and load it back."""
    from transformers import AutoTokenizer

    new_id = {old: new for new, old in enumerate(kept_ids)}
    with tempfile.TemporaryDirectory(prefix="hf-distill-trim-") as tmp:
        tokenizer.save_pretrained(tmp)
        path = Path(tmp)
        data = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
        model = data["model"]
        model["vocab"] = {tok: new_id[i] for tok, i in model["vocab"].items() if i in new_id}
        if merges is not None:  # BPE: only the merges among kept tokens
            model["merges"] = merges
        data["added_tokens"] = [{**t, "id": new_id[t["id"]]} for t in data.get("added_tokens", []) if t["id"] in new_id]
        data["post_processor"] = _remap_post_processor(data.get("post_processor"), new_id)
        (path / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        cfg_path = path / "tokenizer_config.json"
        if cfg_path.is_file():
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            if isinstance(cfg.get("added_tokens_decoder"), dict):
                cfg["added_tokens_decoder"] = {
                    str(new_id[int(k)]): v for k, v in cfg["added_tokens_decoder"].items() if int(k) in new_id
                }
            cfg_path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")
        # Files of slow tokenizers would describe the full vocabulary; the rewritten tokenizer.json is the truth.
        for name in ("vocab.txt", "vocab.json", "merges.txt"):
            (path / name).unlink(missing_ok=True)
        trimmed = AutoTokenizer.from_pretrained(tmp)
    return trimmed


def _slice_linear(layer: nn.Linear, kept: torch.Tensor) -> nn.Linear:
    new = nn.Linear(
        layer.in_features, len(kept), bias=layer.bias is not None, device=layer.weight.device, dtype=layer.weight.dtype
    )
    with torch.no_grad():
        new.weight.copy_(layer.weight[kept])
        if layer.bias is not None:
            new.bias.copy_(layer.bias[kept])
    return new


def _trim_model(model, kept_ids: list[int], old_vocab: int) -> None:
    kept = torch.tensor(kept_ids, dtype=torch.long)
    inp = model.get_input_embeddings()
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    tied = out is not None and out.weight is inp.weight
    if not isinstance(inp, nn.Embedding):
        raise ValueError(
            f"trim_vocabulary needs nn.Embedding input embeddings; {type(model).__name__} has {type(inp).__name__}"
        )
    if out is not None and not isinstance(out, nn.Linear):
        raise ValueError(
            f"trim_vocabulary needs an nn.Linear output head; {type(model).__name__} has {type(out).__name__}"
        )
    handled = {id(inp.weight)} | ({id(out.weight), id(out.bias)} if out is not None else set())
    # A vocabulary-sized tensor we do not know how to slice means an architecture we do not support: refuse.
    others = [
        n
        for n, p in model.named_parameters(remove_duplicate=False)
        if id(p) not in handled and p.shape[:1] == (old_vocab,) and p.ndim >= 1
    ]
    others = [n for n in others if not n.endswith("predictions.bias")]  # BERT MLM bias: tied to the decoder bias
    if others:
        raise ValueError(
            f"trim_vocabulary does not know how to slice {others} of {type(model).__name__}; "
            "it supports models whose vocabulary lives in the input embeddings and the output head"
        )
    # Sliced in place, so a subclass keeps its behaviour (Gemma's embeddings scaled by sqrt(hidden_size)); the
    # padding row follows the renumbering.
    new_id = {old: new for new, old in enumerate(kept_ids)}
    inp.weight = nn.Parameter(inp.weight.detach()[kept].clone(), requires_grad=inp.weight.requires_grad)
    inp.num_embeddings = len(kept)
    inp.padding_idx = new_id.get(inp.padding_idx) if inp.padding_idx is not None else None
    if out is not None:
        new_out = _slice_linear(out, kept)
        if tied:
            new_out.weight = inp.weight
        model.set_output_embeddings(new_out)
    model.config.vocab_size = len(kept)
    text_config = getattr(model.config, "get_text_config", None)
    if callable(text_config) and text_config() is not model.config:
        text_config().vocab_size = len(kept)
    if tied and hasattr(model, "tie_weights"):
        model.tie_weights()


def trim_vocabulary(
    model,
    tokenizer,
    texts: Iterable[str],
    *,
    min_frequency: int = 1,
    keep_tokens: Sequence[str] | None = None,
    min_corpus_tokens: int = MIN_CORPUS_TOKENS,
):
    """Keep only the special tokens and the tokens `texts` use, in the tokenizer and in the model.

    The corpus must cover enough text: at least `min_corpus_tokens` tokens of the original tokenizer (1,000 by
    default, `MIN_CORPUS_TOKENS`), and never none. A smaller corpus is refused: it would keep a vocabulary of a
    few tokens, in which ordinary words of any other text split into characters or become ``[UNK]``.

    Args:
        model: a transformers model whose vocabulary lives in `nn.Embedding` input embeddings and (optionally) an
            `nn.Linear` LM / MLM head with its bias (BERT family, GPT-2 family, Llama-layout decoders; tied or
            untied, Gemma's scaled embeddings kept). Modified in place and returned.
        tokenizer: its fast tokenizer: WordPiece (BERT family), byte-level BPE (GPT-2, Llama 3, Qwen) or
            SentencePiece BPE with byte fallback (Llama 2, Mistral, Phi-3).
        texts: the trimming corpus: an iterable of strings or a `datasets` column (e.g. the training text).
        min_frequency: keep a token only if the corpus uses it at least this often. With 1 (the default) the corpus
            encodes exactly as before; a higher value trades that for a smaller vocabulary.
        keep_tokens: further tokens (strings of the vocabulary) to keep whatever the corpus holds.
        min_corpus_tokens: the fewest tokens the corpus may hold (at least 1). Lower it only for a corpus known
            to be all the model will read.

    Raises:
        ValueError: the corpus holds fewer than `min_corpus_tokens` tokens (one line naming both counts and the
            fix), or the model or tokenizer cannot be trimmed.

    Returns:
        `(model, tokenizer)`: the trimmed model (same object) and a new tokenizer. The model's config records
        `trimmed_from_vocab_size` and `vocabulary_kept_ids` (the teacher ids kept, in order: new id = position).
    """
    if min_frequency < 1:
        raise ValueError(f"min_frequency={min_frequency} is invalid: use 1 or more")
    if min_corpus_tokens < 1:
        raise ValueError(
            f"min_corpus_tokens={min_corpus_tokens} is invalid: use 1 or more (an empty corpus keeps no word at all)"
        )
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(f"trim_vocabulary needs a fast tokenizer (tokenizers backend); got {type(tokenizer).__name__}")
    if kept_ids_of(model) is not None:
        raise ValueError("this model's vocabulary is trimmed already; trim the original model instead")
    data = json.loads(backend.to_str())
    kind = data["model"]["type"]
    byte_level = _is_byte_level(data.get("pre_tokenizer"))
    if kind not in ("WordPiece", "BPE"):
        raise ValueError(f"trim_vocabulary supports {_SUPPORTED_TOKENIZERS} tokenizers; this one is {kind}")
    if kind == "BPE" and (
        data["model"].get("continuing_subword_prefix")
        or data["model"].get("end_of_word_suffix")
        or not (byte_level or data["model"].get("byte_fallback"))
    ):
        raise ValueError(
            f"trim_vocabulary supports {_SUPPORTED_TOKENIZERS} tokenizers; this BPE tokenizer is "
            "neither byte-level nor falls back to bytes (or marks word pieces), so text outside the "
            "trimming corpus could not fall back to bytes"
        )
    vocab: dict[str, int] = data["model"]["vocab"]
    id_to_token = {i: t for t, i in vocab.items()}
    old_vocab = model.get_input_embeddings().weight.shape[0]

    counts, chars = _count_tokens(_plain_backend(tokenizer), texts)
    _refuse_small_corpus(sum(counts.values()), min_corpus_tokens)
    keep_ids = {i for i, c in counts.items() if c >= min_frequency}
    keep_ids |= {t["id"] for t in data.get("added_tokens", [])}
    keep_ids |= {i for i in tokenizer.all_special_ids if i is not None}
    for attr in _ID_ATTRIBUTES:
        value = getattr(model.config, attr, None)
        if isinstance(value, int) and 0 <= value < old_vocab:
            keep_ids.add(value)
    for token in keep_tokens or ():
        if token not in vocab:
            raise ValueError(f"keep_tokens: {token!r} is not in the tokenizer's vocabulary")
        keep_ids.add(vocab[token])
    if kind == "WordPiece":
        unk = data["model"].get("unk_token")
        if unk in vocab:
            keep_ids.add(vocab[unk])
        # The single-character pieces of the corpus's alphabet (as BPE keeps its bytes): an unseen word spelled
        # with known characters then splits into pieces instead of becoming [UNK]. A few hundred ids at most.
        prefix = data["model"].get("continuing_subword_prefix", "##")
        keep_ids |= {vocab[t] for c in chars for t in (c, prefix + c) if t in vocab}
    merges = None
    if kind == "BPE":
        vocab_keep, merges = _bpe_closure(
            data["model"], {id_to_token[i] for i in keep_ids if i in id_to_token}, byte_level
        )
        keep_ids |= {vocab[t] for t in vocab_keep}
    if max(keep_ids) >= old_vocab:
        raise ValueError(
            f"the tokenizer uses id {max(keep_ids)} but the model's embeddings have {old_vocab} rows: "
            "they do not belong together"
        )
    kept_ids = sorted(keep_ids)
    new_tokenizer = _trim_tokenizer(tokenizer, kept_ids, merges)
    _trim_model(model, kept_ids, old_vocab)
    _renumber_token_ids(model, kept_ids)
    model.config.trimmed_from_vocab_size = old_vocab
    model.config.vocabulary_kept_ids = kept_ids
    return model, new_tokenizer


def _renumber_token_ids(model, kept_ids: Sequence[int]) -> None:
    """The special-token ids of the model's config and generation config in the numbering of `kept_ids`."""
    new_id = {old: new for new, old in enumerate(kept_ids)}
    for config in (model.config, getattr(model, "generation_config", None)):
        if config is None:
            continue
        for attr in _ID_ATTRIBUTES:
            value = getattr(config, attr, None)
            if isinstance(value, int) and value in new_id:
                setattr(config, attr, new_id[value])
            elif isinstance(value, list):
                setattr(config, attr, [new_id.get(v, v) for v in value])


def _plain_backend(tokenizer):
    """A copy of the tokenizers backend without the padding and truncation an earlier call may have left set
    (padding would count pad tokens as text, truncation would hide tokens)."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.no_truncation()
    return backend


@dataclass(frozen=True)
class TrimmingChange:
    """How trimming changes the encoding of a text it was not cut to (e.g. the validation text).

    Counted in tokens of the original tokenizer: `changed_tokens` are those of words the trimmed tokenizer encodes
    differently (a piece the corpus never used was dropped, so the word splits into shorter pieces), `unk_tokens`
    the ``[UNK]`` tokens the trimmed tokenizer produces there that the original did not.
    """

    texts: int
    tokens: int
    changed_tokens: int
    unk_tokens: int

    @property
    def changed_share(self) -> float:
        """`changed_tokens` as a share of the tokens counted (0 without tokens)."""
        return self.changed_tokens / self.tokens if self.tokens else 0.0

    @property
    def unk_share(self) -> float:
        """`unk_tokens` as a share of the tokens counted (0 without tokens)."""
        return self.unk_tokens / self.tokens if self.tokens else 0.0

    def describe(self, what: str = "the validation text") -> str:
        """One sentence for the log, the plan and the card."""
        return (
            f"{100 * self.changed_share:.2f}% of {what}'s {self.tokens:,} tokens encode differently after "
            f"trimming ({100 * self.unk_share:.2f}% become [UNK])"
        )


def trimming_change(
    original_tokenizer, trimmed_tokenizer, kept_ids: Sequence[int], texts: Iterable[str], batch_size: int = 1024
) -> TrimmingChange:
    """Measure how much of `texts` the trimmed tokenizer encodes differently from the original.

    Both tokenizers share the pre-tokenizer, so their words align: a word is changed when the trimmed tokenizer's
    pieces, mapped back to original ids, differ from the original's; its original tokens are counted.

    Args:
        original_tokenizer: the fast tokenizer before trimming (the teacher's).
        trimmed_tokenizer: the one `trim_vocabulary` returned.
        kept_ids: the trimmed model's `vocabulary_kept_ids` (new id = position).
        texts: the text to measure (e.g. the validation text column).
        batch_size: texts encoded at a time.
    """
    kept = list(kept_ids)
    original, trimmed = _plain_backend(original_tokenizer), _plain_backend(trimmed_tokenizer)
    unk = trimmed_tokenizer.unk_token_id
    unk_before = original_tokenizer.unk_token_id
    n_texts = tokens = changed = unks = 0
    batch: list[str] = []

    def words(ids: Sequence[int], word_ids: Sequence[int | None]) -> dict[int | None, list[int]]:
        grouped: dict[int | None, list[int]] = {}
        for i, w in zip(ids, word_ids):
            grouped.setdefault(w, []).append(i)
        return grouped

    def flush() -> None:
        nonlocal tokens, changed, unks
        pairs = zip(
            original.encode_batch(batch, add_special_tokens=False),
            trimmed.encode_batch(batch, add_special_tokens=False),
        )
        for before, after in pairs:
            tokens += len(before.ids)
            mapped = [kept[i] for i in after.ids]
            if mapped == before.ids:
                continue
            old, new = words(before.ids, before.word_ids), words(mapped, after.word_ids)
            new_raw = words(after.ids, after.word_ids)
            for word, ids in old.items():
                if new.get(word) != ids:
                    changed += len(ids)
                    unks += max(0, new_raw.get(word, []).count(unk) - ids.count(unk_before)) if unk is not None else 0
        batch.clear()

    for text in _texts(texts):
        n_texts += 1
        batch.append(text)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return TrimmingChange(texts=n_texts, tokens=tokens, changed_tokens=changed, unk_tokens=unks)


# ---- mapping teacher ids and distributions onto a trimmed student -------------------------------------------------


def kept_ids_of(model_or_config) -> list[int] | None:
    """The one definition of a trimmed model: the teacher ids it kept (new id = position), or None when untrimmed.

    A trimmed config holds both ``vocabulary_kept_ids`` and ``trimmed_from_vocab_size`` (as `trim_vocabulary` writes
    them), the kept ids increasing and inside the original vocabulary, one per row of the trimmed vocabulary. Every
    guard (compatibility, trainer, shared targets) asks this function, so a config holding only one of the two, or
    ids that cannot be a trimming, is refused here instead of passing one guard and failing (or mapping nothing)
    at another.

    Args:
        model_or_config: a model (its ``config`` is read) or a `PretrainedConfig`.

    Raises:
        ValueError: the config's trimming attributes are inconsistent (one line naming them and the fix).
    """
    config = getattr(model_or_config, "config", model_or_config)
    kept = getattr(config, "vocabulary_kept_ids", None)
    before = getattr(config, "trimmed_from_vocab_size", None)
    if kept is None and before is None:
        return None
    kept = list(kept) if kept is not None else None
    vocab = getattr(config, "vocab_size", None)
    if (
        kept is None
        or before is None
        or not kept
        or any(b <= a for a, b in zip(kept, kept[1:]))
        or kept[0] < 0
        or kept[-1] >= before
        or (isinstance(vocab, int) and len(kept) > vocab)
    ):
        raise ValueError(
            "the model's config marks a trimmed vocabulary inconsistently (vocabulary_kept_ids: "
            f"{'missing' if kept is None else f'{len(kept)} ids'}, trimmed_from_vocab_size: {before}, vocab_size: "
            f"{vocab}): both come from trim_vocabulary, the ids increasing and below trimmed_from_vocab_size; re-trim "
            "the student with hf_distill.vocabulary.trim_vocabulary or remove both attributes"
        )
    return kept


def teacher_to_student_ids(kept_ids: Sequence[int], teacher_vocab_size: int) -> torch.Tensor:
    """A lookup table: teacher id → student id, -1 for a dropped id."""
    table = torch.full((teacher_vocab_size,), -1, dtype=torch.long)
    table[torch.as_tensor(list(kept_ids), dtype=torch.long)] = torch.arange(len(kept_ids))
    return table


def remap_ids(input_ids: Any, kept_ids: Sequence[int], teacher_vocab_size: int | None = None) -> Any:
    """Teacher token ids → the trimmed student's ids (a tensor, or nested lists as a tokenizer returns them).

    Args:
        input_ids: teacher ids: a tensor, a list, or a list of rows of different lengths.
        kept_ids: the teacher ids the student keeps, in student-id order.
        teacher_vocab_size: the teacher's vocabulary size (default: just large enough for the ids seen).

    Returns:
        The student's ids, in the form given.

    Raises:
        ValueError: an id outside the teacher's vocabulary, or one the trimming dropped (the text was not part of
            the trimming corpus).
    """
    ragged = isinstance(input_ids, list) and bool(input_ids) and isinstance(input_ids[0], list)
    # Rows of different lengths (as a tokenizer returns them) are mapped in one go, then split again.
    flat = torch.as_tensor([i for row in input_ids for i in row] if ragged else input_ids, dtype=torch.long)
    size = teacher_vocab_size or max(max(kept_ids), int(flat.max()) if flat.numel() else 0) + 1
    table = teacher_to_student_ids(kept_ids, size)
    if flat.numel() and (flat.max() >= size or flat.min() < 0):
        raise ValueError(f"token id {int(flat.max())} is outside the teacher's vocabulary of {size}")
    mapped = table[flat]
    if (mapped < 0).any():
        dropped = sorted(set(flat[mapped < 0].tolist()))[:5]
        raise ValueError(
            f"teacher ids {dropped} were dropped by the vocabulary trimming: these rows are not from "
            "the trimming corpus; tokenize them with the student's tokenizer instead"
        )
    if ragged:
        values, out, start = mapped.tolist(), [], 0
        for row in input_ids:
            out.append(values[start : start + len(row)])
            start += len(row)
        return out
    return mapped.tolist() if isinstance(input_ids, list) else mapped


def restrict_to_kept_ids(teacher_logits: torch.Tensor, kept_ids: Sequence[int]) -> torch.Tensor:
    """The teacher's logits over the full vocabulary → logits over the student's kept ids (last axis).

    Convention: **renormalise**. Taking the kept columns of the logits and letting the softmax (at any temperature)
    normalise them is the teacher's distribution conditioned on the next token being a kept one:
    ``p_kept(i) = p(i) / sum_{j kept} p(j)``. The mass of dropped ids is not a tail bucket the student could put
    probability on (the student has no such ids); on the trimming corpus the targets never are dropped ids, and a
    trimmed student cannot produce them anyway. KD against these logits equals KD restricted to the kept ids.

    Args:
        teacher_logits: (..., V) logits over the teacher's vocabulary.
        kept_ids: the teacher ids the student keeps, in student-id order.
    """
    index = torch.as_tensor(list(kept_ids), dtype=torch.long, device=teacher_logits.device)
    return teacher_logits.index_select(-1, index)


def to_teacher_ids(input_ids: torch.Tensor, kept_ids: Sequence[int]) -> torch.Tensor:
    """The trimmed student's token ids → the teacher's (every student id is a kept teacher id), for a live teacher."""
    return torch.as_tensor(list(kept_ids), dtype=torch.long, device=input_ids.device)[input_ids]


def teacher_logits_for_student(teacher_logits: torch.Tensor, student, task: str | Task) -> torch.Tensor:
    """The teacher's token logits as targets for `student`: restricted to its kept ids when its vocabulary is trimmed.

    Classification logits and untrimmed students pass through unchanged; logits that already have the student's
    width (soft targets cached for the trimmed vocabulary) too. See `restrict_to_kept_ids` for the convention.

    Args:
        teacher_logits: the teacher's logits (live or cached).
        student: the student (its config records the kept ids when trimmed).
        task: the task name or `Task`.

    Raises:
        ValueError: the logits are narrower than the student's largest kept teacher id (another teacher).
    """
    kept = kept_ids_of(student)
    if kept is None or not get_task(task).per_token or teacher_logits.shape[-1] == len(kept):
        return teacher_logits
    if teacher_logits.shape[-1] <= max(kept):
        raise ValueError(
            f"the teacher's logits have {teacher_logits.shape[-1]} ids but the student keeps teacher id "
            f"{max(kept)}: this student was not trimmed from this teacher's vocabulary"
        )
    return restrict_to_kept_ids(teacher_logits, kept)


def teacher_on_kept_ids(teacher, kept_ids: Sequence[int]):
    """The teacher as a model of the trimmed student's vocabulary, for evaluation and generation.

    It reads the student's ids and gives logits over the kept ids only: the same function as training's
    ``restrict_to_kept_ids(teacher(to_teacher_ids(ids)).logits, kept_ids)`` (its input-embedding rows and head rows
    are the kept ones), so every softmax over it is the teacher's distribution **renormalised over the kept ids**,
    the convention `restrict_to_kept_ids` states. Being a model of the same class, it generates (its special-token
    ids renumbered) and is scored by the same code as an untrimmed pair.

    The transformer body is shared with `teacher` (no copy of its weights); only the vocabulary rows are new, and
    `teacher` itself is left unchanged.

    Args:
        teacher: the teacher the student was trimmed from (a transformers model with `nn.Embedding` input embeddings
            and an `nn.Linear` head, as `trim_vocabulary` requires).
        kept_ids: the student's `vocabulary_kept_ids` (`kept_ids_of(student)`).
    """
    import copy
    import itertools

    kept = list(kept_ids)
    size = teacher.get_input_embeddings().weight.shape[0]
    if kept[-1] >= size:
        raise ValueError(
            f"the student keeps teacher id {kept[-1]} but the teacher has {size} ids: this student was not "
            "trimmed from this teacher"
        )
    # Every tensor is shared with the teacher (deepcopy finds them in its memo); _trim_model then gives the copy
    # new embedding and head modules holding the kept rows, leaving the teacher's modules as they are.
    shared = {id(t): t for t in itertools.chain(teacher.parameters(), teacher.buffers())}
    view = copy.deepcopy(teacher, memo=shared)
    _trim_model(view, kept, size)
    _renumber_token_ids(view, kept)
    return view


def evaluation_teacher(teacher, teacher_tokenizer, student, student_tokenizer, task: str | Task):
    """(teacher, tokenizer) that evaluation compares a student with: for a trimmed LM student, the teacher restricted
    to its kept ids (`teacher_on_kept_ids`) and the student's tokenizer, which both models then read; otherwise the
    teacher and its own tokenizer, unchanged.

    Args:
        teacher: the teacher model.
        teacher_tokenizer: the teacher's tokenizer.
        student: the student model.
        student_tokenizer: the student's tokenizer.
        task: the task name or `Task`.
    """
    kept = kept_ids_of(student) if get_task(task).per_token else None
    if kept is None:
        return teacher, teacher_tokenizer
    return teacher_on_kept_ids(teacher, kept), student_tokenizer


def check_trimmed_tokenizers(student_tokenizer, teacher_tokenizer, kept_ids: Sequence[int]) -> None:
    """Raise unless the student's vocabulary is the teacher's restricted to `kept_ids` (token for token)."""
    if student_tokenizer is None or teacher_tokenizer is None:
        return
    student_vocab, teacher_vocab = student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
    by_id = {i: t for t, i in teacher_vocab.items()}
    expected = {by_id.get(old): new for new, old in enumerate(kept_ids)}
    if student_vocab != expected:
        raise ValueError(
            "the student's vocabulary is trimmed, but not from this teacher's tokenizer: distil from "
            "the teacher whose vocabulary trim_vocabulary was given"
        )


def check_trimmed_student(student, teacher, train_dataset, student_tokenizer=None, teacher_tokenizer=None) -> None:
    """What `DistillationTrainer` checks before training a trimmed student (nothing for an untrimmed one).

    Args:
        student: the student (a PEFT model's base model is read).
        teacher: the teacher, or None (then only the data is checked).
        train_dataset: the training data (its columns tell cached top-k targets).
        student_tokenizer: the student's tokenizer.
        teacher_tokenizer: the teacher's tokenizer.

    Raises:
        ValueError: cached top-k soft targets (they hold teacher ids, see the module docstring), a teacher whose
            vocabulary is smaller than the kept ids, or tokenizers that do not belong together.
    """
    student = getattr(student, "get_base_model", lambda: student)()
    kept = kept_ids_of(student)
    if kept is None:
        return
    columns = getattr(train_dataset, "column_names", None) or ()
    if "teacher_topk_ids" in columns:
        raise ValueError(
            "cached top-k soft targets hold the teacher's ids and cannot be renormalised over a trimmed "
            "student's vocabulary: cache full logits (top_k=None) or distil from the live teacher"
        )
    if teacher is None:
        return
    teacher_vocab = teacher.get_input_embeddings().weight.shape[0]
    if max(kept) >= teacher_vocab:
        raise ValueError(
            f"the student keeps teacher id {max(kept)} but the teacher has {teacher_vocab} ids: this "
            "student was not trimmed from this teacher"
        )
    if hasattr(student_tokenizer, "get_vocab") and hasattr(teacher_tokenizer, "get_vocab"):
        check_trimmed_tokenizers(student_tokenizer, teacher_tokenizer, kept)


def remap_dataset(dataset, student):
    """A tokenized `datasets.Dataset` (e.g. cached soft targets) with its ``input_ids`` mapped to `student`'s ids.

    Only rows of the trimming corpus can be mapped (their encodings are unchanged by the trimming); any other row
    raises a clear error instead of being encoded differently in silence.

    Args:
        dataset: rows tokenized with the teacher's tokenizer.
        student: the student; an untrimmed one returns `dataset` unchanged.

    Raises:
        ValueError: a row holds an id the trimming dropped.
    """
    kept = kept_ids_of(student)
    if kept is None:
        return dataset
    size = student.config.trimmed_from_vocab_size
    return dataset.map(
        lambda batch: {"input_ids": remap_ids(batch["input_ids"], kept, size)},
        batched=True,
        desc="mapping input_ids to the trimmed vocabulary",
    )
