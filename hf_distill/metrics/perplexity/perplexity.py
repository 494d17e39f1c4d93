"""Token-weighted perplexity from summed negative log-likelihoods, as a local `evaluate` metric module.

Unlike the Hub's `evaluate-metric/perplexity` (which downloads a model by id and averages
per-sequence perplexities), this takes what the caller already measured with its own model:
for each sequence, the summed negative log-likelihood in nats and the number of scored tokens.
The result is exp(total NLL / total tokens), i.e. exp of the mean token cross-entropy.
"""

import math

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Perplexity: exp of the mean per-token negative log-likelihood (nats), over the whole set."

_KWARGS_DESCRIPTION = """
Args:
    negative_log_likelihood (list of float): per sequence, the summed token NLL in nats.
    num_tokens (list of int): per sequence, the number of tokens scored.
Returns:
    perplexity (float), mean_nll (float, nats per token), num_tokens (int).
Examples:
    >>> metric = evaluate.load("hf_distill/metrics/perplexity")
    >>> metric.compute(negative_log_likelihood=[2.0, 4.0], num_tokens=[2, 4])
    {'perplexity': 2.718281828459045, 'mean_nll': 1.0, 'num_tokens': 6}
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Perplexity(evaluate.Metric):
    """The `evaluate` module of token-weighted perplexity from NLLs the caller measured (no model load)."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"negative_log_likelihood": datasets.Value("float64"), "num_tokens": datasets.Value("int64")}
            ),
        )

    def _compute(self, negative_log_likelihood, num_tokens):
        nll = np.asarray(negative_log_likelihood, dtype=np.float64)
        counts = np.asarray(num_tokens, dtype=np.int64)
        if (counts < 0).any() or (nll < 0).any():
            raise ValueError("negative_log_likelihood and num_tokens must be non-negative")
        total = int(counts.sum())
        if total == 0:
            # no scored token: any number returned here would be made up
            raise ValueError("perplexity needs at least one scored token")
        mean_nll = float(nll.sum() / total)
        return {"perplexity": math.exp(mean_nll), "mean_nll": mean_nll, "num_tokens": total}
