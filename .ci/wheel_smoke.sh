#!/usr/bin/env bash
# hf-distill as users install it: build the sdist and the wheel (the wheel from the sdist), install the wheel into a
# fresh venv outside the checkout, and run every subcommand from there (tests/wheel_smoke.py).
# Usage: .ci/wheel_smoke.sh [PYTHON]   PYTHON (default: python) runs `build`; the new venv uses the same interpreter.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${1:-python}"
work="$(mktemp -d "${TMPDIR:-/tmp}/hf-distill-wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$SECONDS
"$python" -m pip install -q build
"$python" -m build --outdir "$work/dist" "$repo" >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log"; exit 1; }
"$python" -m venv "$work/venv"
# hf-distill and all of its dependencies from the wheel's metadata; only torch's build is chosen by the constraints.
"$work/venv/bin/pip" install -q -c "$repo/constraints-cpu.txt" "$(echo "$work"/dist/*.whl)[app,onnx]"
echo "[wheel smoke] built and installed in $((SECONDS - start)) s"
cd "$work"
env -u PYTHONPATH "$work/venv/bin/python" "$repo/tests/wheel_smoke.py" --dist "$work/dist" --work "$work/smoke"
echo "[wheel smoke] wall time $((SECONDS - start)) s"
