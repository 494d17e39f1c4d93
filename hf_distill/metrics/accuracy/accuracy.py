"""Accuracy, as an `evaluate` metric module that loads from a local path (no Hub needed).

Same definition and output key as the Hub's `evaluate-metric/accuracy`:
the (optionally weighted) fraction of predictions equal to their reference.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Accuracy: the fraction of predictions that equal their reference label."

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted labels.
    references (list of int): reference labels.
    normalize (bool): if False, return the number of correct predictions instead of the fraction.
    sample_weight (list of float): optional per-sample weights.
Returns:
    accuracy (float): in [0, 1] when normalize is True.
Examples:
    >>> metric = evaluate.load("hf_distill/metrics/accuracy")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])
    {'accuracy': 0.6666666666666666}
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    """The `evaluate` module of accuracy, computed locally (same definition as the Hub's `accuracy`)."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        if predictions.size == 0:
            # an empty evaluation set has no accuracy; 0 or NaN would be a silent wrong number
            raise ValueError("accuracy needs at least one prediction")
        correct = (predictions == references).astype(np.float64)
        weights = np.ones_like(correct) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        score = float((correct * weights).sum())
        if normalize:
            score /= float(weights.sum())
        return {"accuracy": score}
