"""hf-distill: knowledge distillation for the Hugging Face stack."""

import importlib.metadata

from .config import DistillationConfig
from .students import student_from_teacher
from .trainer import DistillationTrainer

__all__ = ["DistillationConfig", "DistillationTrainer", "student_from_teacher"]
try:  # one version, pyproject.toml's, read from the installed metadata
    __version__ = importlib.metadata.version("hf-distill")
except importlib.metadata.PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
