"""``hf-distill demo``: launch the teacher-vs-student Gradio app (``spaces_app/app.py``) locally."""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import sys
from pathlib import Path
from types import ModuleType

from ..space_app import APP_FILENAME, find_app_dir

APP_ENV_VAR = "HF_DISTILL_APP"
_MODULE_NAME = "hf_distill_spaces_app"


def find_app() -> Path:
    """Locate ``app.py``: ``$HF_DISTILL_APP`` when set, else the app installed with hf-distill.

    The installed app is found by :func:`hf_distill.space_app.find_app_dir` (inside the package from a wheel,
    beside it in a checkout).
    """
    chosen = os.environ.get(APP_ENV_VAR)
    if chosen:  # an explicit choice that is wrong is an error, not skipped for another app
        if not Path(chosen).is_file():
            raise FileNotFoundError(
                f"{APP_ENV_VAR}={chosen} is not a file: point it at a spaces_app/app.py, or unset it to use the app "
                "installed with hf-distill"
            )
        return Path(chosen)
    try:
        return find_app_dir() / APP_FILENAME
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{exc}, or set {APP_ENV_VAR}=/path/to/spaces_app/app.py") from None


def load_app(path: str | os.PathLike | None = None) -> ModuleType:
    """Import ``spaces_app/app.py`` by path (it is a standalone script, not a package module)."""
    path = Path(path) if path is not None else find_app()
    if _MODULE_NAME in sys.modules and getattr(sys.modules[_MODULE_NAME], "__file__", None) == str(path):
        return sys.modules[_MODULE_NAME]
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered before exec so that dataclasses and pickling can resolve the module by name.
    sys.modules[_MODULE_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(_MODULE_NAME, None)
        raise
    return module


def model_problem(option: str, value: str) -> str | None:
    """Why `value` (given as `option`, e.g. ``--student``) cannot be a model for the demo, or None when it may be.

    The app loads what it is given with transformers, which reads every name that is not a folder as a Hub id: a
    mistyped path became "Repo id must use alphanumeric chars", and an ``onnx/`` export folder "Unrecognized model".

    Args:
        option: the command-line option the value came from, named in the message (``--teacher``, ``--student``).
        value: the path or Hub id given.

    Returns:
        One line naming the problem and the fix (damaged weights, an ONNX folder, a folder without config.json, a
        file, a local path that does not exist), or None when transformers may load `value`.
    """
    from ..core.loading import damaged_weights
    from ..pipeline.preflight import looks_like_local_path

    path = Path(value).expanduser()
    damaged = damaged_weights(path)
    if damaged:
        return f"{option} {value}: weights file {'; '.join(damaged)} is truncated or damaged: copy or save it again"
    if path.is_dir() and not (path / "config.json").is_file():
        if any(path.glob("*.onnx")):
            parent = path.parent if (path.parent / "config.json").is_file() else "the model folder it was exported from"
            return (
                f"{option} {value} holds ONNX files, which the demo does not run: pass {parent} (the demo runs "
                "the PyTorch weights and tokenizer saved there)"
            )
        return f"{option} {value} is not a model folder (no config.json in it): pass the folder save_pretrained wrote"
    if path.is_file():
        return f"{option} {value} is a file: pass the model folder that holds it ({path.parent})"
    # "run/studnet" has the form of a Hub id, but when "run" is a local folder it is a mistyped path
    if not path.exists() and (looks_like_local_path(value) or path.parent.is_dir() and str(path.parent) != "."):
        return f"{option} {value!r} does not exist (a local path): check the path"
    return None


def port_problem(host: str, port: int) -> str | None:
    """Why the app cannot serve on `host`:`port` (in use, or not an address of this machine), or None."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no user
            probe.bind(address)
    except OSError as err:
        return (
            f"cannot serve on {host}:{port} ({err.strerror or err}): pass --port with a free port (or stop what "
            "serves there)"
        )
    return None


def _report_or_none(path: str | os.PathLike) -> object | None:
    """The report that picks the export to run (the card's recommendation); None when there is none to read (the
    app then says why it shows no report)."""
    from ..core.report import DistillationReport

    try:
        return DistillationReport.from_json(path)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_demo(args: argparse.Namespace) -> int:
    """Build the app for ``args.teacher`` / ``args.student`` and serve it until interrupted; return an exit code."""
    problems = [
        model_problem("--teacher", args.teacher),
        model_problem("--student", args.student),
        port_problem(args.host, args.port),
    ]
    for problem in filter(None, problems):
        print(f"hf-distill demo: {problem}", file=sys.stderr)
    if any(problems):
        return 2
    onnx = None
    if Path(args.student).is_dir():
        from ..export.onnx import OnnxExportError, recommended_onnx_file, verify_export

        try:  # the report the app shows measured the student's exports: they must still be those files
            verify_export(args.student)
        except OnnxExportError as exc:
            print(f"hf-distill demo: {exc}", file=sys.stderr)
            return 2
        onnx = recommended_onnx_file(args.student, _report_or_none(args.report or args.student))
    try:
        app = load_app()
        demo = app.build_demo(args.teacher, args.student, args.report, latency_runs=args.runs, onnx=onnx)
    except ImportError as exc:
        print(f"hf-distill demo: {exc}; install the app extra: pip install 'hf-distill[app]'", file=sys.stderr)
        return 2
    except (FileNotFoundError, OSError, ValueError) as exc:
        print(f"hf-distill demo: {(str(exc).strip() or type(exc).__name__).splitlines()[0]}", file=sys.stderr)
        return 2
    kwargs = app.launch_kwargs(host=args.host, port=args.port)
    url = f"http://{kwargs['server_name']}:{kwargs['server_port']}"
    print(f"Serving teacher {args.teacher} and student {args.student} on {url}")
    try:
        demo.queue().launch(**kwargs)
    except OSError as exc:  # taken since the check above; gradio's own text points at `launch()`
        if "port" not in str(exc).lower():
            raise
        print(f"hf-distill demo: {port_problem(args.host, args.port) or exc}", file=sys.stderr)
        return 2
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``demo`` subcommand to the top-level ``hf-distill`` parser's subparsers."""
    parser = subparsers.add_parser(
        "demo",
        help="compare a teacher and its student side by side in a local Gradio app",
        description="Launch a Gradio app that runs the teacher and the student on the same input, side by side "
        "(text classification or text generation), with the distillation report's table on top.",
    )
    parser.add_argument("--teacher", required=True, help="teacher model: local path or Hub id")
    parser.add_argument("--student", required=True, help="student model: local path or Hub id")
    parser.add_argument(
        "--report",
        default=None,
        help="distillation_report.json to show (default: looked for next to the student)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, local only)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (default: %(default)s)")
    parser.add_argument(
        "--runs", type=int, default=5, help="timed runs per classification, median shown (default: %(default)s)"
    )
    parser.set_defaults(func=run_demo)
    return parser
