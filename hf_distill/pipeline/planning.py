"""Pick a student before training: build each candidate (depth × FFN width × trimmed vocabulary or not) from the
teacher and measure its size and speed against the teacher on this machine.

Size and speed do not depend on the trained weights, so the figures are those of the distilled student; only its
accuracy remains to be found by training. Timing reuses `hf_distill.benchmark.benchmark_pair` (teacher and candidate
alternate, so a shared machine's drift lands on both), one pair per candidate, and every ratio compares the two
models of the same pair.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..evaluation.benchmark import BenchmarkSettings, benchmark_pair
from ..students.blocks import calibration_batch, find_blocks, student_from_teacher

__all__ = ["CandidatePlan", "plan_students", "format_plan", "plans_to_json"]


@dataclass
class CandidatePlan:
    """One candidate student and what it costs, measured against the teacher in the same run."""

    name: str
    layers: int
    intermediate_size: int | None
    trimmed: bool
    vocab_size: int
    parameters: int
    parameter_ratio: float  # teacher / student: "N× fewer parameters"
    disk_bytes: int
    disk_ratio: float  # teacher / student
    latency_ms_p50: float
    latency_speedup: float  # teacher / student, batch 1
    throughput_per_s: float
    throughput_ratio: float  # student / teacher, at the benchmark's batch size
    teacher_latency_ms_p50: float
    teacher_throughput_per_s: float
    # Trimmed candidates: the share of the timing texts' tokens (the validation text) that trimming encodes
    # differently, and the share that becomes [UNK] (`hf_distill.vocabulary.trimming_change`); None untrimmed.
    trim_changed_token_share: float | None = None
    trim_unk_token_share: float | None = None


def plan_students(
    teacher,
    tokenizer,
    texts: Sequence[str],
    *,
    layers: Iterable[int],
    intermediate_sizes: Iterable[int | None] = (None,),
    trim: Iterable[bool] = (False, True),
    trimming_texts: Iterable[str] | None = None,
    settings: BenchmarkSettings | None = None,
    strategy: str = "uniform",
    min_corpus_tokens: int | None = None,
) -> list[CandidatePlan]:
    """Build every candidate student and measure parameters, disk bytes, batch-1 latency and batched throughput.

    Args:
        teacher: the teacher model (its weights need not be trained: size and speed do not depend on them).
        tokenizer: the teacher's tokenizer.
        texts: texts to time the models on (e.g. validation sentences).
        layers: block counts to try.
        intermediate_sizes: FFN widths to try; None keeps the teacher's width.
        trim: whether to try the untrimmed and/or the trimmed vocabulary.
        trimming_texts: the corpus to trim the vocabulary to (the training text); needed when `trim` holds True.
        settings: benchmark settings (batch size, runs, threads); defaults to batch 32.
        strategy: which blocks to keep (`select_layers`).
        min_corpus_tokens: the fewest tokens `trimming_texts` may hold (default: `trim_vocabulary`'s rule).

    Returns:
        One `CandidatePlan` per candidate, in the order layers × widths × trim.
    """
    from ..students.vocabulary import MIN_CORPUS_TOKENS, trim_vocabulary, trimming_change

    settings = settings or BenchmarkSettings(batch_size=32)
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise ValueError("plan_students needs texts to time the models on")
    trim = list(trim)
    corpus = list(trimming_texts) if trimming_texts is not None else None
    if any(trim) and not corpus:
        raise ValueError("a trimmed candidate needs trimming_texts (the training text the vocabulary is cut to)")
    widths = list(intermediate_sizes)
    calibration = None
    if any(w is not None for w in widths):
        calibration = calibration_batch(corpus or texts, tokenizer, settings.max_length)
    total = len(find_blocks(teacher)[1])
    teacher.eval()
    plans = []
    for depth in layers:
        for width in widths:
            for trimmed in trim:
                student = student_from_teacher(
                    teacher,
                    num_layers=depth,
                    strategy=strategy,
                    intermediate_size=width,
                    calibration=calibration if width is not None else None,
                )
                s_tok = tokenizer
                change = None
                if trimmed:
                    student, s_tok = trim_vocabulary(
                        student,
                        copy.deepcopy(tokenizer),
                        corpus,
                        min_corpus_tokens=min_corpus_tokens or MIN_CORPUS_TOKENS,
                    )
                    change = trimming_change(tokenizer, s_tok, student.config.vocabulary_kept_ids, texts)
                student.eval()
                pb = benchmark_pair(teacher, student, tokenizer, s_tok, texts, settings=settings)
                t, s = pb.teacher_speed, pb.student_speed
                name = (
                    f"{depth}/{total} layers"
                    + (f", FFN {width}" if width is not None else "")
                    + (", trimmed" if trimmed else "")
                )
                plans.append(
                    CandidatePlan(
                        name=name,
                        layers=depth,
                        intermediate_size=width,
                        trimmed=trimmed,
                        vocab_size=student.get_input_embeddings().weight.shape[0],
                        parameters=pb.student_parameters[0],
                        parameter_ratio=pb.teacher_parameters[0] / pb.student_parameters[0],
                        disk_bytes=pb.student_disk_bytes,
                        disk_ratio=pb.teacher_disk_bytes / pb.student_disk_bytes,
                        latency_ms_p50=s.latency_ms_p50,
                        latency_speedup=t.latency_ms_p50 / s.latency_ms_p50,
                        throughput_per_s=s.throughput_per_s,
                        throughput_ratio=s.throughput_per_s / t.throughput_per_s,
                        teacher_latency_ms_p50=t.latency_ms_p50,
                        teacher_throughput_per_s=t.throughput_per_s,
                        trim_changed_token_share=change.changed_share if change else None,
                        trim_unk_token_share=change.unk_share if change else None,
                    )
                )
    return plans


def format_plan(plans: Sequence[CandidatePlan]) -> str:
    """A Markdown table of the candidates."""
    lines = [
        "| candidate | vocabulary | tokens changed by trimming | parameters | fewer params | disk MB "
        "| latency (batch 1) | throughput |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in plans:
        changed = (
            "—"
            if p.trim_changed_token_share is None
            else (f"{100 * p.trim_changed_token_share:.2f}% ({100 * (p.trim_unk_token_share or 0):.2f}% [UNK])")
        )
        lines.append(
            f"| {p.name} | {p.vocab_size:,} | {changed} | {p.parameters / 1e6:.1f}M | {p.parameter_ratio:.2f}× "
            f"| {p.disk_bytes / 1e6:.1f} | {p.latency_ms_p50:.1f} ms ({p.latency_speedup:.2f}× faster) "
            f"| {p.throughput_ratio:.2f}× the teacher's |"
        )
    return "\n".join(lines)


def plans_to_json(plans: Sequence[CandidatePlan], **context: Any) -> dict[str, Any]:
    """The plan as a JSON-ready mapping, with the measuring context (settings, machine) beside it."""
    return {**context, "candidates": [asdict(p) for p in plans]}
