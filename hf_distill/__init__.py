"""hf-distill: knowledge distillation for the Hugging Face stack."""

from .config import DistillationConfig
from .students import student_from_teacher
from .trainer import DistillationTrainer

__all__ = ["DistillationConfig", "DistillationTrainer", "student_from_teacher"]
__version__ = "0.1.0"
