"""ONNX and int8 export of a student, verified against PyTorch, laid out as the Hub expects.

Layout (what transformers.js and optimum load): ``onnx/model.onnx`` (float32) and ``onnx/model_quantized.onnx``
(dynamic int8) beside the safetensors weights, with the names optimum gives them:

- encoders (sequence classification, masked LM): inputs ``input_ids``, ``attention_mask`` (and ``token_type_ids``
  when the model has token types), output ``logits``;
- decoders (causal LM): inputs ``input_ids``, ``attention_mask``, ``position_ids``, ``past_key_values.N.key`` /
  ``past_key_values.N.value`` (batch, heads, past, head_dim), outputs ``logits`` and ``present.N.key`` /
  ``present.N.value``. The first step passes a past of length 0, so one file serves prompt and generation.

The exporter is torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``, needs ``onnxscript``):
``optimum-onnx`` 0.1.0 pins transformers < 4.58 and cannot be installed beside transformers 5.

Encoders are then optimized for onnxruntime (``optimize=True``, the default): onnxscript's ``optimize_for_ort``
(the rewriter made for the dynamo exporter's graphs; onnxruntime's older ``transformers.optimizer`` finds no attention
in them) fuses each layer's attention into one ``com.microsoft`` ``Attention`` node, residual + LayerNorm into
``SkipLayerNormalization`` and bias + GELU into ``BiasGelu``. The decomposed attention it replaces (transposes, a
NaN-guarded softmax) was most of the int8 model's run time, and a fused ``Attention`` can itself be quantized
(``QAttention``). The fused files need onnxruntime (its contrib operators); ``optimize=False`` (``--no-optimize``)
keeps standard ONNX operators only, for other runtimes. Decoders keep the plain graph: their cache inputs do not fit
the fused attention.

Quantization is ``onnxruntime.quantization.quantize_dynamic`` with int8 weights (``QInt8``, per output channel) on
``MatMul``, ``Attention`` and ``Gather`` nodes: ``MatMul`` and ``Attention`` hold every dense layer (the compute),
``Gather`` the embedding tables (most of a small model's bytes). Activations are quantised at run time (uint8), so no
calibration data are needed. ``reduce_range`` stays off: it exists for CPUs without VNNI, where 8-bit products can
saturate (onnxruntime still uses it for ``QAttention`` weights).

Every export is verified on real texts before it is kept: the float32 file must match PyTorch within
``atol`` (max |logit difference|) and agree on every top-1 prediction, or `OnnxExportError` is raised and nothing is
written; the int8 file's max difference and top-1 agreement are measured and recorded in
``onnx/export_report.json``.

That report also ties each file to its check and to the weights it came from: the size and SHA-256 of every file
the export wrote (``file_digests``) and of the safetensors weights it was exported from (``source_weights``).
`verify_export` compares them with the folder before evaluate, demo and push use or publish the files, so a file
truncated or altered after its check, or left over after the weights were re-saved, is refused, not measured or
uploaded as the student's variant.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.atomic import raise_if_disk_full
from ..core.tasks import CAUSAL_LM, Task, detect_task
from ..errors import HfDistillError

ONNX_DIR = "onnx"
FP32_FILE = "model.onnx"
INT8_FILE = "model_quantized.onnx"
REPORT_FILE = "export_report.json"
ORT_CONFIG_FILE = "ort_config.json"
DEFAULT_ATOL = 1e-4
# Operators whose weights dynamic quantization turns to int8, and why: see the module docstring.
QUANTIZED_OPERATORS = ("MatMul", "Attention", "Gather")
QUANTIZATIONS = ("int8",)
OPSET = 18
# Report / card names of the exported variants, keyed as `load_onnx_variants` returns them.
VARIANT_NAMES = {"onnx": "Student ONNX fp32", "onnx-int8": "Student ONNX int8"}


class OnnxExportError(HfDistillError, RuntimeError):
    """An export that failed, disagreed with PyTorch, or a missing / corrupted ONNX file."""


def _require_onnx() -> None:
    missing = []
    for module in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise OnnxExportError(
            f"ONNX export needs {', '.join(missing)}: install them with `pip install 'hf-distill[onnx]'`"
        )


@dataclass
class VariantCheck:
    """How an ONNX file compares with the PyTorch model it came from, on the verification texts."""

    file: str
    max_abs_logit_diff: float
    top1_agreement: float
    positions: int
    disk_bytes: int


@dataclass
class ExportResult:
    """What `export_onnx` wrote and measured."""

    output_dir: str
    task: str
    files: list[str]
    checks: list[VariantCheck]
    atol: float
    opset: int
    quantization: dict[str, Any] | None = None
    optimization: dict[str, Any] | None = None
    texts: int = 0
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    # {"onnx/model.onnx": {"bytes": ..., "sha256": ...}, ...}: every file the export wrote (external data included),
    # and the weights it was exported from ({"model.safetensors": {...}}); checked by `verify_export`.
    file_digests: dict[str, dict[str, Any]] = field(default_factory=dict)
    source_weights: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with paths relative to the model folder."""
        return asdict(self)


# -- the traced modules ----------------------------------------------------------------------------------------------


class _EncoderForExport(nn.Module):
    """Positional inputs in optimum's order, `logits` out (token_type_ids only when the model uses them)."""

    def __init__(self, model: nn.Module, with_token_types: bool) -> None:
        super().__init__()
        self.model = model
        self.with_token_types = with_token_types

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.with_token_types:
            kwargs["token_type_ids"] = token_type_ids
        return self.model(**kwargs).logits


class _DecoderForExport(nn.Module):
    """A decoder step with the key/value cache flattened into named tensors, as optimum lays it out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.num_layers = model.config.num_hidden_layers

    def forward(self, input_ids, attention_mask, position_ids, *past):
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        for i in range(self.num_layers):
            cache.update(past[2 * i], past[2 * i + 1], i)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
        )
        present = []
        for layer in out.past_key_values.layers:
            present += [layer.keys, layer.values]
        return (out.logits, *present)


def _decoder_dims(config: Any) -> tuple[int, int, int]:
    """(layers, key/value heads, head size) of a decoder's cache: grouped-query attention (Llama, Mistral, Qwen...)
    caches `num_key_value_heads` heads, and some families set `head_dim` apart from hidden_size / heads."""
    layers = config.num_hidden_layers
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return layers, kv_heads, head_dim


def _uses_token_types(model: nn.Module) -> bool:
    return getattr(model.config, "type_vocab_size", 0) > 1


def io_names(model: nn.Module, task: Task) -> tuple[list[str], list[str]]:
    """The ONNX input and output names of a model, as optimum names them.

    Args:
        model: the PyTorch model.
        task: its task (`hf_distill.tasks.detect_task`); generating tasks get the key/value cache inputs.

    Returns:
        ``(input_names, output_names)``.
    """
    if task.generates:
        layers, _, _ = _decoder_dims(model.config)
        past = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
        present = [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
        return ["input_ids", "attention_mask", "position_ids", *past], ["logits", *present]
    inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if _uses_token_types(model) else [])
    return inputs, ["logits"]


def _export_fp32(model: nn.Module, task: Task, path: Path, opset: int) -> None:
    inputs, outputs = io_names(model, task)
    batch, seq = 2, 8
    ids = torch.randint(0, min(model.config.vocab_size, 100), (batch, seq))
    if task.generates:
        layers, heads, head_dim = _decoder_dims(model.config)
        past_len = 3
        mask = torch.ones(batch, past_len + seq, dtype=torch.long)
        positions = torch.arange(past_len, past_len + seq).expand(batch, seq)
        past = [torch.randn(batch, heads, past_len, head_dim) for _ in range(2 * layers)]
        module: nn.Module = _DecoderForExport(model)
        args: tuple = (ids, mask, positions, *past)
        dims = (
            {0: "batch", 1: "sequence"},
            {0: "batch", 1: "total_sequence"},
            {0: "batch", 1: "sequence"},
            tuple({0: "batch", 2: "past_sequence"} for _ in past),
        )
    else:
        module = _EncoderForExport(model, _uses_token_types(model))
        args = (ids, torch.ones(batch, seq, dtype=torch.long))
        dims = ({0: "batch", 1: "sequence"}, {0: "batch", 1: "sequence"})
        if _uses_token_types(model):
            args += (torch.zeros(batch, seq, dtype=torch.long),)
            dims += ({0: "batch", 1: "sequence"},)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            args,
            dynamic_shapes=dims,
            input_names=inputs,
            output_names=outputs,
            dynamo=True,
            opset_version=opset,
            verbose=False,
        )
    program.save(str(path))


def optimize_for_onnxruntime(path: str | Path) -> dict[str, Any]:
    """Fuse an exported encoder's attention, residual LayerNorms and GELUs into onnxruntime's operators, in place.

    Args:
        path: a float32 ONNX file written by the dynamo exporter.

    Returns:
        The settings and fusion counts, as written to ``ort_config.json``.
    """
    import onnx
    from onnxscript import ir
    from onnxscript import optimizer as onnxscript_optimizer
    from onnxscript.rewriter import ort_fusions

    model = ir.load(str(path))
    model, counts = ort_fusions.optimize_for_ort(model)
    # A fused Attention's Q/K/V weight is a Concat of the three projections: fold it into one initializer, or the
    # quantizer sees an activation and leaves the projections in float32.
    onnxscript_optimizer.fold_constants(model, input_size_limit=1 << 26, output_size_limit=1 << 26)
    proto = ir.serde.serialize_model(model)
    masks = _attention_masks_as_index(proto)
    model = ir.serde.deserialize_model(proto)
    onnxscript_optimizer.remove_unused_nodes(model)  # the additive-bias subgraph the mask index replaced
    ir.save(model, str(path))
    onnx.checker.check_model(str(path))
    return {
        "tool": "onnxscript.rewriter.ort_fusions.optimize_for_ort",
        "fusions": {name: count for name, count in counts.items() if count},
        "attention_mask_index": masks,
    }


def _attention_masks_as_index(model: Any) -> int:
    """Give each fused encoder ``Attention`` the padding mask as ``mask_index`` instead of an additive bias.

    onnxscript's fusion passes the padding mask as ``attention_bias`` (input 5), which onnxruntime's quantizer does not
    carry over to ``QAttention``: the int8 model would attend to padding (SST-2 accuracy 0.83 -> 0.79 on padded
    batches). A bias whose values come from the ``attention_mask`` input alone (other inputs only through their
    shapes) is a padding mask, so the 2-D int32 ``mask_index`` (1 = attend) says the same. Also drops
    ``qkv_hidden_sizes`` when Q, K and V are equally wide (the default without it), because the quantizer skips every
    Attention that carries it. Returns how many masks were rewired.
    """
    from onnx import TensorProto, helper

    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    graph_inputs = {i.name for i in graph.input}

    def sources(name: str) -> set[str]:
        seen, stack, found = set(), [name], set()
        while stack:
            value = stack.pop()
            if value in seen or not value:
                continue
            seen.add(value)
            if value in graph_inputs:
                found.add(value)
            elif value in producer and producer[value].op_type not in ("Shape", "Size"):
                # Shape/Size read only a tensor's dimensions (e.g. the sequence length from input_ids), no values.
                stack.extend(producer[value].input)
        return found

    index = "attention_mask_index"
    changed = 0
    for node in graph.node:
        if node.op_type != "Attention" or node.domain != "com.microsoft":
            continue
        for attr in list(node.attribute):
            if attr.name == "qkv_hidden_sizes" and len(set(attr.ints)) == 1:
                node.attribute.remove(attr)
        inputs = list(node.input) + [""] * (6 - len(node.input))
        if inputs[3] or inputs[4] or not inputs[5] or sources(inputs[5]) != {"attention_mask"}:
            continue
        inputs[3], inputs[5] = index, ""
        while inputs and not inputs[-1]:
            inputs.pop()
        del node.input[:]
        node.input.extend(inputs)
        changed += 1
    if changed:
        graph.node.insert(0, helper.make_node("Cast", ["attention_mask"], [index], to=TensorProto.INT32))
    return changed


def quantize_int8(fp32_path: str | Path, int8_path: str | Path) -> dict[str, Any]:
    """Dynamic int8 quantization of an exported model (weights int8 per channel; activations at run time).

    Args:
        fp32_path: the float32 ONNX file.
        int8_path: where to write the quantized file.

    Returns:
        The settings used, as written to ``ort_config.json``.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    settings = {
        "approach": "dynamic",
        "weight_type": "QInt8",
        "activations": "QUInt8, quantised at run time",
        "per_channel": True,
        "reduce_range": False,
        "operators_to_quantize": list(QUANTIZED_OPERATORS),
    }
    quantize_dynamic(
        str(fp32_path),
        str(int8_path),
        op_types_to_quantize=list(QUANTIZED_OPERATORS),
        per_channel=True,
        reduce_range=False,
        weight_type=QuantType.QInt8,
    )
    return settings


# -- running an exported model ---------------------------------------------------------------------------------------


class OnnxModel:
    """An exported model run by onnxruntime, called like the PyTorch model on tokenized batches.

    Args:
        path: the ``.onnx`` file.
        config: the PyTorch model's config (for the task, label names and decoder sizes).
        threads: onnxruntime intra-op threads (match the PyTorch thread count when comparing speed).
    """

    def __init__(self, path: str | Path, config: Any, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.config = config
        if not self.path.is_file():
            raise OnnxExportError(f"{self.path} does not exist: export it with `hf-distill export MODEL_DIR --onnx`")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for unreadable graphs
            raise OnnxExportError(
                f"{self.path} is not a readable ONNX model ({type(err).__name__}): it is corrupted or truncated; "
                "export it again with `hf-distill export MODEL_DIR --onnx`"
            ) from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.task = detect_task(config)
        # (total, without embeddings) of the PyTorch model this was exported from: the same weights, stored
        # differently; set by whoever loaded both (see `load_onnx_variants`).
        self.parameter_counts: tuple[int, int] | None = None

    def to(self, device: Any) -> OnnxModel:
        """onnxruntime runs on the CPU here; kept so code written for PyTorch models can call it."""
        return self

    def eval(self) -> OnnxModel:
        """An ONNX graph has no training mode; kept so code written for PyTorch models can call it."""
        return self

    @property
    def disk_bytes(self) -> int:
        """Bytes of the ONNX file (and of external data beside it, if any)."""
        return self.path.stat().st_size + sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + ".data"))

    @property
    def onnxruntime_operators(self) -> list[str]:
        """The ONNX Runtime-only (``com.microsoft``) operators of the graph, sorted; [] for standard ONNX only."""
        import onnx

        graph = onnx.load(str(self.path), load_external_data=False).graph
        return sorted({n.op_type for n in graph.node if n.domain == "com.microsoft"})

    def _feed(self, input_ids: np.ndarray, attention_mask: np.ndarray, **extra: np.ndarray) -> dict[str, np.ndarray]:
        feed = {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)}
        if "token_type_ids" in self.input_names:
            feed["token_type_ids"] = extra.get("token_type_ids", np.zeros_like(input_ids)).astype(np.int64)
        if self.task.generates:
            layers, heads, head_dim = _decoder_dims(self.config)
            past = extra.get("past")
            if past is None:
                empty = np.zeros((input_ids.shape[0], heads, 0, head_dim), np.float32)
                past = [empty] * (2 * layers)
            positions = extra.get("position_ids")
            if positions is None:
                # Left or right padding: positions count real tokens, as GPT-2's generate() does.
                positions = np.clip(np.cumsum(attention_mask, axis=1) - 1, 0, None)[:, -input_ids.shape[1] :]
            feed["position_ids"] = positions.astype(np.int64)
            for name, value in zip(self.input_names[3:], past):
                feed[name] = value
        return feed

    def logits(self, input_ids: Any, attention_mask: Any, **extra: Any) -> np.ndarray:
        """Logits for one tokenized batch (numpy arrays or torch tensors)."""
        arrays = {
            k: (v.cpu().numpy() if isinstance(v, torch.Tensor) else v)
            for k, v in extra.items()
            if k in ("token_type_ids", "position_ids", "past")
        }
        ids = input_ids.cpu().numpy() if isinstance(input_ids, torch.Tensor) else input_ids
        mask = attention_mask.cpu().numpy() if isinstance(attention_mask, torch.Tensor) else attention_mask
        return self.session.run(["logits"], self._feed(ids, mask, **arrays))[0]

    def forward(self, input_ids=None, attention_mask=None, **extra):
        """Run like a transformers model: returns an object with a torch `.logits`."""
        from transformers.modeling_outputs import ModelOutput

        return ModelOutput(logits=torch.from_numpy(self.logits(input_ids, attention_mask, **extra)))

    __call__ = forward

    def generate_greedy(self, input_ids: Sequence[int], max_new_tokens: int) -> list[int]:
        """Greedy continuation of one prompt, reusing the key/value cache between steps (causal LM only)."""
        if not self.task.generates:
            raise OnnxExportError("generation needs a causal-LM export")
        tokens = list(input_ids)
        step = np.array([tokens], dtype=np.int64)
        past = None
        outputs = [o.name for o in self.session.get_outputs()]
        for _ in range(max_new_tokens):
            total = len(tokens)
            mask = np.ones((1, total), np.int64)
            positions = np.arange(total - step.shape[1], total)[None]
            result = self.session.run(outputs, self._feed(step, mask, past=past, position_ids=positions))
            nxt = int(result[0][0, -1].argmax())
            tokens.append(nxt)
            past = result[1:]
            step = np.array([[nxt]], dtype=np.int64)
        return tokens


# -- verification ----------------------------------------------------------------------------------------------------


def _valid_rows(task: Task, logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Logit rows to compare: every example (classification), every real token (token tasks)."""
    if not task.per_token:
        return logits
    return logits[mask.astype(bool)]


def compare_with_pytorch(
    onnx_model: OnnxModel,
    model: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int = 128,
    batch_size: int = 16,
) -> VariantCheck:
    """Max |logit difference| and top-1 agreement of an ONNX model with the PyTorch model, on texts.

    Args:
        onnx_model: the exported model.
        model: the PyTorch model it was exported from.
        tokenizer: the model's tokenizer.
        texts: verification texts (e.g. the validation set).
        max_length: truncation length.
        batch_size: texts per batch.

    Returns:
        The comparison; classification compares one row per text, token tasks every real token position.
    """
    task = onnx_model.task
    worst, agree, total = 0.0, 0, 0
    model.eval()
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        enc = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        with torch.no_grad():
            ref = model(**enc).logits.float().numpy()
        got = onnx_model.logits(**enc)
        mask = enc["attention_mask"].numpy()
        ref_rows, got_rows = _valid_rows(task, ref, mask), _valid_rows(task, got, mask)
        worst = max(worst, float(np.abs(ref_rows - got_rows).max()))
        agree += int((ref_rows.argmax(-1) == got_rows.argmax(-1)).sum())
        total += int(ref_rows.shape[0])
    if total == 0:
        raise OnnxExportError("no verification positions: pass at least one non-empty text")
    return VariantCheck(
        file=f"{ONNX_DIR}/{onnx_model.path.name}",
        max_abs_logit_diff=worst,
        top1_agreement=agree / total,
        positions=total,
        disk_bytes=onnx_model.disk_bytes,
    )


# -- the entry point -------------------------------------------------------------------------------------------------


def load_for_export(model_dir: str | Path) -> tuple[nn.Module, Any]:
    """Load a saved student (safetensors only, no remote code) and its tokenizer for export."""
    from ..core.loading import load_model

    if not (Path(model_dir) / "config.json").is_file():
        raise OnnxExportError(f"{model_dir} has no config.json: pass a folder written by save_pretrained")
    loaded = load_model(model_dir, role="student")
    return loaded.model, loaded.tokenizer


def export_onnx(
    model_dir: str | Path,
    output_dir: str | Path | None = None,
    *,
    quantize: str | None = "int8",
    texts: Sequence[str] | None = None,
    atol: float = DEFAULT_ATOL,
    max_length: int = 128,
    opset: int = OPSET,
    overwrite: bool = False,
    optimize: bool = True,
) -> ExportResult:
    """Export a saved student to ONNX (and int8), verify it against PyTorch, and write ``onnx/`` beside it.

    Args:
        model_dir: a folder written by `save_pretrained` (a BERT-family classifier or masked LM, or a GPT-2-family
            causal LM) with its tokenizer.
        output_dir: the model folder that receives ``onnx/`` (default: `model_dir`, the Hub layout).
        quantize: ``"int8"`` for dynamic int8 quantization as well, or None for float32 only.
        texts: verification texts; default: a few built-in sentences. Pass the validation texts for a real check.
        atol: the largest |logit difference| allowed between the float32 export and PyTorch.
        max_length: truncation length of the verification texts.
        opset: the ONNX opset.
        overwrite: replace an existing ``onnx/`` folder; without it an existing one is refused.
        optimize: fuse an encoder's attention, LayerNorms and GELUs into onnxruntime's operators before verifying
            and quantizing (see the module docstring); False keeps standard ONNX operators. Decoders are never fused.

    Returns:
        What was written and measured (also saved as ``onnx/export_report.json``).

    Raises:
        OnnxExportError: the ONNX packages are missing, the float32 export disagrees with PyTorch beyond `atol`, or
            ``onnx/`` exists and `overwrite` is False.
    """
    _require_onnx()
    if quantize not in (None, *QUANTIZATIONS):
        raise OnnxExportError(f"quantize={quantize!r} is not supported: use one of {QUANTIZATIONS} or None")
    model_dir = Path(model_dir)
    target = Path(output_dir or model_dir) / ONNX_DIR
    if target.exists() and not overwrite:
        raise OnnxExportError(f"{target} exists: pass overwrite=True (--overwrite) to replace it")
    # Digested before loading: the weights the export reads are the ones recorded.
    source_weights = {p.name: file_digest(p) for p in _weight_files(model_dir)}
    model, tokenizer = load_for_export(model_dir)
    task = detect_task(model)
    texts = list(texts or DEFAULT_TEXTS)
    inputs, outputs = io_names(model, task)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target, then renamed: a crash never leaves a half-written onnx/ folder.
    staging = Path(tempfile.mkdtemp(prefix=".onnx-", dir=target.parent))
    try:
        fp32 = staging / FP32_FILE
        _export_fp32(model, task, fp32, opset)
        # Verified after fusing, so the checked file is the published one.
        optimization = optimize_for_onnxruntime(fp32) if optimize and not task.generates else None
        check = compare_with_pytorch(OnnxModel(fp32, model.config), model, tokenizer, texts, max_length=max_length)
        if check.max_abs_logit_diff > atol or check.top1_agreement < 1.0:
            raise OnnxExportError(
                f"the float32 ONNX export disagrees with PyTorch: max |logit difference| "
                f"{check.max_abs_logit_diff:.3g} (allowed {atol:g}), top-1 agreement {check.top1_agreement:.2%}; "
                "nothing was written"
                + (
                    "; the graph was fused for onnxruntime: try again with --no-optimize (optimize=False)"
                    if optimization
                    else ""
                )
            )
        checks, quantization = [check], None
        files = [f"{ONNX_DIR}/{FP32_FILE}"]
        if quantize == "int8":
            quantization = quantize_int8(fp32, staging / INT8_FILE)
            int8 = OnnxModel(staging / INT8_FILE, model.config)
            checks.append(compare_with_pytorch(int8, model, tokenizer, texts, max_length=max_length))
            files += [f"{ONNX_DIR}/{INT8_FILE}"]
        if quantization or optimization:
            config = {"optimization": optimization} if optimization else {}
            config |= {"quantization": quantization} if quantization else {}
            (staging / ORT_CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
            files += [f"{ONNX_DIR}/{ORT_CONFIG_FILE}"]
        result = ExportResult(
            output_dir=str(target.parent),
            task=task.name,
            files=[*files, f"{ONNX_DIR}/{REPORT_FILE}"],
            checks=checks,
            atol=atol,
            opset=opset,
            quantization=quantization,
            optimization=optimization,
            texts=len(texts),
            input_names=inputs,
            output_names=outputs,
            source_weights=source_weights,
            # Every file in the staging folder is the export's own (external data included), the report aside.
            file_digests={f"{ONNX_DIR}/{p.name}": file_digest(p) for p in sorted(staging.iterdir()) if p.is_file()},
        )
        report = result.to_dict()
        report.pop("output_dir")  # the published file names no local path
        (staging / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.replace(target)
    except Exception as err:
        raise_if_disk_full(err, target)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def file_digest(path: str | Path) -> dict[str, Any]:
    """``{"bytes": size, "sha256": hex digest}`` of a file, as ``onnx/export_report.json`` records it."""
    from ..core.data import file_sha256

    return {"bytes": Path(path).stat().st_size, "sha256": file_sha256(path)}


# The files a saved model's weights load from: one file, the shards of a large one, or a PEFT adapter. Other
# safetensors beside them (e.g. the training projections) are not part of what the ONNX files compute.
WEIGHT_PATTERNS = ("model.safetensors", "model-*-of-*.safetensors", "adapter_model.safetensors")


def _weight_files(model_dir: Path) -> list[Path]:
    """The safetensors weights of a saved model (`WEIGHT_PATTERNS`), sorted."""
    return sorted({p for pattern in WEIGHT_PATTERNS for p in Path(model_dir).glob(pattern) if p.is_file()})


def _is_onnx_payload(name: str) -> bool:
    """An ONNX graph or its external data: what a runtime loads and `push` uploads."""
    return name.endswith((".onnx", ".onnx.data", ".onnx_data"))


def _export_command(model_dir: Path, report: dict[str, Any] | None) -> str:
    """The `hf-distill export` command that writes the same kind of files again (int8 or not, fused or not)."""
    flags = " --overwrite"
    if report is not None and report.get("quantization") is None:
        flags += " --quantize none"
    # Decoders are never fused, so only an encoder's unfused export asks for --no-optimize.
    if report is not None and report.get("optimization") is None and report.get("task") != CAUSAL_LM.name:
        flags += " --no-optimize"
    return f"`hf-distill export {model_dir}{flags}`"


def verify_export(model_dir: str | Path) -> dict[str, Any] | None:
    """Check the ONNX files beside a model against the export that checked them and the weights they came from.

    Every ONNX file (and external data file) in ``onnx/`` must be one the export wrote, with the size and SHA-256
    recorded in ``onnx/export_report.json``, and the folder's safetensors weights must be those it was exported from.
    Evaluate, demo and push call this before they measure, show or upload an export.

    Args:
        model_dir: the model folder holding ``onnx/`` beside its weights.

    Returns:
        The export report, or None when the folder holds no ONNX export.

    Raises:
        OnnxExportError: one line naming the file that does not match (missing, truncated, altered, unchecked, or
            exported from other weights) and the `hf-distill export` command that writes it again.
    """
    model_dir = Path(model_dir)
    folder = model_dir / ONNX_DIR
    report_path = folder / REPORT_FILE
    payload = sorted(p for p in folder.iterdir() if _is_onnx_payload(p.name)) if folder.is_dir() else []
    if not report_path.is_file():
        if payload:
            raise OnnxExportError(
                f"{payload[0]} has no export check ({report_path} is missing): "
                f"export it again with {_export_command(model_dir, None)}"
            )
        return None
    try:
        report = json.loads(report_path.read_text())
        digests, weights = dict(report["file_digests"]), dict(report["source_weights"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise OnnxExportError(
            f"{report_path} is unreadable or records no checksums of the files (written before hf-distill recorded "
            f"them): export again with {_export_command(model_dir, None)}"
        ) from None
    fix = f"export again with {_export_command(model_dir, report)}"
    for path in payload:
        if f"{ONNX_DIR}/{path.name}" not in digests:
            raise OnnxExportError(
                f"{path} is not a file the export checked ({report_path} does not list it): remove it, or {fix}"
            )
    for rel, expected in digests.items():
        path = model_dir / rel
        if not path.is_file():
            raise OnnxExportError(f"{path} does not exist (the export wrote it): {fix}")
        size = path.stat().st_size
        if size != expected.get("bytes"):
            raise OnnxExportError(
                f"{path} is {size} bytes, but the export checked {expected.get('bytes')} bytes "
                f"(truncated or altered since): {fix}"
            )
        if file_digest(path)["sha256"] != expected.get("sha256"):
            raise OnnxExportError(
                f"{path} is not the file the export checked (its SHA-256 differs: altered since): {fix}"
            )
    current = {p.name: p for p in _weight_files(model_dir)}
    for name in sorted(set(weights) | set(current)):
        if name not in current or name not in weights or file_digest(current[name]) != weights[name]:
            raise OnnxExportError(
                f"{folder} was exported from other weights: {model_dir / name} "
                f"{'is missing' if name not in current else 'changed'} since the export (the ONNX files are "
                f"stale): {fix}"
            )
    return report


def load_onnx_variants(model_dir: str | Path, config: Any, threads: int | None = None) -> dict[str, OnnxModel]:
    """The exported variants beside a model: ``{"onnx": ..., "onnx-int8": ...}`` for the files that exist.

    The files are first checked against their export (`verify_export`).

    Args:
        model_dir: the PyTorch model's folder (the exports are in its ``onnx/`` subfolder).
        config: the model's config (the task and input names `OnnxModel` needs).
        threads: onnxruntime's intra-op thread count; None: its default.

    Returns:
        Variant name -> `OnnxModel`; empty when the folder has no exports.

    Raises:
        OnnxExportError: a file does not match its export check or the weights, is missing, or is unreadable.
    """
    folder = Path(model_dir) / ONNX_DIR
    report = verify_export(model_dir)
    if report is None:
        return {}
    listed = report["files"]
    variants = {}
    for name, file in (("onnx", FP32_FILE), ("onnx-int8", INT8_FILE)):
        if f"{ONNX_DIR}/{file}" in listed:
            variants[name] = OnnxModel(folder / file, config, threads=threads)
    return variants


def recommended_onnx_file(model_dir: str | Path, report: Any = None) -> str | None:
    """The export to run beside the student (``onnx/model_quantized.onnx`` style path), or None without exports.

    With a report that measured the exports, the card's pick (`hf_distill.core.report.recommended_variant`); when it
    recommends none (every export scores worse than the PyTorch student), the float32 file, the closest to it.
    Without such a report, the int8 file when there is one (the usual pick), else the float32 one.

    Args:
        model_dir: the student's folder.
        report: the student's `DistillationReport`, or None.
    """
    folder = Path(model_dir) / ONNX_DIR
    present = [f"{ONNX_DIR}/{name}" for name in (INT8_FILE, FP32_FILE) if (folder / name).is_file()]
    if not present:
        return None
    if report is not None and getattr(report, "variants", None):
        from ..core.report import recommended_variant

        pick = recommended_variant(report)
        if pick is not None and pick.figures.name_or_path in present:
            return pick.figures.name_or_path
        return f"{ONNX_DIR}/{FP32_FILE}" if f"{ONNX_DIR}/{FP32_FILE}" in present else present[0]
    return present[0]


def export_checks(model_dir: str | Path) -> dict[str, VariantCheck]:
    """The verification figures `export_onnx` recorded, by file (``onnx/model_quantized.onnx``)."""
    report = Path(model_dir) / ONNX_DIR / REPORT_FILE
    if not report.is_file():
        return {}
    return {c["file"]: VariantCheck(**c) for c in json.loads(report.read_text())["checks"]}


DEFAULT_TEXTS = [
    "the movie was wonderful and the actors were great",
    "a dull, boring film with a terrible plot",
    "once upon a time there lived a king and a queen",
    "it was slow, clumsy and far too long",
]
