"""Problems that used to surface after hours of work, now found by `hf-distill run --check` and the run's preflight:
a given student that cannot serve the teacher's ids or classes, FFN pruning wider than the teacher, prompts as long
as the texts, published soft targets with a teacher the run retrains, architectures the run cannot cut, and a token
that cannot publish where push_to_hub points."""

from __future__ import annotations

import json

import pytest

from hf_distill.cli.main import main
from hf_distill.pipeline.preflight import PreflightError
from hf_distill.pipeline.run import run_from_config
from tests import tiny
from tests.test_pipeline import cls_config, lm_config

TOKEN = "hf_PreflightWriteTokenForTests0123456789ab"
READ_TOKEN = "hf_PreflightReadTokenForTests0123456789abc"


def check_line(capsys, cfg, *overrides: str) -> str:
    """`hf-distill run CFG --check`: it fails, without a traceback; the one problem line is returned."""
    code = main(["run", str(cfg), "--check", *overrides])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("  - ")]
    assert len(lines) == 1, err
    return lines[0]


def refused_before_the_teacher(tmp_path, cfg, match: str, *overrides: str) -> None:
    with pytest.raises(PreflightError, match=match):
        run_from_config(cfg, list(overrides))
    assert not (tmp_path / "run" / "teacher").exists()


# ---- a given student --------------------------------------------------------------------------------------------


def test_a_student_with_another_wordpiece_vocabulary_is_refused(tmp_path, tiny_bert_cls_dir, capsys):
    other = tiny.train_wordpiece_tokenizer(
        ["completely different words " * 3, "zebra quartz jigsaw"] * 20, 120, model_max_length=64
    )
    student_dir = tmp_path / "student"
    tiny.bert_cls(other, num_layers=2).save_pretrained(student_dir)
    other.save_pretrained(student_dir)
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, student=str(student_dir), student_layers=None)
    line = check_line(capsys, cfg)
    assert "does not share the teacher's vocabulary" in line and "tokenizers differ" in line
    refused_before_the_teacher(tmp_path, cfg, "does not share the teacher's vocabulary")


def test_a_student_with_another_number_of_classes_is_refused(tmp_path, tiny_bert_cls_dir, wordpiece_tokenizer, capsys):
    student_dir = tmp_path / "student"
    tiny.bert_cls(wordpiece_tokenizer, num_layers=2, num_labels=3).save_pretrained(student_dir)
    wordpiece_tokenizer.save_pretrained(student_dir)
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, student=str(student_dir), student_layers=None)
    line = check_line(capsys, cfg)
    assert "has a 3-class head but the run's data has 2 classes" in line and "num_labels=2" in line
    refused_before_the_teacher(tmp_path, cfg, "3-class head")


def test_intermediate_size_wider_than_the_teachers_ffn_is_refused(tmp_path, tiny_bert_cls_dir, capsys):
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, student_intermediate_size=100)
    line = check_line(capsys, cfg)
    assert "student_intermediate_size=100 is larger than the teacher's FFN (64 neurons per block)" in line
    assert "choose 1..64" in line
    refused_before_the_teacher(tmp_path, cfg, "larger than the teacher's FFN")


# ---- prompts ------------------------------------------------------------------------------------------------------


def pretrained_lm_config(tmp_path, teacher_dir, **extra):
    """`lm_config` on a saved tiny GPT-2 teacher, untrained by the run, with a live teacher (no cache)."""
    return lm_config(
        tmp_path,
        teacher=str(teacher_dir),
        teacher_from_scratch=False,
        train_teacher="no",
        use_soft_targets=False,
        top_k=None,
        output_dir=str(tmp_path / "run"),
        **extra,
    )


def test_prompts_as_long_as_every_text_are_refused_by_check(tmp_path, tiny_gpt2_dir, capsys):
    cfg = pretrained_lm_config(tmp_path, tiny_gpt2_dir, prompt_tokens=31)
    line = check_line(capsys, cfg)
    assert "prompt_tokens=31 is at least as long as every training text" in line and "lower prompt_tokens" in line
    assert main(["run", str(cfg), "--check", "--prompt_tokens", "4"]) == 0  # shorter prompts leave completions


def test_a_missing_chat_template_file_is_refused_by_check(tmp_path, tiny_gpt2_dir, capsys):
    cfg = pretrained_lm_config(tmp_path, tiny_gpt2_dir)
    line = check_line(capsys, cfg, "--chat_template", str(tmp_path / "missing.jinja"))
    assert "chat_template file" in line and "missing.jinja not found" in line
    template = tmp_path / "chat.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    assert main(["run", str(cfg), "--check", "--chat_template", str(template)]) == 0


def test_prompts_with_a_tokenizer_trained_in_the_run_are_refused_before_the_teacher_trains(tmp_path):
    cfg = lm_config(tmp_path, use_soft_targets=False, top_k=None, prompt_tokens=31, output_dir=str(tmp_path / "run"))
    refused_before_the_teacher(tmp_path, cfg, "prompt_tokens=31 is at least as long as every training text")


# ---- published soft targets and a teacher the run trains ----------------------------------------------------------


def test_soft_targets_with_a_teacher_the_run_trains_are_refused(tmp_path, tiny_bert_cls_dir, capsys):
    cfg = cls_config(tmp_path, tiny_bert_cls_dir, soft_targets="alice/targets", num_transfer=0)
    line = check_line(capsys, cfg)  # cls_config fine-tunes the teacher (train_teacher: yes)
    assert "soft_targets with train_teacher: yes" in line and "train_teacher: no" in line
    assert "only the teacher whose weights made them" in line
    line = check_line(capsys, lm_config(tmp_path, soft_targets="alice/targets"))
    assert "soft_targets with teacher_from_scratch" in line


# ---- architectures ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {
                "model_type": "mixtral",
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 4,
            },
            "a student cannot be built from a 'mixtral' teacher",
        ),
        ({"model_type": "t5", "d_model": 32, "num_layers": 2}, "a 't5' model has no causal-lm class in transformers"),
        ({"model_type": "t6"}, "model_type 't6' is not a transformers model type"),
    ],
)
def test_an_architecture_the_run_cannot_use_is_refused_naming_the_families(tmp_path, capsys, spec, expected):
    cfg = lm_config(tmp_path, teacher_config=json.dumps(spec))
    line = check_line(capsys, cfg)
    assert expected in line and "BERT-family encoders (bert" in line and "GPT-2-family decoders (gpt2" in line
    assert "Llama-family decoders (llama, mistral, qwen2, qwen3, gemma" in line
    refused_before_the_teacher(tmp_path, cfg, expected.replace("(", r"\(").replace(")", r"\)"))


@pytest.mark.parametrize("model_type", ["llama", "qwen3", "phi3"])
def test_a_llama_layout_teacher_passes_the_architecture_check_and_its_gated_ffn_bounds_pruning(
    tmp_path, capsys, model_type
):
    spec = {
        "model_type": model_type,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    }
    assert main(["run", str(lm_config(tmp_path, teacher_config=json.dumps(spec))), "--check"]) == 0, (
        capsys.readouterr().err
    )
    line = check_line(capsys, lm_config(tmp_path, teacher_config=json.dumps(spec), student_intermediate_size=65))
    assert "student_intermediate_size=65 is larger than the teacher's FFN (64 neurons per block)" in line


# ---- publishing: the token --------------------------------------------------------------------------------------


@pytest.fixture
def hub(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from tests.fake_hub import FakeHub, online_client

    with (
        online_client(monkeypatch, tmp_path / "hf_home"),
        FakeHub({TOKEN: ("alice", "write"), READ_TOKEN: ("alice", "read")}, orgs={"alice": ["team"]}) as fake,
    ):
        monkeypatch.setattr(constants, "ENDPOINT", fake.url)
        yield fake


PUSH = ("--push_to_hub", "true", "--hub_model_id")


def test_push_without_a_token_or_with_a_read_token_is_refused_before_training(
    tmp_path, tiny_bert_cls_dir, hub, capsys, monkeypatch
):
    cfg = cls_config(tmp_path, tiny_bert_cls_dir)
    assert "needs a Hugging Face token with write access" in check_line(capsys, cfg, *PUSH, "alice/m")
    monkeypatch.setenv("HF_TOKEN", READ_TOKEN)
    assert "token of 'alice' is read-only" in check_line(capsys, cfg, *PUSH, "alice/m")
    monkeypatch.setenv("HF_TOKEN", "hf_NotAKnownTokenAtAll0123456789abcdefAB")
    assert "invalid, expired or revoked" in check_line(capsys, cfg, *PUSH, "alice/m")
    refused_before_the_teacher(tmp_path, cfg, "invalid, expired or revoked", *PUSH, "alice/m")
    assert not hub.repos  # nothing was created


def test_push_to_a_namespace_or_repo_the_token_cannot_write_is_refused(
    tmp_path, tiny_bert_cls_dir, hub, capsys, monkeypatch
):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    cfg = cls_config(tmp_path, tiny_bert_cls_dir)
    line = check_line(capsys, cfg, *PUSH, "bob/m")
    assert "cannot create the model repo 'bob/m'" in line and "'alice', 'team'" in line
    hub.seed("model", "bob/public")  # exists, readable, not writable by alice
    assert "cannot write to the model repo 'bob/public' (HTTP 403)" in check_line(capsys, cfg, *PUSH, "bob/public")
    # the Space is checked too, before the model is trained or committed
    line = check_line(capsys, cfg, *PUSH, "alice/m", "--hub_space_id", "bob/demo")
    assert "cannot create the Space 'bob/demo'" in line
    line = check_line(
        capsys, cfg, *PUSH, "team/m", "--push_soft_targets", "true", "--soft_targets_repo_id", "bob/targets"
    )
    assert "cannot create the dataset repo 'bob/targets'" in line
    # writable: the user's own namespace, an organisation, a repo it owns
    hub.seed("model", "alice/existing")
    for repo in ("alice/m", "team/m", "alice/existing"):
        assert main(["run", str(cfg), "--check", *PUSH, repo, "--hub_space_id", "team/demo"]) == 0, capsys.readouterr()
    assert set(hub.repos) == {("model", "bob/public"), ("model", "alice/existing")}  # nothing was created
