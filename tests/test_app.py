"""The teacher-vs-student Gradio app (spaces_app/app.py): callbacks, report table, config, a served app, CLI."""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
import socket
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
APP_PATH = REPO / "spaces_app" / "app.py"
PROMPT = "once upon a time there lived"
SENTENCE = "the movie was wonderful and the actors were great"


def load_app_module(name: str = "spaces_app_under_test") -> ModuleType:
    """Import spaces_app/app.py by path, as a Space or `hf-distill demo` does (it is not a package)."""
    spec = importlib.util.spec_from_file_location(name, APP_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def launch(demo) -> str:
    """Serve `demo` on loopback without blocking; the caller closes it.

    No port is chosen here: Gradio tries its ports (GRADIO_SERVER_PORT onward) by starting the server on each
    until one binds, so no other process can take the port between choosing it and binding it.
    """
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, ssr_mode=False)
    return demo.local_url


def _sample_report() -> dict:
    """The JSON hf-distill writes for a small classification pair (accuracy 0.9 -> 0.87: 96.7% retained)."""
    from hf_distill.core.report import DistillationReport, Fidelity, ModelFigures, compute_ratios

    teacher = ModelFigures(
        "tiny-teacher", 4_000_000, 3_000_000, 16_000_000, 8.0, 9.5, 100.0, None, {"f1": 0.8, "accuracy": 0.9}
    )
    student = ModelFigures(
        "tiny-student", 1_000_000, 500_000, 4_000_000, 2.0, 2.5, 300.0, None, {"accuracy": 0.87, "f1": 0.76}
    )
    report = DistillationReport(
        task="text-classification",
        teacher=teacher,
        student=student,
        ratios=compute_ratios(teacher, student, "accuracy"),
        fidelity=Fidelity(0.95, 0.0412, 0.0101, 12),
        distillation={"temperature": 2.0, "alpha": 0.5},
        training={"epochs": 1},
        environment={"torch": "2.13"},
    )
    return json.loads(json.dumps(report.to_dict()))


SAMPLE_REPORT = _sample_report()


@pytest.fixture(scope="module")
def app(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
    return load_app_module()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def cls_side(app, tiny_bert_cls_dir, tiny_bert_cls_student_dir):
    return app.SideBySide(app.load_model(tiny_bert_cls_dir), app.load_model(tiny_bert_cls_student_dir), latency_runs=3)


@pytest.fixture(scope="module")
def gen_side(app, tiny_gpt2_dir, tiny_gpt2_student_dir):
    return app.SideBySide(app.load_model(tiny_gpt2_dir), app.load_model(tiny_gpt2_student_dir))


def _broken_forward(*args, **kwargs):
    raise RuntimeError("simulated failure inside the model")


def _record_calls(side, calls: list[str]):
    handles = [
        lm.model.register_forward_hook(lambda *_, who=who: calls.append(who))
        for who, lm in (("teacher", side.teacher), ("student", side.student))
    ]
    return handles


def _set_top_class(lm, index: int) -> None:
    """Make a classifier predict `index` whatever the input (a huge bias on that class)."""
    with torch.no_grad():
        bias = lm.model.classifier.bias
        bias.zero_()
        bias[index] = 100.0


# --------------------------------------------------------------------------------------------- tasks


def test_task_detected_from_config_and_class(app, tiny_bert_cls_dir, tiny_gpt2_dir):
    from transformers import AutoConfig, BertConfig, BertForMaskedLM

    assert app.detect_task(AutoConfig.from_pretrained(tiny_bert_cls_dir)) == "classification"
    assert app.detect_task(AutoConfig.from_pretrained(tiny_gpt2_dir)) == "generation"
    assert app.detect_task(BertConfig(architectures=["BertForCausalLM"])) == "generation"
    with pytest.raises(ValueError, match="BertForMaskedLM"):
        app.detect_task(BertConfig(architectures=["BertForMaskedLM"]))
    with pytest.raises(ValueError, match="no `architectures`"):
        app.detect_task(BertConfig())
    mlm = BertForMaskedLM(
        BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    )
    with pytest.raises(ValueError, match="BertForMaskedLM"):
        app.detect_task(mlm)


def test_teacher_and_student_must_do_the_same_task(app, cls_side, gen_side, tiny_bert_cls_dir, tiny_gpt2_dir):
    with pytest.raises(ValueError, match="same task"):
        app.SideBySide(cls_side.teacher, gen_side.student)
    with pytest.raises(ValueError, match="same task"):
        app.build_demo(tiny_bert_cls_dir, tiny_gpt2_dir, report=SAMPLE_REPORT)


# ------------------------------------------------------------------------------------ classification


def test_classify_shows_both_models_probabilities_latency_and_agreement(cls_side):
    t_probs, t_lat, s_probs, s_lat, agreement = cls_side.classify(SENTENCE)

    for lm, probs in ((cls_side.teacher, t_probs), (cls_side.student, s_probs)):
        enc = lm.tokenizer(SENTENCE, return_tensors="pt")
        with torch.no_grad():
            expected = torch.softmax(lm.model(**enc).logits[0], -1).tolist()
        assert list(probs) == ["negative", "positive"]
        assert list(probs.values()) == pytest.approx(expected, abs=1e-5)
    for text in (t_lat, s_lat):
        assert "ms" in text and "median of 3 runs" in text
    t_top, s_top = max(t_probs, key=t_probs.get), max(s_probs, key=s_probs.get)
    if t_top == s_top:
        assert agreement.startswith("**Agree**") and t_top in agreement
    else:
        assert agreement.startswith("**Disagree**") and t_top in agreement and s_top in agreement


@pytest.mark.parametrize(("teacher_class", "student_class", "verdict"), [(1, 1, "Agree"), (1, 0, "Disagree")])
def test_agreement_follows_each_models_top_class(
    app, tiny_bert_cls_dir, tiny_bert_cls_student_dir, teacher_class, student_class, verdict
):
    side = app.SideBySide(app.load_model(tiny_bert_cls_dir), app.load_model(tiny_bert_cls_student_dir), 1)
    _set_top_class(side.teacher, teacher_class)
    _set_top_class(side.student, student_class)
    t_probs, _, s_probs, _, agreement = side.classify("a dull , boring film")
    assert max(t_probs, key=t_probs.get) == ("negative", "positive")[teacher_class]
    assert max(s_probs, key=s_probs.get) == ("negative", "positive")[student_class]
    assert agreement.startswith(f"**{verdict}**")
    if verdict == "Disagree":
        assert "teacher predicts **positive**" in agreement and "student predicts **negative**" in agreement


def test_classification_runs_models_one_after_the_other_after_a_warm_up(cls_side):
    calls: list[str] = []
    handles = _record_calls(cls_side, calls)
    try:
        cls_side.classify(SENTENCE)
    finally:
        for h in handles:
            h.remove()
    runs = 1 + cls_side.latency_runs  # one warm-up, then the timed runs
    assert calls == ["teacher"] * runs + ["student"] * runs


@pytest.mark.parametrize("broken", ["teacher", "student"])
def test_classification_error_in_one_model_stays_in_its_panel(cls_side, monkeypatch, broken):
    monkeypatch.setattr(getattr(cls_side, broken).model, "forward", _broken_forward)
    t_probs, t_lat, s_probs, s_lat, agreement = cls_side.classify(SENTENCE)
    results = {"teacher": (t_probs, t_lat), "student": (s_probs, s_lat)}
    working = "student" if broken == "teacher" else "teacher"

    probs, text = results[broken]
    assert probs is None
    assert "RuntimeError" in text and "simulated failure" in text
    probs, text = results[working]
    assert sum(probs.values()) == pytest.approx(1.0) and "median of" in text
    assert "unavailable" in agreement and broken in agreement


# ---------------------------------------------------------------------------------------- generation


def test_greedy_generation_streams_what_transformers_generate_gives(gen_side):
    updates = list(gen_side.generate(PROMPT, 6, 0.8, False))
    t_text, t_stats, s_text, s_stats = updates[-1]
    for lm, text, stats in ((gen_side.teacher, t_text, t_stats), (gen_side.student, s_text, s_stats)):
        ids = lm.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
        ref = lm.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=6,
            do_sample=False,
            pad_token_id=lm.tokenizer.pad_token_id,
        )[0, ids.shape[1] :]
        assert text == lm.tokenizer.decode(ref, skip_special_tokens=True)
        n_new = sum(int(t) != lm.tokenizer.eos_token_id for t in ref)
        assert f"{n_new} new tokens, done" in stats
        assert "Time to first token" in stats and "tokens/s" in stats
    # It streams: an empty first update, then the teacher's token count grows by at most one per update.
    counts = [int(m.group(1)) for u in updates if (m := re.search(r"(\d+) new tokens", u[1]))]
    assert updates[0][0] == "" and len(updates) >= 2
    assert all(b - a in (0, 1) for a, b in zip(counts, counts[1:]))


def test_generation_models_take_turns_one_token_each(gen_side):
    calls: list[str] = []
    handles = _record_calls(gen_side, calls)
    try:
        list(gen_side.generate(PROMPT, 4, 1.0, True))
    finally:
        for h in handles:
            h.remove()
    # A warm-up prefill each, then one token each in turn; a model that hits EOS early drops out.
    assert calls[:2] == ["teacher", "student"]
    steps = calls[2:]
    n_t, n_s = steps.count("teacher"), steps.count("student")
    assert 1 <= n_t <= 4 and 1 <= n_s <= 4
    expected = [who for i in range(max(n_t, n_s)) for who, n in (("teacher", n_t), ("student", n_s)) if i < n]
    assert steps == expected


def test_generation_error_in_one_model_does_not_stop_the_other(gen_side, monkeypatch):
    monkeypatch.setattr(gen_side.teacher.model, "forward", _broken_forward)
    t_text, t_stats, s_text, s_stats = list(gen_side.generate(PROMPT, 5, 0.8, False))[-1]
    assert t_text == "" and "RuntimeError" in t_stats and "simulated failure" in t_stats
    assert "tokens/s" in s_stats and "done" in s_stats


def test_empty_input_is_not_classified(cls_side):
    calls: list[str] = []
    handles = _record_calls(cls_side, calls)
    try:
        for text in ("", "   \n\t", None):
            t_probs, t_lat, s_probs, s_lat, agreement = cls_side.classify(text)
            assert t_probs is None and s_probs is None
            assert "Nothing to classify" in agreement and "Nothing to classify" in t_lat
    finally:
        for handle in handles:
            handle.remove()
    assert calls == []  # neither model ran


def test_a_huge_input_is_cut_before_tokenizing(cls_side, monkeypatch):
    # 5 million characters: before the cap the tokenizer worked on all of them (minutes on the only queue slot)
    seen: list[int] = []
    for lm in (cls_side.teacher, cls_side.student):
        real = lm.tokenizer.__class__.__call__

        def spy(self, text, *args, _real=real, **kwargs):
            seen.append(len(text))
            assert kwargs.get("truncation") is True and kwargs.get("max_length") == 64
            return _real(self, text, *args, **kwargs)

        monkeypatch.setattr(lm.tokenizer.__class__, "__call__", spy)
    t_probs, t_lat, s_probs, s_lat, _ = cls_side.classify("wonderful " * 500_000)
    assert t_probs and s_probs and "Latency" in t_lat and "Latency" in s_lat
    assert seen and max(seen) <= cls_side.max_input_chars == 64 * 16


def test_text_boxes_are_capped(app, cls_side, gen_side):
    for side, elem in ((cls_side, "cls-input"), (gen_side, "gen-input")):
        demo = app.build_demo(side.teacher, side.student, report={})
        (box,) = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem]
        assert box.max_length == side.max_input_chars <= app.MAX_INPUT_CHARS


def test_long_prompt_is_cut_to_fit_the_context(gen_side):
    # The tiny GPT-2 has 64 positions: prompt + continuation must fit, not crash.
    *_, (t_text, t_stats, s_text, s_stats) = gen_side.generate(PROMPT * 30, 200, 0.8, False)
    assert "Error" not in t_stats and "Error" not in s_stats
    assert "done" in t_stats and "done" in s_stats


# -------------------------------------------------------------------------------------------- report


def _md_rows(md: str) -> dict[str, list[str]]:
    return {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:5]]
        for line in md.splitlines()
        if line.startswith("| ") and not line.startswith("| |")
    }


def test_report_table_shows_the_rows_stored_in_the_report(app):
    md = app.report_markdown(SAMPLE_REPORT)
    rows = _md_rows(md)
    assert rows["Parameters"] == ["4,000,000", "1,000,000", "4.00× fewer"]
    assert rows["Size on disk (MB)"] == ["16.00", "4.00", "4.00× smaller"]
    assert rows["Latency p50, batch 1 (ms)"] == ["8.00", "2.00", "4.00× faster"]
    assert rows["Throughput (samples/s)"] == ["100.0", "300.0", "3.00× faster"]
    assert rows["Accuracy"] == ["0.9000", "0.8700", "96.7% retained"]
    assert rows["F1"] == ["0.8000", "0.7600", "95.0% retained"]
    assert rows["Top-1 agreement with teacher"][1] == "95.0%"
    assert list(rows).index("Accuracy") < list(rows).index("F1")  # the primary metric first
    assert "`tiny-teacher`" in md and "`tiny-student`" in md
    assert "task: text-classification" in md  # the task name is the report's
    # the app formats nothing itself: whatever the report stores is what it shows
    edited = json.loads(json.dumps(SAMPLE_REPORT))
    edited["table"][0][3] = "as stored"
    assert _md_rows(app.report_markdown(edited))["Parameters"][2] == "as stored"


def test_report_without_a_table_says_how_to_get_one(app):
    assert app.report_markdown(None) == ""
    old = {k: v for k, v in SAMPLE_REPORT.items() if k != "table"}
    md = app.report_markdown(old)
    assert "no comparison table" in md and "hf-distill card" in md
    assert "|" not in md  # no half-derived table


def test_card_and_app_show_identical_table_rows(app, tmp_path):
    from hf_distill.core.report import REPORT_FILENAME, DistillationReport
    from hf_distill.publishing.card import write_card
    from tests.test_card import _table
    from tests.test_report import sample_report

    for task in ("text-classification", "text-generation"):
        out = tmp_path / task
        card_text = write_card(sample_report(task), out, repo_id="alice/student").read_text()
        report_json = json.loads((out / REPORT_FILENAME).read_text())
        card_rows = _table(card_text)
        app_rows = _md_rows(app.report_markdown(app.read_report(out / REPORT_FILENAME)))
        assert card_rows == app_rows
        assert list(card_rows) == [row[0] for row in DistillationReport.from_dict(report_json).table_rows()]


def test_app_shows_perplexity_as_a_multiple_of_the_teachers(app, tmp_path):
    from tests.test_report import sample_report

    report = json.loads(json.dumps(sample_report("text-generation").to_dict()))
    md = app.report_markdown(report)
    assert _md_rows(md)["Perplexity"] == ["20.0000", "25.0000", "1.25× the teacher's perplexity"]
    assert "retained" not in md


def _markdown_values(demo) -> list[str]:
    return [b.value for b in demo.blocks.values() if type(b).__name__ == "Markdown" and b.value]


def test_demo_shows_report_from_file_and_survives_a_broken_one(app, cls_side, tmp_path):
    path = tmp_path / "distillation_report.json"
    path.write_text(json.dumps(SAMPLE_REPORT))
    texts = _markdown_values(app.build_demo(cls_side.teacher, cls_side.student, report=path))
    assert any("96.7% retained" in t for t in texts)

    path.write_text("{not json")
    texts = _markdown_values(app.build_demo(cls_side.teacher, cls_side.student, report=path))
    assert any("Could not read the distillation report" in t for t in texts)


def test_report_found_next_to_the_student(app, tmp_path):
    student = tmp_path / "student"
    student.mkdir()
    assert app.find_report(student, app_dir=tmp_path / "nowhere") is None
    (tmp_path / "distillation_report.json").write_text("{}")
    assert app.find_report(student, app_dir=tmp_path / "nowhere") == tmp_path / "distillation_report.json"
    (student / "distillation_report.json").write_text("{}")
    assert app.find_report(student, app_dir=tmp_path / "nowhere") == student / "distillation_report.json"


# -------------------------------------------------------------------------------------------- config


def test_config_from_env_then_distill_config_json(app, tmp_path):
    assert app.resolve_config({}, app_dir=tmp_path) == (None, None, None)
    (tmp_path / "distill_config.json").write_text(
        json.dumps({"teacher": "org/teacher", "student": "org/student", "distillation_report": "r.json"})
    )
    assert app.resolve_config({}, app_dir=tmp_path) == ("org/teacher", "org/student", str(tmp_path / "r.json"))
    env = {"TEACHER_MODEL": "/t", "STUDENT_MODEL": "/s", "DISTILLATION_REPORT": "/r.json"}
    assert app.resolve_config(env, app_dir=tmp_path) == ("/t", "/s", "/r.json")


def test_import_without_models_shows_what_to_set(monkeypatch, tmp_path):
    for var in ("TEACHER_MODEL", "STUDENT_MODEL", "DISTILLATION_REPORT"):
        monkeypatch.delenv(var, raising=False)
    module = load_app_module("spaces_app_no_models")
    assert not (module.APP_DIR / "distill_config.json").exists()
    texts = _markdown_values(module.demo)
    assert any("No models configured" in t and "TEACHER_MODEL" in t and "STUDENT_MODEL" in t for t in texts)

    monkeypatch.setenv("TEACHER_MODEL", str(tmp_path / "missing-teacher"))
    monkeypatch.setenv("STUDENT_MODEL", str(tmp_path / "missing-student"))
    texts = _markdown_values(module.demo_from_env())
    assert any("Could not start the demo" in t and "missing-teacher" in t for t in texts)


def test_app_is_standalone_of_hf_distill():
    tree = ast.parse(APP_PATH.read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "hf_distill" not in imported
    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party <= {"gradio", "torch", "transformers", "huggingface_hub", "onnxruntime"}
    # onnxruntime is optional (a Space gets it only when the student has exports): never imported at the top
    top = {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    assert "onnxruntime" not in top
    requirements = (REPO / "spaces_app" / "requirements.txt").read_text()
    for package in ("gradio", "torch", "transformers"):
        assert package in requirements


def test_space_readme_front_matter_is_valid():
    import gradio

    text = (REPO / "spaces_app" / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gradio.__version__
    assert (REPO / "spaces_app" / meta["app_file"]).is_file()
    for key in ("title", "emoji", "colorFrom", "colorTo", "license", "models"):
        assert meta.get(key), key
    assert len(meta["short_description"]) <= 60
    colors = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
    assert {meta["colorFrom"], meta["colorTo"]} <= colors


def test_launch_binds_loopback_unless_the_space_says_otherwise(app, monkeypatch):
    import gradio

    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    kw = app.launch_kwargs()
    assert (kw["server_name"], kw["server_port"], kw["ssr_mode"]) == ("127.0.0.1", 7860, False)
    assert type(kw["theme"]).__module__.startswith("gradio.themes")
    fonts = [*kw["theme"]._font, *kw["theme"]._font_mono]
    assert not any(isinstance(f, gradio.themes.GoogleFont) for f in fonts)  # a web font could hang offline
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7861")
    kw = app.launch_kwargs()
    assert (kw["server_name"], kw["server_port"]) == ("0.0.0.0", 7861)
    assert app.launch_kwargs(host="127.0.0.1", port=9000)["server_name"] == "127.0.0.1"


# ------------------------------------------------------------------------------------- served app


@pytest.fixture(scope="module")
def served(app, cls_side, gen_side):
    """Both demos served on loopback; yields {task: (url, demo)}."""
    demos = {
        "classification": app.build_demo(cls_side.teacher, cls_side.student, report=SAMPLE_REPORT),
        "generation": app.build_demo(gen_side.teacher, gen_side.student, report={}),
    }
    try:
        yield {task: (launch(demo), demo) for task, demo in demos.items()}
    finally:
        for demo in demos.values():
            demo.close()


@pytest.fixture(scope="module")
def clients(served):
    from gradio_client import Client

    clients = {
        task: Client(url, verbose=False, analytics_enabled=False, download_files=False)
        for task, (url, _) in served.items()
    }
    yield clients
    for client in clients.values():
        client.close()


def test_client_sees_only_the_named_endpoints(clients):
    api = clients["classification"].view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/classify"}
    api = clients["generation"].view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/generate"}


def test_client_classify(clients):
    job = clients["classification"].submit(SENTENCE, api_name="/classify")
    t_label, t_lat, s_label, s_lat, agreement = job.result(timeout=60)
    assert {c["label"] for c in t_label["confidences"]} == {"negative", "positive"}
    assert {c["label"] for c in s_label["confidences"]} == {"negative", "positive"}
    assert "median of" in t_lat and "median of" in s_lat
    assert ("Agree" in agreement) == (t_label["label"] == s_label["label"])
    if t_label["label"] != s_label["label"]:
        assert "Disagree" in agreement


def test_client_generate_streams(clients):
    job = clients["generation"].submit(PROMPT, 5, 0.8, False, api_name="/generate")
    t_text, t_stats, s_text, s_stats = job.result(timeout=60)
    assert len(job.outputs()) >= 2  # streamed, not one final answer
    assert "tokens/s" in t_stats and "tokens/s" in s_stats and "done" in t_stats and "done" in s_stats


def test_client_error_in_one_model_leaves_the_other_answering(clients, served, monkeypatch):
    side = served["classification"][1].side_by_side
    monkeypatch.setattr(side.student.model, "forward", _broken_forward)
    job = clients["classification"].submit(SENTENCE, api_name="/classify")
    t_label, t_lat, s_label, s_lat, agreement = job.result(timeout=60)
    assert t_label["label"] in {"negative", "positive"} and "median of" in t_lat
    assert not s_label and "simulated failure" in s_lat  # the Label is cleared


# ---------------------------------------------------------------------------------------------- CLI


def _parser():
    from hf_distill.cli import demo as cli_demo

    parser = argparse.ArgumentParser(prog="hf-distill")
    cli_demo.register(parser.add_subparsers(dest="command"))
    return parser, cli_demo


def test_cli_demo_launches_on_loopback(monkeypatch, tiny_bert_cls_dir, tiny_bert_cls_student_dir, tmp_path):
    import gradio

    parser, cli_demo = _parser()
    (tmp_path / "distillation_report.json").write_text(json.dumps(SAMPLE_REPORT))
    args = parser.parse_args(
        [
            "demo",
            "--teacher",
            str(tiny_bert_cls_dir),
            "--student",
            str(tiny_bert_cls_student_dir),
            "--report",
            str(tmp_path),
            "--port",
            "7999",
        ]
    )
    assert args.func is cli_demo.run_demo and args.host == "127.0.0.1"
    launched = {}

    def fake_launch(self, **kwargs):  # the real one blocks until interrupted
        launched.update(kwargs, blocks=self)

    monkeypatch.setattr(gradio.Blocks, "launch", fake_launch)
    assert args.func(args) == 0
    assert launched["server_name"] == "127.0.0.1" and launched["server_port"] == 7999
    assert any("96.7% retained" in t for t in _markdown_values(launched["blocks"]))


def test_cli_demo_names_a_bad_model_path_or_port_before_loading(monkeypatch, tmp_path, tiny_bert_cls_dir, capsys):
    # before: "Repo id must use alphanumeric chars" for ./missing, transformers' "Unrecognized model ... model_type"
    # for an onnx/ folder, "Error while deserializing header" (no file) for truncated weights, and gradio's
    # "Cannot find empty port ... `launch()`" after both models were loaded
    parser, cli_demo = _parser()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run" / "student" / "onnx").mkdir(parents=True)
    (tmp_path / "run" / "student" / "config.json").write_text("{}")
    (tmp_path / "run" / "student" / "onnx" / "model.onnx").write_bytes(b"")
    monkeypatch.setattr(cli_demo, "load_app", lambda: pytest.fail("the app was loaded"))
    expected = {
        "./missing": "--student './missing' does not exist (a local path): check the path",
        "run/studnet": "--student 'run/studnet' does not exist (a local path): check the path",
        "run/student/onnx": "--student run/student/onnx holds ONNX files, which the demo does not run: pass "
        "run/student (the demo runs the PyTorch weights and tokenizer saved there)",
        "run/student/config.json": "--student run/student/config.json is a file: pass the model folder that holds it",
        "run": "--student run is not a model folder (no config.json in it)",
        "truncated": "--student truncated: weights file truncated/model.safetensors (Error while deserializing header",
    }
    import shutil

    shutil.copytree(tiny_bert_cls_dir, tmp_path / "truncated")
    weights = tmp_path / "truncated" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    for student, message in expected.items():
        # port 0 (any free one): the default 7860 may be serving another test's app, a second error line
        args = parser.parse_args(["demo", "--teacher", str(tiny_bert_cls_dir), "--student", student, "--port", "0"])
        assert args.func(args) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"hf-distill demo: {message}") and len(err.splitlines()) == 1, err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = parser.parse_args(
            ["demo", "--teacher", str(tiny_bert_cls_dir), "--student", str(tiny_bert_cls_dir), "--port", str(port)]
        )
        assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hf-distill demo: cannot serve on 127.0.0.1:{port} (") and "launch()" not in err, err
    assert err.rstrip().endswith("pass --port with a free port (or stop what serves there)"), err


def test_cli_demo_clear_errors(monkeypatch, tmp_path, tiny_bert_cls_dir, tiny_gpt2_dir, capsys):
    parser, cli_demo = _parser()
    args = parser.parse_args(
        ["demo", "--teacher", str(tiny_bert_cls_dir), "--student", str(tiny_gpt2_dir), "--port", "0"]
    )
    assert args.func(args) == 2
    assert "same task" in capsys.readouterr().err

    from hf_distill import space_app

    # an install that left the app out: neither inside the package nor beside it (nor taken from the cwd)
    installed = space_app.__file__
    monkeypatch.setattr(space_app, "__file__", str(tmp_path / "site" / "pkg" / "space_app.py"))
    (tmp_path / "spaces_app").mkdir()
    (tmp_path / "spaces_app" / "app.py").write_text("raise SystemExit('not this one')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(cli_demo.APP_ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError, match="HF_DISTILL_APP"):
        cli_demo.find_app()
    assert args.func(args) == 2
    assert "cannot find the demo app" in capsys.readouterr().err
    # a wrong HF_DISTILL_APP is named, not skipped for another app
    monkeypatch.setattr(space_app, "__file__", installed)
    monkeypatch.setenv(cli_demo.APP_ENV_VAR, str(tmp_path / "missing.py"))
    assert args.func(args) == 2
    assert f"HF_DISTILL_APP={tmp_path / 'missing.py'} is not a file" in capsys.readouterr().err


def test_the_app_is_found_inside_an_installed_package_first(monkeypatch, tmp_path):
    """A wheel installs the app as hf_distill/spaces_app/; a checkout has it beside the package."""
    from hf_distill import space_app

    assert space_app.find_app_dir() == APP_PATH.parent  # this checkout
    site = tmp_path / "site-packages"
    monkeypatch.setattr(space_app, "__file__", str(site / "hf_distill" / "space_app.py"))
    for folder in (site / "spaces_app", site / "hf_distill" / "spaces_app"):  # beside, then inside: inside wins
        folder.mkdir(parents=True)
        (folder / "app.py").write_text("")
        assert space_app.find_app_dir() == folder


# ------------------------------------------------------------------------- the showcase: ONNX, examples, your data


@pytest.fixture(scope="module")
def showcase(app, tiny_bert_cls_dir, exported_cls_student_dir):
    """The app on the tiny pair whose student has ONNX exports and an evaluation beside it (nothing passed)."""
    return app.build_demo(tiny_bert_cls_dir, exported_cls_student_dir, latency_runs=3)


def _student_probs(side, text: str) -> list[float]:
    enc = side.student.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return torch.softmax(side.student.model(**enc).logits[0], -1).tolist()


def test_the_exported_student_answers_in_a_third_column(app, showcase, tiny_bert_cls_dir, exported_cls_student_dir):
    side = showcase.side_by_side
    assert side.onnx is not None and side.onnx.name == "onnx/model_quantized.onnx"
    t_probs, t_lat, s_probs, s_lat, o_probs, o_lat, agreement = side.classify(SENTENCE)
    assert list(o_probs) == ["negative", "positive"]
    assert list(o_probs.values()) == pytest.approx(_student_probs(side, SENTENCE), abs=0.05)  # int8
    assert "ms" in o_lat and "median of 3 runs" in o_lat  # timed like the others
    assert "ONNX student" in agreement
    assert any("Student, ONNX Runtime" in t and "model_quantized.onnx" in t for t in _markdown_values(showcase))
    # the float32 export, named: the PyTorch student's probabilities to float precision
    fp32 = app.build_demo(tiny_bert_cls_dir, exported_cls_student_dir, onnx="onnx/model.onnx", latency_runs=1)
    o_probs = fp32.side_by_side.classify(SENTENCE)[4]
    assert fp32.side_by_side.onnx.name == "onnx/model.onnx"
    assert list(o_probs.values()) == pytest.approx(_student_probs(side, SENTENCE), abs=1e-4)


def test_without_onnxruntime_the_page_says_what_to_install(
    app, tiny_bert_cls_dir, exported_cls_student_dir, monkeypatch
):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails, as on a Space without it
    demo = app.build_demo(tiny_bert_cls_dir, exported_cls_student_dir, report={}, latency_runs=1)
    assert demo.side_by_side.onnx is None and len(demo.side_by_side.classify(SENTENCE)) == 5
    assert any("install `onnxruntime`" in t for t in _markdown_values(demo))


def test_the_onnx_file_comes_from_the_environment_then_distill_config(app, tmp_path):
    assert app.resolve_onnx({}, tmp_path) is None
    (tmp_path / "distill_config.json").write_text(json.dumps({"teacher": "a/t", "student": "a/s", "onnx": "onnx/x"}))
    assert app.resolve_onnx({}, tmp_path) == "onnx/x"
    assert app.resolve_onnx({"STUDENT_ONNX": "onnx/model.onnx"}, tmp_path) == "onnx/model.onnx"


def test_the_examples_table_holds_the_evaluation_file(app, showcase, exported_cls_student_dir):
    data = json.loads((exported_cls_student_dir / "evaluation_examples.json").read_text())
    headers, rows = app.examples_table(app.read_examples(exported_cls_student_dir / "evaluation_examples.json"))
    assert headers[-1] == "Text" and [r[-1] for r in rows] == [r["text"] for r in data["rows"]]
    assert [r[1] for r in rows] == ["yes" if r["agree"] else "no" for r in data["rows"]]
    intro = app.examples_intro(data)
    assert f"{data['num_disagreements']} of {data['num_evaluated']}" in intro
    assert any(intro in t for t in _markdown_values(showcase))  # found beside the student, nothing passed


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d.update(schema_version=2), "schema_version"),
        (lambda d: d["rows"][0].update(teacher_probs=[1.5, -0.5]), "teacher_probs"),
        (lambda d: d["rows"][0].update(divergence=float("nan")), "divergence"),
        (lambda d: d["rows"][0].pop("text"), "no text"),
    ],
)
def test_a_corrupted_examples_file_is_refused_in_one_line(app, exported_cls_student_dir, edit, needle):
    data = json.loads((exported_cls_student_dir / "evaluation_examples.json").read_text())
    edit(data)
    with pytest.raises(ValueError, match=needle):
        app.read_examples(data)


SENTIMENT_CSV = "sentence,label\n" + "".join(
    f'"{t}",{"positive" if y else "negative"}\n'
    for t, y in [
        ("the movie was wonderful and the actors were great", 1),
        ("a dull , boring film with a terrible plot", 0),
        ("i loved every minute of this charming story", 1),
    ]
)


def test_files_of_three_formats_read_alike(app, tmp_path):
    (tmp_path / "a.csv").write_text(SENTIMENT_CSV)
    (tmp_path / "a.tsv").write_text(
        SENTIMENT_CSV.replace('"', "").replace(",label", "\tlabel").replace(",p", "\tp").replace(",n", "\tn")
    )
    (tmp_path / "a.jsonl").write_text(
        "".join(
            json.dumps({"sentence": t, "label": y}) + "\n\n"
            for t, y in [
                ("the movie was wonderful and the actors were great", "positive"),
                ("a dull , boring film with a terrible plot", "negative"),
                ("i loved every minute of this charming story", "positive"),
            ]
        )
    )
    read = [app.read_table_file(tmp_path / f"a.{ext}") for ext in ("csv", "tsv", "jsonl")]
    assert read[0] == read[1] == read[2]
    columns, rows, total = read[0]
    assert columns == ["sentence", "label"] and total == 3 and rows[1]["label"] == "negative"
    assert app.guess_columns(columns) == ("sentence", "label")
    assert app.gold_labels(["Positive", "0", "negative"], ["negative", "positive"]) == [
        "positive",
        "negative",
        "negative",
    ]


def test_uploaded_rows_get_both_predictions_agreement_and_accuracy(app, cls_side):
    texts = [SENTENCE, "a dull , boring film with a terrible plot", "i loved every minute of this charming story"]
    golds = ["positive", "negative", "positive"]
    result = cls_side.classify_rows(texts, golds)
    by_hand = {}
    for who, lm in (("teacher", cls_side.teacher), ("student", cls_side.student)):
        preds = []
        for text in texts:
            with torch.no_grad():
                preds.append(
                    lm.model.config.id2label[
                        int(lm.model(**lm.tokenizer(text, return_tensors="pt")).logits[0].argmax())
                    ]
                )
        by_hand[who] = preds
        assert [r[who] for r in result["rows"]] == preds
        assert result["accuracy"][who] == pytest.approx(sum(p == g for p, g in zip(preds, golds)) / 3)
    agree = [t == s for t, s in zip(by_hand["teacher"], by_hand["student"])]
    assert [r["agree"] for r in result["rows"]] == agree and result["agreement"] == pytest.approx(sum(agree) / 3)
    path = app.write_results_csv(result["rows"])
    lines = path.read_text().splitlines()
    assert lines[0] == "text,label,teacher,teacher_probability,student,student_probability,agree" and len(lines) == 4
    assert cls_side.classify_rows(texts)["accuracy"] is None


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("big.csv", "text\n" + "x" * 2_100_000 + "\n", "the limit is 2 MB"),
        ("data.xlsx", "text\nhello\n", "use a .csv, .tsv or .jsonl file"),
        ("latin.csv", b"text\ncaf\xe9\n", "not UTF-8"),
        ("broken.jsonl", '{"text": "ok"}\n{"text": \n', "line 2: not valid JSON"),
        ("list.jsonl", '["a list"]\n', "a JSON object per line"),
        ("empty.csv", "text,label\n", "no rows"),
        ("ragged.csv", 'text\n"a","b"\n', "more fields than the header"),
    ],
)
def test_a_bad_file_gets_one_line(app, tmp_path, name, content, needle):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(app.UploadError, match=needle) as err:
        app.read_table_file(path)
    line = app.upload_one_line(err.value)
    assert "\n" not in line and line.startswith("**Could not use this file**") and "Traceback" not in line


def test_unknown_gold_labels_are_named(app):
    with pytest.raises(app.UploadError, match="row 2: label 'maybe'"):
        app.gold_labels(["positive", "maybe"], ["negative", "positive"])


def test_space_push_adds_onnxruntime_and_the_examples_only_with_exports(
    tmp_path, exported_cls_student_dir, tiny_bert_cls_student_dir
):
    from hf_distill.publishing import space

    app_dir = REPO / "spaces_app"
    report = exported_cls_student_dir / "distillation_report.json"
    plan = space._plan_space(
        "alice/demo",
        "alice/student",
        "alice/teacher",
        app_dir=app_dir,
        gradio_version="6.31.0",
        report_path=report,
        endpoint=None,
        student_dir=exported_cls_student_dir,
    )
    requirements = plan.generated["requirements.txt"].decode()
    assert requirements.startswith((app_dir / "requirements.txt").read_text()) and "\nonnxruntime\n" in requirements
    config = json.loads(plan.generated["distill_config.json"])
    assert config["onnx"] in ("onnx/model_quantized.onnx", "onnx/model.onnx")
    examples = json.loads(plan.generated["evaluation_examples.json"])
    assert examples == json.loads((exported_cls_student_dir / "evaluation_examples.json").read_text())
    meta = yaml.safe_load(plan.generated["README.md"].decode().split("---\n")[1])
    assert meta["models"] == ["alice/teacher", "alice/student"]
    plain = space._plan_space(
        "alice/demo",
        "alice/student",
        "alice/teacher",
        app_dir=app_dir,
        gradio_version="6.31.0",
        report_path=None,
        endpoint=None,
        student_dir=tiny_bert_cls_student_dir,
    )
    assert "requirements.txt" not in plain.generated  # the app's own, without onnxruntime
    assert "onnx" not in json.loads(plain.generated["distill_config.json"])
    assert "onnxruntime" not in (app_dir / "requirements.txt").read_text()


def test_the_demo_runs_the_export_the_card_recommends(exported_cls_student_dir, tmp_path):
    import dataclasses

    from hf_distill.core.report import DistillationReport
    from hf_distill.export.onnx import recommended_onnx_file

    report = DistillationReport.from_json(exported_cls_student_dir)
    assert [v.figures.name_or_path for v in report.variants] == ["onnx/model.onnx", "onnx/model_quantized.onnx"]
    # both exports keep the student's accuracy (the same file measured): the smaller int8 one is the card's pick
    assert recommended_onnx_file(exported_cls_student_dir, report) == "onnx/model_quantized.onnx"
    worse = dataclasses.replace(
        report.variants[1],
        figures=dataclasses.replace(
            report.variants[1].figures, metrics={**report.variants[1].figures.metrics, "accuracy": 0.0}
        ),
    )
    report.variants[1] = worse
    report.student.metrics["accuracy"] = 1.0  # no export keeps it: the float32 one, closest to the student
    assert recommended_onnx_file(exported_cls_student_dir, report) == "onnx/model.onnx"
    assert recommended_onnx_file(exported_cls_student_dir) == "onnx/model_quantized.onnx"
    assert recommended_onnx_file(tmp_path) is None


def test_cli_demo_passes_the_recommended_export(monkeypatch, tiny_bert_cls_dir, exported_cls_student_dir):
    from hf_distill.cli import demo as cli_demo

    seen = {}

    class FakeApp:
        @staticmethod
        def build_demo(teacher, student, report, latency_runs, onnx):
            seen["onnx"] = onnx
            raise ValueError("stop here")

    monkeypatch.setattr(cli_demo, "load_app", lambda: FakeApp)
    args = argparse.Namespace(
        teacher=str(tiny_bert_cls_dir),
        student=str(exported_cls_student_dir),
        report=None,
        runs=1,
        host="127.0.0.1",
        port=0,
    )
    assert cli_demo.run_demo(args) == 2 and seen["onnx"] == "onnx/model_quantized.onnx"


def test_a_causal_lm_gets_its_divergent_texts_as_a_table(app, gen_side, tiny_gpt2_dir, tiny_gpt2_student_dir):
    from hf_distill.evaluation.pair import evaluate_models

    texts = ["once upon a time", "the wolf ate the grandmother and waited in her bed", "a king"]
    ev = evaluate_models(
        gen_side.teacher.model,
        gen_side.student.model,
        gen_side.teacher.tokenizer,
        texts,
        task="text-generation",
        batch_size=3,
    )
    data = app.read_examples(ev.examples.to_dict())
    headers, rows = app.examples_table(data)
    assert headers == app.GENERATION_EXAMPLE_HEADERS and sorted(r[-1] for r in rows) == sorted(texts)
    demo = app.build_demo(gen_side.teacher, gen_side.student, report={}, examples=data)
    assert any("3 evaluation texts" in t for t in _markdown_values(demo))


# ------------------------------------------------------------------- a causal LM's export streams in a third column


@pytest.fixture(scope="module")
def lm_showcase(app, tiny_gpt2_dir, exported_gpt2_student_dir):
    """The tiny GPT-2 pair whose student has ONNX exports, the float32 file named (it matches PyTorch to 1e-4)."""
    return app.build_demo(tiny_gpt2_dir, exported_gpt2_student_dir, report={}, onnx="onnx/model.onnx")


def test_the_exported_causal_lm_streams_greedy_tokens_of_the_pytorch_student(app, lm_showcase):
    side = lm_showcase.side_by_side
    assert side.onnx is not None and side.onnx.name == "onnx/model.onnx"
    assert any("Student, ONNX Runtime" in t and "onnx/model.onnx" in t for t in _markdown_values(lm_showcase))
    updates = list(side.generate(PROMPT, 8, 0.8, False))
    t_text, t_stats, s_text, s_stats, o_text, o_stats = updates[-1]
    assert o_text and o_text == s_text
    assert "Time to first token" in o_stats and "tokens/s" in o_stats and "done" in o_stats  # timed like the others
    # it streams: the ONNX column's token count grows by at most one per update
    counts = [int(m.group(1)) for u in updates if (m := re.search(r"(\d+) new tokens", u[5]))]
    assert len(counts) >= 2 and all(b - a in (0, 1) for a, b in zip(counts, counts[1:]))
    # token for token, through the exported cache: the PyTorch student's stream, and transformers' generate()
    streams = [
        app._Stream(side.student, PROMPT, 8, 0.8, False),
        app._OnnxStream(side.onnx, side.student, PROMPT, 8, 0.8, False),
    ]
    for st in streams:
        while not st.done:
            st.step()
    assert streams[0].error is None and streams[1].error is None
    assert streams[1].new_ids == streams[0].new_ids and len(streams[1].new_ids) == 8
    ids = side.student.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    ref = side.student.model.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False, pad_token_id=0
    )[0, ids.shape[1] :]
    assert streams[1].new_ids == ref.tolist()


def test_the_exported_causal_lm_samples_with_the_same_settings(app, lm_showcase):
    side = lm_showcase.side_by_side
    drawn = []
    for make in (app._Stream, lambda *a: app._OnnxStream(side.onnx, *a)):
        torch.manual_seed(7)  # the same seed: equal logits (to 1e-4) draw the same tokens at the same temperature
        st = make(side.student, PROMPT, 10, 1.3, True)
        while not st.done:
            st.step()
        drawn.append(st.new_ids)
    assert drawn[0] == drawn[1] and len(drawn[0]) >= 2
    torch.manual_seed(8)
    greedy = app._OnnxStream(side.onnx, side.student, PROMPT, 10, 1.3, False)
    while not greedy.done:
        greedy.step()
    assert greedy.new_ids != drawn[1]  # sampling was on: not the greedy continuation


def test_a_causal_lm_runs_its_recommended_export_and_survives_without_onnxruntime(
    app, tiny_gpt2_dir, exported_gpt2_student_dir, monkeypatch
):
    demo = app.build_demo(tiny_gpt2_dir, exported_gpt2_student_dir, report={}, latency_runs=1)
    assert demo.side_by_side.onnx.name == "onnx/model_quantized.onnx"  # the int8 file, as for classifiers
    last = list(demo.side_by_side.generate(PROMPT, 4, 0.8, False))[-1]
    assert len(last) == 6 and last[4] and "tokens/s" in last[5]
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails, as on a Space without it
    plain = app.build_demo(tiny_gpt2_dir, exported_gpt2_student_dir, report={}, latency_runs=1)
    assert plain.side_by_side.onnx is None and len(list(plain.side_by_side.generate(PROMPT, 2, 0.8, False))[-1]) == 4
    assert any("install `onnxruntime`" in t for t in _markdown_values(plain))
