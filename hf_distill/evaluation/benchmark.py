"""Size and speed of a teacher and its student, measured side by side in one process.

Both models see the same texts; timed runs alternate teacher and student (and swap which goes
first every run) so that drift of a shared machine lands on both equally. The thread count is
fixed for the whole measurement and recorded.
"""

from __future__ import annotations

import contextlib
import inspect
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.loading import max_positions


@dataclass
class BenchmarkSettings:
    """How long and how hard to measure.

    `settle_runs`: untimed calls of a model right before each timed one that follows another model's call (see
    `interleaved_runs`).
    """

    batch_size: int = 8
    warmup: int = 3
    settle_runs: int = 1
    latency_runs: int = 20
    throughput_runs: int = 5
    generation_tokens: int = 32
    generation_runs: int = 3
    prompt_tokens: int = 8
    max_length: int = 128
    threads: int | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in (
            "batch_size",
            "latency_runs",
            "throughput_runs",
            "generation_tokens",
            "generation_runs",
            "prompt_tokens",
            "max_length",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.warmup < 0 or self.settle_runs < 0:
            raise ValueError("warmup and settle_runs must be >= 0")


@dataclass
class SpeedFigures:
    """Timing results for one model."""

    latency_ms_p50: float
    latency_ms_p95: float
    throughput_per_s: float
    generation_tokens_per_s: float | None = None


@dataclass
class PairBenchmark:
    """Size and speed of both models, plus the conditions they were measured under."""

    teacher_parameters: tuple[int, int]
    student_parameters: tuple[int, int]
    teacher_disk_bytes: int
    student_disk_bytes: int
    teacher_speed: SpeedFigures
    student_speed: SpeedFigures
    threads: int
    settings: dict[str, Any]
    # Further models timed in the same interleaved runs (e.g. the student's ONNX exports), in the order given.
    extra_speeds: list[SpeedFigures] = field(default_factory=list)
    extra_disk_bytes: list[int] = field(default_factory=list)


# -- size --------------------------------------------------------------------------------------------
def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, without embeddings): each tensor counted once, so tied input/output embeddings count once.

    "Without embeddings" leaves out every `nn.Embedding` (token, position, type) and the output
    embedding matrix (the LM head) when the model has one. An exported model (`hf_distill.export.OnnxModel`) is
    not an `nn.Module`: it reports the counts of the PyTorch model it was exported from (same weights, stored
    differently).

    Args:
        model: a PyTorch model, or an exported one.
    """
    if not isinstance(model, nn.Module):
        return model.parameter_counts
    unique = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in unique.values())
    embedding_ids: set[int] = set()
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            embedding_ids.update(id(p) for p in module.parameters())
    get_out = getattr(model, "get_output_embeddings", None)
    out = get_out() if callable(get_out) else None
    if out is not None:
        # only the weight: an LM head's bias is a per-token parameter too but belongs to no embedding lookup
        embedding_ids.add(id(out.weight))
    embeddings = sum(unique[i].numel() for i in embedding_ids if i in unique)
    return total, total - embeddings


def disk_size_bytes(model: nn.Module) -> int:
    """Bytes of the safetensors files `save_pretrained` writes for the model as loaded (same dtype for both models);
    for an exported model, the bytes of its file.

    Args:
        model: a PyTorch model (saved to a temporary folder, then measured), or an exported one.

    Raises:
        RuntimeError: `save_pretrained` wrote no safetensors file.
    """
    if not isinstance(model, nn.Module):
        return model.disk_bytes
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a throw-away save needs no progress bar
    with tempfile.TemporaryDirectory(prefix="hf-distill-size-") as tmp:
        try:
            model.save_pretrained(tmp)
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        files = list(Path(tmp).glob("*.safetensors"))
        if not files:
            raise RuntimeError(f"save_pretrained wrote no .safetensors file for {type(model).__name__}")
        return sum(f.stat().st_size for f in files)


# -- timing maths --------------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """q-th percentile (0-100) with linear interpolation, as numpy's default."""
    if len(values) == 0:
        raise ValueError("percentile of no values")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def interleaved_timings(
    teacher_fn: Callable[[int], Any], student_fn: Callable[[int], Any], runs: int, warmup: int = 0, device: str = "cpu"
) -> tuple[list[float], list[float], list[Any], list[Any]]:
    """Run teacher/student alternately (swapping order each run); return seconds and results per run.

    Each function receives the run index so both get the same input for that run.

    Args:
        teacher_fn: runs the teacher on the input of a run index.
        student_fn: runs the student on the input of a run index.
        runs: timed runs of each.
        warmup: untimed runs of each first.
        device: synchronised around each timed call when it is a CUDA device.

    Returns:
        (teacher seconds, student seconds, teacher results, student results), one entry per timed run.
    """
    (sec_t, sec_s), (res_t, res_s) = interleaved_runs((teacher_fn, student_fn), runs, warmup, device)
    return sec_t, sec_s, res_t, res_s


def interleaved_runs(
    fns: Sequence[Callable[[int], Any]], runs: int, warmup: int = 0, device: str = "cpu", settle: int = 0
) -> tuple[list[list[float]], list[list[Any]]]:
    """Run several models round-robin, rotating which goes first each run, so machine drift lands on all equally.

    Args:
        fns: one callable per model; each receives the run index so all get the same input for that run.
        runs: timed runs per callable.
        warmup: untimed runs per callable first.
        device: synchronised around each timed call when it is a CUDA device.
        settle: untimed calls (same input) right before each timed call, when another callable ran last. The first
            call after a switch pays for the previous model's runtime: PyTorch's OpenMP workers and onnxruntime's
            pool both spin-wait after a call, so on a machine with few cores the next runtime starts sharing them,
            with caches the other evicted. A deployed model runs alone; `settle` times that steady state.

    Returns:
        ``(seconds, results)``: per callable, the seconds and the return value of each timed run.
    """
    for i in range(warmup):
        for fn in fns:
            fn(i)
    seconds: list[list[float]] = [[] for _ in fns]
    results: list[list[Any]] = [[] for _ in fns]
    n = len(fns)
    last = None
    for i in range(runs):
        for which in [(i + k) % n for k in range(n)] if n > 2 else ((0, 1) if i % 2 == 0 else (1, 0)):
            for _ in range(settle if which != last else 0):
                fns[which](i)
            last = which
            _sync(device)
            start = time.perf_counter()
            out = fns[which](i)
            _sync(device)
            seconds[which].append(time.perf_counter() - start)
            results[which].append(out)
    return seconds, results


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@contextlib.contextmanager
def fixed_threads(threads: int | None) -> Iterator[int]:
    """Pin torch's intra-op thread count for the block (the current count if None); yield it."""
    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ValueError("threads must be >= 1")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


# -- inputs -------------------------------------------------------------------------------------------
def forward_kwargs(model: nn.Module, encoding: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The subset of a tokenizer's output that the model's forward accepts (e.g. drops token_type_ids)."""
    params = inspect.signature(model.forward).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        accepted = {"input_ids", "attention_mask", "token_type_ids"}
    else:
        accepted = set(params)
    return {k: v for k, v in encoding.items() if k in accepted}


def max_input_length(model: nn.Module, tokenizer: Any = None) -> int | None:
    """The longest input the model and its tokenizer both accept: the smaller of the model's position limit
    (`hf_distill.core.loading.max_positions`) and the tokenizer's ``model_max_length`` when that is a real
    limit (not transformers' "no limit" placeholder); None when neither says.

    Args:
        model: the model, or an exported `OnnxModel` (its config is read).
        tokenizer: its tokenizer; None for the model's limit alone.
    """
    limits = [n for n in (max_positions(model),) if n is not None]
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
        limits.append(tok_max)
    return min(limits) if limits else None


def _encode(tokenizer, model, texts: Sequence[str], max_length: int, device: str) -> dict[str, torch.Tensor]:
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {k: v.to(device) for k, v in forward_kwargs(model, dict(enc)).items()}


# -- the benchmark -------------------------------------------------------------------------------------
def benchmark_pair(
    teacher: nn.Module,
    student: nn.Module,
    teacher_tokenizer: Any,
    student_tokenizer: Any,
    texts: Sequence[str],
    *,
    causal_lm: bool = False,
    settings: BenchmarkSettings | None = None,
    extra: Sequence[tuple[Any, Any]] = (),
) -> PairBenchmark:
    """Measure parameters, disk size, batch-1 latency, batched throughput and (causal LMs) generation speed.

    Args:
        teacher: the teacher model.
        student: the student model.
        teacher_tokenizer: the teacher's tokenizer.
        student_tokenizer: the student's tokenizer.
        texts: the texts to time on (tokenised up front).
        causal_lm: also time greedy generation (teacher and student).
        settings: how long and how hard to measure.
        extra: further ``(model, tokenizer)`` pairs (e.g. exported variants of the student) timed in the same
            round-robin runs as teacher and student, so machine drift lands on all of them equally.
    """
    settings = settings or BenchmarkSettings()
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise ValueError("benchmark needs at least one non-empty text")
    device = settings.device
    models = (teacher, student, *(m for m, _ in extra))
    tokenizers = (teacher_tokenizer, student_tokenizer, *(t for _, t in extra))
    limit = min(
        [settings.max_length] + [m for m in (max_input_length(mod, tok) for mod, tok in zip(models, tokenizers)) if m]
    )
    for tok in tokenizers:
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
    with fixed_threads(settings.threads) as threads:
        for m in models:
            m.to(device).eval()
        # tokenise everything up front so the timings hold model work only
        single = [[_encode(tok, mod, [t], limit, device) for t in texts] for mod, tok in zip(models, tokenizers)]
        b = settings.batch_size
        batches = [
            [
                _encode(tok, mod, [texts[(j * b + k) % len(texts)] for k in range(b)], limit, device)
                for j in range(settings.throughput_runs)
            ]
            for mod, tok in zip(models, tokenizers)
        ]

        def forward(idx: int, inputs: list[dict[str, torch.Tensor]]) -> Callable[[int], Any]:
            model = models[idx]

            def run(i: int) -> None:
                with torch.inference_mode():
                    model(**inputs[i % len(inputs)])

            return run

        n = range(len(models))
        lat, _ = interleaved_runs(
            [forward(i, single[i]) for i in n], settings.latency_runs, settings.warmup, device, settings.settle_runs
        )
        thr, _ = interleaved_runs(
            [forward(i, batches[i]) for i in n],
            settings.throughput_runs,
            min(settings.warmup, 1),
            device,
            settings.settle_runs,
        )
        speeds = [
            SpeedFigures(
                latency_ms_p50=1000.0 * percentile(lat[i], 50),
                latency_ms_p95=1000.0 * percentile(lat[i], 95),
                throughput_per_s=b * len(thr[i]) / sum(thr[i]),
            )
            for i in n
        ]
        if causal_lm:
            for idx, tps in enumerate(_generation_speed(models[:2], tokenizers[:2], texts, settings, limit)):
                speeds[idx].generation_tokens_per_s = tps
        params = [count_parameters(m) for m in models[:2]]
        disk = [disk_size_bytes(m) for m in models]
    return PairBenchmark(
        teacher_parameters=params[0],
        student_parameters=params[1],
        teacher_disk_bytes=disk[0],
        student_disk_bytes=disk[1],
        teacher_speed=speeds[0],
        student_speed=speeds[1],
        threads=threads,
        settings=asdict(settings) | {"threads": threads, "max_length": limit},
        extra_speeds=speeds[2:],
        extra_disk_bytes=disk[2:],
    )


def _generation_speed(models, tokenizers, texts, settings: BenchmarkSettings, limit: int) -> list[float]:
    """Greedy decoding at batch 1 with a fixed number of new tokens; tokens generated per second."""
    device = settings.device
    new_tokens = settings.generation_tokens
    prompt_len = min(settings.prompt_tokens, max(1, limit - new_tokens))
    if prompt_len + new_tokens > limit:
        new_tokens = limit - prompt_len
        if new_tokens < 1:
            raise ValueError(f"max length {limit} leaves no room to generate")
    prompts = []
    for tok in tokenizers:
        per_model = []
        for text in texts:
            ids = tok(text, truncation=True, max_length=prompt_len, return_tensors="pt")["input_ids"].to(device)
            per_model.append({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
        prompts.append(per_model)

    def gen(idx: int) -> Callable[[int], int]:
        model, tok, inputs = models[idx], tokenizers[idx], prompts[idx]

        def run(i: int) -> int:
            enc = inputs[i % len(inputs)]
            with torch.inference_mode():
                out = model.generate(
                    **enc,
                    max_new_tokens=new_tokens,
                    min_new_tokens=new_tokens,  # EOS must not cut one model's run short
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                )
            return int(out.shape[1] - enc["input_ids"].shape[1])

        return run

    sec_t, sec_s, n_t, n_s = interleaved_timings(
        gen(0), gen(1), settings.generation_runs, min(settings.warmup, 1), device
    )
    return [sum(n_t) / sum(sec_t), sum(n_s) / sum(sec_s)]
