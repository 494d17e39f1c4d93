"""``hf-distill demo``: launch the teacher-vs-student Gradio app (``spaces_app/app.py``) locally."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

APP_ENV_VAR = "HF_DISTILL_APP"
_MODULE_NAME = "hf_distill_spaces_app"


def find_app() -> Path:
    """Locate ``spaces_app/app.py``: ``$HF_DISTILL_APP``, then next to the package, then under the cwd.

    The app is not part of the installed package (a Space runs it without hf_distill), so it is only
    found in a source checkout (including an editable install) unless ``HF_DISTILL_APP`` points at it.
    """
    candidates = []
    if os.environ.get(APP_ENV_VAR):
        candidates.append(Path(os.environ[APP_ENV_VAR]))
    candidates += [
        Path(__file__).resolve().parents[1] / "spaces_app" / "app.py",
        Path.cwd() / "spaces_app" / "app.py",
    ]
    for path in candidates:
        if path.is_file():
            return path
    tried = "\n  ".join(str(p) for p in candidates)
    raise FileNotFoundError(
        f"cannot find the demo app; tried:\n  {tried}\n"
        f"Run from a checkout of hf-distill, or set {APP_ENV_VAR}=/path/to/spaces_app/app.py"
    )


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


def _report_or_none(path: str | os.PathLike) -> object | None:
    """The report that picks the export to run (the card's recommendation); None when there is none to read (the
    app then says why it shows no report)."""
    from .report import DistillationReport

    try:
        return DistillationReport.from_json(path)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_demo(args: argparse.Namespace) -> int:
    """Build the app for ``args.teacher`` / ``args.student`` and serve it until interrupted; return an exit code."""
    onnx = None
    if Path(args.student).is_dir():
        from .export import OnnxExportError, recommended_onnx_file, verify_export

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
        print(f"hf-distill demo: {exc}", file=sys.stderr)
        return 2
    kwargs = app.launch_kwargs(host=args.host, port=args.port)
    url = f"http://{kwargs['server_name']}:{kwargs['server_port']}"
    print(f"Serving teacher {args.teacher} and student {args.student} on {url}")
    demo.queue().launch(**kwargs)
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
