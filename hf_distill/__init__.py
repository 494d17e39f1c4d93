"""hf-distill: knowledge distillation for the Hugging Face stack.

The public API is importable from here; each name is imported on first use, so ``import hf_distill`` loads
neither torch nor transformers. The subpackages (see docs/architecture.md) hold everything else.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

from . import _deprecated

_deprecated.install()  # the old module paths (hf_distill.trainer, ...) keep working for one release

# public name -> the module that defines it
_LAZY = {
    "HfDistillError": "hf_distill.errors",
    "DistillationConfig": "hf_distill.training.config",
    "DistillationTrainer": "hf_distill.training.trainer",
    "distillation_loss": "hf_distill.core.losses",
    "tokenize_prompt_completion": "hf_distill.core.lm_data",
    "PromptCompletionCollator": "hf_distill.training.on_policy",
    "student_from_teacher": "hf_distill.students.blocks",
    "trim_vocabulary": "hf_distill.students.vocabulary",
    "generate_soft_targets": "hf_distill.targets.cache",
    "load_soft_targets": "hf_distill.targets.shared",
    "push_soft_targets": "hf_distill.targets.shared",
    "load_model": "hf_distill.core.loading",
    "DistillationReport": "hf_distill.core.report",
    "evaluate_pair": "hf_distill.evaluation.measure",
    "benchmark_pair": "hf_distill.evaluation.benchmark",
    "write_card": "hf_distill.publishing.card",
    "export_onnx": "hf_distill.export.onnx",
    "push_to_hub": "hf_distill.publishing.publish",
    "push_space": "hf_distill.publishing.space",
    "publish": "hf_distill.publishing.publish",
    "Pipeline": "hf_distill.pipeline.run",
    "run_from_config": "hf_distill.pipeline.run",
    "plan_students": "hf_distill.pipeline.planning",
}
__all__ = [
    "DistillationConfig",
    "DistillationReport",
    "DistillationTrainer",
    "HfDistillError",
    "Pipeline",
    "PromptCompletionCollator",
    "benchmark_pair",
    "distillation_loss",
    "evaluate_pair",
    "export_onnx",
    "generate_soft_targets",
    "load_model",
    "load_soft_targets",
    "plan_students",
    "publish",
    "push_soft_targets",
    "push_space",
    "push_to_hub",
    "run_from_config",
    "student_from_teacher",
    "tokenize_prompt_completion",
    "trim_vocabulary",
    "write_card",
    "__version__",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time `__getattr__` imports on first use
    from .core.lm_data import tokenize_prompt_completion
    from .core.loading import load_model
    from .core.losses import distillation_loss
    from .core.report import DistillationReport
    from .errors import HfDistillError
    from .evaluation.benchmark import benchmark_pair
    from .evaluation.measure import evaluate_pair
    from .export.onnx import export_onnx
    from .pipeline.planning import plan_students
    from .pipeline.run import Pipeline, run_from_config
    from .publishing.card import write_card
    from .publishing.publish import publish, push_to_hub
    from .publishing.space import push_space
    from .students.blocks import student_from_teacher
    from .students.vocabulary import trim_vocabulary
    from .targets.cache import generate_soft_targets
    from .targets.shared import load_soft_targets, push_soft_targets
    from .training.config import DistillationConfig
    from .training.on_policy import PromptCompletionCollator
    from .training.trainer import DistillationTrainer


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hf_distill' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # imported once: later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


try:  # one version, pyproject.toml's, read from the installed metadata
    __version__ = importlib.metadata.version("hf-distill")
except importlib.metadata.PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
