"""F1 score, as an `evaluate` metric module that loads from a local path (no Hub needed).

Same definition, arguments and output key as the Hub's `evaluate-metric/f1` (which wraps
scikit-learn's `f1_score`), computed with numpy so scikit-learn is not required:
average in {"binary", "micro", "macro", "weighted", None}; classes with no predicted and no
true samples score 0 (scikit-learn's default `zero_division` behaviour).
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "F1: the harmonic mean of precision and recall, per class or averaged."

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted labels.
    references (list of int): reference labels.
    labels (list of int): the classes to average over (default: every class in predictions or references).
    pos_label (int): the positive class when average="binary" (default 1).
    average (str or None): "binary" (default), "micro", "macro", "weighted", or None for per-class scores.
    sample_weight (list of float): optional per-sample weights.
Returns:
    f1 (float, or array of float when average is None).
Examples:
    >>> metric = evaluate.load("hf_distill/metrics/f1")
    >>> metric.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0])
    {'f1': 0.6666666666666666}
"""

_CITATION = ""


def _safe_div(num, den):
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    """The `evaluate` module of F1, computed locally (same definition as the Hub's `f1`)."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, labels=None, pos_label=1, average="binary", sample_weight=None):
        y_pred = np.asarray(predictions)
        y_true = np.asarray(references)
        if y_pred.size == 0:
            raise ValueError("f1 needs at least one prediction")
        weights = (
            np.ones(len(y_true), dtype=np.float64)
            if sample_weight is None
            else np.asarray(sample_weight, dtype=np.float64)
        )
        present = np.union1d(y_true, y_pred)
        if average == "binary":
            if len(present) > 2:
                raise ValueError(
                    f"average='binary' needs at most two classes, got {present.tolist()}; "
                    "choose average='macro', 'micro' or 'weighted'"
                )
            classes = np.array([pos_label])
        else:
            classes = present if labels is None else np.asarray(labels)
        tp = np.array([weights[(y_pred == c) & (y_true == c)].sum() for c in classes])
        fp = np.array([weights[(y_pred == c) & (y_true != c)].sum() for c in classes])
        fn = np.array([weights[(y_pred != c) & (y_true == c)].sum() for c in classes])
        if average == "micro":
            tp, fp, fn = tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)
        # F1 = 2TP / (2TP + FP + FN), which equals 2PR/(P+R) and stays defined when P or R is 0/0
        per_class = _safe_div(2 * tp, 2 * tp + fp + fn)
        if average is None:
            return {"f1": per_class}
        if average == "weighted":
            support = tp + fn
            score = float(_safe_div(np.array((per_class * support).sum()), np.array(support.sum())))
        elif average in ("binary", "micro", "macro"):
            score = float(per_class.mean())
        else:
            raise ValueError(f"unknown average {average!r}")
        return {"f1": score}
