"""Tiny Llama-layout decoders built from configs (no download), one per family `hf_distill.students.LAYOUTS` serves.

Every config has 4 blocks, grouped-query attention (4 query heads, 2 key/value heads) and, where the family has
them, per-layer attention kinds mixing full and sliding-window attention with a window of 4, so a sequence longer
than 4 tells a block's kind apart.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModelForCausalLM

VOCAB = 120
_COMMON = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2)
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
