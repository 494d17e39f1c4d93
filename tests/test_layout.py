"""The package's plan: subpackages whose imports never go round in a circle, the public API at the top level
(imported lazily: `import hf_distill` loads no torch), and the old module paths, which warn and still work."""

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import hf_distill
from hf_distill._deprecated import MOVED, SHADOWED, public_names

PACKAGE = Path(hf_distill.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = ["hf_distill", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST):
    """Every import statement, at module level and inside functions, but not under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (i for n in node.orelse for i in _imports(n))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _imports(node)


def module_graph() -> dict[str, set[str]]:
    """Module -> the hf_distill modules it imports (relative imports resolved, `from pkg import module` included)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py") if "metrics" not in p.relative_to(PACKAGE).parts}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in files)
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in files:
                    edges.add(f"{target}.{alias.name}")
                elif target in files:
                    edges.add(target)
        edges.discard(name)
        graph[name] = edges
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir() else "hf_distill"


def test_the_module_graph_has_no_cycle():
    graph = module_graph()
    assert len(graph) > 40 and "hf_distill.training.trainer" in graph["hf_distill.pipeline.run"]
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


def test_subpackages_are_layered():
    """No subpackage imports, through any module, a subpackage that imports it back; top-level modules
    (errors, space_app, the lazy __init__) import no subpackage."""
    graph = module_graph()
    packages: dict[str, set[str]] = {}
    for module, edges in graph.items():
        src = _subpackage(module)
        packages.setdefault(src, set()).update(_subpackage(e) for e in edges if _subpackage(e) != src)
    assert {"hf_distill.core", "hf_distill.training", "hf_distill.evaluation", "hf_distill.cli"} <= set(packages)
    assert _cycle(packages) is None, f"subpackage cycle: {' -> '.join(_cycle(packages))}"
    assert packages["hf_distill.core"] <= {"hf_distill"}, "core imports only the top-level modules (errors)"
    roots = {m for m in graph if _subpackage(m) == "hf_distill"}
    assert all(graph[m] <= roots for m in roots), "the top-level modules import no subpackage"


def test_a_cycle_is_found():
    """The checker itself: a graph with a cycle is reported."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_import_hf_distill_loads_no_torch_and_every_public_name_resolves():
    code = (
        "import sys, hf_distill\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "for name in hf_distill.__all__: getattr(hf_distill, name)\n"
        "print(len(hf_distill.__all__))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(hf_distill.__all__) >= 15
    assert set(hf_distill.__all__) == set(hf_distill._LAZY) | {"__version__"}
    from hf_distill.training.trainer import DistillationTrainer

    assert hf_distill.DistillationTrainer is DistillationTrainer
    with pytest.raises(AttributeError):
        hf_distill.no_such_name  # noqa: B018


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_paths_warn_and_hold_the_same_objects(old):
    names = public_names(old)
    assert names
    if old in SHADOWED:  # now a subpackage: its old names warn on use
        package = importlib.import_module(old)
        for name in names:
            if name in vars(package):  # kept on purpose (`hf_distill.cli.main`, the console script): no warning
                value = vars(package)[name]
            else:
                with pytest.warns(FutureWarning, match=MOVED[old][0].replace(".", r"\.")):
                    value = getattr(package, name)
            assert any(getattr(importlib.import_module(new), name, None) is value for new in MOVED[old])
        return
    sys.modules.pop(old, None)
    with pytest.warns(FutureWarning, match=f"{old} moved to {MOVED[old][0]}".replace(".", r"\.")):
        module = importlib.import_module(old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in names:
            home = next(importlib.import_module(n) for n in MOVED[old] if hasattr(importlib.import_module(n), name))
            assert getattr(module, name) is getattr(home, name)


@pytest.mark.parametrize(
    "where, name, builtin",
    [
        ("hf_distill.hub.http", "HubPublishError", RuntimeError),
        ("hf_distill.pipeline.run_state", "RunFolderError", RuntimeError),
        ("hf_distill.pipeline.preflight", "PreflightError", ValueError),
        ("hf_distill.export.onnx", "OnnxExportError", RuntimeError),
        ("hf_distill.targets.cache", "SoftTargetCacheError", RuntimeError),
        ("hf_distill.publishing.card", "MissingCardField", ValueError),
        ("hf_distill.core.report", "InvalidReport", ValueError),
        ("hf_distill.core.data", "DataFileError", ValueError),
    ],
)
def test_every_error_is_an_hf_distill_error_and_keeps_its_builtin_base(where, name, builtin):
    from hf_distill.errors import HfDistillError

    cls = getattr(importlib.import_module(where), name)
    assert issubclass(cls, HfDistillError) and issubclass(cls, builtin)
    with pytest.raises(builtin):  # callers that catch the built-in base still do
        raise cls("a problem")


def test_a_report_is_read_and_validated_without_torch(tmp_path):
    """The report schema imports no torch: a process where importing torch fails reads and validates one."""
    from tests.test_report import sample_report

    path = tmp_path / "distillation_report.json"
    sample_report().to_json(path)
    code = (
        "import sys\n"
        "sys.modules['torch'] = None  # importing torch now raises ImportError\n"
        "from hf_distill.core.report import DistillationReport, validate_report\n"
        f"report = DistillationReport.from_json({str(path)!r})\n"
        "validate_report(report)\n"
        "assert 'transformers' not in sys.modules\n"
        "print(report.task, report.student.name_or_path)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] in ("text-classification", "text-generation", "fill-mask")
    blocked = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['torch'] = None; import hf_distill.core.tasks"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert blocked.returncode != 0 and "torch" in blocked.stderr  # the block works: a torch module fails to import


def test_the_file_names_the_hub_selection_spells_out_agree_with_their_owners():
    from hf_distill.evaluation.disagreements import EXAMPLES_FILENAME
    from hf_distill.hub import selection
    from hf_distill.publishing.card import CARD_FILENAME

    assert (selection.EXAMPLES_FILENAME, selection.CARD_FILENAME) == (EXAMPLES_FILENAME, CARD_FILENAME)


def test_the_report_schema_names_the_tasks_of_the_tasks_module():
    from hf_distill.core.report import TASKS
    from hf_distill.core.tasks import all_tasks

    assert TASKS == tuple(t.pipeline_tag for t in all_tasks())
