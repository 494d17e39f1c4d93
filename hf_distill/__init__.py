"""hf-distill: knowledge distillation for the Hugging Face stack."""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

# The public API, imported on first use so that `import hf_distill` stays fast (no torch until a name is asked for).
_EXPORTS = {
    "DistillationConfig": "config",
    "DistillationTrainer": "trainer",
    "Pipeline": "pipeline",
    "distillation_loss": "losses",
    "evaluate_pair": "measure",
    "export_onnx": "export",
    "generate_soft_targets": "soft_targets",
    "load_soft_targets": "shared_targets",
    "publish": "hub",
    "push_soft_targets": "shared_targets",
    "student_from_teacher": "students",
    "tokenize_prompt_completion": "on_policy",
    "trim_vocabulary": "vocabulary",
    "write_card": "card",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)


try:  # one version, pyproject.toml's, read from the installed metadata
    __version__ = importlib.metadata.version("hf-distill")
except importlib.metadata.PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
