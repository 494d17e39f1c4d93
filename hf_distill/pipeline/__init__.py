"""`hf-distill run`: the resumable pipeline (`run`), its checks before any stage (`preflight`), the run folder's
bookkeeping (`run_state`), building the run's teacher and student (`models`) and planning a student (`planning`)."""

from .._deprecated import package_getattr

__getattr__ = package_getattr(__name__)  # the names of the old module hf_distill/pipeline.py, with a FutureWarning
