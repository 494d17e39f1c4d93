"""Soft targets shared on the Hub: push then load against the fake Hub, verification, refusals, the pipeline."""

from __future__ import annotations

import json
import logging

import pytest
import torch
import yaml
from datasets import Dataset, IterableDataset
from huggingface_hub import DatasetCard, HfApi
from transformers import AutoTokenizer

from hf_distill import DistillationConfig, DistillationTrainer
from hf_distill.hub.http import HubPublishError
from hf_distill.students.vocabulary import trim_vocabulary
from hf_distill.targets.cache import (
    CACHE_MANIFEST,
    SoftTargetCacheError,
    _verify,
    generate_soft_targets,
    soft_target_info,
)
from hf_distill.targets.shared import (
    PUBLISHED_MANIFEST,
    load_soft_targets,
    push_soft_targets,
    read_manifest,
    save_soft_targets,
)
from tests import tiny
from tests.fake_hub import FakeHub, online_client

TOKEN = "hf_TargetsWriteToken0123456789abcdefABCDEFG"


@pytest.fixture
def hub(monkeypatch, tmp_path):
    with online_client(monkeypatch, tmp_path / "hf_home"), FakeHub({TOKEN: ("alice", "write")}) as fake:
        yield fake


def config(tmp_path, **kw):
    base = dict(
        output_dir=str(tmp_path / "out"),
        report_to=[],
        use_cpu=True,
        per_device_train_batch_size=4,
        save_strategy="no",
        disable_tqdm=True,
        learning_rate=5e-3,
        logging_steps=1,
        seed=0,
    )
    base.update(kw)
    return DistillationConfig(**base)


@pytest.fixture
def cls_data(wordpiece_tokenizer):
    rows = tiny.SENTIMENT
    ds = Dataset.from_dict({"text": [t for t, _ in rows], "label": [y for _, y in rows]})
    return ds.map(lambda b: wordpiece_tokenizer(b["text"]), batched=True, remove_columns=["text"])


@pytest.fixture
def lm_data(bpe_tokenizer):
    texts = [tiny.CORPUS[i][: 10 + 4 * i] for i in range(10)]
    return Dataset.from_dict({"text": texts}).map(
        lambda b: bpe_tokenizer(b["text"]), batched=True, remove_columns=["text"]
    )


@pytest.fixture
def cls_cache(tmp_path, wordpiece_tokenizer, cls_data):
    teacher = tiny.bert_cls(wordpiece_tokenizer, 4)
    cached = generate_soft_targets(
        teacher, cls_data, cache_dir=tmp_path / "cls_cache", teacher_id=str(tmp_path / "t"), progress=False
    )
    return tmp_path / "cls_cache", cached


@pytest.fixture
def lm_cache(tmp_path, bpe_tokenizer, lm_data):
    teacher = tiny.gpt2(bpe_tokenizer, 4)
    cached = generate_soft_targets(
        teacher,
        lm_data,
        top_k=16,
        temperature=2.0,
        cache_dir=tmp_path / "lm_cache",
        teacher_id="alice/tiny-gpt2",
        progress=False,
    )
    return tmp_path / "lm_cache", cached


def one_batch_loss(tmp_path, student, tokenizer, data, **cfg) -> torch.Tensor:
    trainer = DistillationTrainer(
        model=student, teacher_model=None, args=config(tmp_path, **cfg), train_dataset=data, processing_class=tokenizer
    )
    rows = list(data) if isinstance(data, IterableDataset) else [dict(r) for r in data]
    batch = trainer.data_collator([dict(r) for r in rows[:6]])
    with torch.no_grad():
        return trainer.compute_loss(student, batch)


def push(hub, cache, repo_id, tokenizer, **kw):
    return push_soft_targets(cache, repo_id, tokenizer=tokenizer, token=TOKEN, endpoint=hub.url, **kw)


def test_classification_full_logits_round_trip_is_exact(tmp_path, hub, wordpiece_tokenizer, cls_cache):
    cache, cached = cls_cache
    # from the Dataset generate_soft_targets returned (the LM tests push the cache folder)
    url = push(
        hub,
        cached,
        "alice/cls-targets",
        wordpiece_tokenizer,
        data_source="glue/sst2",
        teacher_id="alice/teacher",
        models=["alice/student-a"],
    )
    repo = hub.repo("dataset", "alice/cls-targets")
    assert "alice/cls-targets" in url and len(repo.commits) == 1  # one commit
    files = set(repo.files)
    assert {
        PUBLISHED_MANIFEST,
        "README.md",
        "data/train-00000-of-00001.parquet",
        "teacher_vocabulary/tokenizer.json",
    } <= files
    routes = hub.routes_called()
    assert any(r.startswith("POST /api/datasets/alice/cls-targets/preupload/") for r in routes)
    assert any(r == "POST /datasets/alice/cls-targets.git/info/lfs/objects/batch" for r in routes)  # parquet via LFS

    loaded = load_soft_targets(
        "alice/cls-targets",
        student_tokenizer=wordpiece_tokenizer,
        endpoint=hub.url,
        expect={"task": "sequence-classification", "temperature": 3.0},
    )
    assert loaded.column_names == cached.column_names and loaded.features == cached.features
    student = tiny.bert_cls(wordpiece_tokenizer, 2)
    local = one_batch_loss(tmp_path, student, wordpiece_tokenizer, cached, alpha=0.5, temperature=2.0)
    remote = one_batch_loss(tmp_path, student, wordpiece_tokenizer, loaded, alpha=0.5, temperature=2.0)
    assert torch.equal(local, remote) and local > 0

    manifest = json.loads(repo.files[PUBLISHED_MANIFEST])
    card = DatasetCard(repo.files["README.md"].decode())
    assert manifest["teacher_id"] == "alice/teacher" and manifest["data_source"] == "glue/sst2"
    assert manifest["rows"] == len(cached) and manifest["task"] == "sequence-classification"
    assert (
        manifest["teacher_weights_sha256"]
        == json.loads((next(cache.glob(f"*/{CACHE_MANIFEST}"))).read_text())["key"]["teacher_weights"]
    )
    assert manifest["shards"][0]["bytes"] == len(repo.files[manifest["shards"][0]["path"]])
    meta = card.data.to_dict()["soft_targets"]
    for key in (
        "teacher_id",
        "teacher_weights_sha256",
        "tokenizer_sha256",
        "data_fingerprint",
        "task",
        "temperature",
        "top_k",
        "dtypes",
        "rows",
        "bytes_per_row",
    ):
        assert meta[key] == manifest[key], key
    assert "alice/student-a" in card.text and 'load_soft_targets("alice/cls-targets"' in card.text
    # published files name repo ids, never local paths
    for name in (PUBLISHED_MANIFEST, "README.md"):
        assert str(tmp_path) not in repo.files[name].decode()


def test_lm_topk_round_trip_is_exact_and_streams(tmp_path, hub, bpe_tokenizer, lm_cache):
    cache, cached = lm_cache
    push(hub, cache, "alice/lm-targets", bpe_tokenizer)
    expect = {"task": "causal-lm", "top_k": 16, "temperature": 2.0, "teacher": "alice/tiny-gpt2"}
    loaded = load_soft_targets("alice/lm-targets", student_tokenizer=bpe_tokenizer, expect=expect, endpoint=hub.url)
    student = tiny.gpt2(bpe_tokenizer, 2)
    local = one_batch_loss(tmp_path, student, bpe_tokenizer, cached, alpha=1.0, temperature=2.0)
    remote = one_batch_loss(tmp_path, student, bpe_tokenizer, loaded, alpha=1.0, temperature=2.0)
    assert torch.equal(local, remote) and local > 0

    streamed = load_soft_targets(
        "alice/lm-targets", student_tokenizer=bpe_tokenizer, expect=expect, streaming=True, endpoint=hub.url
    )
    assert isinstance(streamed, IterableDataset)
    assert soft_target_info(streamed)["top_k"] == 16 and soft_target_info(streamed)["temperature"] == 2.0
    streamed_loss = one_batch_loss(tmp_path, student, bpe_tokenizer, streamed, alpha=1.0, temperature=2.0, max_steps=1)
    assert torch.equal(streamed_loss, local)
    # the Trainer trains on the stream (max_steps), with no teacher at all
    trainer = DistillationTrainer(
        model=student,
        teacher_model=None,
        args=config(tmp_path, alpha=1.0, temperature=2.0, max_steps=3),
        train_dataset=streamed,
        processing_class=bpe_tokenizer,
    )
    assert trainer.train().global_step == 3
    # the trainer's own temperature guard sees the published settings
    with pytest.raises(ValueError, match="cached at temperature 2.0"):
        DistillationTrainer(
            model=student,
            teacher_model=None,
            args=config(tmp_path, temperature=4.0),
            train_dataset=loaded,
            processing_class=bpe_tokenizer,
        )


def test_local_folder_loads_offline(tmp_path, hub, bpe_tokenizer, lm_cache):
    cache, cached = lm_cache
    push(hub, cache, "alice/lm-targets", bpe_tokenizer)
    folder = tmp_path / "copy"  # a clone of the dataset repo
    for name, data in hub.repo("dataset", "alice/lm-targets").files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    hub.stop()  # no Hub from here on
    loaded = load_soft_targets(folder, student_tokenizer=bpe_tokenizer, expect={"top_k": 16})
    assert loaded["teacher_topk_ids"] == cached["teacher_topk_ids"]
    assert read_manifest(folder)["rows"] == len(cached)


def test_tampered_shard_is_refused_naming_the_file(tmp_path, hub, bpe_tokenizer, lm_cache):
    cache, _ = lm_cache
    push(hub, cache, "alice/lm-targets", bpe_tokenizer)
    files = hub.repo("dataset", "alice/lm-targets").files
    shard = "data/train-00000-of-00001.parquet"
    data = bytearray(files[shard])
    data[len(data) // 2] ^= 0xFF
    files[shard] = bytes(data)
    with pytest.raises(SoftTargetCacheError, match=r"data/train-00000-of-00001\.parquet does not match the manifest"):
        load_soft_targets("alice/lm-targets", endpoint=hub.url)
    with pytest.raises(SoftTargetCacheError, match=r"data/train-00000-of-00001\.parquet does not match"):
        list(load_soft_targets("alice/lm-targets", endpoint=hub.url, streaming=True))


def _two_shard_copy(tmp_path, bpe_tokenizer, lm_cache):
    cache, cached = lm_cache
    folder = tmp_path / "two-shards"
    manifest = save_soft_targets(cache, folder, tokenizer=bpe_tokenizer, max_shard_bytes=cached.data.nbytes // 2 + 1)
    assert len(manifest["shards"]) == 2 and manifest["rows"] == len(cached)
    assert len(load_soft_targets(folder)) == len(cached)  # intact: loads
    return folder, manifest


def test_a_shard_dropped_from_the_manifest_is_refused(tmp_path, bpe_tokenizer, lm_cache):
    folder, manifest = _two_shard_copy(tmp_path, bpe_tokenizer, lm_cache)
    kept = manifest["shards"][0]
    # the second shard's entry is gone (and its file): every remaining shard still matches its checksum
    (folder / manifest["shards"][1]["path"]).unlink()
    (folder / PUBLISHED_MANIFEST).write_text(json.dumps({**manifest, "shards": [kept]}))
    message = rf"the shards hold {kept['rows']} rows but {PUBLISHED_MANIFEST} says {manifest['rows']}: .*republish"
    with pytest.raises(SoftTargetCacheError, match=message):
        load_soft_targets(folder)
    with pytest.raises(SoftTargetCacheError, match=message):
        load_soft_targets(folder, streaming=True)


def test_manifest_and_shard_file_errors_are_one_clear_line(tmp_path, bpe_tokenizer, lm_cache):
    folder, manifest = _two_shard_copy(tmp_path, bpe_tokenizer, lm_cache)
    shard = folder / manifest["shards"][1]["path"]
    data = shard.read_bytes()
    shard.unlink()
    with pytest.raises(
        SoftTargetCacheError, match=rf"soft targets {folder}: {manifest['shards'][1]['path']} is missing"
    ):
        load_soft_targets(folder)
    shard.write_bytes(data)
    (folder / PUBLISHED_MANIFEST).write_text(json.dumps({**manifest, "schema_version": 2}))
    with pytest.raises(SoftTargetCacheError, match=r"manifest schema 2, this hf-distill reads 1: upgrade hf-distill"):
        load_soft_targets(folder)
    (folder / PUBLISHED_MANIFEST).write_text(json.dumps(manifest)[:-20])
    with pytest.raises(SoftTargetCacheError, match=rf"{PUBLISHED_MANIFEST} is not valid JSON"):
        read_manifest(folder)
    (folder / PUBLISHED_MANIFEST).unlink()
    with pytest.raises(SoftTargetCacheError, match=rf"soft targets {folder}: {PUBLISHED_MANIFEST} is missing"):
        load_soft_targets(folder)


def test_other_tokenizer_temperature_and_top_k_are_refused(tmp_path, hub, bpe_tokenizer, wordpiece_tokenizer, lm_cache):
    cache, _ = lm_cache
    push(hub, cache, "alice/lm-targets", bpe_tokenizer)
    other = wordpiece_tokenizer
    with pytest.raises(
        ValueError, match=r"tokenizer is .* but the targets were made with .*use the teacher's tokenizer"
    ):
        load_soft_targets("alice/lm-targets", student_tokenizer=other, endpoint=hub.url)
    _, trimmed = trim_vocabulary(tiny.gpt2(bpe_tokenizer, 2), bpe_tokenizer, tiny.CORPUS[:3], min_corpus_tokens=10)
    with pytest.raises(ValueError, match=r"are top-16: they hold the teacher's ids .* trimmed student"):
        load_soft_targets("alice/lm-targets", student_tokenizer=trimmed, endpoint=hub.url)
    with pytest.raises(
        ValueError, match=r"temperature is 2\.0 but 4\.0 was expected: train at the targets' temperature"
    ):
        load_soft_targets("alice/lm-targets", expect={"temperature": 4.0}, endpoint=hub.url)
    with pytest.raises(ValueError, match=r"top_k is 16 but 64 was expected: use the targets' top_k"):
        load_soft_targets("alice/lm-targets", expect={"top_k": 64}, endpoint=hub.url)
    with pytest.raises(ValueError, match=r"expect: unknown field\(s\) topk"):
        load_soft_targets("alice/lm-targets", expect={"topk": 64}, endpoint=hub.url)
    # a list of names was "dictionary update sequence element #0 has length 4; 2 is required"
    with pytest.raises(
        TypeError, match=r"expect=\['task'\] must map each field to the value .* e\.g\. expect=\{'task'"
    ):
        load_soft_targets("alice/lm-targets", expect=["task"], endpoint=hub.url)


def test_trimmed_student_tokenizer_gets_its_ids(tmp_path, hub, wordpiece_tokenizer, cls_cache, cls_data):
    cache, cached = cls_cache
    push(hub, cache, "alice/cls-targets", wordpiece_tokenizer)
    student = tiny.bert_cls(wordpiece_tokenizer, 2)
    student, trimmed = trim_vocabulary(
        student, wordpiece_tokenizer, [t for t, _ in tiny.SENTIMENT], min_corpus_tokens=10
    )
    assert len(trimmed) < len(wordpiece_tokenizer)
    loaded = load_soft_targets("alice/cls-targets", student_tokenizer=trimmed, endpoint=hub.url)
    texts = [t for t, _ in tiny.SENTIMENT]
    assert loaded["input_ids"] == trimmed(texts)["input_ids"]  # the student's own ids
    assert loaded["teacher_logits"] == cached["teacher_logits"]
    DistillationTrainer(
        model=student, teacher_model=None, args=config(tmp_path), train_dataset=loaded, processing_class=trimmed
    )


def test_token_never_in_uploaded_bytes_or_logs(tmp_path, hub, bpe_tokenizer, lm_cache, logs, caplog, capsys):
    cache, _ = lm_cache
    caplog.set_level(logging.DEBUG)
    push(hub, cache, "alice/lm-targets", bpe_tokenizer)
    load_soft_targets("alice/lm-targets", endpoint=hub.url, token=TOKEN)
    received = list(hub.all_received_bytes())
    assert received and all(TOKEN.encode() not in blob for blob in received)
    assert all(TOKEN not in r.getMessage() for r in logs) and TOKEN not in caplog.text
    out = capsys.readouterr()
    assert TOKEN not in out.out and TOKEN not in out.err
    # and the server did see it (as the Authorization header): the scan above would have caught a leak
    assert all(r.authenticated for r in hub.requests if r.method == "POST" and "/commit/" in r.path)


def test_failed_upload_leaves_the_cache_intact(tmp_path, hub, bpe_tokenizer, lm_cache):
    cache, cached = lm_cache
    folder = next(p.parent for p in cache.glob(f"*/{CACHE_MANIFEST}"))
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    hub.fail("commit", status=500, message="storage backend down")
    with pytest.raises(HubPublishError, match="No files were committed"):
        push(hub, cache, "alice/lm-targets", bpe_tokenizer)
    assert hub.repo("dataset", "alice/lm-targets").commits == []
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    _verify(folder, json.loads((folder / CACHE_MANIFEST).read_text())["key"])  # still a valid cache
    # the next attempt succeeds from the same cache
    push(hub, cache, "alice/lm-targets", bpe_tokenizer)
    assert len(hub.repo("dataset", "alice/lm-targets").commits) == 1


def test_cli_push_targets(tmp_path, hub, bpe_tokenizer, lm_cache, monkeypatch, capsys):
    from hf_distill.cli.main import main

    cache, _ = lm_cache
    tok_dir = tmp_path / "tok"
    bpe_tokenizer.save_pretrained(tok_dir)
    monkeypatch.setenv("MY_TARGETS_TOKEN", TOKEN)
    args = [
        "push-targets",
        str(cache),
        "--repo-id",
        "alice/cli-targets",
        "--tokenizer",
        str(tok_dir),
        "--token-env",
        "MY_TARGETS_TOKEN",
        "--endpoint",
        hub.url,
    ]
    assert main(args) == 0
    assert "alice/cli-targets" in capsys.readouterr().out
    assert PUBLISHED_MANIFEST in hub.repo("dataset", "alice/cli-targets").files
    assert main(["push-targets", str(tmp_path / "nowhere"), "--repo-id", "alice/x", "--endpoint", hub.url]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("hf-distill push-targets: error:")
        and "not a soft-target cache" in err
        and len(err.strip().splitlines()) <= 2
    )


def test_cli_push_targets_to_a_bare_name_goes_to_the_tokens_user(
    tmp_path, hub, bpe_tokenizer, lm_cache, monkeypatch, capsys
):
    from hf_distill.cli.main import main

    cache, _ = lm_cache
    tok_dir = tmp_path / "tok"
    bpe_tokenizer.save_pretrained(tok_dir)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert (
        main(
            [
                "push-targets",
                str(cache),
                "--repo-id",
                "bare-targets",
                "--tokenizer",
                str(tok_dir),
                "--endpoint",
                hub.url,
            ]
        )
        == 0
    )
    assert f"{hub.url}/datasets/alice/bare-targets/commit/" in capsys.readouterr().out
    assert list(hub.repos) == [("dataset", "alice/bare-targets")]
    repo = hub.repo("dataset", "alice/bare-targets")
    assert len(repo.commits) == 1 and PUBLISHED_MANIFEST in repo.files
    # the card's snippet names the repo the targets are in
    assert 'load_soft_targets("alice/bare-targets"' in repo.files["README.md"].decode()


@pytest.mark.slow
def test_pipeline_trains_from_hub_targets_without_teacher_forwards(tmp_path, hub, monkeypatch):
    from huggingface_hub import constants

    from hf_distill.pipeline.run import run_from_config
    from hf_distill.targets import cache as soft_targets_mod
    from tests.test_pipeline import lm_config

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    # run 1: a teacher, its top-k targets, a student; the push stage publishes the targets and the model
    first = run_from_config(
        lm_config(tmp_path),
        ["--push_to_hub", "true", "--hub_model_id", "alice/lm-student", "--push_soft_targets", "true"],
    )
    assert "alice/lm-student-soft-targets" in first["push"]["soft_targets_commit"]
    targets = hub.repo("dataset", "alice/lm-student-soft-targets")
    assert "alice/lm-student" in DatasetCard(targets.files["README.md"].decode()).text
    manifest = json.loads(targets.files[PUBLISHED_MANIFEST])
    assert manifest["models"] == ["alice/lm-student"] and manifest["top_k"] == 8
    assert manifest["teacher_id"] == "local:lmrun/teacher"  # trained in the run: named by its hash, never its path
    assert all(str(tmp_path) not in targets.files[name].decode() for name in (PUBLISHED_MANIFEST, "README.md"))
    model_card = hub.repo("model", "alice/lm-student").files["README.md"].decode()
    assert "alice/lm-student-soft-targets" in yaml.safe_load(model_card.split("---")[1])["datasets"]

    # run 2: another student from the published targets; the teacher never runs on training batches
    calls = {"train": 0, "eval": 0}
    original = DistillationTrainer._teacher_forward

    def counting(self, inputs, extra):
        calls["train" if self.model.training else "eval"] += 1
        return original(self, inputs, extra)

    def no_generation(*args, **kwargs):
        raise AssertionError("the teacher must not generate soft targets when soft_targets is set")

    monkeypatch.setattr(DistillationTrainer, "_teacher_forward", counting)
    monkeypatch.setattr(soft_targets_mod, "generate_soft_targets", no_generation)
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    cfg = lm_config(
        second_dir,
        teacher=str(tmp_path / "lmrun" / "teacher"),
        teacher_from_scratch=False,
        train_teacher="no",
        soft_targets="alice/lm-student-soft-targets",
        output_dir=str(second_dir / "run"),
    )
    results = run_from_config(cfg, ["--push_to_hub", "true", "--hub_model_id", "alice/lm-student-2"])
    assert results["soft_targets"]["source"] == "alice/lm-student-soft-targets"
    assert results["student"]["global_step"] == 4 and calls["train"] == 0
    assert calls["eval"] > 0  # the counter works: the evaluation loss still runs the teacher on validation batches
    card = (second_dir / "run" / "student" / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert "alice/lm-student-soft-targets" in meta["datasets"]
    assert "Hub dataset alice/lm-student-soft-targets" in card
    pushed = hub.repo("model", "alice/lm-student-2").files["README.md"].decode()
    assert "alice/lm-student-soft-targets" in pushed
    # the report records what the student trained on: the published rows at the commit read, not the train file
    trained_on = json.loads((second_dir / "run" / "student" / "distillation_report.json").read_text())["distillation"]
    commit = HfApi(endpoint=hub.url).dataset_info("alice/lm-student-soft-targets").sha
    assert (trained_on["dataset"], trained_on["soft_targets_revision"]) == ("alice/lm-student-soft-targets", commit)
    assert (trained_on["labelled_rows"], trained_on["transfer_rows"]) == (manifest["rows"], 0)
    assert "| Training data | [`alice/lm-student-soft-targets`](https://huggingface.co/datasets/" in card
    assert f"| Soft targets revision | {commit} |" in card

    # run 3: another teacher (one weight changed) with those targets is refused before training: its report would
    # compare the student with a teacher that did not make its targets
    from transformers import AutoModelForCausalLM

    other = AutoModelForCausalLM.from_pretrained(tmp_path / "lmrun" / "teacher")
    with torch.no_grad():
        other.lm_head.weight[0, 0] += 1.0
    other.save_pretrained(tmp_path / "other_teacher")
    AutoTokenizer.from_pretrained(tmp_path / "lmrun" / "teacher").save_pretrained(tmp_path / "other_teacher")
    third_dir = tmp_path / "third"
    third_dir.mkdir()
    cfg = lm_config(
        third_dir,
        teacher=str(tmp_path / "other_teacher"),
        teacher_from_scratch=False,
        train_teacher="no",
        soft_targets="alice/lm-student-soft-targets",
        output_dir=str(third_dir / "run"),
    )
    with pytest.raises(ValueError, match="teacher_weights is .* pass the teacher that made the targets"):
        run_from_config(cfg)
    assert not (third_dir / "run" / "student").exists()


def test_a_classifier_from_hub_targets_reports_their_rows(tmp_path, hub, tiny_bert_cls_dir, monkeypatch):
    from huggingface_hub import constants

    from hf_distill.pipeline.run import run_from_config
    from tests.test_pipeline import cls_config

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    first = tmp_path / "first"
    first.mkdir()
    # run 1: 24 labelled and 16 transfer rows get the teacher's targets, published with the model
    run_from_config(
        cls_config(first, tiny_bert_cls_dir),
        ["--push_to_hub", "true", "--hub_model_id", "alice/cls-student", "--push_soft_targets", "true"],
    )
    rows = json.loads(hub.repo("dataset", "alice/cls-student-soft-targets").files[PUBLISHED_MANIFEST])["rows"]
    assert rows == 40
    # run 2: its own data settings say 8 labelled, 0 transfer; the student trains on the 40 published rows
    second = tmp_path / "second"
    second.mkdir()
    cfg = cls_config(
        second,
        first / "run" / "teacher",
        train_teacher="no",
        num_labelled=8,
        num_transfer=0,
        soft_targets="alice/cls-student-soft-targets",
    )
    results = run_from_config(cfg)
    assert results["student"]["rows"] == 40
    report = json.loads((second / "run" / "student" / "distillation_report.json").read_text())
    trained_on = report["distillation"]
    assert trained_on["dataset"] == trained_on["soft_targets_dataset"] == "alice/cls-student-soft-targets"
    assert (trained_on["labelled_rows"], trained_on["transfer_rows"]) == (24, 16)
    assert (
        trained_on["soft_targets_revision"]
        == HfApi(endpoint=hub.url).dataset_info("alice/cls-student-soft-targets").sha
    )
    assert report["schema_minor"] >= 5
    card = (second / "run" / "student" / "README.md").read_text()
    assert yaml.safe_load(card.split("---")[1])["datasets"] == ["alice/cls-student-soft-targets"]
    assert "| Labelled rows | 24 |" in card and "| Transfer rows | 16 |" in card
    assert "train.tsv" not in card  # the run's own train file is not what the student trained on


def test_pipeline_refuses_contradictory_target_settings(tmp_path):
    from hf_distill.pipeline.preflight import PreflightError
    from hf_distill.pipeline.run import run_from_config
    from tests.test_pipeline import lm_config

    cfg = lm_config(tmp_path)
    with pytest.raises(PreflightError, match="push_soft_targets publishes in the push stage: set push_to_hub: true"):
        run_from_config(cfg, ["--push_soft_targets", "true"], check_only=True)
    with pytest.raises(PreflightError, match="these targets are published already"):
        run_from_config(
            cfg,
            [
                "--push_soft_targets",
                "true",
                "--soft_targets",
                "alice/t",
                "--push_to_hub",
                "true",
                "--hub_model_id",
                "alice/m",
            ],
            check_only=True,
        )
    with pytest.raises(PreflightError, match="soft_targets .* is not a Hub repo id"):
        run_from_config(cfg, ["--soft_targets", "no such folder"], check_only=True)
    with pytest.raises(ValueError, match="need use_soft_targets: true"):
        run_from_config(cfg, ["--soft_targets", "alice/t", "--use_soft_targets", "false"], check_only=True)


def test_the_two_manifests_are_named_for_what_they_describe_and_the_old_name_warns():
    """A local cache's manifest and published targets' manifest are two files with two names; the old public name
    of the published one still works for one release, with a FutureWarning naming the new one."""
    import importlib

    from hf_distill.targets import cache, shared

    assert (cache.CACHE_MANIFEST, shared.PUBLISHED_MANIFEST) == ("hf_distill_soft_targets.json", "soft_targets.json")
    with pytest.warns(FutureWarning, match=r"MANIFEST_FILE is now PUBLISHED_MANIFEST"):
        from hf_distill.targets.shared import MANIFEST_FILE
    assert MANIFEST_FILE == shared.PUBLISHED_MANIFEST
    with pytest.warns(FutureWarning, match=r"MANIFEST_FILE is now PUBLISHED_MANIFEST"):
        assert importlib.import_module("hf_distill.shared_targets").MANIFEST_FILE == "soft_targets.json"
    assert not hasattr(cache, "MANIFEST") and not hasattr(shared, "MANIFEST")
