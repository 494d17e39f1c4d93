"""95% confidence intervals of the report's figures: a seeded, paired percentile bootstrap over examples or texts.

Every figure the report gives is a function of sums over items (examples for classification, texts for language
models): accuracy is Σ correct / n, perplexity exp(Σ NLL / Σ tokens), top-1 agreement Σ agree / Σ items, and a
teacher-vs-student ratio or difference a function of both models' sums. One bootstrap resample draws n item
indices with replacement and recomputes those sums; the same indices serve every column, so teacher and student are
resampled on the same items (a paired bootstrap: the interval of their difference is much narrower than the two
separate intervals suggest when both models get the same items right). The interval is the 2.5th–97.5th
percentile of the resampled figure (Efron & Tibshirani 1993, ch. 13).

Pure numpy, so reading or rendering a report never needs torch. The indices depend only on (n, seed, resamples):
the same seed gives the same intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 1000
SEED = 0
# Resamples drawn at a time: bounds the (block, n) index array to about 2**20 entries, whatever n is.
_BLOCK_ENTRIES = 1 << 20

__all__ = [
    "CONFIDENCE",
    "RESAMPLES",
    "SEED",
    "Interval",
    "FigureIntervals",
    "ReportIntervals",
    "bootstrap_sums",
    "percentile_interval",
    "f1_from_counts",
    "pair_intervals",
    "fidelity_intervals",
    "difference_intervals",
    "report_intervals",
    "contains",
]


def bootstrap_sums(columns: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """Column sums of `resamples` bootstrap resamples of the rows of `columns`.

    Args:
        columns: (n, k) per-item values (a 1-d array is one column); every column is resampled with the same
            row indices, which is what pairs teacher and student.
        resamples: how many resamples.
        seed: seed of `numpy.random.default_rng`; the indices depend only on n, `resamples` and `seed`.

    Returns:
        (resamples, k) array: row b holds the column sums over resample b.
    """
    columns = np.asarray(columns, dtype=np.float64)
    if columns.ndim == 1:
        columns = columns[:, None]
    n = columns.shape[0]
    if n == 0:
        raise ValueError("cannot bootstrap an empty set of items")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ENTRIES // n)
    out = np.empty((resamples, columns.shape[1]))
    for start in range(0, resamples, block):
        stop = min(start + block, resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = columns[idx].sum(axis=1)
    return out


def percentile_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The central `confidence` percentile interval of resampled figures; None when any resample is undefined
    (NaN or infinite, e.g. a ratio to a teacher that scores 0 on that resample).

    Args:
        values: one figure per bootstrap resample.
        confidence: the share of the resamples the interval holds (0.95: from the 2.5th to the 97.5th percentile).

    Returns:
        (low, high), or None when `values` is empty or holds a non-finite value.

    Raises:
        ValueError: `confidence` is not in (0, 1).
    """
    values = np.asarray(values, dtype=np.float64)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if values.size == 0 or not np.isfinite(values).all():
        return None
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def contains(interval: Sequence[float] | None, value: float) -> bool:
    """Whether a [low, high] interval includes `value` (e.g. 0 for a difference: no measurable difference)."""
    return interval is not None and interval[0] <= value <= interval[1]


@dataclass
class Interval:
    """A 95% interval [low, high] of one figure (JSON: ``{"low": .., "high": ..}``)."""

    low: float
    high: float

    def as_tuple(self) -> tuple[float, float]:
        """The interval as (low, high)."""
        return self.low, self.high


def _interval(values: np.ndarray, confidence: float) -> Interval | None:
    bounds = percentile_interval(values, confidence)
    return None if bounds is None else Interval(*bounds)


@dataclass
class FigureIntervals:
    """Intervals of one metric: each model's value, student − teacher, and student / teacher.

    `ratio` is student / teacher for every metric (× 100 it is the "% retained" of higher-is-better metrics; for
    perplexity it reads "1.03× the teacher's"); None where a resample makes it undefined.
    """

    teacher: Interval | None
    student: Interval | None
    difference: Interval | None
    ratio: Interval | None


@dataclass
class ReportIntervals:
    """All intervals of a report: how they were made, over what, and one `FigureIntervals` per metric.

    `unit` names what was resampled ("examples", "texts"); `num_units` how many there are; `fidelity` maps
    agreement_top1 / kl_teacher_student / js_divergence to their intervals (resampled over the same units).
    """

    unit: str
    num_units: int
    metrics: dict[str, FigureIntervals] = field(default_factory=dict)
    fidelity: dict[str, Interval | None] = field(default_factory=dict)
    confidence: float = CONFIDENCE
    resamples: int = RESAMPLES
    seed: int = SEED
    method: str = "paired percentile bootstrap"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportIntervals:
        """Rebuild from the report's JSON; raises ValueError naming the field on a malformed one."""

        def iv(value: Any, where: str) -> Interval | None:
            if value is None:
                return None
            if not isinstance(value, Mapping) or set(value) != {"low", "high"}:
                raise ValueError(f"report field 'intervals.{where}' must be {{low, high}} or null, got {value!r}")
            return Interval(low=value["low"], high=value["high"])

        if not isinstance(data, Mapping) or "unit" not in data or "num_units" not in data:
            raise ValueError("report field 'intervals' must be an object with unit and num_units")
        metrics = {}
        for name, m in (data.get("metrics") or {}).items():
            if not isinstance(m, Mapping):
                raise ValueError(f"report field 'intervals.metrics.{name}' must be an object")
            metrics[name] = FigureIntervals(
                **{k: iv(m.get(k), f"metrics.{name}.{k}") for k in ("teacher", "student", "difference", "ratio")}
            )
        fidelity = {k: iv(v, f"fidelity.{k}") for k, v in (data.get("fidelity") or {}).items()}
        known = ("confidence", "resamples", "seed", "method")
        return cls(
            unit=data["unit"],
            num_units=data["num_units"],
            metrics=metrics,
            fidelity=fidelity,
            **{k: data[k] for k in known if k in data},
        )


def _pair(value, confidence: float) -> FigureIntervals:
    """Intervals of one metric; `value(model)` gives the resampled figure of the teacher ("teacher") or student."""
    teacher, student = value("teacher"), value("student")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = student / teacher
    return FigureIntervals(
        teacher=_interval(teacher, confidence),
        student=_interval(student, confidence),
        difference=_interval(student - teacher, confidence),
        ratio=_interval(ratio, confidence),
    )


def pair_intervals(
    per_item: Mapping[str, np.ndarray],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
    f1_average: str | None = None,
) -> dict[str, FigureIntervals]:
    """Paired intervals of the task metrics found in `per_item` (all arrays have one entry per unit).

    Recognised vectors (teacher first, student second in each pair):

    * ``correct_teacher`` / ``correct_student``: per example 0/1 (classification accuracy = mean), or per text the
      number of correctly predicted scored tokens (masked-token accuracy = Σ correct / Σ ``tokens``);
    * ``nll_teacher`` / ``nll_student`` with ``tokens``: per-text NLL sums and scored-token counts (perplexity =
      exp(Σ NLL / Σ tokens), i.e. token-weighted, as the report's perplexity);
    * ``pred_teacher`` / ``pred_student`` with ``label`` (class ids per example) and `f1_average`: F1 from the
      resampled true/false positive and false negative counts (`f1_from_counts`).

    Args:
        per_item: the vectors above (any subset).
        resamples: bootstrap resamples.
        seed: bootstrap seed.
        confidence: interval coverage.
        f1_average: "binary" (class 1 positive) or "macro", as the report's F1; None: no F1 interval.

    Returns:
        metric name -> `FigureIntervals` (accuracy, f1, perplexity: those the vectors allow).
    """
    names = [k for k in ("correct_teacher", "correct_student", "nll_teacher", "nll_student", "tokens") if k in per_item]
    out: dict[str, FigureIntervals] = {}
    col: dict[str, np.ndarray] = {}
    if names:
        cols = np.column_stack([np.asarray(per_item[k], dtype=np.float64) for k in names])
        sums = bootstrap_sums(cols, resamples, seed)
        col = {k: sums[:, i] for i, k in enumerate(names)}
        n = cols.shape[0]
    if "correct_teacher" in col:
        denominator = col["tokens"] if "tokens" in col else np.full(resamples, float(n))
        with np.errstate(divide="ignore", invalid="ignore"):
            out["accuracy"] = _pair(lambda who: col[f"correct_{who}"] / denominator, confidence)
    if "nll_teacher" in col:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out["perplexity"] = _pair(lambda who: np.exp(col[f"nll_{who}"] / col["tokens"]), confidence)
    if f1_average and {"pred_teacher", "pred_student", "label"} <= set(per_item):
        out["f1"] = _f1_pair(per_item, f1_average, resamples, seed, confidence)
    return out


def _confusion_columns(pred: np.ndarray, label: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """(n, 3·C) per-example indicators: true positive, false positive, false negative of each class."""
    cols = []
    for c in classes:
        cols += [(pred == c) & (label == c), (pred == c) & (label != c), (pred != c) & (label == c)]
    return np.column_stack(cols).astype(np.float64)


def f1_from_counts(counts: np.ndarray, average: str) -> np.ndarray:
    """F1 from (..., 3·C) summed tp/fp/fn counts (`_confusion_columns`' order), as scikit-learn computes it.

    "binary": the one class given (0 when it never occurs nor is predicted). "macro": the mean over the classes
    that occur in the labels or the predictions of that sample (scikit-learn's default labels).

    Args:
        counts: tp, fp, fn of each class, interleaved along the last axis; leading axes are resamples.
        average: "binary" or "macro".

    Returns:
        The F1 of each leading index (shape ``counts.shape[:-1]``).

    Raises:
        ValueError: any other `average`.
    """
    tp, fp, fn = counts[..., 0::3], counts[..., 1::3], counts[..., 2::3]
    denominator = 2 * tp + fp + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        per_class = np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), 0.0)
    if average == "binary":
        return per_class[..., 0]
    if average != "macro":
        raise ValueError(f"f1 average must be binary or macro, got {average!r}")
    present = denominator > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        return (per_class * present).sum(-1) / present.sum(-1)


def _f1_pair(
    per_item: Mapping[str, np.ndarray], average: str, resamples: int, seed: int, confidence: float
) -> FigureIntervals:
    label = np.asarray(per_item["label"])
    preds = {who: np.asarray(per_item[f"pred_{who}"]) for who in ("teacher", "student")}
    seen = set(label.tolist()).union(*(v.tolist() for v in preds.values()))
    classes = [1] if average == "binary" else sorted(seen)
    width = 3 * len(classes)
    cols = np.column_stack([_confusion_columns(preds[who], label, classes) for who in ("teacher", "student")])
    sums = bootstrap_sums(cols, resamples, seed)  # the same indices as every other figure of these examples
    f1 = {"teacher": f1_from_counts(sums[:, :width], average), "student": f1_from_counts(sums[:, width:], average)}
    return _pair(lambda who: f1[who], confidence)


def difference_intervals(
    reference: Mapping[str, np.ndarray],
    other: Mapping[str, np.ndarray],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
    f1_average: str | None = None,
) -> dict[str, Interval | None]:
    """Intervals of other − reference per metric, paired on the same units: e.g. an exported (int8) student against
    the PyTorch student, both from evaluations of the same texts (the "student" vectors of each `per_item`).

    Args:
        reference: per-unit vectors of the reference evaluation (its ``*_student`` vectors are used).
        other: per-unit vectors of the other evaluation, same units in the same order.
        resamples: bootstrap resamples.
        seed: bootstrap seed.
        confidence: interval coverage.
        f1_average: as in `pair_intervals`.
    """
    per_item: dict[str, np.ndarray] = {}
    for key in ("correct", "nll", "pred"):
        if f"{key}_student" in reference and f"{key}_student" in other:
            per_item[f"{key}_teacher"] = reference[f"{key}_student"]
            per_item[f"{key}_student"] = other[f"{key}_student"]
    per_item.update({k: reference[k] for k in ("tokens", "label") if k in reference})
    figures = pair_intervals(per_item, resamples=resamples, seed=seed, confidence=confidence, f1_average=f1_average)
    return {name: f.difference for name, f in figures.items()}


FIDELITY_KEYS = ("agreement_top1", "kl_teacher_student", "js_divergence")


def fidelity_intervals(
    per_item: Mapping[str, np.ndarray],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> dict[str, Interval | None]:
    """Intervals of the fidelity means from per-unit sums ``agree``, ``kl``, ``js`` and ``items`` (the items a unit
    contributes: 1 per example, or its scored positions per text): each figure is Σ value / Σ items.

    Args:
        per_item: the per-unit sums, one array each; the fidelity keys missing from it get no interval.
        resamples: the number of bootstrap resamples.
        seed: the seed of the resampling.
        confidence: the share of the resamples each interval holds.

    Returns:
        Report key (``agreement_top1``, ``kl_teacher_student``, ``js_divergence``) -> its interval, or None when a
        resample leaves it undefined; empty without ``items``.
    """
    if "items" not in per_item:
        return {}
    keys = [k for k in ("agree", "kl", "js") if k in per_item]
    cols = np.column_stack([np.asarray(per_item[k], dtype=np.float64) for k in (*keys, "items")])
    sums = bootstrap_sums(cols, resamples, seed)
    names = dict(zip(("agree", "kl", "js"), FIDELITY_KEYS))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {names[k]: _interval(sums[:, i] / sums[:, -1], confidence) for i, k in enumerate(keys)}


def report_intervals(
    per_item: Mapping[str, np.ndarray],
    unit: str,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
    f1_average: str | None = None,
) -> ReportIntervals:
    """The report's `intervals`: task metrics (`pair_intervals`) and fidelity (`fidelity_intervals`) over the same
    resampled units.

    Args:
        per_item: per-unit vectors (see `pair_intervals` and `fidelity_intervals`), all of one length.
        unit: what one entry is ("examples", "texts").
        resamples: bootstrap resamples.
        seed: bootstrap seed.
        confidence: interval coverage.
        f1_average: how the report's F1 averages ("binary" / "macro"); None: no F1 interval.
    """
    lengths = {len(v) for v in per_item.values()}
    if len(lengths) != 1:
        raise ValueError(f"per-item vectors differ in length: { {k: len(v) for k, v in per_item.items()} }")
    kwargs = {"resamples": resamples, "seed": seed, "confidence": confidence}
    return ReportIntervals(
        unit=unit,
        num_units=lengths.pop(),
        metrics=pair_intervals(per_item, f1_average=f1_average, **kwargs),
        fidelity=fidelity_intervals(per_item, **kwargs),
        confidence=confidence,
        resamples=resamples,
        seed=seed,
    )
