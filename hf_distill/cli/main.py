"""The `hf-distill` parser and entry point, and the `run` subcommand (the others: one module each in this package).

The subcommands, as ``hf-distill --help`` lists them (the module that defines each in brackets):

- ``run`` (here): teacher → soft targets → student → evaluation → card → push from a YAML config, resumable;
- ``evaluate`` (`measure`): measure teacher vs student (size, speed, task metrics, fidelity) into a report;
- ``card`` (`measure`): write the model card (README.md) and its chart from distillation_report.json;
- ``push`` (`push`): publish the student, its card, report and chart (and optionally the demo Space) to the Hub;
- ``demo`` (`demo`): compare a teacher and its student side by side in a local Gradio app;
- ``export`` (`export`): export a student to ONNX, float32 and int8, each file verified against PyTorch;
- ``plan`` (`plan`): measure candidate students (layers × FFN width × trimmed vocabulary) before training;
- ``push-targets`` (`targets`): publish cached soft targets as a Hub dataset in one commit.

Errors reach the user as one line ``hf-distill <command>: error: <message>`` on stderr and exit status 1; the
traceback is shown only with ``--debug`` (anywhere on the command line), ``HF_DISTILL_DEBUG=1`` or
``--log_level debug``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

from .. import __version__
from .messages import EXIT_ERROR, EXIT_INTERRUPTED, print_error


def _run(args: argparse.Namespace) -> int:
    from ..pipeline.run import run_field_parser, run_from_config

    if args.help_fields:
        run_field_parser().print_help()
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    results = run_from_config(args.config, args.overrides, check_only=args.check)
    if args.check:
        print(f"[hf-distill] {args.config or 'the configuration'}: no problems found")
        return 0
    from accelerate import PartialState

    if PartialState().is_main_process:
        for stage, info in results.items():
            state = "skipped (finished earlier)" if info.get("skipped") else f"done in {info.get('stage_seconds')} s"
            print(f"[hf-distill] {stage}: {state}")
    _end_process_group()
    return 0


def _end_process_group() -> None:
    """Destroy the torch.distributed process group of a finished torchrun run, as this process owns it.

    Left to interpreter exit, gloo's worker threads are torn down during finalization and a process can abort
    ("terminate called without an active exception", SIGABRT), so a run that finished reads as failed to torchrun
    (pytorch/pytorch#190489). Only on success: a process that failed may leave others inside a collective, where a
    collective teardown would hang them.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are two lines, like git's: the command's short usage, then the error.

    argparse prints a subcommand's whole usage first (dozens of lines for `evaluate`), and the top-level usage for
    an unknown option of a subcommand, so the error itself was lost below them.
    """

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"usage: {short_usage(self)}\n{self.prog}: error: {message}\n")


def short_usage(parser: argparse.ArgumentParser) -> str:
    """One line: the program, its required arguments, ``[options]``, and where the rest is listed."""
    required = []
    for action in parser._actions:
        if action.option_strings and action.required:
            required.append(f"{action.option_strings[0]} {action.metavar or action.dest.upper()}")
        elif not action.option_strings and action.nargs not in ("?", "*", argparse.SUPPRESS):
            required.append(action.metavar if isinstance(action.metavar, str) else action.dest)
    return " ".join([parser.prog, *required, f"[options]  (`{parser.prog} --help` lists them)"])


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each subcommand lives beside the code it drives."""
    from . import demo as cli_demo
    from . import export as cli_export
    from . import measure as cli_measure
    from . import plan as cli_plan
    from . import push as cli_hub
    from . import targets as cli_targets

    parser = _Parser(prog="hf-distill", description="Knowledge distillation for the Hugging Face stack.")
    parser.add_argument("--version", action="version", version=f"hf-distill {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="teacher → soft targets → student → evaluation → card → push, from a YAML config",
        description="Run the distillation pipeline. Any config field can be overridden: --field value "
        "(see `hf-distill run --help-fields`).",
    )
    run.add_argument("config", nargs="?", help="YAML config (fields of PipelineArguments and DistillationConfig)")
    run.add_argument("--help-fields", action="store_true", help="list every config field and exit")
    run.add_argument(
        "--check",
        action="store_true",
        help="only validate the config, data, teacher, labels and output folder (every run does this first)",
    )
    run.set_defaults(func=_run)
    cli_measure.register(sub)
    cli_hub.register(sub)
    cli_demo.register(sub)
    cli_export.register(sub)
    cli_plan.register(sub)
    cli_targets.register(sub)
    return parser


def _wants_debug(argv: list[str]) -> bool:
    if os.environ.get("HF_DISTILL_DEBUG", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    for i, arg in enumerate(argv):
        if arg in ("--log_level", "--log-level") and i + 1 < len(argv) and argv[i + 1].lower() == "debug":
            return True
        if arg.lower() in ("--log_level=debug", "--log-level=debug"):
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    """Console entry point: returns the exit status (0 ok, 1 error, 2 usage error, 130 interrupted)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or _wants_debug(argv)
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "run":
        args.overrides = rest  # `run` passes --field value pairs on to its field parser
    elif rest:  # the subcommand's own usage, not the top-level one
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[args.command]
        sub.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("hf-distill: interrupted (a re-run resumes from the last finished stage or checkpoint)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - the one place where any error becomes a message for a person
        if debug:
            traceback.print_exc()
        message = str(err).strip() or type(err).__name__
        if isinstance(err, (KeyError, AttributeError, TypeError, IndexError, AssertionError)) or not str(err).strip():
            message = f"{type(err).__name__}: {message}"
        print_error(args.command, message)
        if not debug:
            print("hf-distill: (run with --debug or HF_DISTILL_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
