"""Task metrics through the `evaluate` library.

Accuracy and F1 come from the Hub's canonical modules when the Hub is reachable, else from the identical modules
shipped in `hf_distill/metrics/` (loaded with `evaluate.load(<path>)`); perplexity always comes from the shipped
module, because the Hub's `perplexity` downloads a model by id and averages per-sequence perplexities, a different
number. The source of every metric is recorded in the report.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

METRICS_DIR = Path(__file__).resolve().parents[1] / "metrics"  # hf_distill/metrics/
HUB_METRICS = frozenset({"accuracy", "f1"})  # Hub modules whose definition matches ours exactly
_TRUE = {"1", "ON", "YES", "TRUE"}


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

    Args:
        name: accuracy, f1 or perplexity.
        source: "auto" (the Hub's canonical module when online and one exists, else the shipped one), "hub"
            (the Hub's only; raises when unreachable) or "local" (the shipped one).
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
