"""Every subcommand takes hyphenated flags; `run`'s fields (dataclass names) take both spellings."""

import argparse

import pytest

from hf_distill.cli.main import build_parser
from hf_distill.pipeline.arguments import parse_run_config


def test_run_fields_take_hyphens_and_underscores_alike():
    hyphen = parse_run_config(None, ["--teacher", "t", "--max-steps", "3", "--student-layers=2"])
    underscore = parse_run_config(None, ["--teacher", "t", "--max_steps", "3", "--student_layers=2"])
    assert hyphen[2] == underscore[2] == {"max_steps": 3, "student_layers": 2, "teacher": "t"}
    assert hyphen[1].max_steps == 3 and hyphen[0].student_layers == 2


def test_a_token_is_refused_in_either_spelling():
    for flag in ("--hub_token", "--hub-token"):
        with pytest.raises(ValueError, match="hub_token is refused"):
            parse_run_config(None, ["--teacher", "t", flag, "hf_x"])


def test_every_subcommand_flag_is_hyphenated():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) >= {"run", "evaluate", "card", "push", "push-targets", "export", "plan", "demo"}
    for name, command in sub.choices.items():
        for action in command._actions:
            long = [o for o in action.option_strings if o.startswith("--")]
            assert not long or any("_" not in o for o in long), f"hf-distill {name} {long}: no hyphenated spelling"


def test_python_m_hf_distill_cli_runs_the_command():
    """`accelerate launch -m hf_distill.cli` / `torchrun -m hf_distill.cli` run the package (cli/__main__.py)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "hf_distill.cli", "plan", "x.yaml", "--bogus"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "hf-distill plan: error: unrecognized arguments: --bogus" in done.stderr


def test_the_cli_module_docstring_lists_every_subcommand():
    """hf_distill/cli/main.py's docstring lists each subcommand the parser has, once, in `--help`'s order."""
    import importlib
    import re

    cli_main = importlib.import_module("hf_distill.cli.main")  # the module (`hf_distill.cli.main` is its function)
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    listed = re.findall(r"^- ``([a-z-]+)`` \(`?[a-z]+`?\): \S", cli_main.__doc__, flags=re.M)
    assert listed == list(sub.choices)
