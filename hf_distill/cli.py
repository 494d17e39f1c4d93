"""The `hf-distill` command: run, evaluate, card, push, demo."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def _run(args: argparse.Namespace) -> int:
    from .pipeline import main as run_main

    return run_main(([args.config] if args.config else []) + args.overrides)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each subcommand lives beside the code it drives."""
    from . import cli_demo, cli_hub, cli_measure, cli_plan

    parser = argparse.ArgumentParser(prog="hf-distill", description="Knowledge distillation for the Hugging Face stack.")
    parser.add_argument("--version", action="version", version=f"hf-distill {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="teacher → soft targets → student → evaluation → card → push, from a YAML config",
        description="Run the distillation pipeline. Any config field can be overridden: --field value "
        "(see `hf-distill run --help-fields`).",
    )
    run.add_argument("config", nargs="?", help="YAML config (fields of PipelineArguments and DistillationConfig)")
    run.add_argument("--help-fields", action="store_true", help="list every config field and exit")
    run.set_defaults(func=_run)
    cli_measure.register(sub)
    cli_hub.register(sub)
    cli_demo.register(sub)
    cli_plan.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] == "run":
        # `run` passes unknown --field value pairs through to HfArgumentParser.
        args, rest = parser.parse_known_args(argv)
        if args.help_fields:
            from .pipeline import main as run_main

            return run_main(["--help"])
        args.overrides = rest
    else:
        args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
