"""Task metrics and teacher–student fidelity on an evaluation set, and the full teacher-vs-student measurement.

Task metrics go through the `evaluate` library. Accuracy and F1 come from the Hub's canonical
modules when the Hub is reachable, else from the identical modules shipped in
`hf_distill/metrics/` (loaded with `evaluate.load(<path>)`); perplexity always comes from the
shipped module, because the Hub's `perplexity` downloads a model by id and averages per-sequence
perplexities, a different number. The source of every metric is recorded in the report.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hf_distill import losses, tasks
from hf_distill.benchmark import BenchmarkSettings, benchmark_pair, fixed_threads, forward_kwargs, max_positions
from hf_distill.report import (
    PRIMARY_METRIC,
    TASKS,
    DistillationReport,
    Fidelity,
    ModelFigures,
    collect_environment,
    compute_ratios,
)

logger = logging.getLogger(__name__)

METRICS_DIR = Path(__file__).resolve().parent / "metrics"
HUB_METRICS = frozenset({"accuracy", "f1"})  # Hub modules whose definition matches ours exactly
_TRUE = {"1", "ON", "YES", "TRUE"}


# -- task detection and loading ------------------------------------------------------------------------
def task_from_architecture(architecture: str) -> str | None:
    """'BertForSequenceClassification' -> 'text-classification', etc.; None if not one of the three tasks."""
    task = tasks.task_from_architecture(architecture)
    return tasks.PIPELINE_TAGS[task] if task else None


def detect_task(model_or_config: Any) -> str:
    """The pipeline tag (text-classification, fill-mask, text-generation) of a model instance or config."""
    return tasks.pipeline_tag(model_or_config)


@dataclass
class LoadedModel:
    """A model, its tokenizer, its task and where it came from."""

    model: nn.Module
    tokenizer: Any
    task: str
    name_or_path: str


def load_model(
    name_or_path: str | os.PathLike,
    task: str | None = None,
    *,
    trust_remote_code: bool = False,
    dtype: torch.dtype | str | None = None,
    revision: str | None = None,
) -> LoadedModel:
    """Load a model and its tokenizer for evaluation (eval mode); the task is detected from the config if not given."""
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    name = str(name_or_path)
    config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code, revision=revision)
    task = task or detect_task(config)
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    auto = {
        "text-classification": AutoModelForSequenceClassification,
        "fill-mask": AutoModelForMaskedLM,
        "text-generation": AutoModelForCausalLM,
    }[task]
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "revision": revision}
    if dtype is not None:
        kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    model = auto.from_pretrained(name, config=config, **kwargs).eval()
    tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code, revision=revision)
    return LoadedModel(model=model, tokenizer=tokenizer, task=task, name_or_path=name)


# -- metric modules ------------------------------------------------------------------------------------
def metric_module_path(name: str) -> Path:
    """Folder of a metric module shipped with hf-distill (pass it to `evaluate.load`)."""
    path = METRICS_DIR / name
    if not (path / f"{name}.py").is_file():
        raise FileNotFoundError(f"hf-distill ships no metric module {name!r} (looked in {METRICS_DIR})")
    return path


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE or HF_EVALUATE_OFFLINE asks for no network."""
    return any(os.environ.get(v, "").upper() in _TRUE for v in ("HF_HUB_OFFLINE", "HF_EVALUATE_OFFLINE"))


def load_metric(name: str, source: str = "auto") -> tuple[Any, str]:
    """Load an `evaluate` metric; return (module, source description).

    source: "auto" (the Hub's canonical module when online and one exists, else the shipped one),
    "hub" (the Hub's only; raises when unreachable) or "local" (the shipped one).
    """
    import evaluate

    if source not in ("auto", "hub", "local"):
        raise ValueError(f"source must be auto, hub or local, got {source!r}")
    if source == "hub" or (source == "auto" and name in HUB_METRICS and not hub_offline()):
        if name not in HUB_METRICS:
            raise ValueError(f"no Hub module computes hf-distill's {name!r}; use source='local'")
        try:
            return evaluate.load(name, module_type="metric", keep_in_memory=True), f"hub:evaluate-metric/{name}"
        except Exception as err:  # noqa: BLE001 - any failure to reach/load the Hub module
            if source == "hub":
                raise
            logger.warning("evaluate.load(%r) failed (%s); using hf-distill's identical local module", name, err)
    path = metric_module_path(name)
    return evaluate.load(str(path), keep_in_memory=True), f"local:hf_distill/metrics/{name}"


# -- fidelity maths (pure) -----------------------------------------------------------------------------
def kl_divergence(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(p‖q) per item in nats, p = softmax(teacher/T), q = softmax(student/T); reduces the last dim only."""
    return losses.distillation_loss(
        student_logits, teacher_logits, "forward_kl", temperature=temperature, scale_by_temperature_squared=False
    )


def js_divergence(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Jensen–Shannon divergence per item in nats (0 ≤ JS ≤ ln 2), M = (p + q) / 2."""
    return losses.distillation_loss(
        student_logits, teacher_logits, "jsd", jsd_beta=0.5, temperature=temperature, scale_by_temperature_squared=False
    ).clamp_min(0.0)


def top1_agreement(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """Per item, whether teacher and student rank the same class/token first."""
    return teacher_logits.argmax(-1) == student_logits.argmax(-1)


def causal_lm_valid_positions(
    input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(valid mask (B, L-1), labels (B, L-1)) for next-token prediction: logits[:, i] predicts token i+1.

    A position counts only when both the predicting token and the predicted token are real (not padding),
    which holds for right and left padding alike and does not depend on pad/eos token ids.
    """
    mask = attention_mask.bool()
    return mask[:, :-1] & mask[:, 1:], input_ids[:, 1:]


def align_vocab(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, vocab_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut both logit tensors to the tokenizer's vocabulary: rows past it are padding that no token maps to."""
    for who, logits in (("teacher", teacher_logits), ("student", student_logits)):
        if logits.shape[-1] < vocab_size:
            raise ValueError(f"{who} logits have {logits.shape[-1]} entries, fewer than the tokenizer's {vocab_size}")
    return teacher_logits[..., :vocab_size], student_logits[..., :vocab_size]


@dataclass
class FidelityAccumulator:
    """Streams (N, C) teacher/student logits over batches; `result()` gives the means over all items."""

    temperature: float = 1.0
    agree: int = 0
    kl_sum: float = 0.0
    js_sum: float = 0.0
    count: int = 0

    def update(self, teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> None:
        """Add items; both tensors are (N, C) for the N items that count (padding already removed)."""
        if teacher_logits.shape != student_logits.shape:
            raise ValueError(
                "teacher/student logits differ in shape: "
                f"{tuple(teacher_logits.shape)} vs {tuple(student_logits.shape)}"
            )
        self.agree += int(top1_agreement(teacher_logits, student_logits).sum())
        self.kl_sum += float(kl_divergence(teacher_logits, student_logits, self.temperature).double().sum())
        self.js_sum += float(js_divergence(teacher_logits, student_logits, self.temperature).double().sum())
        self.count += int(teacher_logits.shape[0])

    def result(self) -> Fidelity:
        """Mean agreement, KL and JS; raises when no item was added."""
        if self.count == 0:
            raise ValueError("no items to compute fidelity on (empty set or everything masked)")
        return Fidelity(
            agreement_top1=self.agree / self.count,
            kl_teacher_student=self.kl_sum / self.count,
            js_divergence=self.js_sum / self.count,
            num_items=self.count,
        )


# -- data ------------------------------------------------------------------------------------------------
@dataclass
class EvalData:
    """Texts (and labels, for classification) to evaluate on, with where they came from."""

    texts: list[str]
    labels: list[Any] | None = None
    dataset: str = "custom"
    split: str | None = None
    text_column: str | None = None
    label_column: str | None = None


def load_texts(
    dataset: str | os.PathLike,
    *,
    split: str | None = None,
    dataset_config: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    max_samples: int | None = None,
) -> EvalData:
    """Read an evaluation set through `datasets`: a local csv/tsv/json/jsonl/txt file or a Hub id.

    For Hub data sets the split defaults to "validation". The text column defaults to the first of
    text/sentence/content present; the label column to "label"/"labels" when present.
    """
    import datasets

    from .data import load_splits

    path = Path(dataset)
    if path.is_file():
        ds = load_splits(data_files={"eval": str(path)})["eval"]
        name = str(path)
    else:
        split = split or "validation"
        ds = datasets.load_dataset(str(dataset), dataset_config, split=split)
        name = str(dataset)
    columns = list(ds.column_names)
    if text_column is None:
        text_column = next((c for c in ("text", "sentence", "content") if c in columns), None)
        if text_column is None:
            raise ValueError(f"no text column found among {columns}; pass text_column")
    elif text_column not in columns:
        raise ValueError(f"text column {text_column!r} not in {columns}")
    if label_column is None:
        label_column = next((c for c in ("label", "labels") if c in columns), None)
    elif label_column not in columns:
        raise ValueError(f"label column {label_column!r} not in {columns}")
    texts, labels = [], []
    for row in ds:
        text = row[text_column]
        if text is None or not str(text).strip():
            continue  # blank lines of a .txt file carry nothing to score
        texts.append(str(text).strip())
        if label_column:
            labels.append(row[label_column])
        if max_samples and len(texts) >= max_samples:
            break
    if not texts:
        raise ValueError(f"no non-empty text in {name}")
    return EvalData(texts, labels if label_column else None, name, split, text_column, label_column)


# -- evaluation ---------------------------------------------------------------------------------------------
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


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _logits(model: nn.Module, enc: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.inference_mode():
        return model(**forward_kwargs(model, enc)).logits.float()


def _label_ids(labels: Sequence[Any], config: Any) -> list[int]:
    label2id = {str(k): int(v) for k, v in (getattr(config, "label2id", None) or {}).items()}
    out = []
    for lab in labels:
        if isinstance(lab, bool) or lab is None:
            raise ValueError(f"invalid label {lab!r}")
        if isinstance(lab, int):
            out.append(lab)
        elif str(lab) in label2id:
            out.append(label2id[str(lab)])
        else:
            raise ValueError(f"label {lab!r} is neither an id nor one of the model's labels {sorted(label2id)}")
    return out


def _same_vocab(t_tok: Any, s_tok: Any) -> None:
    if t_tok.get_vocab() != s_tok.get_vocab():
        raise ValueError(
            "teacher and student tokenizers differ: token-level fidelity needs one vocabulary "
            "(padded model vocabularies are fine, different tokenizers are not)"
        )


def evaluate_models(
    teacher: nn.Module,
    student: nn.Module,
    teacher_tokenizer: Any,
    texts: Sequence[str],
    labels: Sequence[Any] | None = None,
    *,
    task: str,
    student_tokenizer: Any = None,
    batch_size: int = 16,
    max_length: int = 128,
    metric_source: str = "auto",
    mask_probability: float = 0.15,
    seed: int = 0,
    device: str = "cpu",
) -> PairEvaluation:
    """Task metrics for both models and student–teacher fidelity on the same texts.

    text-classification: accuracy and F1 (binary for 2 labels, else macro), fidelity per example.
    text-generation: token-weighted perplexity; fidelity per next-token position (padding masked).
    fill-mask: a seeded `mask_probability` of non-special tokens is masked; masked-token accuracy and
    perplexity, fidelity per masked position.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    student_tokenizer = student_tokenizer or teacher_tokenizer
    texts = list(texts)
    if not texts:
        raise ValueError("no texts to evaluate on")
    limit = min(
        [max_length]
        + [m for m in (max_positions(teacher, teacher_tokenizer), max_positions(student, student_tokenizer)) if m]
    )
    for m in (teacher, student):
        m.to(device).eval()
    if task == "text-classification":
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
        )
    _same_vocab(teacher_tokenizer, student_tokenizer)
    return _evaluate_lm(
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


def _evaluate_classification(teacher, student, t_tok, s_tok, texts, labels, batch_size, limit, metric_source, device):
    if labels is None:
        raise ValueError("text-classification needs labels to compute accuracy and F1 (no label column found)")
    if len(labels) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    n_t, n_s = teacher.config.num_labels, student.config.num_labels
    if n_t != n_s:
        raise ValueError(f"teacher has {n_t} labels, student {n_s}: they do not solve the same task")
    refs = _label_ids(labels, teacher.config)
    preds_t: list[int] = []
    preds_s: list[int] = []
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
        fid.update(lt, ls)
        preds_t += lt.argmax(-1).tolist()
        preds_s += ls.argmax(-1).tolist()
    average = "binary" if n_t == 2 else "macro"
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
    return PairEvaluation(
        task="text-classification",
        teacher_metrics=metrics[0],
        student_metrics=metrics[1],
        fidelity=fid.result(),
        num_samples=len(texts),
        metric_sources={"accuracy": acc_src, "f1": f1_src},
        details={"f1_average": average, "max_length": limit},
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


def _evaluate_lm(teacher, student, tok, texts, task, batch_size, limit, metric_source, mask_probability, seed, device):
    causal = task == "text-generation"
    if causal:
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token  # safe: positions are masked by attention_mask, not by token id
        tok.padding_side = "right"
    elif tok.mask_token_id is None:
        raise ValueError("fill-mask evaluation needs a tokenizer with a mask token")
    vocab = len(tok)
    gen = torch.Generator().manual_seed(seed)
    nll = ([], [])
    counts: list[int] = []
    correct = ([], [])
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
        if causal:
            valid, targets = causal_lm_valid_positions(enc["input_ids"], enc["attention_mask"])
            model_inputs = enc
        else:
            masked_ids, valid = _mask_tokens(enc, special, tok.mask_token_id, mask_probability, gen)
            targets = enc["input_ids"]
            model_inputs = {**enc, "input_ids": masked_ids}
        model_inputs = {k: v.to(device) for k, v in model_inputs.items()}
        lt, ls = _logits(teacher, model_inputs).cpu(), _logits(student, model_inputs).cpu()
        if causal:
            lt, ls = lt[:, :-1], ls[:, :-1]
        lt, ls = align_vocab(lt, ls, vocab)
        fid.update(lt[valid], ls[valid])
        counts += valid.sum(-1).tolist()
        for k, logits in enumerate((lt, ls)):
            token_nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
            nll[k].extend((token_nll * valid).sum(-1).double().tolist())
            if not causal:
                correct[k].extend((logits.argmax(-1)[valid] == targets[valid]).long().tolist())
    ppl, ppl_src = load_metric("perplexity", "local")
    sources = {"perplexity": ppl_src}
    per_model = [
        {"perplexity": float(ppl.compute(negative_log_likelihood=nll[k], num_tokens=counts)["perplexity"])}
        for k in range(2)
    ]
    if not causal:
        acc, acc_src = load_metric("accuracy", metric_source)
        sources["accuracy"] = acc_src
        for k in range(2):
            # masked-token accuracy: prediction == original token at each masked position
            per_model[k]["accuracy"] = float(
                acc.compute(predictions=correct[k], references=[1] * len(correct[k]))["accuracy"]
            )
    details: dict[str, Any] = {"scored_tokens": int(sum(counts)), "max_length": limit}
    if not causal:
        details.update(mask_probability=mask_probability, seed=seed)
    return PairEvaluation(task, per_model[0], per_model[1], fid.result(), len(texts), sources, details)


# -- the whole measurement -----------------------------------------------------------------------------
def read_trainer_state(model_dir: str | os.PathLike) -> dict[str, Any]:
    """train_seconds / steps from a transformers `trainer_state.json` in the student's folder, if there is one."""
    path = Path(model_dir) / "trainer_state.json"
    if not path.is_file():
        return {}
    state = json.loads(path.read_text())
    out: dict[str, Any] = {}
    if state.get("global_step"):
        out["steps"] = int(state["global_step"])
    for entry in reversed(state.get("log_history", [])):
        if "train_runtime" in entry:
            out["train_seconds"] = float(entry["train_runtime"])
            break
    return out


DISTILLATION_KEYS = (
    "loss_type",
    "temperature",
    "alpha",
    "jsd_beta",
    "skew_lambda",
    "hidden_loss",
    "hidden_loss_weight",
    "attention_loss_weight",
    "layer_mapping",
    "learning_rate",
    "max_steps",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "seed",
)


def distillation_settings(config: Any, **extra: Any) -> dict[str, Any]:
    """The report's `distillation` dict from a training config (e.g. DistillationConfig) plus extra keys
    such as layers_kept=, steps=, dataset=. Attributes the config lacks are left out."""
    out = {k: getattr(config, k) for k in DISTILLATION_KEYS if getattr(config, k, None) is not None}
    out.update(extra)
    return out


def _num_layers(model: nn.Module) -> int | None:
    cfg = model.config
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int):
            return value
    return None


def evaluate_pair(
    teacher: str | os.PathLike,
    student: str | os.PathLike,
    dataset: str | os.PathLike | EvalData,
    *,
    task: str | None = None,
    split: str | None = None,
    dataset_config: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    max_samples: int | None = None,
    batch_size: int = 16,
    max_length: int = 128,
    threads: int | None = None,
    device: str = "cpu",
    trust_remote_code: bool = False,
    metric_source: str = "auto",
    benchmark: BenchmarkSettings | None = None,
    distillation: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    output_dir: str | os.PathLike | None = None,
) -> DistillationReport:
    """Load both models, evaluate and benchmark them on the same data, and build the report.

    `distillation` (loss_type, temperature, alpha, layers_kept, steps, dataset, ...) and `training`
    (train_seconds, ...) are copied into the report; `training` is completed from the student's
    `trainer_state.json` when present. With `output_dir`, the report is also written there.
    """
    t = load_model(teacher, task, trust_remote_code=trust_remote_code)
    s = load_model(student, task or t.task, trust_remote_code=trust_remote_code)
    if t.task != s.task:
        raise ValueError(f"teacher is a {t.task} model, student a {s.task} model")
    data = (
        dataset
        if isinstance(dataset, EvalData)
        else load_texts(
            dataset,
            split=split,
            dataset_config=dataset_config,
            text_column=text_column,
            label_column=label_column,
            max_samples=max_samples,
        )
    )
    bench = benchmark or BenchmarkSettings(threads=threads, device=device, max_length=max_length)
    if threads is not None:
        bench.threads = threads
    started = time.perf_counter()
    with fixed_threads(bench.threads) as used_threads:
        ev = evaluate_models(
            t.model,
            s.model,
            t.tokenizer,
            data.texts,
            data.labels,
            task=t.task,
            student_tokenizer=s.tokenizer,
            batch_size=batch_size,
            max_length=max_length,
            metric_source=metric_source,
            device=bench.device,
        )
        bench.threads = used_threads
        pb = benchmark_pair(
            t.model,
            s.model,
            t.tokenizer,
            s.tokenizer,
            data.texts[: max(bench.batch_size * bench.throughput_runs, bench.latency_runs)],
            causal_lm=t.task == "text-generation",
            settings=bench,
        )
    figures = []
    for loaded, params, disk, speed, metrics in (
        (t, pb.teacher_parameters, pb.teacher_disk_bytes, pb.teacher_speed, ev.teacher_metrics),
        (s, pb.student_parameters, pb.student_disk_bytes, pb.student_speed, ev.student_metrics),
    ):
        figures.append(
            ModelFigures(
                name_or_path=loaded.name_or_path,
                parameters=params[0],
                parameters_without_embeddings=params[1],
                disk_bytes=disk,
                latency_ms_p50=speed.latency_ms_p50,
                latency_ms_p95=speed.latency_ms_p95,
                throughput_per_s=speed.throughput_per_s,
                generation_tokens_per_s=speed.generation_tokens_per_s,
                metrics=metrics,
                num_layers=_num_layers(loaded.model),
            )
        )
    training_info = read_trainer_state(student) if Path(student).is_dir() else {}
    training_info.update(training or {})
    distillation = dict(distillation or {})
    kept = getattr(s.model.config, "distilled_from_layers", None)
    if "layers_kept" not in distillation and kept is not None:
        # student_from_teacher records the copied teacher blocks in the student's config
        distillation["layers_kept"] = list(kept)
    if "steps" not in distillation and "steps" in training_info:
        distillation["steps"] = training_info["steps"]
    report = DistillationReport(
        task=t.task,
        teacher=figures[0],
        student=figures[1],
        ratios=compute_ratios(figures[0], figures[1], PRIMARY_METRIC[t.task]),
        fidelity=ev.fidelity,
        distillation=distillation,
        training=training_info,
        environment=collect_environment(pb.threads, bench.device),
        evaluation={
            "dataset": data.dataset,
            "split": data.split,
            "text_column": data.text_column,
            "label_column": data.label_column,
            "num_samples": ev.num_samples,
            "metric_sources": ev.metric_sources,
            "measure_seconds": round(time.perf_counter() - started, 3),
            **ev.details,
        },
        benchmark=pb.settings,
    )
    if output_dir is not None:
        report.to_json(Path(output_dir))
    return report
