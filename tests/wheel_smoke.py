"""Smoke test of hf-distill as installed from its wheel: every subcommand on tiny models, against the fake Hub.

Run by .ci/wheel_smoke.sh with the python of a fresh venv that holds the wheel (never the checkout): it checks
that `hf_distill` comes from that venv, what the wheel and sdist hold, then runs `hf-distill` (the venv's console
script) for run (with ONNX export), evaluate, card, push with --space-id, push-targets, plan and demo, the demo
answering one request through gradio_client. Only tests/tiny.py and tests/fake_hub.py come from the checkout
(imported by path: they are test helpers, not part of the package). Every step runs even if an earlier one failed
(unless it needs that one's output); the exit status is 1 if any failed.

    python tests/wheel_smoke.py --dist DIST_DIR --work WORK_DIR
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import traceback
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))  # tiny.py and fake_hub.py only; the repo root (the checkout's hf_distill) stays out

TOKEN = "hf_WheelSmokeTokenForTests0123456789abcdef"
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1"}


def cli(*args: object, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Run the venv's `hf-distill` console script outside the checkout; return stdout, raise on failure."""
    command = [str(Path(sys.executable).parent / "hf-distill"), *map(str, args)]
    done = subprocess.run(
        command, cwd=WORK, env={**BASE_ENV, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:3])} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


def check_install(dist: Path) -> None:
    import importlib.metadata

    import hf_distill

    where = Path(hf_distill.__file__).resolve()
    print(f"hf_distill.__file__ = {where}; torch {importlib.metadata.version('torch')}")
    assert REPO not in where.parents, f"hf_distill was imported from the checkout {REPO}, not from the wheel"
    assert Path(sys.prefix).resolve() in where.parents, f"hf_distill is not installed in this venv ({sys.prefix})"
    version = importlib.metadata.version("hf-distill")
    assert cli("--version").strip() == f"hf-distill {version}" == f"hf-distill {hf_distill.__version__}"

    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    app = sorted(n for n in names if n.startswith("hf_distill/spaces_app/"))
    print(f"{wheel.name}: {len(names)} files:", dict(Counter(n.rsplit("/", 1)[0] for n in names)))
    print("  the app:", app)
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "spaces_app"], capture_output=True, text=True)
    if tracked.returncode == 0 and tracked.stdout:  # a git checkout: the wheel holds exactly the tracked app files
        expected = {f"hf_distill/{p}" for p in tracked.stdout.split()}
        assert set(app) == expected, f"wheel app files {app} != tracked {sorted(expected)}"
    assert {"hf_distill/py.typed", "hf_distill/templates/distilled_model_card.md"} <= set(names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Requires-Dist: torch>=2.6" in text and "==" not in "".join(
        line for line in text.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line
    ), "runtime dependencies must be lower bounds, not pins"
    (sdist,) = dist.glob("*.tar.gz")
    members = tarfile.open(sdist).getnames()
    assert any(m.endswith("/spaces_app/app.py") for m in members), "the sdist lacks spaces_app/app.py"


def make_inputs() -> dict[str, Path]:
    import tiny
    import yaml

    teacher_tok = tiny.wordpiece_tokenizer(WORK / "tok")
    teacher = WORK / "teacher"
    tiny.bert_cls(teacher_tok, num_layers=2).save_pretrained(teacher)
    teacher_tok.save_pretrained(teacher)
    train, val = WORK / "train.tsv", WORK / "validation.tsv"
    train.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in tiny.SENTIMENT * 6))
    val.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in tiny.SENTIMENT))
    config = {
        "task": "sequence-classification",
        "teacher": str(teacher),
        "train_teacher": "yes",
        "teacher_max_steps": 3,
        "teacher_batch_size": 8,
        "train_file": str(train),
        "validation_file": str(val),
        "text_column": "sentence",
        "class_names": "negative,positive",
        "num_labelled": 24,
        "num_transfer": 16,
        "max_length": 32,
        "student_layers": 1,
        "output_dir": str(WORK / "run"),
        "max_steps": 4,
        "per_device_train_batch_size": 8,
        "logging_steps": 2,
        "report_to": "none",
        "use_cpu": True,
        "disable_tqdm": True,
        "save_strategy": "no",
        "benchmark_threads": 1,
        "benchmark_runs": 2,
        "benchmark_batch_size": 4,
        "export_onnx": True,
        "quantize": "int8",
    }
    path = WORK / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return {"config": path, "validation": val, "run": WORK / "run"}


def step_run(inputs: dict[str, Path]) -> None:
    print(cli("run", inputs["config"], env=OFFLINE))
    student = inputs["run"] / "student"
    for name in (
        "model.safetensors",
        "README.md",
        "distillation_report.json",
        "onnx/model.onnx",
        "onnx/model_quantized.onnx",
    ):
        assert (student / name).is_file(), f"run wrote no {name}"


def step_evaluate_and_card(inputs: dict[str, Path]) -> None:
    run = inputs["run"]
    cli(
        "evaluate",
        "--teacher",
        run / "teacher",
        "--student",
        run / "student",
        "--dataset",
        inputs["validation"],
        "--output",
        WORK / "eval",
        "--max-samples",
        6,
        "--threads",
        1,
        "--warmup",
        0,
        "--latency-runs",
        2,
        "--throughput-runs",
        1,
        "--loss-type",
        "forward_kl",
        "--temperature",
        2,
        "--alpha",
        0.5,
        "--steps",
        4,
        "--train-dataset",
        "tiny sentiment",
        "--train-seconds",
        1.5,
        env=OFFLINE,
    )
    assert json.loads((WORK / "eval" / "distillation_report.json").read_text())["evaluation"]["num_samples"] == 6
    cli("card", "--report", WORK / "eval", "--output", WORK / "card", "--repo-id", "alice/tiny-student", env=OFFLINE)
    assert "alice/tiny-student" in (WORK / "card" / "README.md").read_text()


def step_push(inputs: dict[str, Path], hub) -> None:
    import hf_distill

    cli(
        "push",
        inputs["run"] / "student",
        "--repo-id",
        "alice/tiny-student",
        "--space-id",
        "alice/tiny-demo",
        "--teacher-repo-id",
        "alice/tiny-teacher",
        "--endpoint",
        hub.url,
        env=ONLINE,
    )
    model = hub.repo("model", "alice/tiny-student").files
    assert {"model.safetensors", "README.md", "onnx/model.onnx"} <= set(model), sorted(model)
    space = hub.repo("space", "alice/tiny-demo").files
    shipped = Path(hf_distill.__file__).parent / "spaces_app"
    # The app as the wheel installed it, byte for byte; the student has an ONNX export, so the Space's
    # requirements are the installed app's plus onnxruntime (its third column).
    assert space.get("app.py") == (shipped / "app.py").read_bytes(), "the Space's app.py is not the installed app's"
    requirements = space.get("requirements.txt", b"")
    assert requirements.startswith((shipped / "requirements.txt").read_bytes()), requirements
    assert b"\nonnxruntime\n" in requirements, requirements
    assert "sdk: gradio" in space["README.md"].decode()


def step_push_targets(inputs: dict[str, Path], hub) -> None:
    out = cli(
        "push-targets",
        inputs["run"] / "soft_targets",
        "--repo-id",
        "alice/tiny-targets",
        "--tokenizer",
        inputs["run"] / "teacher",
        "--endpoint",
        hub.url,
        env=ONLINE,
    )
    assert "alice/tiny-targets" in out and hub.repo("dataset", "alice/tiny-targets").files


def step_plan(inputs: dict[str, Path]) -> None:
    out = cli(
        "plan",
        inputs["config"],
        "--layers",
        "1",
        "--widths",
        "full",
        "--trim",
        "no",
        "--texts",
        4,
        "--json",
        WORK / "plan.json",
        env=OFFLINE,
    )
    assert "1/2 layers" in out and len(json.loads((WORK / "plan.json").read_text())["candidates"]) == 1


def step_demo(inputs: dict[str, Path]) -> None:
    from gradio_client import Client

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = inputs["run"]
    command = [
        str(Path(sys.executable).parent / "hf-distill"),
        "demo",
        "--teacher",
        str(run / "teacher"),
        "--student",
        str(run / "student"),
        "--port",
        str(port),
        "--runs",
        "1",
    ]
    log = (WORK / "demo.log").open("w")
    server = subprocess.Popen(command, cwd=WORK, env={**BASE_ENV, **OFFLINE}, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"hf-distill demo exited {server.returncode}:\n{(WORK / 'demo.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError("hf-distill demo did not start serving within 180 s") from None
                time.sleep(0.5)
        client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        try:
            outputs = client.predict("a wonderful, moving film", api_name="/classify")
        finally:
            client.close()
        # (label, stats) per column: teacher, student and, since the run exported it, the student's ONNX file;
        # then the agreement line.
        assert len(outputs) == 7, outputs
        teacher, student, onnx_student, agreement = outputs[0], outputs[2], outputs[4], outputs[6]
        for label in (teacher, student, onnx_student):
            assert {c["label"] for c in label["confidences"]} == {"negative", "positive"}, label
        assert "gree" in agreement, agreement  # "Agree" or "Disagree"
        print(f"demo answered: teacher {teacher['label']}, student {student['label']}")
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def main() -> int:
    global WORK, BASE_ENV, ONLINE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, required=True, help="folder with the built sdist and wheel")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder outside the checkout")
    args = parser.parse_args()
    WORK = args.work.resolve()
    WORK.mkdir(parents=True, exist_ok=True)
    BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PYTHONPATH"))}
    BASE_ENV.update(
        HF_HOME=str(WORK / "hf_home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        GRADIO_ANALYTICS_ENABLED="False",
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_DISABLE_XET="1",
    )
    ONLINE = {"HF_TOKEN": TOKEN}
    from fake_hub import FakeHub

    failures: list[str] = []
    timings: dict[str, float] = {}

    def step(name: str, fn: Callable[..., None], *fn_args: object) -> bool:
        start = time.monotonic()
        try:
            fn(*fn_args)
            ok = True
        except Exception:
            failures.append(name)
            print(f"FAILED {name}:\n{traceback.format_exc()}", file=sys.stderr)
            ok = False
        timings[name] = round(time.monotonic() - start, 1)
        print(f"[wheel smoke] {name}: {'ok' if ok else 'FAILED'} ({timings[name]} s)", flush=True)
        return ok

    step("install", check_install, args.dist.resolve())
    inputs: dict[str, Path] = {}
    if step("inputs", lambda: inputs.update(make_inputs())) and step("run", step_run, inputs):
        step("evaluate+card", step_evaluate_and_card, inputs)
        with FakeHub({TOKEN: ("alice", "write")}) as hub:
            step("push --space-id", step_push, inputs, hub)
            step("push-targets", step_push_targets, inputs, hub)
        step("plan", step_plan, inputs)
        step("demo", step_demo, inputs)
    print(f"[wheel smoke] {len(timings) - len(failures)}/{len(timings)} steps ok; seconds: {timings}")
    if failures:
        print(f"[wheel smoke] FAILED: {', '.join(failures)}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
