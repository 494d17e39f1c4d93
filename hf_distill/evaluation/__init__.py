"""Measuring a teacher/student pair: task metrics and fidelity (`pair`), intervals, speed and size (`benchmark`),
sample quality of LMs, disagreement examples, held-out data, and `measure.evaluate_pair`, which writes the report."""

from .._deprecated import package_getattr

__getattr__ = package_getattr(__name__)  # the names of the old module hf_distill/evaluation.py, with a FutureWarning
