"""Task metrics of a teacher and its student on the same texts, and the student's fidelity to the teacher.

`evaluate_models` is the measurement on loaded models; the pieces it uses live in the modules named for them and
are re-exported here, so ``from hf_distill.evaluation import ...`` keeps working:

* `hf_distill.fidelity`: KL / JS / top-1 agreement maths and `FidelityAccumulator`.
* `hf_distill.task_metrics`: `load_metric` (the `evaluate` modules) and where they come from.
* `hf_distill.models`: `load_model` / `LoadedModel`.
* `hf_distill.eval_data`: `EvalData` / `load_texts`.
* `hf_distill.measure`: `evaluate_pair`, the whole teacher-vs-student measurement assembled into a report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.data import label_to_id
from ..core.loading import LoadedModel, load_model
from ..core.report import Fidelity
from ..core.tasks import Task, get_task
from ..students.compatibility import check_vocabularies, config_label_names, label_permutation
from ..students.vocabulary import evaluation_teacher, kept_ids_of
from ..training import chunked_losses
from .benchmark import forward_kwargs, max_input_length
from .disagreements import EvaluationExamples, select_classification_examples, select_lm_examples
from .eval_data import EvalData, load_texts
from .fidelity import (
    FidelityAccumulator,
    align_vocab,
    causal_lm_valid_positions,
    js_divergence,
    kl_divergence,
    top1_agreement,
)
from .task_metrics import HUB_METRICS, METRICS_DIR, hub_offline, load_metric, metric_module_path

__all__ = [
    "PairEvaluation",
    "evaluate_models",
    # re-exported from the modules named for them
    "EvalData",
    "load_texts",
    "FidelityAccumulator",
    "align_vocab",
    "causal_lm_valid_positions",
    "js_divergence",
    "kl_divergence",
    "top1_agreement",
    "LoadedModel",
    "load_model",
    "HUB_METRICS",
    "METRICS_DIR",
    "hub_offline",
    "load_metric",
    "metric_module_path",
]  # evaluate_pair and the report it writes: hf_distill.evaluation.measure, which imports this module


@dataclass
class PairEvaluation:
    """Task metrics of both models and the student's fidelity to the teacher."""

    task: str
    teacher_metrics: dict[str, float]
    student_metrics: dict[str, float]
    fidelity: Fidelity
    num_samples: int
    metric_sources: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    # Per-unit vectors the report's bootstrap intervals resample (`hf_distill.intervals`): per example for
    # classification (correct_teacher/_student, agree/kl/js/items), per text for LMs (nll_teacher/_student and
    # tokens: per-text NLL sums and scored-token counts; correct_* per text for masked-token accuracy).
    # Kept in memory only; the report stores the intervals.
    per_item: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    unit: str = "examples"
    # The rows of `evaluation_examples.json` (where the two disagree most); see `hf_distill.disagreements`.
    examples: EvaluationExamples | None = None


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _logits(model: nn.Module, enc: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.inference_mode():
        return model(**forward_kwargs(model, enc)).logits.float()


def evaluate_models(
    teacher: nn.Module,
    student: nn.Module,
    teacher_tokenizer: Any,
    texts: Sequence[str],
    labels: Sequence[Any] | None = None,
    *,
    task: str | Task,
    student_tokenizer: Any = None,
    batch_size: int = 16,
    max_length: int = 128,
    metric_source: str = "auto",
    mask_probability: float = 0.15,
    seed: int = 0,
    device: str = "cpu",
) -> PairEvaluation:
    """Task metrics for both models and student–teacher fidelity on the same texts.

    text-classification: accuracy and F1 (binary for 2 labels, else macro), fidelity per example; each model reads
    its own tokenization, and the student's labels are matched to the teacher's by name.
    text-generation: token-weighted perplexity; fidelity per next-token position (padding masked).
    fill-mask: a seeded `mask_probability` of non-special tokens is masked; masked-token accuracy and
    perplexity, fidelity per masked position.

    Args:
        teacher: the teacher model.
        student: the student model.
        teacher_tokenizer: the teacher's tokenizer (also the student's when `student_tokenizer` is None).
        texts: the texts to evaluate on.
        labels: class ids or names (classification only).
        task: a task name, pipeline tag or `Task`.
        student_tokenizer: the student's tokenizer, when it has its own.
        batch_size: evaluation batch size.
        max_length: truncate inputs to this many tokens (and to what both models accept).
        metric_source: where accuracy/F1 come from (see `load_metric`).
        mask_probability: share of tokens masked for fill-mask.
        seed: seed of the fill-mask masking.
        device: where the models run.
    """
    task = get_task(task)
    student_tokenizer = student_tokenizer or teacher_tokenizer
    texts = list(texts)
    if not texts:
        raise ValueError("no texts to evaluate on")
    limit = min(
        [max_length]
        + [m for m in (max_input_length(teacher, teacher_tokenizer), max_input_length(student, student_tokenizer)) if m]
    )
    for m in (teacher, student):
        m.to(device).eval()
    # Evaluation tokenizes for each model separately, so the teacher never reads the student's ids.
    check_vocabularies(
        teacher.config,
        student.config,
        teacher_tokenizer,
        student_tokenizer,
        task=task,
        teacher_reads_student_ids=False,
    )
    kept = kept_ids_of(student) if task.per_token else None
    # A trimmed LM student: both models read the student's tokenization and the teacher's distribution is
    # renormalised over the kept ids, as in training (hf_distill.vocabulary.teacher_on_kept_ids).
    teacher, teacher_tokenizer = evaluation_teacher(teacher, teacher_tokenizer, student, student_tokenizer, task)
    if not task.per_token:
        return _evaluate_classification(
            teacher,
            student,
            teacher_tokenizer,
            student_tokenizer,
            texts,
            labels,
            batch_size,
            limit,
            metric_source,
            device,
            task,
        )
    evaluation = _evaluate_lm(
        teacher,
        student,
        teacher_tokenizer,
        texts,
        task,
        batch_size,
        limit,
        metric_source,
        mask_probability,
        seed,
        device,
    )
    if kept is not None:
        evaluation.details["vocabulary"] = kept_vocabulary_note(len(kept))
    return evaluation


def kept_vocabulary_note(kept: int) -> str:
    """What a trimmed LM student's figures are measured over, in words (report and card)."""
    return (
        f"the student's {kept:,} kept token ids: both models read the student's tokenization, and the teacher's "
        "next-token distribution is renormalised over the kept ids (as in training), for the teacher's perplexity "
        "and for fidelity"
    )


def _evaluate_classification(
    teacher, student, t_tok, s_tok, texts, labels, batch_size, limit, metric_source, device, task
):
    if labels is None:
        raise ValueError("text-classification needs labels to compute accuracy and F1 (no label column found)")
    if len(labels) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    # The student's logits are compared in the teacher's label order (matched by name).
    perm = label_permutation(teacher.config, student.config)
    label2id = getattr(teacher.config, "label2id", None) or {}
    refs = [label_to_id(lab, label2id) for lab in labels]
    preds_t: list[int] = []
    preds_s: list[int] = []
    probs_t: list[list[float]] = []
    probs_s: list[list[float]] = []
    fid = FidelityAccumulator()
    for sl in _batches(len(texts), batch_size):
        chunk = texts[sl]
        enc_t = {
            k: v.to(device)
            for k, v in t_tok(chunk, padding=True, truncation=True, max_length=limit, return_tensors="pt").items()
        }
        enc_s = {
            k: v.to(device)
            for k, v in s_tok(chunk, padding=True, truncation=True, max_length=limit, return_tensors="pt").items()
        }
        lt, ls = _logits(teacher, enc_t), _logits(student, enc_s)
        if perm is not None:
            ls = ls[:, perm]
        fid.update(lt, ls)
        preds_t += lt.argmax(-1).tolist()
        preds_s += ls.argmax(-1).tolist()
        probs_t += lt.softmax(-1).tolist()
        probs_s += ls.softmax(-1).tolist()
    n_labels = teacher.config.num_labels
    average = "binary" if n_labels == 2 else "macro"
    acc, acc_src = load_metric("accuracy", metric_source)
    f1, f1_src = load_metric("f1", metric_source)
    metrics = []
    for preds in (preds_t, preds_s):
        metrics.append(
            {
                "accuracy": float(acc.compute(predictions=preds, references=refs)["accuracy"]),
                "f1": float(f1.compute(predictions=preds, references=refs, average=average)["f1"]),
            }
        )
    per_item = {"label": np.asarray(refs), "pred_teacher": np.asarray(preds_t), "pred_student": np.asarray(preds_s)}
    per_item.update(
        {
            f"correct_{who}": (per_item[f"pred_{who}"] == per_item["label"]).astype(np.float64)
            for who in ("teacher", "student")
        }
    )
    per_item.update(fid.per_unit(len(texts)))  # agree / kl / js / items per example
    return PairEvaluation(
        task=task.pipeline_tag,
        teacher_metrics=metrics[0],
        student_metrics=metrics[1],
        fidelity=fid.result(),
        num_samples=len(texts),
        metric_sources={"accuracy": acc_src, "f1": f1_src},
        details={"f1_average": average, "max_length": limit},
        per_item=per_item,
        examples=select_classification_examples(
            texts,
            refs,
            probs_t,
            probs_s,
            per_item["kl"].tolist(),
            config_label_names(teacher.config),
            task=task.pipeline_tag,
        ),
    )


def _mask_tokens(enc: dict[str, torch.Tensor], special: torch.Tensor, mask_id: int, p: float, gen: torch.Generator):
    candidates = enc["attention_mask"].bool() & ~special.bool()
    draw = torch.rand(candidates.shape, generator=gen)
    chosen = candidates & (draw < p)
    # every sequence with a maskable token gets at least one mask, so short texts are scored too
    none = candidates.any(-1) & ~chosen.any(-1)
    if none.any():
        forced = torch.where(candidates, draw, torch.full_like(draw, 2.0)).argmin(-1)
        rows = none.nonzero().squeeze(-1)
        chosen[rows, forced[rows]] = True
    masked = enc["input_ids"].clone()
    masked[chosen] = mask_id
    return masked, chosen


def _evaluate_lm(
    teacher, student, tok, texts, task: Task, batch_size, limit, metric_source, mask_probability, seed, device
):
    if task.masks_inputs:
        if tok.mask_token_id is None:
            raise ValueError(f"{task.pipeline_tag} evaluation needs a tokenizer with a mask token")
    else:
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token  # safe: positions are masked by attention_mask, not by token id
        tok.padding_side = "right"
    vocab = len(tok)
    gen = torch.Generator().manual_seed(seed)
    nll = ([], [])
    counts: list[int] = []
    correct = ([], [])
    correct_per_text = ([], [])  # per text, for the intervals
    fid = FidelityAccumulator()
    for sl in _batches(len(texts), batch_size):
        enc = tok(
            texts[sl],
            padding=True,
            truncation=True,
            max_length=limit,
            return_tensors="pt",
            return_special_tokens_mask=True,
        )
        special = enc.pop("special_tokens_mask")
        enc = dict(enc)
        model_inputs = enc
        labels = enc["input_ids"]
        if task.masks_inputs:
            masked_ids, chosen = _mask_tokens(enc, special, tok.mask_token_id, mask_probability, gen)
            labels = enc["input_ids"].masked_fill(~chosen, -100)
            model_inputs = {**enc, "input_ids": masked_ids}
        # The task's one valid-position rule (the one training uses), and the labels aligned with the logits.
        valid = task.valid_mask(labels, enc["attention_mask"], enc["input_ids"])
        targets = task.targets(enc["input_ids"])
        model_inputs = {k: v.to(device) for k, v in model_inputs.items()}
        counts += valid.sum(-1).tolist()
        rows_nll = torch.zeros(2, valid.shape[0], dtype=torch.float64)
        rows_correct = torch.zeros(2, valid.shape[0], dtype=torch.long)  # per text, for the intervals
        valid_targets = targets[valid]
        models = (teacher, student)
        inputs = [forward_kwargs(m, model_inputs) for m in models]
        for part, rows, (lt, ls) in chunked_losses.valid_logits_in_chunks(models, inputs, task, valid, vocab):
            lt, ls = align_vocab(lt, ls, vocab)
            fid.update(lt, ls, units=rows + sl.start)  # per text, for the intervals
            for k, logits in enumerate((lt, ls)):
                token_nll = F.cross_entropy(logits, valid_targets[part], reduction="none")
                rows_nll[k].index_add_(0, rows, token_nll.double())
                if "accuracy" in task.metrics:
                    hit = (logits.argmax(-1) == valid_targets[part]).long()
                    correct[k].extend(hit.tolist())
                    rows_correct[k].index_add_(0, rows, hit)
        for k in range(2):
            nll[k].extend(rows_nll[k].tolist())
            if "accuracy" in task.metrics:
                correct_per_text[k].extend(rows_correct[k].tolist())
    ppl, ppl_src = load_metric("perplexity", "local")
    sources = {"perplexity": ppl_src}
    per_model = [
        {"perplexity": float(ppl.compute(negative_log_likelihood=nll[k], num_tokens=counts)["perplexity"])}
        for k in range(2)
    ]
    if "accuracy" in task.metrics:
        acc, acc_src = load_metric("accuracy", metric_source)
        sources["accuracy"] = acc_src
        for k in range(2):
            # masked-token accuracy: prediction == original token at each masked position
            per_model[k]["accuracy"] = float(
                acc.compute(predictions=correct[k], references=[1] * len(correct[k]))["accuracy"]
            )
    details: dict[str, Any] = {"scored_tokens": int(sum(counts)), "max_length": limit}
    if task.masks_inputs:
        details.update(mask_probability=mask_probability, seed=seed)
    per_item = _per_text(nll, counts, correct_per_text, fid, len(texts))

    def per_token(sums) -> list[float]:
        return [float(x) / c if c else 0.0 for x, c in zip(sums, counts)]

    examples = select_lm_examples(
        texts,
        per_token(per_item["kl"]),
        per_token(per_item["agree"]),
        counts,
        per_token(nll[0]),
        per_token(nll[1]),
        task=task.pipeline_tag,
    )
    return PairEvaluation(
        task.pipeline_tag,
        per_model[0],
        per_model[1],
        fid.result(),
        len(texts),
        sources,
        details,
        examples=examples,
        per_item=per_item,
        unit="texts",
    )


def _per_text(nll, counts, correct_per_text, fid: FidelityAccumulator, num_texts: int) -> dict[str, np.ndarray]:
    """The per-text vectors the report's intervals resample: NLL sums, scored tokens, correct tokens, fidelity."""
    per_text = {
        "nll_teacher": np.asarray(nll[0]),
        "nll_student": np.asarray(nll[1]),
        "tokens": np.asarray(counts, dtype=np.float64),
    }
    if correct_per_text[0]:
        per_text.update(
            correct_teacher=np.asarray(correct_per_text[0], dtype=np.float64),
            correct_student=np.asarray(correct_per_text[1], dtype=np.float64),
        )
    return {**per_text, **fid.per_unit(num_texts)}
