"""`hf-distill export`: ONNX (and int8) files beside a student, verified against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `export` subcommand."""
    ex = subparsers.add_parser(
        "export",
        help="export a student to ONNX (onnx/model.onnx) and int8 (onnx/model_quantized.onnx), verified",
        description=(
            "Export a saved model to ONNX with torch's dynamo exporter, optionally quantize it to int8 with "
            "onnxruntime, and verify both against PyTorch on texts before keeping them. Files land in "
            "STUDENT_DIR/onnx/ (the layout transformers.js and optimum load), or OUTPUT/onnx/."
        ),
    )
    ex.add_argument("student_dir", type=Path, help="folder written by save_pretrained (weights, config, tokenizer)")
    ex.add_argument("--onnx", action="store_true", default=True, help="export float32 ONNX (always on)")
    ex.add_argument("--quantize", choices=["int8", "none"], default="int8", help="also write an int8 file (default)")
    ex.add_argument("--output", type=Path, help="model folder to write onnx/ into (default: STUDENT_DIR)")
    ex.add_argument("--dataset", help="local data file with verification texts (default: built-in sentences)")
    ex.add_argument("--text-column", help="text column of --dataset (default: detected)")
    ex.add_argument("--max-samples", type=int, default=256, help="verification texts used (default 256)")
    ex.add_argument("--atol", type=float, default=1e-4, help="max |logit difference| of the float32 file (1e-4)")
    ex.add_argument("--max-length", type=int, default=128, help="truncation length of verification texts")
    ex.add_argument("--overwrite", action="store_true", help="replace an existing onnx/ folder")
    ex.add_argument(
        "--no-optimize",
        dest="optimize",
        action="store_false",
        help="keep standard ONNX operators (encoders are fused for onnxruntime by default: attention, "
        "LayerNorm, GELU; the fused files need onnxruntime)",
    )
    ex.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Run `hf-distill export`; prints one line per variant."""
    from ..export.onnx import export_onnx

    if args.max_samples is not None and args.max_samples < 1:
        raise ValueError(f"--max-samples must be >= 1, got {args.max_samples}")
    texts = None
    if args.dataset:
        from ..core.data import load_splits, text_column_of

        split = next(iter(load_splits(args.dataset).values()))
        column = text_column_of(split, args.text_column)
        texts = [t for t in split[column][: args.max_samples] if isinstance(t, str) and t.strip()]
    result = export_onnx(
        args.student_dir,
        args.output,
        quantize=None if args.quantize == "none" else args.quantize,
        texts=texts,
        atol=args.atol,
        max_length=args.max_length,
        overwrite=args.overwrite,
        optimize=args.optimize,
    )
    for check in result.checks:
        print(
            f"{check.file}: {check.disk_bytes / 1e6:.2f} MB, "
            f"max |logit diff| vs PyTorch {check.max_abs_logit_diff:.2e}, "
            f"top-1 agreement {check.top1_agreement:.2%} over {check.positions} positions"
        )
    return 0
