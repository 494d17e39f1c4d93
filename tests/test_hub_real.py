"""Opt-in checks against the real Hugging Face Hub: what the fake Hub cannot tell (metadata schema, real routes).

Run with a write token and a namespace you own (a private throwaway repo is created, read back and deleted):

    HF_TOKEN=hf_... HF_DISTILL_TEST_NAMESPACE=your-name pytest tests/test_hub_real.py

Set HF_DISTILL_TEST_SPACE=1 as well to create a Gradio Space (needs an account allowed to run Gradio Spaces).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest

from hf_distill.publishing.publish import push_to_hub
from hf_distill.publishing.space import build_space_readme, push_space
from tests.fake_hub import online_client
from tests.test_report import sample_report

TOKEN = os.environ.get("HF_TOKEN")
NAMESPACE = os.environ.get("HF_DISTILL_TEST_NAMESPACE")
ENDPOINT = os.environ.get("HF_DISTILL_TEST_ENDPOINT", "https://huggingface.co")

pytestmark = pytest.mark.skipif(
    not (TOKEN and NAMESPACE),
    reason="opt-in: set HF_TOKEN (write role) and HF_DISTILL_TEST_NAMESPACE to test against the real Hub",
)

CARD = "---\nlicense: apache-2.0\ntags:\n- distillation\n- knowledge-distillation\n---\n\n# hf-distill test\n"


@pytest.fixture
def real_hub(monkeypatch, tmp_path):
    with online_client(monkeypatch, tmp_path / "hf_home", disable_xet=False, timeout=120):
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        yield


def test_push_read_back_and_delete(real_hub, tmp_path, tiny_bert_cls_student_dir):
    from huggingface_hub import HfApi, hf_hub_download

    out = tmp_path / "out"
    shutil.copytree(tiny_bert_cls_student_dir, out)
    (out / "README.md").write_text(CARD)
    sample_report().to_json(out / "distillation_report.json")
    (out / "distillation_chart.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (out / "checkpoint-1").mkdir()
    (out / "checkpoint-1" / "optimizer.pt").write_bytes(b"never uploaded")

    api = HfApi(endpoint=ENDPOINT, token=TOKEN)
    repo_id = f"{NAMESPACE}/hf-distill-test-{uuid.uuid4().hex[:10]}"
    try:
        commit = push_to_hub(out, repo_id, token=TOKEN, endpoint=ENDPOINT, private=True, commit_message="test")
        assert commit.oid
        info = api.model_info(repo_id)
        assert info.private
        assert info.card_data is not None and info.card_data["license"] == "apache-2.0"  # the Hub parsed the card
        expected = {
            ".gitattributes",
            "README.md",
            "config.json",
            "distillation_chart.png",
            "distillation_report.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
        }
        assert set(api.list_repo_files(repo_id)) == expected
        for name in ("README.md", "model.safetensors", "distillation_report.json"):
            path = hf_hub_download(repo_id, name, token=TOKEN, endpoint=ENDPOINT, cache_dir=tmp_path / "dl")
            data = Path(path).read_bytes()
            if name == "distillation_report.json":  # published with the repo id as the student's name
                assert json.loads(data)["student"]["name_or_path"] == repo_id
            else:
                assert data == (out / name).read_bytes()
            assert TOKEN.encode() not in data
    finally:
        api.delete_repo(repo_id, missing_ok=True)


def test_space_readme_passes_the_hubs_own_validation(real_hub):
    from huggingface_hub import get_session
    from huggingface_hub.utils import build_hf_headers

    readme = build_space_readme(
        title="hf-distill test",
        teacher_repo_id="google-bert/bert-base-uncased",
        model_repo_id=f"{NAMESPACE}/student",
        sdk_version="6.31.0",
    )
    response = get_session().post(
        f"{ENDPOINT}/api/validate-yaml",
        json={"content": readme, "repoType": "space"},
        headers=build_hf_headers(token=TOKEN),
    )
    assert response.status_code == 200, response.text
    assert response.json().get("errors", []) == []


@pytest.mark.skipif(os.environ.get("HF_DISTILL_TEST_SPACE") != "1", reason="opt-in: set HF_DISTILL_TEST_SPACE=1")
def test_push_space_and_delete(real_hub, tmp_path):
    from huggingface_hub import HfApi

    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text("import gradio as gr\n\ngr.Interface(lambda x: x, 'text', 'text').launch()\n")
    (app / "requirements.txt").write_text("transformers\n")
    api = HfApi(endpoint=ENDPOINT, token=TOKEN)
    space_id = f"{NAMESPACE}/hf-distill-test-space-{uuid.uuid4().hex[:8]}"
    try:
        push_space(
            space_id,
            f"{NAMESPACE}/student",
            "google-bert/bert-base-uncased",
            app_dir=app,
            token=TOKEN,
            endpoint=ENDPOINT,
            private=True,
        )
        files = set(api.list_repo_files(space_id, repo_type="space"))
        assert {"README.md", "app.py", "requirements.txt", "distill_config.json"} <= files
        variables = api.get_space_variables(space_id)
        assert variables["STUDENT_MODEL"].value == f"{NAMESPACE}/student"
        assert api.space_info(space_id).sdk == "gradio"
    finally:
        api.delete_repo(space_id, repo_type="space", missing_ok=True)
