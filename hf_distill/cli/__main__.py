"""`python -m hf_distill.cli ...` (what `accelerate launch -m` and `torchrun -m` run): the `hf-distill` command."""

import sys

from .main import main

sys.exit(main())
