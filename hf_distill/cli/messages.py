"""The one error format of the `hf-distill` command and its exit statuses (the table in docs/architecture.md).

An error is one line on stderr, ``hf-distill <command>: error: <message>`` (``hf-distill: error:`` before a
subcommand is known), the same shape argparse gives a usage error; the traceback only with ``--debug``.
"""

from __future__ import annotations

import sys

EXIT_OK = 0
EXIT_ERROR = 1  # the command ran and failed: bad input found on the way, a failed stage, the Hub refused
EXIT_USAGE = 2  # the command line itself is wrong (argparse, or flags that contradict); nothing was done
EXIT_INTERRUPTED = 130  # Ctrl-C; a re-run resumes


def error_line(command: str | None, message: str) -> str:
    """``hf-distill <command>: error: <message>``."""
    prog = f"hf-distill {command}" if command else "hf-distill"
    return f"{prog}: error: {message}"


def print_error(command: str | None, message: str) -> None:
    """Print `error_line` on stderr."""
    print(error_line(command, message), file=sys.stderr)
