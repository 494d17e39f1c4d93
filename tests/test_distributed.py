"""Several processes (torchrun, gloo on CPU) give the single-process result; a bf16 teacher stays close to fp32."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from hf_distill import DistillationConfig, DistillationTrainer
from tests import tiny

REPO = Path(__file__).resolve().parents[1]
# Two processes with the same global batch (2 per process) as one process with 2 x 2 accumulation, SGD: the
# updates differ only by float summation order.
WEIGHT_TOLERANCE = 1e-5
# A single-node rendezvous whose store binds a free port itself (localhost:0): no port is picked, released, then raced
# for by another process, as with --master_port.
STANDALONE = ("--standalone",)


def two_processes_and_one(tmp_path, tokenizer, source: str, *extra: str):
    """Run a training script (argv: output dir, tokenizer dir, accumulation, *extra) under torchrun with 2 processes
    and accumulation 1 (into tmp_path/multi), then alone with accumulation 2 (tmp_path/single); both must succeed."""
    tok_dir = tmp_path / "tok"
    tokenizer.save_pretrained(tok_dir)
    script = tmp_path / "train.py"
    script.write_text(source)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    multi = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            *STANDALONE,
            str(script),
            str(tmp_path / "multi"),
            str(tok_dir),
            "1",
            *extra,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert multi.returncode == 0, multi.stderr[-4000:]
    single = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "single"), str(tok_dir), "2", *extra],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-4000:]
    return multi, single


def run_config(tmp_path: Path, teacher: Path, name: str, **extra) -> Path:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(tiny.CORPUS[:24]) + "\n")
    cfg = {
        "task": "causal-lm",
        "teacher": str(teacher),
        "train_file": str(corpus),
        "validation_file": str(corpus),
        "eval_max_samples": 8,
        "max_length": 32,
        "top_k": 16,
        "temperature": 1.0,
        "student_layers": 2,
        "output_dir": str(tmp_path / name),
        "max_steps": 5,
        "per_device_train_batch_size": 2,
        "train_sampling_strategy": "sequential",
        "optim": "sgd",
        "learning_rate": 0.5,
        "max_grad_norm": 0.0,
        "lr_scheduler_type": "constant",
        "alpha": 0.5,
        "report_to": "none",
        "use_cpu": True,
        "disable_tqdm": True,
        "save_strategy": "no",
        "benchmark_threads": 1,
        "benchmark_runs": 3,
        "benchmark_batch_size": 4,
        "seed": 0,
    }
    cfg.update(extra)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(tmp_path, tiny_gpt2_dir):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    multi = run_config(tmp_path, tiny_gpt2_dir, "multi")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        *STANDALONE,
        "-m",
        "hf_distill.cli",
        "run",
        str(multi),
    ]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    log = out.stdout + out.stderr
    single = run_config(tmp_path, tiny_gpt2_dir, "single", gradient_accumulation_steps=2)
    out1 = subprocess.run(
        [sys.executable, "-m", "hf_distill.cli", "run", str(single)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out1.returncode == 0, out1.stderr[-4000:]

    w_multi = load_file(tmp_path / "multi" / "student" / "model.safetensors")
    w_single = load_file(tmp_path / "single" / "student" / "model.safetensors")
    init = load_file(tiny_gpt2_dir / "model.safetensors")
    assert w_multi.keys() == w_single.keys()
    moved = max(
        (w_single[k] - init[k]).abs().max().item() for k in ("transformer.wte.weight", "transformer.ln_f.weight")
    )
    assert moved > 1e-3  # training changed the weights, so the comparison means something
    for k in w_multi:
        torch.testing.assert_close(w_multi[k], w_single[k], atol=WEIGHT_TOLERANCE, rtol=0, msg=k)
    # the main process alone evaluates, writes the card and the report
    assert log.count("stage evaluate: running") == 1 and log.count("stage card: running") == 1
    assert log.count("stage student: running") == 2  # both processes train
    assert (tmp_path / "multi" / "student" / "README.md").is_file()
    assert not list((tmp_path / "multi").glob("**/README.md"))[1:]  # one card only


def test_bf16_teacher_kd_loss_close_to_fp32(tmp_path, bpe_tokenizer):
    tok = bpe_tokenizer
    teacher = tiny.gpt2(tok, 4)
    with torch.no_grad():
        teacher.lm_head.weight.mul_(20)  # a confident teacher, so the KD term is far from zero
    student = tiny.gpt2(tok, 2)
    batch = tiny_batch(tok)
    losses = {}
    for dtype in ("float32", "bfloat16"):
        t = tiny.gpt2(tok, 4)
        t.load_state_dict(teacher.state_dict())
        args = DistillationConfig(
            output_dir=str(tmp_path), report_to=[], use_cpu=True, alpha=1.0, temperature=2.0, teacher_dtype=dtype
        )
        trainer = DistillationTrainer(model=student, teacher_model=t, args=args, processing_class=tok)
        assert next(trainer.teacher.parameters()).dtype == getattr(torch, dtype)
        with torch.no_grad():
            losses[dtype] = trainer.compute_loss(student, batch).item()
    assert losses["float32"] > 0.1
    # bf16 keeps 8 bits of mantissa: the documented bound is 2% of the loss
    assert losses["bfloat16"] == pytest.approx(losses["float32"], rel=2e-2)


def tiny_batch(tok):
    from transformers import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(tok, mlm=False)([tok(t) for t in tiny.CORPUS[:6]])


# The end of every torchrun script: each rank past its last collective (rank 0 may still be saving), then the group
# torn down while the interpreter is whole, then no interpreter finalization at all: gloo worker threads that still
# hold work when the interpreter finalizes abort a finished process ("terminate called without an active
# exception", SIGABRT; pytorch/pytorch#190489), which torchrun reports as a failed run.
SCRIPT_END = """
if torch.distributed.is_initialized():
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
"""

DDP_PROJECTIONS_SCRIPT = (
    """
import json
import os
import sys
import torch
from datasets import Dataset
from transformers import AutoTokenizer, DataCollatorForLanguageModeling
from transformers import AutoTokenizer

from hf_distill import DistillationConfig, DistillationTrainer
from tests import tiny

out, tok_dir, ga = sys.argv[1], sys.argv[2], int(sys.argv[3])
tok = AutoTokenizer.from_pretrained(tok_dir)
torch.manual_seed(0)
teacher = tiny.gpt2(tok, 4, hidden=32)
torch.manual_seed(1)
student = tiny.gpt2(tok, 2, hidden=16)  # narrower than the teacher: hidden states go through projections
data = Dataset.from_dict({"text": tiny.CORPUS[:16]})
data = data.map(lambda b: tok(b["text"], truncation=True, max_length=32), batched=True, remove_columns=["text"])
cfg = DistillationConfig(
    output_dir=out, report_to=[], use_cpu=True, per_device_train_batch_size=2, gradient_accumulation_steps=ga,
    max_steps=3, optim="sgd", learning_rate=0.5, lr_scheduler_type="constant", max_grad_norm=0.0, alpha=0.5,
    hidden_loss_weight=1.0, attention_loss_weight=1.0, layer_mapping="1:2,2:4", save_strategy="no",
    disable_tqdm=True, seed=0, train_sampling_strategy="sequential", logging_steps=1,
    per_device_eval_batch_size=2 * ga,  # evaluation batches of 4 in all, like the training ones
)
trainer = DistillationTrainer(model=student, teacher_model=teacher, args=cfg, train_dataset=data, processing_class=tok,
                              eval_dataset=data.select(range(8)),
                              data_collator=DataCollatorForLanguageModeling(tok, mlm=False))
trainer.train()
trainer.save_model(out + "/final")
logs = [h for h in trainer.state.log_history if "loss_kd" in h] + [trainer.evaluate()]
os.makedirs(out, exist_ok=True)
with open(f"{out}/logs-{cfg.process_index}.json", "w") as f:  # a file: the ranks' prints share one pipe
    json.dump(logs, f)
"""
    + SCRIPT_END
)


@pytest.fixture(scope="module")
def projections_runs(tmp_path_factory, bpe_tokenizer) -> Path:
    """DDP_PROJECTIONS_SCRIPT run under torchrun (``multi``) and alone with 2x accumulation (``single``), once."""
    tmp_path = tmp_path_factory.mktemp("ddp-projections")
    two_processes_and_one(tmp_path, bpe_tokenizer, DDP_PROJECTIONS_SCRIPT)
    return tmp_path


@pytest.mark.slow
def test_torchrun_projections_are_averaged_like_the_student(projections_runs):
    """The projections live in the module DDP wraps: two processes give the one-process weights and projections."""
    tmp_path = projections_runs
    for name in ("model.safetensors", "distillation_projections.safetensors"):
        w_multi = load_file(tmp_path / "multi" / "final" / name)
        w_single = load_file(tmp_path / "single" / "final" / name)
        assert w_multi.keys() == w_single.keys()
        for k in w_multi:
            torch.testing.assert_close(w_multi[k], w_single[k], atol=WEIGHT_TOLERANCE, rtol=0, msg=f"{name}: {k}")
    proj = load_file(tmp_path / "single" / "final" / "distillation_projections.safetensors")
    assert set(proj) == {"0.weight", "0.bias", "1.weight", "1.bias"}


@pytest.mark.slow
def test_torchrun_logs_the_loss_components_of_one_process(projections_runs):
    """Each process's components are its share of the global per-item value (divided by counts over all processes):
    summed, not averaged, they are the one-process values, like `loss`; both ranks log the same figures."""
    multi, other, single = (
        json.loads((projections_runs / run / f"logs-{rank}.json").read_text())
        for run, rank in (("multi", 0), ("multi", 1), ("single", 0))
    )
    assert len(multi) == len(single) == 4 and multi[:3] == other[:3]
    names = ("loss", "loss_kd", "loss_ce", "loss_hidden", "loss_attn")
    for got, want in zip(multi, single):  # three training logs, then the evaluation (eval_loss_kd, ...)
        prefix = "eval_" if "eval_loss" in want else ""
        for name in (prefix + n for n in names):
            assert want[name] > 0, name  # every term is active, so the comparison means something
            assert got[name] == pytest.approx(want[name], rel=1e-4, abs=2e-6), name


DDP_SEQ_KD_SCRIPT = (
    """
import json
import os
import sys
import torch
from datasets import Dataset
from transformers import AutoTokenizer
from transformers import AutoTokenizer

from hf_distill import DistillationConfig, DistillationTrainer
from hf_distill.training.on_policy import tokenize_prompt_completion
from tests import tiny

out, tok_dir, ga, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
tok = AutoTokenizer.from_pretrained(tok_dir)
torch.manual_seed(0)
teacher = tiny.gpt2(tok, 4)
with torch.no_grad():
    teacher.lm_head.weight.mul_(20)  # a confident teacher: clear greedy choices
torch.manual_seed(1)
student = tiny.gpt2(tok, 2)
# prompts of 1 to 4 words: the processes generate from prompts of different lengths
words = [line.split() for line in tiny.CORPUS[:12]]
pairs = {"prompt": [" ".join(w[: 1 + i % 4]) for i, w in enumerate(words)],
         "completion": [" " + " ".join(w[1 + i % 4 :]) for i, w in enumerate(words)]}
data = tokenize_prompt_completion(Dataset.from_dict(pairs), tok, max_length=32)
cfg = DistillationConfig(
    output_dir=out, report_to=[], use_cpu=True, per_device_train_batch_size=2, gradient_accumulation_steps=ga,
    max_steps=3, optim="sgd", learning_rate=0.5, lr_scheduler_type="constant", max_grad_norm=0.0, alpha=0.5,
    temperature=2.0, max_new_tokens=6, save_strategy="no", disable_tqdm=True, seed=0,
    train_sampling_strategy="sequential", logging_steps=1,
    **(dict(seq_kd=True, generation_temperature=0.0) if mode == "seq_kd"
       else dict(lmbda=0.5, generation_temperature=1.0)),
)
trainer = DistillationTrainer(model=student, teacher_model=teacher, args=cfg, train_dataset=data, processing_class=tok)
calls = []
generator = trainer.teacher if mode == "seq_kd" else student
generate = generator.generate
generator.generate = lambda **kw: calls.append(kw["input_ids"].shape[1]) or generate(**kw)
trainer.train()
print(f"rank {cfg.process_index}: generated {len(calls)} times from prompts of widths {calls}")
shares = [h["student_generated_share"] for h in trainer.state.log_history if "student_generated_share" in h]
os.makedirs(out, exist_ok=True)
with open(f"{out}/shares-{cfg.process_index}.json", "w") as f:  # a file: the ranks' prints share one pipe
    json.dump(shares, f)
trainer.save_model(out + "/final")
"""
    + SCRIPT_END
)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["seq_kd", "lmbda"])
def test_torchrun_generated_batches_match_one_process(tmp_path, bpe_tokenizer, mode):
    """Two processes, each generating on its own from prompts of other lengths, finish (no deadlock) and give the
    weights of one process with 2 x accumulation. seq_kd: greedy teacher completions, deterministic. lmbda = 0.5 with
    sampling: the draws and the sampling are seeded by the micro-batch's index in the global batch, so process p's
    batch is drawn and sampled as micro-batch p of the one-process run."""
    from transformers import AutoTokenizer

    multi, single = two_processes_and_one(tmp_path, bpe_tokenizer, DDP_SEQ_KD_SCRIPT, mode)
    counts = [int(n) for n in re.findall(r"rank (?:0|1): generated (\d+) times", multi.stdout + multi.stderr)]
    (total,) = [int(n) for n in re.findall(r"rank 0: generated (\d+) times", single.stdout)]
    assert len(counts) == 2 and sum(counts) == total > 0
    if mode == "seq_kd":
        assert counts == [3, 3]  # every batch
    # the logged share of student-generated micro-batches is summed over processes: the one-process figures
    shares = [
        json.loads((tmp_path / run / f"shares-{rank}.json").read_text())
        for run, rank in (("multi", 0), ("multi", 1), ("single", 0))
    ]
    assert shares[0] == shares[1] == shares[2]
    assert len(shares[0]) == 3 and (shares[0] == [0.0] * 3 if mode == "seq_kd" else sum(shares[0]) > 0)
    w_multi = load_file(tmp_path / "multi" / "final" / "model.safetensors")
    w_single = load_file(tmp_path / "single" / "final" / "model.safetensors")
    init = tiny.gpt2(AutoTokenizer.from_pretrained(tmp_path / "tok"), 2)
    assert w_multi.keys() == w_single.keys()
    moved = (w_single["transformer.ln_f.weight"] - init.transformer.ln_f.weight.detach()).abs().max().item()
    assert moved > 1e-3  # training changed the weights, so the comparison means something
    for k in w_multi:
        torch.testing.assert_close(w_multi[k], w_single[k], atol=WEIGHT_TOLERANCE, rtol=0, msg=k)
