"""Every public function, class and method of the package has an HF-style docstring.

The modules are read with `ast`, so a name counts in the module that defines it (an imported name is checked where
it is defined) and nothing is imported. Public means no leading underscore, for the module-level name and, inside a
public class, for the method (dunder methods are skipped: their meaning is the protocol's). A docstring of more than
one line for a function that takes parameters (besides self/cls) has an `Args:` section.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hf_distill

PACKAGE = Path(hf_distill.__file__).resolve().parent
# the old-path shims (thin re-exports that warn) and `python -m hf_distill.cli`'s two lines
SKIPPED = {PACKAGE / "_deprecated.py", PACKAGE / "cli" / "__main__.py"}
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p not in SKIPPED)
FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


def parameters(node: FunctionNode) -> list[str]:
    """The names a caller passes: every parameter except `self` and `cls` (`*args`, `**kwargs` included)."""
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return [n for n in names if n not in ("self", "cls")]


def public_definitions(tree: ast.Module) -> list[tuple[str, ast.ClassDef | FunctionNode]]:
    """(qualified name, node) for each public function and class at module level and each public method of those
    classes (nested public classes included)."""
    found = []

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith(
                "_"
            ):
                found.append((prefix + node.name, node))
                if isinstance(node, ast.ClassDef):
                    visit(node.body, f"{prefix}{node.name}.")

    visit(tree.body, "")
    return found


def problems(source: str) -> list[str]:
    """One line per public definition of `source` that lacks a docstring or, with parameters and a docstring of
    more than one line, an `Args:` section."""
    found = []
    for name, node in public_definitions(ast.parse(source)):
        doc = ast.get_docstring(node)
        if not doc or not doc.strip():
            found.append(f"{name} (line {node.lineno}): no docstring")
        elif not isinstance(node, ast.ClassDef) and parameters(node) and "\n" in doc.strip() and "Args:" not in doc:
            found.append(f"{name} (line {node.lineno}): takes {', '.join(parameters(node))} but has no Args:")
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_every_public_definition_has_an_hf_style_docstring(path):
    found = problems(path.read_text())
    assert not found, f"{path.relative_to(PACKAGE.parent)}:\n" + "\n".join(found)


def test_the_walk_covers_the_lazy_public_api_and_the_pipeline_stages():
    """The names `hf_distill` exports lazily and each `Pipeline.stage_*` are among the definitions checked."""
    checked = {}
    for path in MODULES:
        module = ".".join(("hf_distill", *path.relative_to(PACKAGE).with_suffix("").parts))
        for name, node in public_definitions(ast.parse(path.read_text())):
            checked[(module, name)] = node
    for name, module in hf_distill._LAZY.items():
        assert (module, name) in checked, f"{module}.{name} is exported by hf_distill but not defined there"
    stages = [name for module, name in checked if module == "hf_distill.pipeline.run" and ".stage_" in name]
    assert len(stages) >= 7, stages


def test_the_checker_catches_a_missing_docstring_and_a_missing_args_section():
    """The checker itself: removing one docstring, or the Args: of a multi-line one, is reported."""
    good = '''
class Thing:
    """A thing."""

    def stage_one(self, size: int) -> int:
        """Run stage one.

        Args:
            size: how many.
        """
        return size

    def _private(self):
        return 1


def helper(x):
    """Double `x`."""
    return 2 * x
'''
    assert problems(good) == []
    assert problems(good.replace('"""Double `x`."""', "")) == ["helper (line 17): no docstring"]
    no_args = good.replace("        Args:\n            size: how many.\n", "        Takes a size.\n")
    assert problems(no_args) == ["Thing.stage_one (line 5): takes size but has no Args:"]
    assert problems(good.replace('    """A thing."""\n', "    pass\n")) == ["Thing (line 2): no docstring"]
