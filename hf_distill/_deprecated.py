"""Old import paths (`hf_distill.trainer`, `hf_distill.hub`, ...) that keep working for one release.

The modules moved into subpackages (see docs/architecture.md). An old path imports the module(s) it moved to and
warns `FutureWarning` naming the new path; its names are the very objects of the new modules (a `monkeypatch` of an
old path's attribute does not reach the code: patch the new module).

Two kinds of old path:
- a module name that is now free (``hf_distill.trainer``): served by `_OldPathFinder`, a `sys.meta_path` finder
  installed by ``hf_distill/__init__.py``, so no file sits at the old path (git then follows each move as a rename);
- a module name that is now a subpackage (``hf_distill.pipeline``, ``hf_distill.hub``, ...): the subpackage's
  ``__getattr__`` (`package_getattr`) answers the old module's names, with the same warning.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any

# old module -> the module(s) its names now live in (searched in this order)
MOVED: dict[str, tuple[str, ...]] = {
    "hf_distill.atomic": ("hf_distill.core.atomic",),
    "hf_distill.tasks": ("hf_distill.core.tasks",),
    "hf_distill.losses": ("hf_distill.core.losses",),
    "hf_distill.data": ("hf_distill.core.data",),
    "hf_distill.lm_data": ("hf_distill.core.lm_data",),
    "hf_distill.models": ("hf_distill.core.loading", "hf_distill.pipeline.models"),
    "hf_distill.checkpoints": ("hf_distill.core.checkpoints",),
    "hf_distill.report": ("hf_distill.core.report",),
    "hf_distill.intervals": ("hf_distill.core.intervals",),
    "hf_distill.students": ("hf_distill.students.blocks",),
    "hf_distill.vocabulary": ("hf_distill.students.vocabulary",),
    "hf_distill.tokenizer_training": ("hf_distill.students.tokenizer_training",),
    "hf_distill.compatibility": ("hf_distill.students.compatibility",),
    "hf_distill.export": ("hf_distill.export.onnx",),
    "hf_distill.hub": (
        "hf_distill.hub.http",
        "hf_distill.hub.selection",
        "hf_distill.hub.scrub",
        "hf_distill.hub.commits",
        "hf_distill.publishing.space",
        "hf_distill.publishing.publish",
    ),
    "hf_distill.soft_targets": ("hf_distill.targets.cache",),
    "hf_distill.shared_targets": ("hf_distill.targets.shared",),
    "hf_distill.config": ("hf_distill.training.config",),
    "hf_distill.trainer": ("hf_distill.training.trainer",),
    "hf_distill.chunked_losses": ("hf_distill.training.chunked_losses",),
    "hf_distill.projections": ("hf_distill.training.projections",),
    "hf_distill.on_policy": ("hf_distill.training.on_policy",),
    "hf_distill.evaluation": ("hf_distill.evaluation.pair", "hf_distill.evaluation.measure"),
    "hf_distill.measure": ("hf_distill.evaluation.measure",),
    "hf_distill.fidelity": ("hf_distill.evaluation.fidelity",),
    "hf_distill.task_metrics": ("hf_distill.evaluation.task_metrics",),
    "hf_distill.eval_data": ("hf_distill.evaluation.eval_data",),
    "hf_distill.benchmark": ("hf_distill.evaluation.benchmark",),
    "hf_distill.sample_quality": ("hf_distill.evaluation.sample_quality",),
    "hf_distill.disagreements": ("hf_distill.evaluation.disagreements",),
    "hf_distill.card": ("hf_distill.publishing.card",),
    "hf_distill.pipeline": ("hf_distill.pipeline.run",),
    "hf_distill.preflight": ("hf_distill.pipeline.preflight",),
    "hf_distill.run_state": ("hf_distill.pipeline.run_state",),
    "hf_distill.planning": ("hf_distill.pipeline.planning",),
    "hf_distill.cli": ("hf_distill.cli.main",),
    "hf_distill.cli_demo": ("hf_distill.cli.demo",),
    "hf_distill.cli_export": ("hf_distill.cli.export",),
    "hf_distill.cli_hub": ("hf_distill.cli.push",),
    "hf_distill.cli_measure": ("hf_distill.cli.measure",),
    "hf_distill.cli_plan": ("hf_distill.cli.plan",),
    "hf_distill.cli_targets": ("hf_distill.cli.targets",),
}
# old modules whose name is now a subpackage: the subpackage answers their names
SHADOWED = frozenset(
    old for old in MOVED if old.rpartition(".")[2] in ("students", "export", "hub", "evaluation", "pipeline", "cli")
)


def _warn(old: str, new: tuple[str, ...], stacklevel: int) -> None:
    where = new[0] if len(new) == 1 else " / ".join(new)
    warnings.warn(
        f"{old} moved to {where}; the old path works until the next release: import from the new one",
        FutureWarning,
        stacklevel=stacklevel,
    )


def _lookup(old: str, new: tuple[str, ...], name: str) -> Any:
    for target in new:
        module = importlib.import_module(target)
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"module {old!r} has no attribute {name!r}")


def public_names(old: str) -> list[str]:
    """The public names an old path answers (the union of its new modules' public names)."""
    names: set[str] = set()
    for target in MOVED[old]:
        module = importlib.import_module(target)
        names.update(getattr(module, "__all__", None) or (n for n in vars(module) if not n.startswith("_")))
    return sorted(names)


def package_getattr(package: str) -> Callable[[str], Any]:
    """The module ``__getattr__`` of a subpackage that took an old module's name: old names, with a warning."""
    new = MOVED[package]

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = _lookup(package, new, name)
        _warn(f"{package}.{name}", new, stacklevel=3)
        return value

    return __getattr__


class _OldModule(types.ModuleType):
    """An old path: every attribute is looked up in the new module(s)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        return _lookup(self.__name__, MOVED[self.__name__], name)

    def __dir__(self) -> list[str]:
        return public_names(self.__name__)


class _OldPathFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``hf_distill.<old module>`` for the old paths that no file holds any more."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname in MOVED and fullname not in SHADOWED:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _OldModule(spec.name, f"Moved to {', '.join(MOVED[spec.name])} (this path works for one release).")

    def exec_module(self, module: types.ModuleType) -> None:
        new = MOVED[module.__name__]
        importlib.import_module(new[0])  # an old path that fails, fails at import, as it did
        _warn(module.__name__, new, stacklevel=4)


def install() -> None:
    """Serve the old paths (idempotent; called by ``hf_distill/__init__.py``)."""
    if not any(isinstance(f, _OldPathFinder) for f in sys.meta_path):
        # first: an editable install's finder would otherwise map an old name to a stale file of another checkout
        sys.meta_path.insert(0, _OldPathFinder())
