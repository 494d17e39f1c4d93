"""benchmarks/sst2_recipe.py: every candidate is a valid run of the main example, chosen on the selection split,
and its CE-only baseline differs from it only in the distillation (alpha 0, no transfer rows, no teacher)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from hf_distill.pipeline.run import parse_run_config

REPO = Path(__file__).resolve().parents[1]
STUDENT_FIELDS = (
    "num_labelled", "student_layers", "trim_vocabulary", "student_intermediate_size", "num_train_epochs",
    "learning_rate", "per_device_train_batch_size", "warmup_steps", "weight_decay", "seed", "max_length",
    "selection_size", "selection_seed", "teacher", "train_sampling_strategy",
)  # fmt: skip


def value(args, cfg, key):
    """A field of a parsed run config, from PipelineArguments or DistillationConfig."""
    return getattr(args, key) if hasattr(args, key) else getattr(cfg, key)


def parsed(module, tmp_path, flags):
    """The example's YAML with the sweep's common flags, a saved teacher and `flags`: (args, config)."""
    cli = module.argparse.Namespace(selection_size=2000, selection_seed=0, smoke=False)
    base = module.common(cli) + ["--teacher", str(tmp_path / "teacher"), "--train_teacher", "no"]
    return parse_run_config(module.EXAMPLE, base + flags)[:2]


def sweep():
    spec = importlib.util.spec_from_file_location("sst2_recipe", REPO / "benchmarks" / "sst2_recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", list(sweep().CANDIDATES))
def test_candidate_and_its_ce_baseline_share_the_student_recipe(name, tmp_path):
    module = sweep()
    own, baseline = module.CANDIDATES[name]
    args, cfg = parsed(module, tmp_path, own)
    ce_args, ce_cfg = parsed(module, tmp_path, module.BASELINES[baseline])
    assert {k: value(args, cfg, k) for k in STUDENT_FIELDS} == {k: value(ce_args, ce_cfg, k) for k in STUDENT_FIELDS}
    assert args.selection_size == "2000" and args.num_transfer >= 12000 and cfg.alpha > 0
    assert ce_cfg.alpha == 0 and ce_args.num_transfer == 0 and ce_cfg.hidden_loss_weight == 0


@pytest.mark.parametrize("name", ["ce_example_random", "ce_example_random_2ep"])
def test_the_examples_extra_ce_baselines_differ_from_its_recipe_only_in_batching_and_epochs(name, tmp_path):
    module = sweep()
    ce = parsed(module, tmp_path, module.EXAMPLE_BASELINES["ce_example"])
    other = parsed(module, tmp_path, module.EXAMPLE_BASELINES[name])
    differ = {k for k in STUDENT_FIELDS if value(*ce, k) != value(*other, k)}
    assert differ <= {"train_sampling_strategy", "num_train_epochs"} and "train_sampling_strategy" in differ
    assert other[1].alpha == 0 and other[0].num_transfer == 0


def test_the_choice_reads_the_selection_split_only():
    module = sweep()

    def run(selection, validation):
        return {"measured": {"selection": {"student": selection}, "validation": {"student": validation}}}

    results = {
        "_teacher": {},
        "today": run(0.84, 0.90),
        "transfer36k": run(0.86, 0.80),
        "ce_1ep": run(0.99, 0.99),  # a baseline is never chosen
        "transfer36k_t4": {"seconds": 10.0},  # not measured yet
    }
    assert module.choose(results) == "transfer36k"
    assert module.choose({"_teacher": {}}) is None
