"""The `hf-distill` command, one module per subcommand:

- ``run`` (`main`): teacher → soft targets → student → evaluation → card → push, from a YAML config;
- ``evaluate`` and ``card`` (`measure`): measure a teacher/student pair into a report; write the model card;
- ``push`` (`push`): publish a student folder (and its Space) to the Hub;
- ``push-targets`` (`targets`): share a soft-target cache as a Hub dataset;
- ``export`` (`export`): ONNX float32 and int8 files beside a student;
- ``plan`` (`plan`): compare candidate students' size and speed before training;
- ``demo`` (`demo`): the Gradio app comparing teacher and student, locally.

Errors reach the user as one line ``hf-distill <command>: error: <message>`` on stderr (``hf-distill: error:``
before a subcommand is known), the traceback only with ``--debug``, ``HF_DISTILL_DEBUG=1`` or ``--log_level debug``.
Exit status (`messages` has the format and the codes):

- 0: success;
- 1: an error (bad input found on the way, a failed stage, the Hub refused);
- 2: usage error: the command line itself is wrong (argparse, flags that contradict, a bad flag value); nothing done;
- 130: interrupted (Ctrl-C); a re-run resumes.
"""

from .._deprecated import package_getattr
from .main import main

__all__ = ["main"]
__getattr__ = package_getattr(__name__)  # other names of the old module hf_distill/cli.py, with a FutureWarning
