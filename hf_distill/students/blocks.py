"""Build a smaller student from a teacher: copy a subset of its transformer blocks (DistilBERT-style) and, optionally,
keep only the most important FFN neurons of each kept block (width pruning, Minitron-style)."""

from __future__ import annotations

import copy
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

from .vocabulary import kept_ids_of


@dataclass(frozen=True)
class BlockLayout:
    """Where one family of models keeps its transformer blocks and FFN: one row of `LAYOUTS`.

    Attributes:
        family: the family's name in messages (``"Llama-family decoders"``).
        model_types: the ``config.model_type`` values this row serves (each covered by a test).
        blocks: path of the blocks' `nn.ModuleList` inside the base model (``model.base_model``).
        ffn_in: the FFN's input projections inside a block; an FFN neuron is an output feature of each.
        ffn_out: the FFN's output projection; an FFN neuron is one of its input features.
        width_attr: the config attribute holding the FFN width.
        conv1d: the projections are GPT-2 `Conv1D`s (weight stored in × out) rather than `nn.Linear`s.
        fused_chunks: each input projection stacks this many width-sized blocks of rows (Phi-3's ``gate_up_proj``
            holds gate then up: 2).
        per_layer: config attributes holding one entry per block (``layer_types``, SmolLM3's ``no_rope_layers``),
            sliced with the kept blocks so each copied block keeps its attention kind (sliding window or full) and
            positions.
    """

    family: str
    model_types: tuple[str, ...]
    blocks: str
    ffn_in: tuple[str, ...]
    ffn_out: str
    width_attr: str
    conv1d: bool = False
    fused_chunks: int = 1
    per_layer: tuple[str, ...] = ()


_GATED = dict(
    blocks="layers",
    ffn_in=("mlp.gate_proj", "mlp.up_proj"),
    ffn_out="mlp.down_proj",
    width_attr="intermediate_size",
    per_layer=("layer_types",),
)
# Adding a family is one row here plus its tests (tests/test_students_decoders.py).
LAYOUTS = (
    BlockLayout(
        "BERT-family encoders",
        ("bert", "roberta", "xlm-roberta", "electra", "camembert"),
        "encoder.layer",
        ("intermediate.dense",),
        "output.dense",
        "intermediate_size",
    ),
    BlockLayout("GPT-2-family decoders", ("gpt2",), "h", ("mlp.c_fc",), "mlp.c_proj", "n_inner", conv1d=True),
    BlockLayout("GPT-2-family decoders", ("gptj",), "h", ("mlp.fc_in",), "mlp.fc_out", "n_inner"),
    # Llama, Mistral, Qwen2/Qwen3 (q_norm/k_norm are per-block weights), Gemma 1-3 (embeddings scaled inside the
    # model), SmolLM (1/2 are llama; 3 drops rotary positions on some layers): blocks at model.layers, gated MLP.
    BlockLayout(
        "Llama-family decoders", ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text"), **_GATED
    ),
    BlockLayout("Llama-family decoders", ("smollm3",), **{**_GATED, "per_layer": ("layer_types", "no_rope_layers")}),
    BlockLayout(
        "Phi-3 decoders",
        ("phi3",),
        "layers",
        ("mlp.gate_up_proj",),
        "mlp.down_proj",
        "intermediate_size",
        fused_chunks=2,
        per_layer=("layer_types",),
    ),
)


def supported_families() -> str:
    """The families `student_from_teacher` can cut, with their model types, in words (from `LAYOUTS`)."""
    families: dict[str, list[str]] = {}
    for layout in LAYOUTS:
        families.setdefault(layout.family, []).extend(layout.model_types)
    return "; ".join(f"{family} ({', '.join(types)})" for family, types in families.items())


SUPPORTED = supported_families()
STRATEGIES = ("uniform", "first", "last")


def _get(module: nn.Module, path: str):
    for part in path.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def architecture_name(config) -> str | None:
    """A model's architecture and family in words for the report and card (``"LlamaForCausalLM, a Llama-family
    decoder"``), from its config's ``architectures`` and `LAYOUTS`; None when the config names no architecture.

    Args:
        config: the model's config.
    """
    names = getattr(config, "architectures", None) or []
    model_type = getattr(config, "model_type", None)
    family = next((layout.family for layout in LAYOUTS if model_type in layout.model_types), None)
    if not names:
        return None
    return f"{names[0]}, a {family.removesuffix('s')}" if family else names[0]


def layout_of(model: PreTrainedModel) -> BlockLayout:
    """The `LAYOUTS` row of a model (by ``config.model_type``).

    Args:
        model: the teacher (or any model whose blocks are to be copied).

    Raises:
        ValueError: one line naming the model and the supported families.
    """
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    for layout in LAYOUTS:
        if model_type in layout.model_types:
            return layout
    raise ValueError(
        f"student_from_teacher does not support {type(model).__name__} (model_type {model_type!r}): it supports "
        f"{SUPPORTED}. Build the student yourself (e.g. AutoModel.from_config) and pass it to DistillationTrainer."
    )


def find_blocks(model: PreTrainedModel) -> tuple[str, nn.ModuleList]:
    """Return the state-dict prefix and the `ModuleList` of transformer blocks of a supported model."""
    layout = layout_of(model)
    base_prefix = getattr(model, "base_model_prefix", "")
    base = getattr(model, base_prefix, model) if base_prefix else model
    blocks = _get(base, layout.blocks)
    if not isinstance(blocks, nn.ModuleList) or len(blocks) == 0:
        raise ValueError(
            f"{type(model).__name__} has no blocks at {layout.blocks!r} as {layout.family} do: "
            "build the student yourself and pass it to DistillationTrainer"
        )
    prefix = f"{base_prefix}.{layout.blocks}" if base is not model else layout.blocks
    return prefix, blocks


def select_layers(num_teacher_layers: int, num_layers: int, strategy: str = "uniform") -> list[int]:
    """0-based teacher block indices to keep.

    ``uniform`` spreads the kept blocks evenly and always keeps the last one (6 → 3 keeps 1, 3, 5);
    ``first`` / ``last`` keep the bottom / top blocks.

    Args:
        num_teacher_layers: the teacher's number of blocks.
        num_layers: the student's number of blocks, 1 to `num_teacher_layers`.
        strategy: ``uniform``, ``first`` or ``last``.

    Raises:
        ValueError: an unknown `strategy`, or `num_layers` outside 1 to `num_teacher_layers`.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} is invalid: choose one of {', '.join(STRATEGIES)}")
    if not 1 <= num_layers <= num_teacher_layers:
        raise ValueError(
            f"num_layers={num_layers} is invalid: the teacher has {num_teacher_layers} blocks, "
            f"choose 1..{num_teacher_layers}"
        )
    if strategy == "first":
        return list(range(num_layers))
    if strategy == "last":
        return list(range(num_teacher_layers - num_layers, num_teacher_layers))
    return [round((i + 1) * num_teacher_layers / num_layers) - 1 for i in range(num_layers)]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_layers(layers) -> list[int]:
    # Coercing with int() turned 1.7 into 1 and "13" into [1, 3]: refuse anything but a sequence of integers.
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise ValueError(f"layers={layers!r} is invalid: give a list of 0-based block indices, e.g. [1, 3, 5]")
    # numpy / torch integers have __index__; bools and floats are refused even when they look whole.
    bad = [v for v in layers if isinstance(v, bool) or not hasattr(v, "__index__")]
    if bad:
        raise ValueError(f"layers={list(layers)!r} is invalid: block indices must be integers (found {bad[0]!r})")
    return [operator.index(i) for i in layers]


def _ffn_modules(block: nn.Module, layout: BlockLayout) -> tuple[list[nn.Module], nn.Module]:
    """The input projections and the output projection of one block's FFN, as the layout names them."""
    ins, out = [_get(block, path) for path in layout.ffn_in], _get(block, layout.ffn_out)
    if out is None or any(m is None for m in ins):
        raise ValueError(
            f"width pruning: a {type(block).__name__} block has no {', '.join(layout.ffn_in)} / "
            f"{layout.ffn_out} FFN as {layout.family} do; it supports {SUPPORTED}"
        )
    return ins, out


def ffn_width(model: PreTrainedModel) -> int:
    """The FFN width (neurons per block) of a supported model: the input features of the FFN's output projection."""
    layout = layout_of(model)
    _, out = _ffn_modules(find_blocks(model)[1][0], layout)
    return out.weight.shape[0] if layout.conv1d else out.weight.shape[1]


def ffn_importance(teacher: PreTrainedModel, calibration: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Importance of every FFN neuron of every block: mean |activation| over the calibration tokens.

    The activation is the input of the FFN's down projection (after the nonlinearity), averaged in absolute value
    over the non-padding tokens of the calibration batch. This is the activation-based importance of NVIDIA's
    Minitron width pruning (Muralidharan et al. 2024, "Compact Language Models via Pruning and Knowledge
    Distillation", arXiv 2407.14679), which ranks neurons by the magnitude of their activations on a small
    calibration set and needs no gradients.

    Args:
        teacher: the model to score.
        calibration: a tokenized batch (``input_ids``, ``attention_mask``, ...) the model accepts.

    Returns:
        One tensor per block of shape ``(ffn_width,)``.
    """
    layout = layout_of(teacher)
    _, blocks = find_blocks(teacher)
    mask = calibration.get("attention_mask")
    scores: list[torch.Tensor | None] = [None] * len(blocks)

    def hook_for(index: int):
        def hook(_module, args):
            act = args[0].detach().abs().float()
            if mask is not None and act.shape[:2] == mask.shape:
                weights = mask.to(act.device, act.dtype).unsqueeze(-1)
                scores[index] = (act * weights).sum((0, 1)) / weights.sum().clamp_min(1)
            else:
                scores[index] = act.reshape(-1, act.shape[-1]).mean(0)

        return hook

    handles = [_ffn_modules(block, layout)[1].register_forward_pre_hook(hook_for(i)) for i, block in enumerate(blocks)]
    was_training = teacher.training
    try:
        teacher.eval()
        with torch.no_grad():
            device = next(teacher.parameters()).device
            teacher(**{k: v.to(device) if torch.is_tensor(v) else v for k, v in calibration.items()})
    finally:
        for handle in handles:
            handle.remove()
        teacher.train(was_training)
    if any(s is None for s in scores):
        raise RuntimeError("the calibration forward did not reach every FFN block")
    return [s.cpu() for s in scores]


def _slice_ffn(state: dict, key_prefix: str, layout: BlockLayout, width: int, kept: torch.Tensor) -> None:
    """Keep the FFN neurons `kept` of one block in a state dict: the outputs of every input projection (each
    width-sized chunk of a fused one) and the inputs of the output projection, so neuron i stays one unit."""
    rows = torch.cat([kept + chunk * width for chunk in range(layout.fused_chunks)])
    for path in layout.ffn_in:
        weight, bias = f"{key_prefix}.{path}.weight", f"{key_prefix}.{path}.bias"
        state[weight] = state[weight][:, rows] if layout.conv1d else state[weight][rows]
        if bias in state:
            state[bias] = state[bias][rows]
    down = f"{key_prefix}.{layout.ffn_out}.weight"
    state[down] = state[down][kept] if layout.conv1d else state[down][:, kept]


def student_from_teacher(
    teacher: PreTrainedModel,
    num_layers: int | None = None,
    layers: Sequence[int] | None = None,
    strategy: str = "uniform",
    *,
    intermediate_size: int | None = None,
    num_attention_heads: int | None = None,
    calibration: dict[str, torch.Tensor] | None = None,
    config_overrides: dict | None = None,
) -> PreTrainedModel:
    """A new model of the teacher's class holding a copy of the chosen blocks, optionally narrowed.

    Embeddings, pooler, heads and final layer norm are copied as they are; the config's layer count is updated and
    the kept teacher blocks are recorded in ``config.distilled_from_layers``. Give either ``num_layers`` (with a
    ``strategy``) or explicit 0-based ``layers``. The teacher is not modified.

    Args:
        teacher: a model of a family in `LAYOUTS` (BERT-family encoders, GPT-2-family and Llama-family decoders,
            Phi-3; `SUPPORTED` lists the model types). Grouped-query attention, RMSNorm, rotary positions, per-layer
            attention kinds (``layer_types``, sliced with the kept blocks) and tied or untied embeddings carry over.
        num_layers: how many blocks to keep (default: half), chosen by ``strategy``.
        layers: explicit 0-based block indices (instead of ``num_layers``).
        strategy: ``uniform``, ``first`` or ``last``.
        intermediate_size: keep this many FFN neurons in every kept block: those with the largest mean activation
            magnitude on ``calibration`` (`ffn_importance`, as Minitron, arXiv 2407.14679). The hidden size does
            not change, so hidden-state losses need no projection. Recorded in ``config.pruned_from_intermediate_size``.
        num_attention_heads: not supported: transformers 5 derives BERT's and GPT-2's head size from
            ``hidden_size / num_attention_heads`` and no longer has ``prune_heads``, so a model with fewer heads of
            the teacher's size cannot be saved and loaded as a standard model. A clear error says so.
        config_overrides: config attributes of the student set before it is built, e.g. ``{"resid_pdrop": 0.0,
            "embd_pdrop": 0.0, "attn_pdrop": 0.0}`` for a GPT-2 student without the teacher's dropout.
        calibration: a tokenized batch the teacher accepts (e.g. ``tokenizer(texts, padding=True,
            return_tensors="pt")``, a few hundred sentences of the training text); needed for ``intermediate_size``.
    """
    if hasattr(teacher, "get_base_model") and not isinstance(teacher, PreTrainedModel):
        raise ValueError(
            "student_from_teacher needs a plain transformers model; merge or unwrap the PEFT teacher first"
        )
    layout = layout_of(teacher)
    prefix, blocks = find_blocks(teacher)
    total = len(blocks)
    if layers is not None and num_layers is not None:
        raise ValueError("give either num_layers or layers, not both")
    if num_attention_heads is not None:
        raise ValueError(
            "num_attention_heads pruning is not supported with transformers 5: BERT and GPT-2 derive the head size "
            "from hidden_size / num_attention_heads, so fewer heads of the same size cannot be saved and reloaded; "
            "prune FFN neurons with intermediate_size= instead"
        )
    if layers is None:
        if num_layers is None:
            num_layers = max(1, total // 2)
        if not _is_int(num_layers):
            raise ValueError(f"num_layers={num_layers!r} is invalid: give a whole number of blocks")
        keep = select_layers(total, num_layers, strategy)
    else:
        keep = _check_layers(layers)
        if not keep or len(set(keep)) != len(keep) or any(not 0 <= i < total for i in keep) or keep != sorted(keep):
            raise ValueError(
                f"layers={list(layers)} is invalid: give distinct, increasing block indices in 0..{total - 1}"
            )

    ffn_keep: dict[int, torch.Tensor] = {}
    if intermediate_size is not None:
        width = ffn_width(teacher)
        if not _is_int(intermediate_size) or not 1 <= intermediate_size <= width:
            raise ValueError(
                f"intermediate_size={intermediate_size!r} is invalid: the teacher's FFN has {width} "
                f"neurons, choose 1..{width}"
            )
        if calibration is None:
            raise ValueError(
                "intermediate_size needs calibration: a tokenized batch of training text "
                "(tokenizer(texts, padding=True, return_tensors='pt')) to score the FFN neurons on"
            )
        scores = ffn_importance(teacher, calibration)
        # Kept neurons stay in their original order, so keeping all of them reproduces the teacher exactly.
        ffn_keep = {i: scores[i].topk(intermediate_size).indices.sort().values for i in keep}

    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(keep)
    config.distilled_from_layers = keep
    if ffn_keep:
        config.pruned_from_intermediate_size = ffn_width(teacher)
        setattr(config, layout.width_attr, intermediate_size)
    # One entry per block (attention kind, rotary on/off): each copied block keeps its own.
    for name in layout.per_layer:
        values = getattr(config, name, None)
        if isinstance(values, (list, tuple)) and len(values) == total:
            setattr(config, name, [values[i] for i in keep])
    for name, value in (config_overrides or {}).items():
        if not hasattr(config, name):
            raise ValueError(f"config_overrides: {type(config).__name__} has no attribute {name!r}")
        setattr(config, name, value)
    student = type(teacher)(config)

    new_index = {old: new for new, old in enumerate(keep)}
    block_key = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.(.*)$")
    state = {}
    for key, value in teacher.state_dict().items():
        match = block_key.match(key)
        if match is None:
            state[key] = value
        elif int(match.group(1)) in new_index:
            state[f"{prefix}.{new_index[int(match.group(1))]}.{match.group(2)}"] = value
    for old, kept_neurons in ffn_keep.items():
        _slice_ffn(state, f"{prefix}.{new_index[old]}", layout, config.pruned_from_intermediate_size, kept_neurons)
    missing, unexpected = student.load_state_dict(state, strict=False)
    # Tied weights (e.g. GPT-2's lm_head) may be absent from the teacher's state dict; anything else is a bug.
    tied = set(getattr(student, "_tied_weights_keys", None) or [])
    real_missing = [k for k in missing if k not in tied and not k.endswith("lm_head.weight")]
    if real_missing or unexpected:
        raise RuntimeError(f"could not copy the teacher's weights: missing {real_missing}, unexpected {unexpected}")
    if hasattr(student, "tie_weights"):
        student.tie_weights()
    student.to(dtype=next(teacher.parameters()).dtype)
    if getattr(teacher, "generation_config", None) is not None:
        student.generation_config = copy.deepcopy(teacher.generation_config)
    return student


def compression_facts(config, corpus: str = "the training text") -> dict[str, str]:
    """What was done to the student beyond dropping blocks, in words for the report and card (empty when nothing).

    Args:
        config: the student's config (`vocabulary_kept_ids`/`trimmed_from_vocab_size` from `trim_vocabulary`,
            `pruned_from_intermediate_size` from width pruning).
        corpus: what the vocabulary was trimmed to, in words.
    """
    facts: dict[str, str] = {}
    if kept_ids_of(config) is not None:
        before = config.trimmed_from_vocab_size
        facts["vocabulary"] = f"{before:,} → {config.vocab_size:,} tokens, trimmed to {corpus}"
    width = getattr(config, "pruned_from_intermediate_size", None)
    if width is not None:
        now = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None)
        facts["width"] = (
            f"FFN {width:,} → {now:,} neurons per block, the most active kept (activation importance, Minitron)"
        )
    return facts


def calibration_batch(
    texts, tokenizer, max_length: int, num_texts: int = 256, seed: int = 0
) -> dict[str, torch.Tensor]:
    """A tokenized batch of `num_texts` texts drawn with `seed` from `texts`, for scoring FFN neurons."""
    texts = list(texts)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(texts), generator=generator)[:num_texts].tolist()
    chosen = [texts[i] for i in order if isinstance(texts[i], str) and texts[i].strip()]
    if not chosen:
        raise ValueError("width pruning needs training text to score the FFN neurons on; the text column is empty")
    return tokenizer(chosen, truncation=True, max_length=max_length, padding=True, return_tensors="pt")


def check_compression_arguments(args) -> None:
    """Refuse compression settings `hf-distill run` cannot honour, before any work (fields of PipelineArguments)."""
    trim = getattr(args, "trim_vocabulary", False)
    width = getattr(args, "student_intermediate_size", None)
    heads = getattr(args, "student_num_attention_heads", None)
    if (trim or width is not None or heads is not None) and getattr(args, "student", None):
        raise ValueError(
            "trim_vocabulary, student_intermediate_size and student_num_attention_heads apply to a "
            "student built from the teacher: leave `student` unset, or drop them"
        )
    if heads is not None:
        raise ValueError(
            "student_num_attention_heads is not supported with transformers 5 (BERT and GPT-2 derive "
            "the head size from hidden_size / num_attention_heads); use student_intermediate_size"
        )
    if width is not None and (not _is_int(width) or width < 1):
        raise ValueError(f"student_intermediate_size={width!r} is invalid: give a number of FFN neurons >= 1")
