"""The `hf-distill` command, one module per subcommand:

- ``run`` (`main`): teacher → soft targets → student → evaluation → card → push, from a YAML config;
- ``evaluate`` and ``card`` (`measure`): measure a teacher/student pair into a report; write the model card;
- ``push`` (`push`): publish a student folder (and its Space) to the Hub;
- ``push-targets`` (`targets`): share a soft-target cache as a Hub dataset;
- ``export`` (`export`): ONNX float32 and int8 files beside a student;
- ``plan`` (`plan`): compare candidate students' size and speed before training;
- ``demo`` (`demo`): the Gradio app comparing teacher and student, locally.

Errors reach the user as one line ``hf-distill: error: <message>`` on stderr, the traceback only with ``--debug``,
``HF_DISTILL_DEBUG=1`` or ``--log_level debug``. Exit status: 0 success, 1 error, 2 usage error (argparse),
130 interrupted.
"""

from .._deprecated import package_getattr
from .main import main

__all__ = ["main"]
__getattr__ = package_getattr(__name__)  # other names of the old module hf_distill/cli.py, with a FutureWarning
