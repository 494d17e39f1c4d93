"""Building a smaller student from its teacher: copied blocks and layouts (`blocks`), vocabulary trimming
(`vocabulary`), tokenizer training and the teacher/student compatibility checks."""

from .._deprecated import package_getattr

__getattr__ = package_getattr(__name__)  # the names of the old module hf_distill/students.py, with a FutureWarning
