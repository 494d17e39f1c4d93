"""The errors hf-distill raises on purpose: one base, `HfDistillError`, and the specific errors under it.

Each specific error also keeps the built-in base its callers caught before (``except ValueError`` still catches
`InvalidReport`, ``except RuntimeError`` still catches `HubPublishError`), so ``except HfDistillError`` is new, not
required. The specific classes live beside the code that raises them and are importable from there too.
"""

from __future__ import annotations

__all__ = ["HfDistillError"]


class HfDistillError(Exception):
    """Base of every error hf-distill raises on purpose: a problem with the user's input, files or the Hub, stated
    in one line that names the problem and the fix (the CLI prints it as ``hf-distill <command>: error: <line>``)."""
