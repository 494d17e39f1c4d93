"""Tiny Llama-layout decoders built from configs (no download), one per family that
`hf_distill.students.blocks.LAYOUTS` serves.

Every config has 4 blocks, grouped-query attention (4 query heads, 2 key/value heads) and, where the family has
them, per-layer attention kinds mixing full and sliding-window attention with a window of 4, so a sequence longer
than 4 tells a block's kind apart.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModelForCausalLM

VOCAB = 120
_COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)
_MIXED = ["full_attention", "sliding_attention", "full_attention", "sliding_attention"]

# name -> (model_type, settings beyond _COMMON)
FAMILIES = {
    "llama": ("llama", {}),
    "llama-tied": ("llama", {"tie_word_embeddings": True}),
    "mistral": ("mistral", {"sliding_window": 4}),
    "qwen2": ("qwen2", {"use_sliding_window": True, "sliding_window": 4, "layer_types": _MIXED}),
    "qwen3": ("qwen3", {"head_dim": 8, "use_sliding_window": True, "sliding_window": 4, "layer_types": _MIXED}),
    "gemma": ("gemma", {"head_dim": 8}),
    "gemma2": ("gemma2", {"head_dim": 8, "sliding_window": 4, "layer_types": _MIXED}),
    "gemma3": ("gemma3_text", {"head_dim": 8, "sliding_window": 4, "layer_types": _MIXED}),
    "smollm3": ("smollm3", {"no_rope_layers": [1, 0, 1, 0]}),
    "phi3": ("phi3", {"tie_word_embeddings": False}),
}


def decoder(family: str, **overrides):
    """A randomly initialised tiny causal LM of `family` (a key of `FAMILIES`), in eval mode."""
    model_type, settings = FAMILIES[family]
    config = AutoConfig.for_model(model_type, **{**_COMMON, **settings, **overrides})
    return AutoModelForCausalLM.from_config(config).eval()


def decoder_for(family: str, tokenizer, **overrides):
    """`decoder(family)` sized for `tokenizer`: its vocabulary and its pad/BOS/EOS ids."""
    return decoder(
        family,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **overrides,
    )


# ---- their tokenizers, trained here on a small corpus --------------------------------------------------------------

TEXTS = [
    "Once upon a time, in 1812, the brothers Grimm wrote 86 tales!",
    "It's the wolf's bed; she'll say: \"What big eyes you have...\"",
    "naïve café, déjà vu — Rotkäppchen und der Wolf",
    "   indented line\twith a tab\nand a newline",
] * 5
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _corpus():
    from tests.tiny import CORPUS

    return list(CORPUS) + TEXTS


def _bpe_merges(tok):
    import json

    merges = json.loads(tok.to_str())["model"]["merges"]
    return [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in merges]


def llama3_tokenizer(vocab_size: int = 400):
    """Llama 3 style: byte-level BPE behind a regex Split pre-tokenizer (digits in threes, contractions),
    ``ignore_merges`` (a word in the vocabulary is one token), ``<|begin_of_text|>`` prepended."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>"]
    tok.train_from_iterator(
        _corpus(),
        trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A",
        pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
        pad_token="<|finetune_right_pad_id|>",
    )


def qwen2_tokenizer(vocab_size: int = 400):
    """transformers' own `Qwen2Tokenizer` (NFC, Qwen's Split regex, byte-level BPE) on merges trained here."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.train_from_iterator(
        _corpus(),
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    return Qwen2Tokenizer(vocab=tok.get_vocab(), merges=_bpe_merges(tok))


def sentencepiece_bpe_tokenizer(vocab_size: int = 600, byte_fallback: bool = True):
    """transformers' own `LlamaTokenizer` (Llama 2 / Mistral: SentencePiece BPE, ``▁`` for spaces, the 256
    ``<0xNN>`` byte tokens as fallback, ``<s>`` prepended) on merges trained here."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaTokenizer

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=byte_fallback, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tok.train_from_iterator(_corpus(), trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials))
    tokenizer = LlamaTokenizer(vocab=tok.get_vocab(), merges=_bpe_merges(tok))
    if not byte_fallback:
        tokenizer.backend_tokenizer.model.byte_fallback = False
    tokenizer.pad_token = tokenizer.unk_token
    return tokenizer


TOKENIZERS = {"llama3": llama3_tokenizer, "qwen2": qwen2_tokenizer, "sentencepiece": sentencepiece_bpe_tokenizer}
