"""`hf-distill run` on tiny configs: every stage, skipping finished stages, resuming after a kill, refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

from hf_distill.pipeline.preflight import PreflightError
from hf_distill.pipeline.run import STATE_DIR, parse_run_config, run_from_config
from tests import tiny

REPO = Path(__file__).resolve().parents[1]


def write_sentiment(tmp_path: Path) -> tuple[Path, Path]:
    rows = tiny.SENTIMENT * 6
    train, val = tmp_path / "train.tsv", tmp_path / "validation.tsv"
    train.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
    val.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in tiny.SENTIMENT))
    return train, val


def cls_config(tmp_path: Path, teacher: Path, **extra) -> Path:
    train, val = write_sentiment(tmp_path)
    cfg = {
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
        "student_layers": 2,
        "output_dir": str(tmp_path / "run"),
        "max_steps": 4,
        "per_device_train_batch_size": 8,
        "logging_steps": 2,
        "report_to": "none",
        "use_cpu": True,
        "disable_tqdm": True,
        "save_strategy": "no",
        "benchmark_threads": 1,
        "benchmark_runs": 3,
        "benchmark_batch_size": 4,
    }
    cfg.update(extra)
    path = tmp_path / "cls.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def lm_config(tmp_path: Path, **extra) -> Path:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(tiny.CORPUS[:60]) + "\n")
    cfg = {
        "task": "causal-lm",
        "teacher": "tiny-from-scratch",
        "teacher_from_scratch": True,
        "teacher_config": json.dumps(
            {"model_type": "gpt2", "n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 64}
        ),
        "tokenizer_vocab_size": 300,
        "teacher_max_steps": 4,
        "teacher_batch_size": 8,
        "train_file": str(corpus),
        "validation_file": str(corpus),
        "eval_max_samples": 16,
        "max_length": 32,
        "top_k": 8,
        "student_layers": 1,
        "output_dir": str(tmp_path / "lmrun"),
        "max_steps": 4,
        "per_device_train_batch_size": 8,
        "temperature": 1.0,
        "report_to": "none",
        "use_cpu": True,
        "disable_tqdm": True,
        "save_strategy": "no",
        "benchmark_threads": 1,
        "benchmark_runs": 3,
        "benchmark_batch_size": 4,
    }
    cfg.update(extra)
    path = tmp_path / "lm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def validation_accuracy(model_dir: Path, rows: list[tuple[str, int]]) -> float:
    """The accuracy of the classifier saved in `model_dir` on `rows` (text, label), computed one text at a time."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        correct = sum(model(**tok(text, return_tensors="pt")).logits.argmax(-1).item() == label for text, label in rows)
    return correct / len(rows)


def markers(run: Path) -> set[str]:
    return {p.stem for p in (run / STATE_DIR).glob("*.json") if p.stem != "run_config"}


@pytest.mark.slow
def test_classification_run_completes_all_stages_then_skips_them(tmp_path, tiny_bert_cls_dir):
    # validation rows 2:1 positive, so that any constant prediction scores 1/3 or 2/3, never the same as its inverse
    val_rows = tiny.SENTIMENT + [(t, y) for t, y in tiny.SENTIMENT if y == 1]
    val = tmp_path / "validation_2to1.tsv"
    val.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in val_rows))
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, validation_file=str(val))
    results = run_from_config(cfg)
    run = tmp_path / "run"
    assert markers(run) == {"teacher", "soft_targets", "student", "evaluate", "card"}  # push_to_hub is off
    assert results["push"] == {"pushed": False, "reason": "push_to_hub is off", "stage_seconds": 0.0}
    student = run / "student"
    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "README.md",
        "distillation_report.json",
        "distillation_chart.png",
        "evaluation_examples.json",
    ):
        assert (student / name).is_file(), name
    assert json.loads((student / "config.json").read_text())["num_hidden_layers"] == 2
    assert not list(student.glob("*.bin")) and not list(student.glob("*.pt"))  # no pickles in the publishable folder
    assert results["soft_targets"]["rows"] == 40  # 24 labelled + 16 transfer rows
    assert results["student"]["global_step"] == 4
    report = json.loads((student / "distillation_report.json").read_text())
    assert report["task"] == "text-classification"
    # the reported accuracy is the saved student's on the validation file, recomputed here
    assert report["student"]["metrics"]["accuracy"] == pytest.approx(validation_accuracy(student, val_rows), abs=1e-9)
    card = ModelCard.load(student / "README.md")
    assert "distillation" in card.data.tags
    mtimes = {p: p.stat().st_mtime_ns for p in student.iterdir()}

    again = run_from_config(cfg)
    assert all(r.get("skipped") for name, r in again.items() if name != "push")
    assert {p: p.stat().st_mtime_ns for p in student.iterdir()} == mtimes  # nothing rewritten


@pytest.mark.slow
def test_a_run_with_a_given_student_finishes_with_a_card(tmp_path, tiny_bert_cls_dir, tiny_bert_cls_student_dir):
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, student=str(tiny_bert_cls_student_dir), student_layers=None)
    run_from_config(cfg)
    run = tmp_path / "run"
    assert markers(run) == {"teacher", "soft_targets", "student", "evaluate", "card"}
    card = (run / "student" / "README.md").read_text()
    assert "| Layers kept | no teacher blocks" in card
    again = run_from_config(cfg)  # a re-run finds every stage done
    assert all(again[stage]["skipped"] for stage in ("teacher", "soft_targets", "student", "evaluate", "card"))


@pytest.mark.slow
def test_push_stage_publishes_to_the_hub(tmp_path, tiny_bert_cls_dir, monkeypatch):
    from huggingface_hub import constants

    from tests.fake_hub import FakeHub, online_client

    token = "hf_PipelineTokenForTests0123456789abcdefAB"
    cfg = cls_config(tmp_path, tiny_bert_cls_dir)
    run_from_config(cfg)  # first without pushing
    with online_client(monkeypatch, tmp_path / "hf_home"), FakeHub({token: ("alice", "write")}) as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", token)
        results = run_from_config(cfg, ["--push_to_hub", "true", "--hub_model_id", "alice/tiny-sst"])
        files = dict(hub.repo("model", "alice/tiny-sst").refs["main"])
    assert results["student"]["skipped"] and "alice/tiny-sst" in results["push"]["model_commit"]
    assert {
        "model.safetensors",
        "config.json",
        "README.md",
        "distillation_report.json",
        "distillation_chart.png",
        "evaluation_examples.json",
    } <= set(files)
    assert b"## Where they disagree" in files["README.md"]
    assert not any(name.endswith(".bin") or "checkpoint" in name for name in files)
    assert all(token.encode() not in data for data in files.values())
    assert files["model.safetensors"] == (tmp_path / "run" / "student" / "model.safetensors").read_bytes()


@pytest.mark.slow
def test_other_settings_are_refused_unless_overwrite(tmp_path, tiny_bert_cls_dir):
    cfg = cls_config(tmp_path, tiny_bert_cls_dir)
    run_from_config(cfg, ["--stop_after", "teacher"])
    # how the recipe was chosen is wording for the card, not a setting: it retrains nothing and is not refused
    run_from_config(cfg, ["--recipe_chosen_by", "a sweep on the selection split", "--stop_after", "teacher"])
    with pytest.raises(PreflightError, match=r"other settings \(alpha: 0.5 -> 0.9\).*--overwrite"):
        run_from_config(cfg, ["--alpha", "0.9", "--stop_after", "teacher"])
    first = (tmp_path / "run" / STATE_DIR / "teacher.json").read_text()
    time.sleep(1.1)
    run_from_config(cfg, ["--alpha", "0.9", "--overwrite", "true", "--stop_after", "teacher"])
    assert (tmp_path / "run" / STATE_DIR / "teacher.json").read_text() != first


def test_foreign_output_dir_is_not_touched(tmp_path, tiny_bert_cls_dir):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, output_dir=str(out))
    with pytest.raises(PreflightError, match="not an hf-distill run folder"):
        run_from_config(cfg)
    assert (out / "precious.txt").read_text() == "keep me" and not (out / STATE_DIR).exists()


def test_command_line_overrides_yaml(tmp_path, tiny_bert_cls_dir):
    cfg = cls_config(tmp_path, tiny_bert_cls_dir)
    pipe, dcfg, settings = parse_run_config(cfg, ["--max_steps", "7", "--temperature", "3", "--student_layers", "1"])
    assert (dcfg.max_steps, dcfg.temperature, pipe.student_layers) == (7, 3.0, 1)
    assert pipe.num_transfer == 16 and settings["max_steps"] == 7
    with pytest.raises(ValueError, match="unknown config field.*--no_such_field.*--help-fields"):
        parse_run_config(cfg, ["--no_such_field", "1"])


@pytest.mark.slow
def test_causal_lm_from_scratch_with_topk_targets(tmp_path):
    results = run_from_config(lm_config(tmp_path))
    run = tmp_path / "lmrun"
    assert markers(run) == {"teacher", "soft_targets", "student", "evaluate", "card"}
    assert results["teacher"]["trained"] is True
    assert (run / "teacher" / "tokenizer.json").is_file()
    report = json.loads((run / "student" / "distillation_report.json").read_text())
    assert report["task"] == "text-generation" and report["student"]["metrics"]["perplexity"] > 1
    assert json.loads((run / "student" / "config.json").read_text())["n_layer"] == 1


@pytest.mark.slow
def test_killed_mid_student_resumes_from_checkpoint(tmp_path, tiny_bert_cls_dir):
    cfg = cls_config(
        tmp_path, tiny_bert_cls_dir, max_steps=400, save_strategy="steps", save_steps=5, per_device_train_batch_size=16
    )
    # PYTHONFAULTHANDLER: a run that does not stop is sent SIGABRT below and prints every thread's stack
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hf_distill.cli", "run", str(cfg)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    checkpoints = tmp_path / "run" / "student_checkpoints"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and not list(checkpoints.glob("checkpoint-*/trainer_state.json")):
            assert proc.poll() is None, "the run ended before a student checkpoint was written"
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert list(checkpoints.glob("checkpoint-*")), "no checkpoint within the time limit"
    assert markers(tmp_path / "run") == {"teacher", "soft_targets"}  # the student did not finish
    results = run_from_config(cfg, ["--max_steps", "400"])
    assert results["teacher"]["skipped"] and results["soft_targets"]["skipped"]
    assert results["student"]["resumed_from"] and "checkpoint-" in results["student"]["resumed_from"]
    assert results["student"]["global_step"] == 400
    assert markers(tmp_path / "run") == {"teacher", "soft_targets", "student", "evaluate", "card"}


def test_ctrl_c_exits_130_with_one_line(tmp_path, tiny_bert_cls_dir, monkeypatch, capsys):
    import hf_distill.pipeline.run as pipeline
    from hf_distill.cli.main import EXIT_INTERRUPTED, main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run_from_config", interrupted)
    try:
        code = main(["run", str(cls_config(tmp_path, tiny_bert_cls_dir))])
    except KeyboardInterrupt:  # escaping here would stop the whole pytest session
        pytest.fail("Ctrl-C escaped hf_distill.cli.main")
    assert code == EXIT_INTERRUPTED == 130
    err = capsys.readouterr().err
    assert err.strip() == "hf-distill: interrupted (a re-run resumes from the last finished stage or checkpoint)"


@pytest.mark.slow
def test_ctrl_c_during_training_exits_130(tmp_path, tiny_bert_cls_dir):
    # SIGINT to the process group, as a terminal's Ctrl-C sends it, while the student trains
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, max_steps=100_000, save_strategy="steps", save_steps=5)
    # PYTHONFAULTHANDLER: a run that does not stop is sent SIGABRT below and prints every thread's stack
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hf_distill.cli", "run", str(cfg)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    checkpoints = tmp_path / "run" / "student_checkpoints"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not list(checkpoints.glob("checkpoint-*/trainer_state.json")):
            assert proc.poll() is None, "the run ended before the student trained"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGABRT)
            _, err = proc.communicate(timeout=60)
            pytest.fail(f"the run did not stop within 120 s of Ctrl-C; where it was:\n{err[-6000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == 130, err[-2000:]
    assert err.rstrip().endswith(
        "hf-distill: interrupted (a re-run resumes from the last finished stage or checkpoint)"
    )
    assert "Traceback" not in err and ": error:" not in err
    assert markers(tmp_path / "run") == {"teacher", "soft_targets"}  # the student did not finish


def test_cli_entry_point(capsys):
    from hf_distill.cli.main import main

    assert main(["run", "--help-fields"]) == 0
    out = capsys.readouterr().out
    assert "--temperature" in out and "--num_transfer" in out and "--top_k" in out
    with pytest.raises(SystemExit):
        main(["--help"])
    usage = capsys.readouterr().out
    assert all(cmd in usage for cmd in ("run", "evaluate", "card", "push", "demo"))


CONTINUATION_TEMPLATE = (
    "{%- for message in messages -%}{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ message['content'] }}{{ eos_token }}{% endgeneration %}"
    "{%- else -%}{{ message['content'] }}{%- endif -%}{%- endfor -%}"
)


@pytest.mark.slow
def test_a_llama_student_goes_through_the_whole_chain(tmp_path, monkeypatch):
    """A Llama-layout teacher from scratch (its own tokenizer, a chat template set by the run), a pruned and trimmed
    student trained on-policy from conversational prompt-only rows of its own file, ONNX fp32 + int8 with the cache,
    the card (pipeline tag, base model, family), the push, and the demo's generation view."""
    import torch
    from huggingface_hub import constants
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.fake_hub import FakeHub, online_client
    from tests.test_app import load_app_module

    prompts = tmp_path / "prompts.jsonl"
    words = [line.split() for line in tiny.CORPUS[:10]]
    prompts.write_text(
        "".join(json.dumps({"prompt": [{"role": "user", "content": " ".join(w[:3])}]}) + "\n" for w in words * 2)
    )
    from tests.test_vocabulary import LLAMA_TEACHER

    llama = {**LLAMA_TEACHER, "tie_word_embeddings": True}
    cfg = lm_config(
        tmp_path,
        teacher_config=json.dumps(llama),
        chat_template=CONTINUATION_TEMPLATE,
        student_train_file=str(prompts),
        use_soft_targets=False,
        top_k=None,
        trim_vocabulary=True,
        trim_min_corpus_tokens=100,
        student_intermediate_size=32,
        lmbda=1.0,
        max_new_tokens=4,
        export_onnx=True,
        quantize="int8",
        base_model="alice/grimm-llama-teacher",
        eval_sample_prompts=4,
        eval_sample_new_tokens=4,
    )
    token = "hf_PipelineTokenForTests0123456789abcdefAB"
    with online_client(monkeypatch, tmp_path / "hf_home"), FakeHub({token: ("alice", "write")}) as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", token)
        results = run_from_config(cfg, ["--push_to_hub", "true", "--hub_model_id", "alice/tiny-llama"])
        files = dict(hub.repo("model", "alice/tiny-llama").refs["main"])
    run = tmp_path / "lmrun"
    student = AutoModelForCausalLM.from_pretrained(run / "student")
    tok = AutoTokenizer.from_pretrained(run / "student")
    assert type(student).__name__ == "LlamaForCausalLM" and student.config.intermediate_size == 32
    assert student.config.num_hidden_layers == 1 and student.config.vocabulary_kept_ids
    assert tok.chat_template == CONTINUATION_TEMPLATE  # set on the teacher's tokenizer, kept through trimming
    assert results["student"]["rows"] == 20  # the prompt-only rows, not the 60 lines the teacher learned
    checks = {c["file"]: c for c in results["export"]["checks"]}
    assert checks["onnx/model.onnx"]["max_abs_logit_diff"] <= 1e-4
    assert {"onnx/model.onnx", "onnx/model_quantized.onnx", "model.safetensors", "README.md"} <= set(files)
    card = files["README.md"].decode()
    assert "pipeline_tag: text-generation" in card and "base_model: alice/grimm-llama-teacher" in card
    assert "| Architecture | LlamaForCausalLM, a Llama-family decoder |" in card
    assert "Teacher and student are compared over the student's" in card
    # What ran, as it ran: no soft-target stage for a live teacher, the student's rows named as its training data,
    # no labelled/transfer rows and no gold labels for an LM
    report = json.loads(files["distillation_report.json"])["distillation"]
    assert report["stages"] == "teacher fine-tuning → student, the live teacher scoring each batch"
    assert report["dataset"].endswith("/prompts.jsonl")
    assert report["teacher_dataset"].endswith("corpus.txt") and report["transfer_rows"] is None
    assert "1. teacher fine-tuning\n2. student, the live teacher scoring each batch\n" in card
    assert "gold label" not in card and "each model's loss on the text itself" in card
    # the demo's generation view with the Llama pair: greedy streams equal transformers' generate
    app = load_app_module("spaces_app_llama")
    side = app.SideBySide(app.load_model(run / "teacher"), app.load_model(run / "student"))
    t_text, _, s_text, s_stats = list(side.generate("the wolf ate", 4, 1.0, False))[-1]
    ids = tok("the wolf ate", return_tensors="pt")["input_ids"]
    ref = student.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False)
    assert s_text == tok.decode(ref[0, ids.shape[1] :], skip_special_tokens=True) and "tokens/s" in s_stats


def test_a_built_teacher_is_drawn_from_the_run_seed_so_the_same_yaml_gives_the_same_teacher(tmp_path):
    """A from-scratch teacher's weights and a new classification head are random when built, before a Trainer seeds
    anything: the same run seed gives the same weights whatever the RNG did before, another seed other weights."""
    from types import SimpleNamespace

    import torch

    from hf_distill.pipeline.models import build_teacher

    tok = tiny.bpe_tokenizer(tmp_path / "bpe")
    scratch = SimpleNamespace(
        task="causal-lm",
        teacher_from_scratch=True,
        teacher_config=json.dumps({"model_type": "gpt2", "n_layer": 1, "n_embd": 16, "n_head": 2}),
    )
    tiny.bert_mlm(tiny.wordpiece_tokenizer(tmp_path / "wp"), num_layers=1).save_pretrained(tmp_path / "mlm")
    pretrained = SimpleNamespace(
        task="sequence-classification", teacher_from_scratch=False, teacher=str(tmp_path / "mlm"), train_teacher="auto"
    )
    for args, names, key in ((scratch, None, "lm_head.weight"), (pretrained, ["neg", "pos"], "classifier.weight")):

        def weights(seed, args=args, names=names, key=key):
            torch.rand(7)  # whatever ran before must not matter
            config = SimpleNamespace(seed=seed, teacher_revision=None, trust_remote_code=False)
            return build_teacher(args, config, tok, names)[0].state_dict()[key].clone()

        first = weights(42)
        assert torch.equal(first, weights(42))
        assert not torch.equal(first, weights(43))


def test_the_same_yaml_run_twice_gives_the_same_teacher_and_student(tmp_path):
    """A from-scratch run end to end up to the student: the tokenizer, the teacher's initial weights (seeded when
    built), its training and the student's are all drawn from the run's seed, so a rerun is the same run."""
    import torch
    from safetensors.torch import load_file

    cfg = lm_config(tmp_path, use_soft_targets=False, top_k=None)
    for name in ("a", "b"):
        run_from_config(cfg, ["--output_dir", str(tmp_path / name), "--stop_after", "student"])
    for model in ("teacher", "student"):
        a, b = (load_file(tmp_path / name / model / "model.safetensors") for name in ("a", "b"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), model


def test_grimm_prompts_rows_render_back_to_their_line_through_the_continuation_template(tmp_path):
    """examples/grimm_prompts.py: prompt-only rows hold a line's opening words; with --completions the rest of the
    line is the assistant turn, and prompt + completion rendered by the example's template give the line back."""
    import importlib.util

    from jinja2 import Template

    spec = importlib.util.spec_from_file_location("grimm_prompts", REPO / "examples" / "grimm_prompts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines = ["the wolf ate the old grandmother up", "too short", "a b c d"]
    assert module.prompt_rows(lines, 3) == [
        {"prompt": [{"role": "user", "content": "the wolf ate"}]},
        {"prompt": [{"role": "user", "content": "a b c"}]},
    ]
    rows = module.prompt_rows(lines, 3, completions=True)
    assert [r["completion"] for r in rows] == [
        [{"role": "assistant", "content": " the old grandmother up"}],
        [{"role": "assistant", "content": " d"}],
    ]
    template = (REPO / "examples" / "grimm_continuation.jinja").read_text()
    template = template.replace("{% generation %}", "").replace("{% endgeneration %}", "")  # transformers' tag
    rendered = Template(template).render(messages=rows[0]["prompt"] + rows[0]["completion"], eos_token="</s>")
    assert rendered == "the wolf ate the old grandmother up</s>"
    out = tmp_path / "pairs.jsonl"
    source = tmp_path / "train.txt"
    source.write_text("\n".join(lines))
    assert module.main(["--source", str(source), "--out", str(out), "--words", "3", "--completions"]) == 0
    assert [json.loads(x) for x in out.read_text().splitlines()] == rows
    assert module.main(["--source", str(source), "--out", str(out), "--words", "2"]) == 2  # other contents: kept


def test_student_train_file_and_chat_template_are_checked_before_any_stage(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": [{"role": "user", "content": "the wolf"}]}) + "\n")
    base = dict(student_train_file=str(prompts), use_soft_targets=False, top_k=None, lmbda=1.0, max_new_tokens=4)
    with pytest.raises(PreflightError) as err:  # a from-scratch tokenizer has no chat template
        run_from_config(lm_config(tmp_path, **base), check_only=True)
    assert any(
        "student_train_file: conversational prompt-only rows" in p and "set chat_template" in p
        for p in err.value.problems
    )
    template = tmp_path / "t.jinja"
    template.write_text(CONTINUATION_TEMPLATE)
    run_from_config(lm_config(tmp_path, chat_template=str(template), **base), check_only=True)  # no problem
    with pytest.raises(PreflightError) as err:  # prompt-only rows without lmbda 1
        run_from_config(lm_config(tmp_path, chat_template=str(template), **{**base, "lmbda": 0.0}), check_only=True)
    assert any(p.startswith("student_train_file: train_dataset is prompt-only") for p in err.value.problems)
    missing = tmp_path / "missing.jinja"
    with pytest.raises(FileNotFoundError, match="chat_template file .*missing.jinja not found"):
        from hf_distill.pipeline.models import read_chat_template

        read_chat_template(str(missing))
