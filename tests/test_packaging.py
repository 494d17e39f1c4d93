"""What pyproject.toml declares for the wheel: every package, the shipped Space app, typing marker, metadata."""

from pathlib import Path

from setuptools import find_namespace_packages
from setuptools.config.pyprojecttoml import load_file  # tomllib, or its backport on Python 3.10

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = load_file(REPO / "pyproject.toml")


def test_every_package_and_the_space_app_are_in_the_wheel():
    setuptools = PYPROJECT["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    # a folder added under hf_distill/ and not listed would be missing from the wheel (found only in a checkout)
    found = find_namespace_packages(str(REPO), include=["hf_distill*"], exclude=["*__pycache__*"])
    assert set(found) | {"hf_distill.spaces_app"} == listed
    assert setuptools["package-dir"] == {"hf_distill.spaces_app": "spaces_app"}  # the top-level folder, not a copy
    data = setuptools["package-data"]
    shipped = {REPO / "spaces_app" / name for name in data["hf_distill.spaces_app"]} | {REPO / "spaces_app" / "app.py"}
    assert shipped == {p for p in (REPO / "spaces_app").iterdir() if p.is_file()}  # every file of the app, no more
    assert "py.typed" in data["hf_distill"] and (REPO / "hf_distill" / "py.typed").is_file()


def test_runtime_dependencies_have_no_exact_pins():
    deps = PYPROJECT["project"]["dependencies"]
    assert not [d for d in deps if "==" in d or "===" in d or "~=" in d]
    assert "torch>=2.6" in deps  # a lower bound: the user's torch build stays
