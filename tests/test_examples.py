"""The shipped example configs parse into the pipeline's dataclasses and point at data that exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_distill.pipeline.run import parse_run_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "examples").glob("*.yaml")))
def test_example_config_parses_and_its_files_exist(name, shared_data, monkeypatch):
    monkeypatch.chdir(REPO)  # the examples' paths are relative to the repository root, where the README runs them
    args, config, settings = parse_run_config(REPO / "examples" / name)
    assert settings and config.output_dir
    for path in (args.train_file, args.validation_file):
        if path:
            assert Path(path).is_file(), f"{name}: {path} does not exist"
