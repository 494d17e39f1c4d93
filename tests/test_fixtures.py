"""The shared test fixtures themselves: what other tests rely on without saying so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests import tiny
from tests.conftest import SESSION_SEEDS


@pytest.mark.parametrize("consumed", [0, 1000])
def test_session_models_do_not_depend_on_what_earlier_tests_drew(
    consumed, tiny_bert_cls_dir, tiny_gpt2_dir, wordpiece_tokenizer, bpe_tokenizer
):
    torch.rand(consumed)  # an earlier test's draws, before the session fixture was first built
    expected = {
        tiny_bert_cls_dir: tiny.bert_cls(wordpiece_tokenizer, num_layers=4, seed=SESSION_SEEDS["tiny-bert-cls"]),
        tiny_gpt2_dir: tiny.gpt2(bpe_tokenizer, num_layers=4, seed=SESSION_SEEDS["tiny-gpt2"]),
    }
    for folder, model in expected.items():
        saved = load_file(folder / "model.safetensors")
        for name, value in model.state_dict().items():
            if name in saved:  # tied weights are saved once
                assert torch.equal(saved[name], value), (folder.name, name)
    state = torch.get_rng_state()
    tiny.gpt2(bpe_tokenizer, num_layers=2, seed=5)
    assert torch.equal(torch.get_rng_state(), state)  # a seeded factory leaves the test's RNG where it was


@pytest.mark.slow  # two fresh interpreters
def test_the_tiny_wordpiece_vocabulary_is_the_same_in_every_process():
    # the tokenizers trainer breaks merge ties differently per process: trained per run, each run had its own vocabulary
    code = (
        "import json, sys, tempfile; from tests import tiny; "
        "print(json.dumps(sorted(tiny.wordpiece_tokenizer(tempfile.mkdtemp()).get_vocab().items())))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    vocabularies = {
        subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=300
        ).stdout
        for _ in range(2)
    }
    assert len(vocabularies) == 1
