"""FSDP2 (`fully_shard`, gloo on CPU, 2 processes under torchrun): the chunked LM loss gives one process's gradients.

The student is sharded per block and at the root (its tied lm_head gathered by FSDP itself), or with an untied lm_head
sharded as its own unit, so that the loss reads a sharded `DTensor` weight (`chunked_losses.linear_head` gathers it
and averages its gradient back to the shards). Each process takes half of the batch; the loss is divided by the item
count of both halves; the gathered gradients must equal those of one process on the whole batch.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tests.test_distributed import REPO, SCRIPT_END, STANDALONE

SCRIPT = """\
import json, os, sys, tempfile
import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from transformers import GPT2Config, GPT2LMHeadModel
from hf_distill import DistillationConfig, DistillationTrainer

torch.manual_seed(0)
def gpt2(layers):
    return GPT2LMHeadModel(GPT2Config(vocab_size=96, n_positions=32, n_embd=16, n_layer=layers, n_head=2,
                                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
student, teacher = gpt2(1), gpt2(2)
separate_head = sys.argv[2] == "separate_head"
if separate_head:  # untied, and sharded as its own FSDP unit: the loss sees a sharded DTensor weight
    student.config.tie_word_embeddings = False
    student.lm_head.weight = torch.nn.Parameter(student.lm_head.weight.detach().clone() * 2)
import hf_distill.training.chunked_losses as cl
seen = []
_full = cl._full
cl._full = lambda t: (seen.append(type(t).__name__), _full(t))[1]
args = DistillationConfig(output_dir=tempfile.mkdtemp(), report_to=[], use_cpu=True, alpha=0.5, temperature=2.0,
                          loss_type="jsd", chunk_size=96 * 5)
ids = torch.randint(0, 96, (4, 12))
mask = torch.ones_like(ids)
mask[1, -3:] = 0
labels = ids.masked_fill(mask == 0, -100)
full = dict(input_ids=ids, attention_mask=mask, labels=labels)
trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args)
rank, world = args.process_index, args.world_size
if world == 1:
    counts = trainer._get_num_items_in_batch([full], torch.device("cpu"))
    trainer.compute_loss(student, full, num_items_in_batch=counts).backward()
    grads = {n: p.grad for n, p in student.named_parameters()}
else:
    for block in student.transformer.h:
        fully_shard(block)
    if separate_head:
        fully_shard(student.lm_head)
    fully_shard(student)
    assert type(student.lm_head.weight).__name__ == "DTensor"
    part = {k: v[rank * 2:(rank + 1) * 2] for k, v in full.items()}
    counts = trainer._get_num_items_in_batch([part], torch.device("cpu"))  # gathered over both processes
    trainer.compute_loss(student, part, num_items_in_batch=counts).backward()
    grads = {n: p.grad.full_tensor() for n, p in student.named_parameters()}
if rank == 0:
    torch.save({"grads": {n: g.detach().clone() for n, g in grads.items()}, "seen": seen}, sys.argv[1])
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["tied_root", "separate_head"])
def test_fsdp2_two_processes_match_one_process(tmp_path, mode):
    script = tmp_path / "fsdp.py"
    script.write_text(SCRIPT + SCRIPT_END)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    one = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "one.pt"), mode],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert one.returncode == 0, one.stderr[-4000:]
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            *STANDALONE,
            str(script),
            str(tmp_path / "two.pt"),
            mode,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert two.returncode == 0, two.stderr[-4000:]
    single, sharded = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    if mode == "separate_head":
        assert "DTensor" in sharded["seen"]  # the loss gathered a sharded weight itself
    assert single["grads"].keys() == sharded["grads"].keys()
    for name, grad in single["grads"].items():
        assert grad.abs().max() > 0, name
        torch.testing.assert_close(sharded["grads"][name], grad, atol=1e-6, rtol=1e-5, msg=name)
