"""Publishing to the Hub, end to end: the real `HfApi` client against the in-process fake Hub (tests/fake_hub.py)."""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import logging
import shutil
import traceback
from pathlib import Path

import pytest
import yaml

from hf_distill.cli.push import main as cli_main
from hf_distill.cli.push import register
from hf_distill.hub import http as hub_mod
from hf_distill.hub.http import HubPublishError
from hf_distill.hub.selection import select_model_files, select_space_files
from hf_distill.publishing import space as space_mod
from hf_distill.publishing.publish import publish, push_to_hub
from hf_distill.publishing.space import push_space
from tests.fake_hub import FakeHub, free_port, online_client
from tests.test_report import sample_report

TOKEN = "hf_WriteTokenForTests0123456789abcdefABCDEF"
READ_TOKEN = "hf_ReadTokenForTests0123456789abcdefABCDEFG"
UNKNOWN_TOKEN = "hf_RevokedTokenForTests0123456789abcdefXYZ"
ALL_TOKENS = (TOKEN, READ_TOKEN, UNKNOWN_TOKEN)

CARD = """---
license: apache-2.0
base_model: tiny/teacher
tags:
- distillation
- knowledge-distillation
---

# tiny student

Distilled from tiny/teacher with hf-distill.
"""
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
EXPECTED_MODEL_FILES = {
    "README.md",
    "config.json",
    "distillation_chart.png",
    "distillation_report.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
}


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture
def client_env(monkeypatch, tmp_path):
    with online_client(monkeypatch, tmp_path / "hf_home"):
        yield


@pytest.fixture
def fake_hub(client_env):
    hub = FakeHub(
        {TOKEN: ("alice", "write"), READ_TOKEN: ("alice", "read")},
        orgs={"alice": ["distill-org"]},
    )
    with hub:
        yield hub


@pytest.fixture
def output_dir(tmp_path, tiny_bert_cls_student_dir) -> Path:
    """A training output folder: the student, card, report, chart, plus everything that must stay local."""
    out = tmp_path / "out"
    shutil.copytree(tiny_bert_cls_student_dir, out)
    (out / "README.md").write_text(CARD, encoding="utf-8")
    sample_report().to_json(out / "distillation_report.json")
    (out / "distillation_chart.png").write_bytes(PNG)
    junk = {
        "checkpoint-500/model.safetensors": b"old weights",
        "checkpoint-500/optimizer.pt": b"optimizer state",
        "checkpoint-500/scheduler.pt": b"scheduler",
        "checkpoint-500/rng_state.pth": b"rng",
        "checkpoint-500/trainer_state.json": b"{}",
        "training_args.bin": b"pickled args",
        "pytorch_model.bin": b"pickled weights",
        "soft_targets/data-00000-of-00001.arrow": b"arrow",
        "soft_targets/dataset_info.json": b"{}",
        "soft_targets_val.arrow": b"arrow",
        "runs/events.out.tfevents.1": b"tb",
        "runs/loss.png": PNG,
        "__pycache__/x.cpython-311.pyc": b"pyc",
        ".cache/huggingface/download/x": b"cache",
        ".env": f"HF_TOKEN={TOKEN}\n".encode(),
        "hf_token.txt": TOKEN.encode(),
        "my_token": TOKEN.encode(),
        ".git-credentials": f"https://alice:{TOKEN}@huggingface.co\n".encode(),
        ".huggingface/token": TOKEN.encode(),
        "notes/secrets.env": TOKEN.encode(),
    }
    for rel, data in junk.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    return out


@pytest.fixture
def app_dir(tmp_path) -> Path:
    """A stand-in for spaces_app/: an app, its requirements and README, caches and a secret."""
    app = tmp_path / "app"
    files = {
        "app.py": b"import gradio as gr\n",
        "requirements.txt": b"transformers\ntorch\n",
        "README.md": (
            "---\ntitle: Local title\nemoji: \u2697\ufe0f\ncolorFrom: pink\nsdk: gradio\nsdk_version: 1.0.0\n"
            "models: [someone/else]\n---\n\n## How to use\n\nType a sentence.\n"
        ).encode(),
        "helpers/compare.py": b"def compare():\n    return 1\n",
        "examples.json": b'["a wonderful film"]\n',
        "__pycache__/app.cpython-311.pyc": b"pyc",
        "helpers/__pycache__/compare.cpython-311.pyc": b"pyc",
        ".gradio/flagged/log.csv": b"x",
        "flagged/data.csv": b"x",
        ".env": f"HF_TOKEN={TOKEN}\n".encode(),
        ".huggingface/token": TOKEN.encode(),
        ".gitattributes": b"* text\n",
    }
    for rel, data in files.items():
        (app / rel).parent.mkdir(parents=True, exist_ok=True)
        (app / rel).write_bytes(data)
    return app


def snapshot(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def uploaded(hub: FakeHub, repo_type: str, repo_id: str, ref: str = "main") -> dict[str, bytes]:
    files = dict(hub.repo(repo_type, repo_id).refs[ref])
    files.pop(".gitattributes", None)  # created by the Hub, not by us
    return files


def error_text(err: BaseException) -> str:
    return "".join(traceback.format_exception(err))


def assert_no_token_anywhere(hub: FakeHub | None, *texts: str) -> None:
    for secret in ALL_TOKENS:
        if hub is not None:
            for blob in hub.all_received_bytes():
                assert secret.encode() not in blob
        for text in texts:
            assert secret not in text


# ------------------------------------------------------------------------------------------------ selection


def test_selection_keeps_the_model_and_leaves_training_state_and_secrets_out(output_dir):
    assert set(select_model_files(output_dir)) == EXPECTED_MODEL_FILES


def test_selection_keeps_generation_config_and_tokenizer_of_a_causal_lm(tiny_gpt2_student_dir):
    files = set(select_model_files(tiny_gpt2_student_dir))
    assert {"generation_config.json", "model.safetensors", "config.json", "tokenizer.json"} <= files


def test_space_selection_drops_caches_secrets_and_the_readme(app_dir):
    assert set(select_space_files(app_dir)) == {"app.py", "requirements.txt", "helpers/compare.py", "examples.json"}


# ------------------------------------------------------------------------------------------------ model push


def test_push_uploads_exactly_the_model_card_report_and_chart(fake_hub, output_dir, monkeypatch):
    before = snapshot(output_dir)
    commit = push_to_hub(output_dir, "alice/tiny-student", token=TOKEN, endpoint=fake_hub.url, commit_message="v1")

    files = uploaded(fake_hub, "model", "alice/tiny-student")
    assert set(files) == EXPECTED_MODEL_FILES
    for name, data in files.items():
        if name != "distillation_report.json":
            assert data == (output_dir / name).read_bytes(), name
    assert files["README.md"].decode() == CARD  # a card written by a person is published as it is
    # the report names the repo it is published to as the student (the rest is unchanged)
    published, local = (
        json.loads(files["distillation_report.json"]),
        json.loads((output_dir / "distillation_report.json").read_text()),
    )
    assert published["student"].pop("name_or_path") == "alice/tiny-student"
    local["student"].pop("name_or_path")
    assert published == local
    repo = fake_hub.repo("model", "alice/tiny-student")
    assert repo.visibility == "public"
    assert [c.message for c in repo.commits] == ["v1"]  # one atomic commit
    assert commit == commit.commit_url == f"{fake_hub.url}/alice/tiny-student/commit/{repo.commits[0].oid}"
    assert commit.pr_url is None
    # The weights and the chart travel through LFS, as on the Hub.
    assert hashlib.sha256(files["model.safetensors"]).hexdigest() in fake_hub.lfs
    assert snapshot(output_dir) == before


def test_push_uploads_the_onnx_exports_in_the_same_commit(fake_hub, output_dir):
    from hf_distill.export.onnx import export_onnx

    export_onnx(output_dir, texts=["a wonderful film", "a boring plot"])
    push_to_hub(output_dir, "alice/tiny-student", token=TOKEN, endpoint=fake_hub.url, commit_message="v1")
    files = uploaded(fake_hub, "model", "alice/tiny-student")
    onnx = {"onnx/model.onnx", "onnx/model_quantized.onnx", "onnx/ort_config.json", "onnx/export_report.json"}
    assert set(files) == EXPECTED_MODEL_FILES | onnx
    assert files["onnx/model_quantized.onnx"] == (output_dir / "onnx" / "model_quantized.onnx").read_bytes()
    assert len(fake_hub.repo("model", "alice/tiny-student").commits) == 1
    assert str(output_dir) not in files["onnx/export_report.json"].decode()


@pytest.mark.parametrize("damage", ["truncated", "altered", "stale"])
def test_push_refuses_an_export_that_no_longer_matches_its_check(fake_hub, output_dir, damage, capsys):
    """An int8 file truncated or altered after its check, or left from weights saved since, is not published."""
    from hf_distill.export.onnx import export_onnx
    from tests.test_export import DAMAGED_EXPORTS

    export_onnx(output_dir, texts=["a wonderful film", "a boring plot"])
    spoil, message = DAMAGED_EXPORTS[damage]
    spoil(output_dir)
    with pytest.raises(HubPublishError, match=f"Refusing to publish .*{message}.*`hf-distill export .*nothing was"):
        push_to_hub(output_dir, "alice/tiny-student", token=TOKEN, endpoint=fake_hub.url)
    assert ("model", "alice/tiny-student") not in fake_hub.repos  # refused before any request
    assert cli_main(["push", str(output_dir), "--repo-id", "alice/s", "--dry-run"]) == 1  # the dry run says so too
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("hf-distill push: error:")]
    assert "hf-distill export" in line


def test_published_files_read_back_through_the_client(fake_hub, output_dir, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download

    push_to_hub(output_dir, "alice/student", token=TOKEN, endpoint=fake_hub.url)
    info = HfApi(endpoint=fake_hub.url, token=TOKEN).model_info("alice/student")
    assert info.card_data["tags"] == ["distillation", "knowledge-distillation"]
    for name in ("README.md", "model.safetensors", "distillation_chart.png"):
        path = hf_hub_download("alice/student", name, token=TOKEN, endpoint=fake_hub.url, cache_dir=tmp_path / "dl")
        assert Path(path).read_bytes() == (output_dir / name).read_bytes()


def test_push_private_to_a_branch(fake_hub, output_dir):
    push_to_hub(output_dir, "distill-org/student", token=TOKEN, endpoint=fake_hub.url, private=True, revision="v2")
    repo = fake_hub.repo("model", "distill-org/student")
    assert repo.private
    assert set(uploaded(fake_hub, "model", "distill-org/student", "v2")) == EXPECTED_MODEL_FILES
    assert uploaded(fake_hub, "model", "distill-org/student") == {}  # main untouched
    assert repo.commits[0].revision == "v2"


def test_private_push_into_an_existing_public_repo_is_refused(fake_hub, output_dir):
    fake_hub.seed("model", "alice/public", {"README.md": b"public card"})
    with pytest.raises(HubPublishError, match="already exists and is public"):
        push_to_hub(output_dir, "alice/public", token=TOKEN, endpoint=fake_hub.url, private=True)
    assert uploaded(fake_hub, "model", "alice/public") == {"README.md": b"public card"}
    assert fake_hub.repo("model", "alice/public").commits == []


def test_push_as_pull_request_leaves_main_alone(fake_hub, output_dir):
    fake_hub.seed("model", "alice/student", {"README.md": b"old card"})
    commit = push_to_hub(output_dir, "alice/student", token=TOKEN, endpoint=fake_hub.url, create_pr=True)
    assert commit.pr_url == f"{fake_hub.url}/alice/student/discussions/1"
    assert commit.pr_revision == "refs/pr/1"
    assert uploaded(fake_hub, "model", "alice/student") == {"README.md": b"old card"}
    assert set(uploaded(fake_hub, "model", "alice/student", "refs/pr/1")) == EXPECTED_MODEL_FILES
    assert fake_hub.repo("model", "alice/student").commits[0].create_pr


def test_pull_request_with_a_revision_is_refused_before_any_request(fake_hub, output_dir):
    with pytest.raises(HubPublishError, match="pull request"):
        push_to_hub(output_dir, "alice/s", token=TOKEN, endpoint=fake_hub.url, create_pr=True, revision="dev")
    assert fake_hub.requests == []


def test_remote_files_are_kept_unless_delete_stale(fake_hub, output_dir):
    old = {
        "model-00001-of-00002.safetensors": b"old shard",
        "model.safetensors.index.json": b"{}",
        "old_chart.png": PNG,
        "notebook.ipynb": b"{}",
    }
    fake_hub.seed("model", "alice/student", dict(old))
    push_to_hub(output_dir, "alice/student", token=TOKEN, endpoint=fake_hub.url)
    assert set(uploaded(fake_hub, "model", "alice/student")) == EXPECTED_MODEL_FILES | set(old)
    assert not any("/tree/" in r for r in fake_hub.routes_called())  # nothing was even listed

    push_to_hub(output_dir, "alice/student", token=TOKEN, endpoint=fake_hub.url, delete_stale=True)
    remaining = fake_hub.repo("model", "alice/student").files
    assert set(remaining) == EXPECTED_MODEL_FILES | {"notebook.ipynb", ".gitattributes"}
    deleted = fake_hub.repo("model", "alice/student").commits[-1].deleted
    assert set(deleted) == {"model-00001-of-00002.safetensors", "model.safetensors.index.json", "old_chart.png"}


def test_delete_stale_never_deletes_gitattributes(fake_hub, output_dir):
    fake_hub.seed("model", "alice/student", {"extra.txt": b"x"})
    push_to_hub(output_dir, "alice/student", token=TOKEN, endpoint=fake_hub.url, delete_stale=["*"])
    files = fake_hub.repo("model", "alice/student").files
    assert "extra.txt" not in files
    assert ".gitattributes" in files


# ------------------------------------------------------------------------------------------------ refusals


def test_folder_without_safetensors_is_refused(fake_hub, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(HubPublishError, match="no `\\*.safetensors` weights"):
        push_to_hub(empty, "alice/s", token=TOKEN, endpoint=fake_hub.url)
    assert fake_hub.requests == []


def test_pickle_only_folder_is_refused(fake_hub, tmp_path):
    out = tmp_path / "pickle"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(HubPublishError, match="only pickled weights \\(pytorch_model.bin\\)"):
        push_to_hub(out, "alice/s", token=TOKEN, endpoint=fake_hub.url)
    assert fake_hub.requests == []


def test_weights_only_in_a_checkpoint_are_refused(fake_hub, tmp_path):
    out = tmp_path / "ckpt"
    (out / "checkpoint-1").mkdir(parents=True)
    (out / "config.json").write_text("{}")
    (out / "checkpoint-1" / "model.safetensors").write_bytes(b"x")
    with pytest.raises(HubPublishError, match="safetensors"):
        push_to_hub(out, "alice/s", token=TOKEN, endpoint=fake_hub.url)


def test_a_card_holding_the_token_is_not_uploaded(fake_hub, output_dir, logs):
    (output_dir / "README.md").write_text(CARD + f"\ntrained with HF_TOKEN={TOKEN}\n")
    with pytest.raises(HubPublishError, match="README.md contains your Hugging Face token") as info:
        push_to_hub(output_dir, "alice/s", token=TOKEN, endpoint=fake_hub.url)
    assert fake_hub.requests == []
    assert_no_token_anywhere(None, error_text(info.value), *(r.getMessage() for r in logs))


@pytest.mark.parametrize("where", ["config.json", "tokenizer_config.json", "safetensors header"])
def test_a_token_in_any_uploaded_file_or_a_safetensors_header_is_not_uploaded(fake_hub, output_dir, logs, where):
    if where == "safetensors header":  # metadata is the only text a safetensors file holds
        from safetensors.torch import load_file, save_file

        name = "model.safetensors"
        save_file(load_file(output_dir / name), output_dir / name, metadata={"format": "pt", "note": TOKEN})
    else:
        name = where
        data = json.loads((output_dir / name).read_text())
        (output_dir / name).write_text(json.dumps({**data, "saved_with": f"HF_TOKEN={TOKEN}"}))
    with pytest.raises(HubPublishError, match=f"Refusing to upload: {name} contains your Hugging Face token") as info:
        push_to_hub(output_dir, "alice/s", token=TOKEN, endpoint=fake_hub.url)
    assert fake_hub.requests == []
    assert_no_token_anywhere(None, error_text(info.value), *(r.getMessage() for r in logs))


def test_the_commit_is_never_retried_but_creating_the_repo_is(fake_hub, output_dir, monkeypatch):
    monkeypatch.setattr(hub_mod, "RETRY_BACKOFF_S", 0.01)
    fake_hub.fail("create", drop=True)  # idempotent: retried, and the push goes on
    fake_hub.fail("commit", drop=True, times=hub_mod.RETRY_ATTEMPTS)  # may have landed: sent once, never again
    with pytest.raises(HubPublishError, match="may or may not have been applied"):
        push_to_hub(output_dir, "alice/s", token=TOKEN, endpoint=fake_hub.url)
    routes = fake_hub.routes_called()
    assert routes.count("POST /api/repos/create") == 2
    assert routes.count("POST /api/models/alice/s/commit/main") == 1


# ------------------------------------------------------------------------------------------------ errors


def test_missing_token_fails_before_any_request(fake_hub, output_dir):
    with pytest.raises(HubPublishError, match="No Hugging Face token found.*HF_TOKEN"):
        push_to_hub(output_dir, "alice/s", endpoint=fake_hub.url)
    assert fake_hub.requests == []


def test_token_from_env_and_from_stored_login(fake_hub, output_dir, monkeypatch):
    from huggingface_hub import constants

    Path(constants.HF_TOKEN_PATH).write_text(TOKEN)  # what `hf auth login` stores
    push_to_hub(output_dir, "alice/from-login", endpoint=fake_hub.url)
    Path(constants.HF_TOKEN_PATH).unlink()
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    push_to_hub(output_dir, "alice/from-env", endpoint=fake_hub.url)
    assert set(uploaded(fake_hub, "model", "alice/from-login")) == EXPECTED_MODEL_FILES
    assert set(uploaded(fake_hub, "model", "alice/from-env")) == EXPECTED_MODEL_FILES


def test_offline_mode_is_reported_before_any_request(fake_hub, output_dir, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubPublishError, match="HF_HUB_OFFLINE"):
        push_to_hub(output_dir, "alice/s", token=TOKEN, endpoint=fake_hub.url)
    assert fake_hub.requests == []


def test_401_says_the_token_is_invalid_and_write_is_needed(fake_hub, output_dir, logs):
    with pytest.raises(HubPublishError) as info:
        push_to_hub(output_dir, "alice/s", token=UNKNOWN_TOKEN, endpoint=fake_hub.url)
    message = str(info.value)
    assert "401" in message and "'write' role" in message
    assert info.value.status == 401
    assert "No files were committed" in message and "model.safetensors" in message
    assert fake_hub.repos == {}
    assert_no_token_anywhere(fake_hub, error_text(info.value), *(r.getMessage() for r in logs))


def test_403_read_token_says_write_scope_is_needed(fake_hub, output_dir, logs):
    with pytest.raises(HubPublishError) as info:
        push_to_hub(output_dir, "alice/s", token=READ_TOKEN, endpoint=fake_hub.url)
    message = str(info.value)
    assert "403" in message and "'write' role" in message and "'read'" in message
    assert fake_hub.repos == {}
    assert_no_token_anywhere(fake_hub, error_text(info.value), *(r.getMessage() for r in logs))


def test_403_read_token_on_an_existing_repo_commits_nothing(fake_hub, output_dir):
    fake_hub.seed("model", "alice/s", {"README.md": b"keep"})
    with pytest.raises(HubPublishError, match="403"):
        push_to_hub(output_dir, "alice/s", token=READ_TOKEN, endpoint=fake_hub.url)
    assert uploaded(fake_hub, "model", "alice/s") == {"README.md": b"keep"}
    assert fake_hub.repo("model", "alice/s").commits == []


def test_403_foreign_namespace(fake_hub, output_dir):
    with pytest.raises(HubPublishError, match="403 Forbidden.*'bob'"):
        push_to_hub(output_dir, "bob/s", token=TOKEN, endpoint=fake_hub.url)


def test_a_server_message_echoing_the_token_is_redacted(fake_hub, output_dir, logs):
    fake_hub.fail("commit", status=400, message=f"malformed request from token {TOKEN}")
    with pytest.raises(HubPublishError) as info:
        push_to_hub(output_dir, "alice/s", token=TOKEN, endpoint=fake_hub.url)
    assert "400" in str(info.value) and "<redacted>" in str(info.value)
    assert info.value.__cause__ is None  # the client's own exception text holds the token: not chained
    # Only our own records: httpcore's DEBUG trace prints the (contrived) server headers verbatim.
    ours = [r.getMessage() for r in logs if r.name.startswith(("hf_distill", "huggingface_hub"))]
    assert_no_token_anywhere(None, error_text(info.value), *ours)


def test_409_on_commit_lists_what_was_not_committed(fake_hub, output_dir):
    fake_hub.fail("commit", status=409, message="A commit has happened since. Please refresh and try again.")
    before = snapshot(output_dir)
    with pytest.raises(HubPublishError) as info:
        push_to_hub(output_dir, "alice/s", token=TOKEN, endpoint=fake_hub.url)
    message = str(info.value)
    assert "409" in message and "A commit has happened since" in message
    assert "No files were committed" in message
    assert set(info.value.files) == EXPECTED_MODEL_FILES
    assert uploaded(fake_hub, "model", "alice/s") == {}
    assert snapshot(output_dir) == before


@pytest.mark.parametrize("repo_id", ["spaces/alice/demo", "datasets/alice/data", "https://hf.co/spaces/alice/demo"])
def test_a_space_or_dataset_id_is_refused_for_the_model(fake_hub, output_dir, repo_id):
    with pytest.raises(HubPublishError, match="but a model repository is needed here"):
        push_to_hub(output_dir, repo_id, token=TOKEN, endpoint=fake_hub.url)
    assert fake_hub.requests == []


def test_a_name_taken_by_a_space_is_reported_as_the_wrong_type(client_env, output_dir):
    with FakeHub({TOKEN: ("alice", "write")}, names_unique_across_types=True) as hub:
        hub.seed("space", "alice/demo", {"app.py": b"x"}, sdk="gradio")
        with pytest.raises(HubPublishError, match="'alice/demo' is a space repository, not a model"):
            push_to_hub(output_dir, "alice/demo", token=TOKEN, endpoint=hub.url)
        assert ("model", "alice/demo") not in hub.repos
        assert uploaded(hub, "space", "alice/demo") == {"app.py": b"x"}


def test_invalid_card_metadata_is_reported(fake_hub, output_dir):
    (output_dir / "README.md").write_text("---\nlicense: [unclosed\n---\n# card\n")
    with pytest.raises(HubPublishError, match="rejected the README.md metadata"):
        push_to_hub(output_dir, "alice/s", token=TOKEN, endpoint=fake_hub.url)
    assert uploaded(fake_hub, "model", "alice/s") == {}


def record_backoff(monkeypatch) -> list[float]:
    """The retry waits of hub.py, recorded instead of slept: the retry policy, checked without a clock."""
    waits: list[float] = []
    monkeypatch.setattr(hub_mod.time, "sleep", waits.append)
    return waits


def test_server_down_changes_nothing_and_says_what_was_not_uploaded(client_env, output_dir, logs, monkeypatch):
    before = snapshot(output_dir)
    waits = record_backoff(monkeypatch)
    with pytest.raises(HubPublishError) as info:
        push_to_hub(output_dir, "alice/s", token=TOKEN, endpoint=f"http://127.0.0.1:{free_port()}")
    # creating the repo is tried RETRY_ATTEMPTS times with a doubling backoff, then the push gives up
    assert waits == [hub_mod.RETRY_BACKOFF_S * 2**i for i in range(hub_mod.RETRY_ATTEMPTS - 1)]
    message = str(info.value)
    assert "Network failure" in message and "ConnectError" in message
    assert "No files were committed" in message and "local files were not changed" in message
    for name in EXPECTED_MODEL_FILES:
        assert name in message
    assert snapshot(output_dir) == before
    assert_no_token_anywhere(None, error_text(info.value), *(r.getMessage() for r in logs))


def test_connection_dropped_during_the_commit(fake_hub, output_dir, logs):
    fake_hub.fail("commit", drop=True)
    before = snapshot(output_dir)
    with pytest.raises(HubPublishError) as info:
        push_to_hub(output_dir, "alice/s", token=TOKEN, endpoint=fake_hub.url)
    # the commit request left and no answer came: the client cannot know whether it landed, and says so
    assert "Network failure" in str(info.value) and "may or may not have been applied" in str(info.value)
    assert f"{fake_hub.url}/alice/s/commits" in str(info.value)
    assert uploaded(fake_hub, "model", "alice/s") == {}
    assert fake_hub.repo("model", "alice/s").commits == []
    assert snapshot(output_dir) == before
    assert_no_token_anywhere(fake_hub, error_text(info.value), *(r.getMessage() for r in logs))


# ------------------------------------------------------------------------------------------------ space


def test_push_space_uploads_the_app_with_a_valid_spaces_readme(fake_hub, app_dir, tmp_path):
    before = snapshot(app_dir)
    report = sample_report().to_json(tmp_path / "distillation_report.json")
    commit = push_space(
        "alice/student-demo",
        "alice/student",
        "tiny/teacher",
        app_dir=app_dir,
        token=TOKEN,
        endpoint=fake_hub.url,
        private=True,
        report_path=report,
    )
    repo = fake_hub.repo("space", "alice/student-demo")
    assert repo.sdk == "gradio" and repo.private
    files = uploaded(fake_hub, "space", "alice/student-demo")
    assert set(files) == {
        "README.md",
        "app.py",
        "requirements.txt",
        "helpers/compare.py",
        "examples.json",
        "distill_config.json",
        "distillation_report.json",
    }
    for name in ("app.py", "requirements.txt", "helpers/compare.py", "examples.json"):
        assert files[name] == (app_dir / name).read_bytes()
    assert json.loads(files["distill_config.json"]) == {
        "teacher": "tiny/teacher",
        "student": "alice/student",
        "distillation_report": "distillation_report.json",
    }
    published, local = json.loads(files["distillation_report.json"]), json.loads(report.read_text())
    assert published["student"].pop("name_or_path") == "alice/student"  # the Space shows the published student
    local["student"].pop("name_or_path")
    assert published == local and published["table"]  # the app renders these rows

    readme = files["README.md"].decode()
    assert readme.startswith("---\n")
    meta = yaml.safe_load(readme.split("---\n")[1])
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == importlib.metadata.version("gradio")  # the installed, tested version
    assert meta["app_file"] == "app.py"
    assert meta["models"] == ["tiny/teacher", "alice/student"]
    assert meta["colorFrom"] in space_mod.SPACE_COLORS and meta["colorTo"] in space_mod.SPACE_COLORS
    # The app's README chooses the look (title, emoji, colors); defaults fill the rest.
    assert (meta["title"], meta["emoji"], meta["colorFrom"]) == ("Local title", "\u2697\ufe0f", "pink")
    assert meta["colorTo"] == "green" and meta["license"] == "apache-2.0"
    assert 0 < len(meta["short_description"]) <= 60
    assert readme.count("---\n") == 2  # one front matter block; the app's own body follows it
    assert readme.rstrip().endswith("## How to use\n\nType a sentence.")

    assert {k: v["value"] for k, v in repo.variables.items()} == {
        "TEACHER_MODEL": "tiny/teacher",
        "STUDENT_MODEL": "alice/student",
        "DISTILLATION_REPORT": "distillation_report.json",
    }
    assert commit.commit_url.startswith(f"{fake_hub.url}/spaces/alice/student-demo/commit/")
    assert snapshot(app_dir) == before  # the on-disk README.md and the app folder are untouched
    assert_no_token_anywhere(fake_hub)


def test_push_space_pins_the_requested_gradio_version(fake_hub, app_dir):
    push_space(
        "alice/demo", "alice/s", "tiny/t", app_dir=app_dir, token=TOKEN, endpoint=fake_hub.url, gradio_version="6.30.1"
    )
    readme = uploaded(fake_hub, "space", "alice/demo")["README.md"].decode()
    meta = yaml.safe_load(readme.split("---\n")[1])
    assert meta["sdk_version"] == "6.30.1"
    assert meta["colorFrom"] == "pink"  # from the app's README
    push_space(
        "alice/demo",
        "alice/s",
        "tiny/t",
        app_dir=app_dir,
        token=TOKEN,
        endpoint=fake_hub.url,
        title="Given title",
        color_from="blue",
    )
    meta = yaml.safe_load(uploaded(fake_hub, "space", "alice/demo")["README.md"].decode().split("---\n")[1])
    assert (meta["title"], meta["colorFrom"]) == ("Given title", "blue")  # arguments win


def test_push_space_without_app_py_is_refused(fake_hub, tmp_path):
    (tmp_path / "noapp").mkdir()
    with pytest.raises(HubPublishError, match="no app.py"):
        push_space("alice/demo", "alice/s", "tiny/t", app_dir=tmp_path / "noapp", token=TOKEN, endpoint=fake_hub.url)
    assert fake_hub.requests == []


def test_push_space_refuses_a_model_id_for_the_space_and_bad_colors(fake_hub, app_dir):
    with pytest.raises(HubPublishError, match="names a dataset repository, but a Space is needed"):
        push_space("datasets/alice/x", "alice/s", "tiny/t", app_dir=app_dir, token=TOKEN, endpoint=fake_hub.url)
    with pytest.raises(HubPublishError, match="not a Space color"):
        push_space(
            "alice/d", "alice/s", "tiny/t", app_dir=app_dir, token=TOKEN, endpoint=fake_hub.url, color_from="orange"
        )
    assert fake_hub.requests == []


def test_space_variables_failure_is_a_warning_after_the_commit(fake_hub, app_dir, caplog):
    fake_hub.fail("variables", status=403, message="token cannot manage Space settings")
    with caplog.at_level(logging.WARNING, logger="hf_distill"):
        commit = push_space("alice/demo", "alice/s", "tiny/t", app_dir=app_dir, token=TOKEN, endpoint=fake_hub.url)
    assert "distill_config.json" in uploaded(fake_hub, "space", "alice/demo")
    assert commit.commit_url in caplog.text and "variables were not set" in caplog.text


def test_push_space_server_down(client_env, app_dir):
    with pytest.raises(HubPublishError) as info:
        push_space(
            "alice/demo", "alice/s", "tiny/t", app_dir=app_dir, token=TOKEN, endpoint=f"http://127.0.0.1:{free_port()}"
        )
    assert "No files were committed" in str(info.value) and "app.py" in str(info.value)


def test_publish_reports_a_space_failure_after_the_model_commit(fake_hub, output_dir, app_dir):
    with pytest.raises(HubPublishError, match="The model was published .* but the Space was not.*403"):
        publish(
            output_dir,
            "alice/student",
            space_id="bob/demo",
            teacher_repo_id="tiny/t",
            app_dir=app_dir,
            token=TOKEN,
            endpoint=fake_hub.url,
        )
    assert set(uploaded(fake_hub, "model", "alice/student")) == EXPECTED_MODEL_FILES


# ------------------------------------------------------------------------------------------------ CLI


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="hf-distill")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_push_model_and_space(fake_hub, output_dir, app_dir, monkeypatch, capsys, logs):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    code, out, err = run_cli(
        [
            "push",
            str(output_dir),
            "--repo-id",
            "alice/student",
            "--private",
            "--commit-message",
            "first",
            "--space-id",
            "alice/demo",
            "--teacher-repo-id",
            "tiny/teacher",
            "--app-dir",
            str(app_dir),
            "--endpoint",
            fake_hub.url,
        ],
        capsys,
    )
    assert code == 0, err
    model = fake_hub.repo("model", "alice/student")
    assert model.private and [c.message for c in model.commits] == ["first"]
    assert f"Model commit: {fake_hub.url}/alice/student/commit/{model.commits[0].oid}" in out
    space_files = uploaded(fake_hub, "space", "alice/demo")
    # the Space shows the report the model repo carries
    assert (
        space_files["distillation_report.json"]
        == uploaded(fake_hub, "model", "alice/student")["distillation_report.json"]
    )
    assert "Space commit:" in out
    assert_no_token_anywhere(fake_hub, out, err, *(r.getMessage() for r in logs))


def test_cli_pull_request_prints_its_url(fake_hub, output_dir, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    code, out, _ = run_cli(
        ["push", str(output_dir), "--repo-id", "alice/s", "--create-pr", "--endpoint", fake_hub.url], capsys
    )
    assert code == 0
    assert f"Pull request: {fake_hub.url}/alice/s/discussions/1" in out


def test_cli_errors_and_usage(fake_hub, output_dir, capsys):
    code, out, err = run_cli(["push", str(output_dir), "--repo-id", "alice/s", "--endpoint", fake_hub.url], capsys)
    assert code == 1 and "No Hugging Face token found" in err and out == ""
    code, _, err = run_cli(["push", str(output_dir), "--repo-id", "alice/s", "--space-id", "alice/d"], capsys)
    assert code == 2 and "--teacher-repo-id" in err
    with pytest.raises(SystemExit) as exit_info:  # there is deliberately no --token flag
        run_cli(["push", str(output_dir), "--repo-id", "alice/s", "--token", TOKEN], capsys)
    assert exit_info.value.code == 2
    assert fake_hub.requests == []


def test_cli_push_a_bare_name_goes_to_the_tokens_user(fake_hub, output_dir, app_dir, monkeypatch, capsys):
    # `create_repo("student")` puts the repo under the token's user (as on the Hub); every later call must then use
    # that full id, or the commit goes to a repo that does not exist and an empty repo is left behind
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    code, out, err = run_cli(
        [
            "push",
            str(output_dir),
            "--repo-id",
            "student",
            "--space-id",
            "demo",
            "--teacher-repo-id",
            "tiny/teacher",
            "--app-dir",
            str(app_dir),
            "--endpoint",
            fake_hub.url,
        ],
        capsys,
    )
    assert code == 0, err
    assert sorted(fake_hub.repos) == [("model", "alice/student"), ("space", "alice/demo")]
    model = fake_hub.repo("model", "alice/student")
    assert len(model.commits) == 1 and f"Model commit: {fake_hub.url}/alice/student/commit/" in out
    report = json.loads(uploaded(fake_hub, "model", "alice/student")["distillation_report.json"])
    assert report["student"]["name_or_path"] == "alice/student"
    space = uploaded(fake_hub, "space", "alice/demo")
    assert json.loads(space["distill_config.json"])["student"] == "alice/student"
    assert fake_hub.repo("space", "alice/demo").variables["STUDENT_MODEL"]["value"] == "alice/student"
    # an unknown token is refused before anything is created
    monkeypatch.setenv("HF_TOKEN", UNKNOWN_TOKEN)
    code, out, err = run_cli(["push", str(output_dir), "--repo-id", "other", "--endpoint", fake_hub.url], capsys)
    assert code == 1 and "401" in err and "namespace" in err and "'other'" in err
    assert not any("create" in r for r in fake_hub.routes_called()[-3:])
    assert sorted(fake_hub.repos) == [("model", "alice/student"), ("space", "alice/demo")]
    assert_no_token_anywhere(fake_hub, out, err)


def test_cli_dry_run_lists_files_without_a_token(output_dir, capsys):
    assert cli_main(["push", str(output_dir), "--repo-id", "alice/s", "--dry-run"]) == 0
    assert set(capsys.readouterr().out.split()) == EXPECTED_MODEL_FILES


# ------------------------------------------------------------------------------------------------ one commit


def _count_commits_and_forbid_upload_folder(monkeypatch):
    from huggingface_hub import HfApi

    def no_upload_folder(*args, **kwargs):
        raise AssertionError("upload_folder may split a push into several commits; create_commit must be used")

    monkeypatch.setattr(HfApi, "upload_folder", no_upload_folder)


@pytest.mark.parametrize("xet", [False, True], ids=["xet-disabled", "xet-enabled"])
def test_a_push_is_exactly_one_commit_with_and_without_hf_xet(monkeypatch, tmp_path, output_dir, app_dir, xet):
    from huggingface_hub.utils._runtime import is_xet_available

    _count_commits_and_forbid_upload_folder(monkeypatch)
    with online_client(monkeypatch, tmp_path / "home", disable_xet=not xet):
        assert is_xet_available() is xet  # hf_xet is installed: the real client takes its Xet-enabled path
        # With Xet on, the real Hub sends LFS files to Xet storage, which the fake does not speak: it answers
        # "regular" for every file, as the Hub may, so the whole client path runs against it.
        with FakeHub({TOKEN: ("alice", "write")}, upload_mode="regular" if xet else None) as hub:
            result = publish(
                output_dir,
                "alice/student",
                space_id="alice/demo",
                teacher_repo_id="tiny/teacher",
                app_dir=app_dir,
                token=TOKEN,
                endpoint=hub.url,
                delete_stale=True,
            )
            model, space = hub.repo("model", "alice/student"), hub.repo("space", "alice/demo")
            assert len(model.commits) == 1 and len(space.commits) == 1
            assert set(model.commits[0].added) == EXPECTED_MODEL_FILES
            assert model.commits[0].added["model.safetensors"] == (output_dir / "model.safetensors").read_bytes()
            commit_posts = [r for r in hub.routes_called() if r.startswith("POST /api/models/alice/student/commit")]
            assert len(commit_posts) == 1
            assert result.model_commit.oid == model.commits[0].oid
            # a second push with stale remote files: still one commit, with its deletions in it
            hub.seed("model", "alice/other", {"pytorch_model.bin": b"old", "notes.ipynb": b"{}"})
            push_to_hub(output_dir, "alice/other", token=TOKEN, endpoint=hub.url, delete_stale=True)
            other = hub.repo("model", "alice/other")
            assert len(other.commits) == 1 and other.commits[0].deleted == ["pytorch_model.bin"]
            assert "notes.ipynb" in other.files


def test_space_readme_is_a_space_card_that_round_trips(fake_hub, app_dir, tmp_path):
    from huggingface_hub import SpaceCard

    push_space("alice/demo", "alice/s", "tiny/t", app_dir=app_dir, token=TOKEN, endpoint=fake_hub.url)
    path = tmp_path / "README.md"
    path.write_bytes(uploaded(fake_hub, "space", "alice/demo")["README.md"])
    card = SpaceCard.load(path)
    data = card.data.to_dict()
    assert data["sdk"] == "gradio" and data["app_file"] == "app.py" and data["models"] == ["tiny/t", "alice/s"]
    assert data["title"] == "Local title" and data["colorFrom"] == "pink"
    again = SpaceCard(str(card))
    assert again.data.to_dict() == data and again.text == card.text
    assert space_mod.build_space_readme(
        title="T", teacher_repo_id="a/t", model_repo_id="a/s", sdk_version="6.0.0"
    ) == str(
        SpaceCard(
            space_mod.build_space_readme(title="T", teacher_repo_id="a/t", model_repo_id="a/s", sdk_version="6.0.0")
        )
    )


# ------------------------------------------------------------------------------------------------ bad input


def _generated_output_dir(tmp_path, tiny_bert_cls_student_dir) -> Path:
    """What a run leaves when the card was written before the push: local paths everywhere."""
    from hf_distill.publishing.card import write_card

    out = tmp_path / "run" / "student"
    shutil.copytree(tiny_bert_cls_student_dir, out)
    teacher = tmp_path / "run" / "teacher"
    teacher.mkdir()
    data = tmp_path / "data" / "sst2"
    data.mkdir(parents=True)
    (data / "train.tsv").write_text("sentence\tlabel\n")
    report = sample_report()
    report.teacher.name_or_path = str(teacher)
    report.student.name_or_path = str(out)
    report.distillation["dataset"] = str(data / "train.tsv")
    report.evaluation["dataset"] = str(data / "train.tsv")
    report.distillation["stages"] = [f"Fine-tune the teacher in {teacher}", "Train the student"]
    report.to_json(out / "distillation_report.json")
    # as the pipeline's card stage does without hub_model_id: no repo id, base_model a local path
    write_card(out / "distillation_report.json", out, base_model=str(teacher), license="mit")
    return out


def test_a_card_written_before_the_push_is_published_with_the_repo_id_and_no_local_path(
    fake_hub, tmp_path, tiny_bert_cls_student_dir
):
    out = _generated_output_dir(tmp_path, tiny_bert_cls_student_dir)
    local_card = (out / "README.md").read_text()
    assert str(out) in local_card and "base_model:" in local_card  # the defect: the local card leaks paths
    before = snapshot(out)
    push_to_hub(out, "alice/sst2-student", token=TOKEN, endpoint=fake_hub.url)
    files = uploaded(fake_hub, "model", "alice/sst2-student")
    card, report = files["README.md"].decode(), files["distillation_report.json"].decode()
    assert 'pipeline("text-classification", model="alice/sst2-student")' in card
    for text in (card, report):
        assert str(tmp_path) not in text and "/tmp" not in text
    from huggingface_hub import ModelCard

    (tmp_path / "published.md").write_text(card)
    meta = ModelCard.load(tmp_path / "published.md").data.to_dict()
    assert "base_model" not in meta  # only a Hub id may stand there, and the teacher has none
    assert meta["license"] == "mit"  # what the earlier card said is kept
    data = json.loads(report)
    assert data["student"]["name_or_path"] == "alice/sst2-student"
    assert data["teacher"]["name_or_path"] == "local:run/teacher"
    assert data["distillation"]["dataset"] == "local:sst2/train.tsv"
    assert data["distillation"]["stages"][0] == "Fine-tune the teacher in local:run/teacher"
    assert snapshot(out) == before  # the local card and report are not rewritten


def test_a_given_teacher_id_becomes_base_model_of_the_published_card(fake_hub, tmp_path, tiny_bert_cls_student_dir):
    out = _generated_output_dir(tmp_path, tiny_bert_cls_student_dir)
    publish(out, "alice/s", teacher_repo_id="org/teacher", token=TOKEN, endpoint=fake_hub.url)
    card = uploaded(fake_hub, "model", "alice/s")["README.md"].decode()
    assert "base_model: org/teacher" in card
    assert (
        json.loads(uploaded(fake_hub, "model", "alice/s")["distillation_report.json"])["teacher"]["name_or_path"]
        == "org/teacher"
    )


def test_a_hand_written_card_with_a_local_base_model_is_refused(fake_hub, output_dir, tmp_path):
    (output_dir / "README.md").write_text(CARD.replace("base_model: tiny/teacher", f"base_model: {tmp_path}"))
    with pytest.raises(HubPublishError, match="base_model") as info:
        push_to_hub(output_dir, "alice/s", token=TOKEN, endpoint=fake_hub.url)
    assert "nothing was uploaded" in str(info.value)
    assert fake_hub.requests == []


def test_a_report_with_impossible_figures_is_not_published(fake_hub, output_dir):
    data = json.loads((output_dir / "distillation_report.json").read_text())
    data["student"]["latency_ms_p50"] = -3.0
    (output_dir / "distillation_report.json").write_text(json.dumps(data))
    with pytest.raises(HubPublishError, match=r"student\.latency_ms_p50"):
        push_to_hub(output_dir, "alice/s", token=TOKEN, endpoint=fake_hub.url)
    assert fake_hub.requests == []


def test_a_symlink_leaving_the_folder_is_refused(fake_hub, output_dir, tmp_path, capsys):
    private = tmp_path / "private" / "vocab.txt"
    private.parent.mkdir()
    private.write_text("secret words\n")
    (output_dir / "vocab.txt").symlink_to(private)
    with pytest.raises(HubPublishError, match="vocab.txt") as info:
        select_model_files(output_dir)
    assert "outside the folder" in str(info.value)
    with pytest.raises(HubPublishError, match="vocab.txt"):
        push_to_hub(output_dir, "alice/s", token=TOKEN, endpoint=fake_hub.url)
    assert fake_hub.requests == []
    code, _, err = run_cli(["push", str(output_dir), "--repo-id", "alice/s", "--dry-run"], capsys)
    assert code == 1 and "vocab.txt" in err and "outside the folder" in err
    # a link that stays inside the folder is an ordinary file of it
    (output_dir / "vocab.txt").unlink()
    (output_dir / "vocab.txt").symlink_to(output_dir / "tokenizer.json")
    assert "vocab.txt" in select_model_files(output_dir)


def test_a_hub_that_never_answers_fails_in_seconds_with_a_clear_message(monkeypatch, tmp_path, output_dir):
    import threading

    from tests.fake_hub import SilentServer

    # timeout=None: the client as the library makes it, without any timeout of its own
    with online_client(monkeypatch, tmp_path / "home", timeout=None), SilentServer() as silent:
        monkeypatch.setenv(hub_mod.TIMEOUT_ENV, "0.3")
        monkeypatch.setattr(hub_mod, "RETRY_BACKOFF_S", 0.05)
        waits = record_backoff(monkeypatch)
        outcome: dict = {}

        def push():
            try:
                push_to_hub(output_dir, "alice/s", token=TOKEN, endpoint=silent.url)
            except BaseException as err:  # noqa: BLE001 - handed to the test thread
                outcome["error"] = err

        thread = threading.Thread(target=push, daemon=True)
        thread.start()
        thread.join(timeout=120)  # a guard against a hang only; the bound itself is checked below, without a clock
        assert not thread.is_alive(), "push hung on a Hub that never answers"
    err = outcome["error"]
    assert isinstance(err, HubPublishError)
    message = str(err)
    assert "did not answer within 0.3 s" in message and hub_mod.TIMEOUT_ENV in message
    assert "No files were committed" in message  # it never got past creating the repo
    assert silent.connections >= hub_mod.RETRY_ATTEMPTS  # creating the repo is idempotent: it was retried
    assert waits == [0.05, 0.1]  # each attempt waited the 0.3 s timeout, then a bounded backoff: no unbounded wait


def test_timeout_must_be_a_positive_number(output_dir, monkeypatch):
    monkeypatch.setenv(hub_mod.TIMEOUT_ENV, "soon")
    with pytest.raises(HubPublishError, match="HF_DISTILL_HUB_TIMEOUT"):
        push_to_hub(output_dir, "alice/s", token=TOKEN)
    with pytest.raises(HubPublishError, match="timeout"):
        push_to_hub(output_dir, "alice/s", token=TOKEN, timeout=0)


@pytest.mark.parametrize(
    "space_id", ["alice/bad space", "datasets/alice/data", "alice/s/extra", "https://hf.co/alice/model-not-space"]
)
def test_a_bad_space_id_is_refused_before_the_model_is_pushed(fake_hub, output_dir, app_dir, space_id):
    with pytest.raises(HubPublishError) as info:
        publish(
            output_dir,
            "alice/student",
            space_id=space_id,
            teacher_repo_id="tiny/teacher",
            app_dir=app_dir,
            token=TOKEN,
            endpoint=fake_hub.url,
        )
    assert "model was published" not in str(info.value)
    assert fake_hub.requests == []  # nothing was pushed, not even the model
    assert ("model", "alice/student") not in fake_hub.repos
