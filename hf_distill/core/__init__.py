"""What every stage shares: tasks and their losses, data files and LM data formats, atomic writes, model loading
and weight checks, and the distillation report (its schema, reading and validation import no torch).

Nothing here imports from another hf_distill subpackage (tests/test_layout.py checks the layering)."""
