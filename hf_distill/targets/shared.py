"""Share cached soft targets on the Hub: one team runs the teacher once, anyone distils students from its targets.

`push_soft_targets` publishes a soft-target cache (`hf_distill.soft_targets`) as a Hub **dataset** repo in one
commit (through `hub.push_dataset_files`, the same publisher as models: allow list, secrets deny-list, token scan,
timeouts):

* ``data/train-0000i-of-0000n.parquet``: the rows (model inputs, labels and the ``teacher_*`` columns), written
  with `datasets.Dataset.to_parquet`, sharded; the standard layout, so ``load_dataset(repo_id)`` also reads them;
* ``soft_targets.json``: the manifest (`PUBLISHED_MANIFEST`): teacher id and revision, a SHA-256 of the teacher's
  weights, the tokenizer's vocabulary hash, data source and fingerprint, task, temperature, top-k, dtypes, rows,
  bytes per row and per token, and the size and SHA-256 of every shard;
* ``teacher_vocabulary/``: the teacher's tokenizer files (when known), so a student can use it, and so a trimmed
  student's vocabulary can be checked against it;
* ``README.md``: a `DatasetCard` whose YAML holds the same facts (``soft_targets:``), with a how-to-use snippet
  and the models distilled from it.

`load_soft_targets` downloads the manifest and the shards it lists (or reads a local folder of the same layout,
offline), verifies every shard's SHA-256, checks the student's tokenizer and the caller's expectations (`expect`),
and returns a `datasets.Dataset` (or, with ``streaming=True``, an `IterableDataset`) with the columns of the local
cache, ready for ``DistillationTrainer(teacher_model=None, train_dataset=...)``.

Tokenizers. The manifest records ``sha256`` of the teacher's vocabulary (token → id, sorted). A student tokenizer
with the same hash reads the rows as they are. A student trimmed with `vocabulary.trim_vocabulary` is recognised
when each of its tokens has the teacher id of the same string, in increasing order (its kept-id map), and its
vocabulary equals the teacher's restricted to those ids (`vocabulary.check_trimmed_tokenizers`); its rows'
``input_ids`` are then mapped to the student's ids (`vocabulary.remap_ids`); full teacher logits stay at the
teacher's width and the trainer restricts them to the kept ids (`vocabulary.teacher_logits_for_student`); top-k
targets are refused for a trimmed student (their tail mass cannot be split, see `hf_distill.vocabulary`). Any
other tokenizer is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetInfo, Features, IterableDataset, load_from_disk

from ..core.data import file_sha256
from .cache import CACHE_MANIFEST, INFO_KEY, SOFT_TARGET_COLUMNS, SoftTargetCacheError, _verify, soft_target_info

__all__ = [
    "PUBLISHED_MANIFEST",
    "SCHEMA_VERSION",
    "load_soft_targets",
    "push_soft_targets",
    "read_manifest",
    "save_soft_targets",
    "vocabulary_sha256",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# The manifest of published soft targets (a Hub dataset, or a local folder of the same layout); a local cache
# folder has its own, `hf_distill.targets.cache.CACHE_MANIFEST`.
PUBLISHED_MANIFEST = "soft_targets.json"
# old names of this module -> their new names (they work, with a FutureWarning, until the next release)
_RENAMED = {"MANIFEST_FILE": "PUBLISHED_MANIFEST"}
DATA_DIR = "data"
TOKENIZER_DIR = "teacher_vocabulary"  # not "*token*": that name is on the secrets deny-list
DEFAULT_MAX_SHARD_BYTES = 500 * 1024 * 1024  # as `Dataset.push_to_hub`
# `expect` keys → manifest fields (what a caller may require of the targets).
EXPECT_FIELDS = {
    "temperature": "temperature",
    "top_k": "top_k",
    "task": "task",
    "teacher": "teacher_id",
    "teacher_id": "teacher_id",
    "teacher_revision": "teacher_revision",
    "teacher_weights": "teacher_weights_sha256",
    "tokenizer": "tokenizer_sha256",
    "data_fingerprint": "data_fingerprint",
    "max_length": "max_length",
    "logprob_dtype": "logprob_dtype",
}
_FIXES = {
    "temperature": (
        "train at the targets' temperature (DistillationConfig.temperature) or publish targets made at yours"
    ),
    "top_k": "use the targets' top_k or publish targets made with yours",
    "task": "distil a student for the targets' task",
    "teacher_weights": "pass the teacher that made the targets (named in their card), or regenerate the targets "
    "with this teacher",
}


# ---------------------------------------------------------------------------------------------------- helpers


def vocabulary_sha256(tokenizer: Any) -> str:
    """SHA-256 of a tokenizer's vocabulary (token → id pairs, sorted): equal hashes give equal token ids."""
    items = sorted(tokenizer.get_vocab().items(), key=lambda kv: (kv[1], kv[0]))
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode("utf-8")).hexdigest()


def _cache_folder(path: Path) -> Path:
    """The cache folder itself, or the only cache under a `cache_dir` root (e.g. ``run/soft_targets``)."""
    if (path / CACHE_MANIFEST).is_file():
        return path
    found = sorted(p.parent for p in path.glob(f"*/{CACHE_MANIFEST}")) if path.is_dir() else []
    if len(found) == 1:
        return found[0]
    if not found:
        raise ValueError(
            f"{path} is not a soft-target cache (no {CACHE_MANIFEST}): pass the folder "
            "generate_soft_targets(cache_dir=...) wrote, or a Dataset with soft-target columns"
        )
    raise ValueError(
        f"{path} holds {len(found)} soft-target caches ({', '.join(p.name for p in found)}): pass the one to publish"
    )


def _load_cache(path: Path) -> tuple[Dataset, dict[str, Any]]:
    """Verify a cache folder against its manifest (sizes and SHA-256) and load it; returns (dataset, info)."""
    folder = _cache_folder(path)
    manifest = json.loads((folder / CACHE_MANIFEST).read_text())
    _verify(folder, manifest.get("key"))  # raises SoftTargetCacheError for a stale, truncated or corrupted cache
    return load_from_disk(str(folder)), {**manifest.get("info", {}), **manifest.get("key", {})}


def _public_name(value: str | None) -> str | None:
    """A Hub id as it is; a local path as 'local:PARENT/NAME' (published files never show local paths)."""
    from ..hub.scrub import _hub_id_or_none, _local_label

    if not value:
        return None
    return _hub_id_or_none(value) or _local_label(value)


def _teacher_tokenizer(tokenizer: Any, teacher_id: str | None) -> Any:
    """The tokenizer object: given, else loaded from a path / id given, else from a local teacher folder."""
    from transformers import AutoTokenizer

    if tokenizer is None and teacher_id and Path(teacher_id).is_dir():
        tokenizer = teacher_id  # a cache made by the pipeline records the teacher's folder
    if tokenizer is None or hasattr(tokenizer, "get_vocab"):
        return tokenizer
    return AutoTokenizer.from_pretrained(str(tokenizer))


def _num_tokens(ds: Dataset) -> int:
    if "input_ids" not in ds.column_names:
        return len(ds)
    return int(sum(len(ids) for ids in ds.with_format("arrow")["input_ids"].to_pylist()))


# ---------------------------------------------------------------------------------------------------- push


def _write_shards(ds: Dataset, folder: Path, max_shard_bytes: int) -> list[dict[str, Any]]:
    """Write `ds` as Parquet shards under folder/data; returns [{path, rows, bytes, sha256}]."""
    if ds._indices is not None:
        ds = ds.flatten_indices()
    # A fresh DatasetInfo: only the features travel in the Parquet metadata, never the local description.
    ds = Dataset(ds.data, info=DatasetInfo(features=ds.features))
    n = max(1, math.ceil(ds.data.nbytes / max_shard_bytes))
    (folder / DATA_DIR).mkdir(parents=True, exist_ok=True)
    shards = []
    for i in range(n):
        rel = f"{DATA_DIR}/train-{i:05d}-of-{n:05d}.parquet"
        part = ds.shard(num_shards=n, index=i, contiguous=True)
        part.to_parquet(str(folder / rel))
        shards.append(
            {
                "path": rel,
                "rows": len(part),
                "bytes": (folder / rel).stat().st_size,
                "sha256": file_sha256(folder / rel),
            }
        )
    return shards


def _card(manifest: dict[str, Any], repo_id: str) -> str:
    from huggingface_hub import DatasetCard, DatasetCardData

    facts = {k: v for k, v in manifest.items() if k not in ("shards", "features")}
    data = DatasetCardData(
        license=manifest.get("license"),
        tags=["distillation", "knowledge-distillation", "soft-targets", "hf-distill"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": f"{DATA_DIR}/train-*"}]}],
        soft_targets=facts,
    )
    teacher = manifest.get("teacher_id") or "an unnamed teacher"
    kind = (
        f"its top-{manifest['top_k']} token log-probabilities at temperature {manifest['temperature']} and the "
        "remaining mass"
        if manifest.get("top_k")
        else "its raw logits (usable at any temperature)"
    )
    rows = [
        (
            "Teacher",
            f"`{teacher}`"
            + (f" at revision `{manifest['teacher_revision']}`" if manifest.get("teacher_revision") else ""),
        ),
        ("Teacher weights (SHA-256)", f"`{manifest['teacher_weights_sha256']}`"),
        ("Tokenizer vocabulary (SHA-256)", f"`{manifest.get('tokenizer_sha256')}`"),
        ("Task", manifest["task"]),
        (
            "Data",
            f"`{manifest.get('data_source') or 'not recorded'}` (fingerprint `{manifest.get('data_fingerprint')}`)",
        ),
        ("Temperature", str(manifest.get("temperature"))),
        ("Top-k", str(manifest.get("top_k") or "none (full logits)")),
        ("Max length", str(manifest.get("max_length"))),
        ("Columns", ", ".join(f"`{c}` ({t})" for c, t in manifest["dtypes"].items())),
        ("Rows / tokens", f"{manifest['rows']:,} / {manifest['tokens']:,}"),
        ("Bytes per row / per token", f"{manifest['bytes_per_row']:.1f} / {manifest['bytes_per_token']:.1f}"),
    ]
    table = "\n".join(["| | |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])
    expect = {"task": manifest["task"], "top_k": manifest.get("top_k")}
    if manifest.get("top_k"):
        expect["temperature"] = manifest["temperature"]
    temperature = manifest.get("temperature") or 2.0
    models = manifest.get("models") or []
    models_text = (
        (
            "\n## Models distilled from these targets\n\n"
            + "\n".join(f"- [{m}](https://huggingface.co/{m})" for m in models)
            + "\n"
        )
        if models
        else ""
    )
    body = f"""# Soft targets of {teacher}

The teacher's predictions over {manifest["rows"]:,} examples ({kind}), published with hf-distill so that
students can be distilled without running the teacher. Every shard's SHA-256 is in `{PUBLISHED_MANIFEST}` and is
checked when the targets are loaded.

{table}
{models_text}
## How to use

```python
from hf_distill import DistillationConfig, DistillationTrainer
from hf_distill.shared_targets import load_soft_targets

train = load_soft_targets("{repo_id}", student_tokenizer=tokenizer, expect={expect!r})
args = DistillationConfig(output_dir="out", temperature={temperature}, alpha=1.0, max_steps=1000)
trainer = DistillationTrainer(model=student, teacher_model=None, args=args, train_dataset=train,
                              processing_class=tokenizer)
trainer.train()
```

Or in an `hf-distill run` config: `soft_targets: {repo_id}`. `load_soft_targets(..., streaming=True)` reads the
shards one at a time (verified each) instead of building a local copy.
"""
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))


def save_soft_targets(
    dataset_or_cache_dir: Dataset | str | os.PathLike[str],
    folder: str | os.PathLike[str],
    *,
    repo_id: str | None = None,
    tokenizer: Any = None,
    teacher_id: str | None = None,
    teacher_revision: str | None = None,
    data_source: str | None = None,
    license: str | None = None,
    models: Sequence[str] | None = None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
) -> dict[str, Any]:
    """Write the files `push_soft_targets` publishes into `folder` (empty or new); returns the manifest.

    `load_soft_targets(folder)` reads them offline. The arguments are those of `push_soft_targets`; `repo_id`
    only names the dataset in the card's how-to-use snippet.

    Args:
        dataset_or_cache_dir: a cache folder written by `generate_soft_targets`, or the `Dataset` it returned.
        folder: where the shards, manifest, card and teacher vocabulary are written.
        repo_id: the dataset repo the card's snippet names.
        tokenizer: the teacher's tokenizer (object, folder or Hub id).
        teacher_id: the teacher's Hub id for the card and manifest.
        teacher_revision: the teacher's revision, recorded.
        data_source: the data's Hub id or a short description, recorded.
        license: the card's license.
        models: Hub ids of models distilled from these targets.
        max_shard_bytes: upper bound of the in-memory size of one shard.

    Returns:
        The manifest written (``soft_targets.json``).

    Raises:
        ValueError: `folder` is not empty, or the data set has no soft targets.
        SoftTargetCacheError: the cache folder is damaged.
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{folder} is not empty: save soft targets into a new folder")
    if isinstance(dataset_or_cache_dir, (str, os.PathLike)):
        ds, info = _load_cache(Path(dataset_or_cache_dir))
    else:
        ds, info = dataset_or_cache_dir, soft_target_info(dataset_or_cache_dir)
    if info is None or not set(SOFT_TARGET_COLUMNS) & set(ds.column_names):
        raise ValueError(
            "soft targets needed: a cache folder or the Dataset that generate_soft_targets returned "
            "(it has teacher_* columns and their settings)"
        )
    tok = _teacher_tokenizer(tokenizer, info.get("teacher_id"))
    tokens = _num_tokens(ds)
    shards = _write_shards(ds, folder, max_shard_bytes)
    if tok is not None:
        tok.save_pretrained(folder / TOKENIZER_DIR)
    total = sum(s["bytes"] for s in shards)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "format": "hf-distill soft targets",
        "teacher_id": _public_name(teacher_id or info.get("teacher_id")),
        "teacher_revision": teacher_revision,
        "teacher_weights_sha256": info["teacher_weights"],
        "tokenizer_sha256": vocabulary_sha256(tok) if tok is not None else None,
        "tokenizer_vocab_size": len(tok.get_vocab()) if tok is not None else None,
        "tokenizer_files": TOKENIZER_DIR if tok is not None else None,
        "data_source": _public_name(data_source),
        "data_fingerprint": info.get("data"),
        "task": info["task"],
        "temperature": info.get("temperature"),
        "top_k": info.get("top_k"),
        "max_length": info.get("max_length"),
        "logprob_dtype": info.get("logprob_dtype"),
        "columns": list(ds.column_names),
        "dtypes": {c: _dtype_name(ds.features[c]) for c in ds.column_names},
        "rows": len(ds),
        "tokens": tokens,
        "bytes": total,
        "bytes_per_row": round(total / max(1, len(ds)), 2),
        "bytes_per_token": round(total / max(1, tokens), 2),
        "license": license,
        "models": list(models or []),
        "features": ds.features.to_dict(),
        "shards": shards,
    }
    (folder / PUBLISHED_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    (folder / "README.md").write_text(_card(manifest, repo_id or "REPO_ID_OR_FOLDER"), encoding="utf-8")
    return manifest


def push_soft_targets(
    dataset_or_cache_dir: Dataset | str | os.PathLike[str],
    repo_id: str,
    *,
    tokenizer: Any = None,
    teacher_id: str | None = None,
    teacher_revision: str | None = None,
    data_source: str | None = None,
    license: str | None = None,
    models: Sequence[str] | None = None,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    endpoint: str | None = None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    timeout: float | None = None,
) -> str:
    """Publish soft targets as a Hub dataset repo (Parquet shards, manifest, teacher tokenizer, card) in one commit.

    Args:
        dataset_or_cache_dir: A cache folder written by `generate_soft_targets` (verified against its manifest
            first; a `cache_dir` root holding one cache is accepted), or the `Dataset` it returned.
        repo_id: The dataset repo, `namespace/name` (a bare `name` goes under the token's user, as on the Hub).
        tokenizer: The teacher's tokenizer (object, folder or Hub id); default: the cache's teacher folder when
            it is one. Its vocabulary hash goes in the manifest and its files under ``teacher_vocabulary/``.
        teacher_id: The teacher's Hub id for the card and manifest; default: the cache's, when it is a Hub id
            (a local path is shown as 'local:PARENT/NAME', never as a path).
        teacher_revision: The teacher's revision (commit or tag), recorded.
        data_source: The data's Hub id or a short description, recorded.
        license: The card's license (the teacher's and the data's terms apply to its outputs).
        models: Hub ids of models distilled from these targets, listed in the card and manifest.
        token: A token with write access (default `HF_TOKEN` or the stored login); never written anywhere.
        private: Create the repo private.
        revision: Branch to commit to.
        commit_message: Commit title.
        endpoint: Hub URL (default `HF_ENDPOINT`).
        max_shard_bytes: Upper bound of the in-memory size of one shard.
        timeout: Seconds each request may wait (default `HF_DISTILL_HUB_TIMEOUT`, else 60).

    Returns:
        The commit URL. Raises `HubPublishError` when the upload fails (the files are staged in a temporary
        folder; the cache is only read, never changed), `SoftTargetCacheError` for a damaged cache,
        `ValueError` for a data set without soft targets.
    """
    from ..hub.commits import push_dataset_files
    from ..hub.http import resolve_namespace

    # The manifest and card name the repo: a bare name is resolved to the token's user before they are written.
    repo_id = resolve_namespace(repo_id, "dataset", token=token, endpoint=endpoint, timeout=timeout)
    with tempfile.TemporaryDirectory(prefix="hf-distill-targets-") as tmp:
        staging = Path(tmp) / "repo"
        manifest = save_soft_targets(
            dataset_or_cache_dir,
            staging,
            repo_id=repo_id,
            tokenizer=tokenizer,
            teacher_id=teacher_id,
            teacher_revision=teacher_revision,
            data_source=data_source,
            license=license,
            models=models,
            max_shard_bytes=max_shard_bytes,
        )
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        commit = push_dataset_files(
            staging,
            files,
            repo_id,
            token=token,
            private=private,
            revision=revision,
            commit_message=commit_message
            or f"Upload soft targets of {manifest['teacher_id'] or 'a teacher'} with hf-distill",
            endpoint=endpoint,
            # a re-push with fewer shards must not leave old ones behind (they would not match the manifest)
            delete_patterns=[f"{DATA_DIR}/*", f"{TOKENIZER_DIR}/*"],
            timeout=timeout,
        )
    return str(commit)


def _dtype_name(feature: Any) -> str:
    dtype = getattr(feature, "dtype", None)
    if dtype is None and hasattr(feature, "feature"):
        dtype = getattr(feature.feature, "dtype", None)
    shape = getattr(feature, "shape", None)
    return (
        f"{dtype}[{','.join('*' if s is None else str(s) for s in shape)}]"
        if shape
        else f"{dtype}[*]"
        if hasattr(feature, "feature")
        else str(dtype)
    )


# ---------------------------------------------------------------------------------------------------- load


class _Source:
    """Where the files are: a local folder, or a Hub dataset repo downloaded file by file."""

    def __init__(
        self, repo_id_or_path: str | os.PathLike[str], revision: str | None, token: str | None, endpoint: str | None
    ) -> None:
        self.local = Path(repo_id_or_path) if Path(repo_id_or_path).is_dir() else None
        self.name = str(repo_id_or_path)
        self.revision, self.token, self.endpoint = revision, token, endpoint
        self.commit: str | None = None  # the Hub commit the manifest was read from (then every shard too)

    def fetch(self, rel: str, local_dir: str | None = None) -> Path:
        if self.local is not None:
            path = self.local / rel
            if not path.is_file():
                raise SoftTargetCacheError(f"soft targets {self.name}: {rel} is missing")
            return path
        from huggingface_hub import hf_hub_download

        return Path(
            hf_hub_download(
                self.name,
                rel,
                repo_type="dataset",
                revision=self.revision,
                token=self.token,
                endpoint=self.endpoint,
                local_dir=local_dir,
            )
        )


def read_manifest(
    repo_id_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """The manifest (`PUBLISHED_MANIFEST`) of published soft targets: a Hub dataset id or a local folder."""
    return _read_manifest(_Source(repo_id_or_path, revision, token, endpoint))


def _read_manifest(source: _Source) -> dict[str, Any]:
    path = source.fetch(PUBLISHED_MANIFEST)
    # hf_hub_download returns the cache's snapshots/<commit>/<file>: the commit is recorded (the report names the
    # revision the student trained on).
    if source.local is None and re.fullmatch(r"[0-9a-f]{40}", path.parent.name):
        source.commit = path.parent.name
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise SoftTargetCacheError(
            f"soft targets {source.name}: {PUBLISHED_MANIFEST} is not valid JSON ({err})"
        ) from None
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise SoftTargetCacheError(
            f"soft targets {source.name}: manifest schema {version!r}, this hf-distill reads "
            f"{SCHEMA_VERSION}: upgrade hf-distill or republish the targets"
        )
    return manifest


def _check_shard(source: _Source, shard: dict[str, Any], path: Path) -> None:
    size = path.stat().st_size
    if size != shard["bytes"] or file_sha256(path) != shard["sha256"]:
        raise SoftTargetCacheError(
            f"soft targets {source.name}: {shard['path']} does not match the manifest ({size} bytes, expected "
            f"{shard['bytes']}; SHA-256 differs): the shard was altered or damaged. Republish the targets, or "
            "delete the downloaded copy and load again"
        )


def _check_rows(source: _Source, manifest: dict[str, Any], rows: int) -> None:
    if rows != manifest["rows"]:
        raise SoftTargetCacheError(
            f"soft targets {source.name}: the shards hold {rows} rows but {PUBLISHED_MANIFEST} says "
            f"{manifest['rows']}: a shard is missing from the manifest or the data; republish the targets"
        )


def _check_expect(source: _Source, manifest: dict[str, Any], expect: dict[str, Any]) -> None:
    unknown = sorted(set(expect) - set(EXPECT_FIELDS))
    if unknown:
        raise ValueError(
            f"expect: unknown field(s) {', '.join(unknown)}; choose among {', '.join(sorted(EXPECT_FIELDS))}"
        )
    for key, wanted in expect.items():
        field = EXPECT_FIELDS[key]
        actual = manifest.get(field)
        if key == "temperature" and manifest.get("top_k") is None:
            continue  # raw logits serve every temperature
        same = (
            (actual is not None and wanted is not None and math.isclose(float(actual), float(wanted), abs_tol=1e-9))
            if key == "temperature"
            else actual == wanted
        )
        if not same:
            fix = _FIXES.get(key, f"load targets whose {key} is {wanted!r}")
            raise ValueError(f"soft targets {source.name}: {key} is {actual!r} but {wanted!r} was expected: {fix}")


def _kept_ids(source: _Source, manifest: dict[str, Any], student_tokenizer: Any) -> list[int] | None:
    """None when the student's vocabulary is the teacher's; the kept-id map of a trimmed student; else refuse."""
    from transformers import AutoTokenizer

    from ..students.vocabulary import check_trimmed_tokenizers

    wanted = manifest.get("tokenizer_sha256")
    if wanted is None:
        raise ValueError(
            f"soft targets {source.name} record no tokenizer, so the student's cannot be checked: "
            "republish them with push_soft_targets(tokenizer=...) or pass student_tokenizer=None"
        )
    mine = vocabulary_sha256(student_tokenizer)
    if mine == wanted:
        return None
    mismatch = (
        f"soft targets {source.name}: tokenizer is {mine[:12]}… ({len(student_tokenizer.get_vocab())} tokens) "
        f"but the targets were made with {wanted[:12]}… ({manifest.get('tokenizer_vocab_size')} tokens), "
        f"and it is not a trimmed subset of it: use the teacher's tokenizer (in {TOKENIZER_DIR}/ of the "
        "targets) or a student trimmed from it"
    )
    folder = source.fetch(f"{TOKENIZER_DIR}/tokenizer.json").parent
    if source.local is None:  # the other tokenizer files, next to it in the Hub cache
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            try:
                source.fetch(f"{TOKENIZER_DIR}/{name}")
            except Exception:  # noqa: BLE001 - optional files
                pass
    teacher_tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if vocabulary_sha256(teacher_tokenizer) != wanted:
        raise SoftTargetCacheError(
            f"soft targets {source.name}: {TOKENIZER_DIR}/ does not match the manifest's "
            "tokenizer hash: republish the targets"
        )
    teacher_vocab = teacher_tokenizer.get_vocab()
    student = sorted(student_tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    if [i for _, i in student] != list(range(len(student))) or any(t not in teacher_vocab for t, _ in student):
        raise ValueError(mismatch)
    kept = [teacher_vocab[t] for t, _ in student]
    if any(b <= a for a, b in zip(kept, kept[1:])):
        raise ValueError(mismatch)
    try:
        check_trimmed_tokenizers(student_tokenizer, teacher_tokenizer, kept)
    except ValueError:
        raise ValueError(mismatch) from None
    if manifest.get("top_k") is not None:
        raise ValueError(
            f"soft targets {source.name} are top-{manifest['top_k']}: they hold the teacher's ids and a "
            "tail that cannot be renormalised over a trimmed student's vocabulary; use full-logit "
            "targets or the teacher's tokenizer"
        )
    return kept


def _info(manifest: dict[str, Any], source: _Source) -> str:
    """The description `soft_target_info` reads (the trainer checks temperature and top-k with it)."""
    info = {
        "format": 1,
        "teacher_weights": manifest["teacher_weights_sha256"],
        "data": manifest.get("data_fingerprint"),
        "task": manifest["task"],
        "top_k": manifest.get("top_k"),
        "max_length": manifest.get("max_length"),
        "temperature": manifest.get("temperature"),
        "logprob_dtype": manifest.get("logprob_dtype"),
        "teacher_id": manifest.get("teacher_id"),
        "columns": sorted(c for c in manifest["columns"] if c.startswith("teacher_")),
        "source": source.name if source.local is None else None,
        "revision": source.commit,
    }
    return json.dumps({INFO_KEY: info})


def _stream_rows(source: _Source, shards: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Rows of the shards, one shard at a time: each is verified before its first row is read; a shard
    downloaded from the Hub lives in a temporary folder only while it is read (disk holds one shard)."""
    import pyarrow.parquet as pq

    for shard in shards:
        tmp = tempfile.mkdtemp(prefix="hf-distill-stream-") if source.local is None else None
        try:
            path = source.fetch(shard["path"], local_dir=tmp)
            _check_shard(source, shard, path)
            for batch in pq.ParquetFile(path).iter_batches(batch_size=256):
                yield from batch.to_pylist()
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)


def load_soft_targets(
    repo_id_or_path: str | os.PathLike[str],
    *,
    student_tokenizer: Any = None,
    expect: dict[str, Any] | None = None,
    streaming: bool = False,
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> Dataset | IterableDataset:
    """Load published soft targets, verified, as a data set `DistillationTrainer(teacher_model=None)` trains on.

    Args:
        repo_id_or_path: A Hub dataset id, or a local folder with the same layout (read offline).
        student_tokenizer: The student's tokenizer; refused unless it is the teacher's (same vocabulary hash) or
            trimmed from it (then ``input_ids`` are mapped to its ids; see the module docstring). None skips
            the check.
        expect: Fields the targets must have, e.g. ``{"temperature": 2.0, "top_k": 64, "task": "causal-lm"}``
            (also ``teacher``, ``teacher_revision``, ``teacher_weights``, ``tokenizer``, ``data_fingerprint``,
            ``max_length``, ``logprob_dtype``). A temperature is not required of full-logit targets.
        streaming: Return an `IterableDataset` that reads the shards one at a time, verifying each before use,
            without building a local copy (give the Trainer ``max_steps``).
        revision: Branch, tag or commit of the dataset repo.
        token: A token for a private repo (default `HF_TOKEN` or the stored login).
        endpoint: Hub URL (default `HF_ENDPOINT`).

    Raises:
        SoftTargetCacheError: a shard or the manifest does not match (altered, truncated, other schema).
        ValueError: a mismatch with `expect` or with the student's tokenizer (one line: field, both values, fix).
        TypeError: `expect` is not a mapping (e.g. a list of field names).
    """
    if expect is not None and not isinstance(expect, Mapping):  # dict(["task"]) fails with a riddle
        raise TypeError(
            f"expect={expect!r} must map each field to the value the targets must have, e.g. "
            f"expect={{'task': 'causal-lm', 'temperature': 2.0}}; fields: {', '.join(sorted(EXPECT_FIELDS))}"
        )
    source = _Source(repo_id_or_path, revision, token, endpoint)
    started = time.perf_counter()
    manifest = _read_manifest(source)
    _check_expect(source, manifest, dict(expect or {}))
    kept = _kept_ids(source, manifest, student_tokenizer) if student_tokenizer is not None else None
    features = Features.from_dict(manifest["features"])
    shards = manifest["shards"]
    _check_rows(source, manifest, sum(shard["rows"] for shard in shards))  # a shard dropped from the list
    if streaming:
        ds: Dataset | IterableDataset = IterableDataset.from_generator(
            _stream_rows, features=features, gen_kwargs={"source": source, "shards": shards}
        )
        ds.info.description = _info(manifest, source)
    else:
        paths = []
        for shard in shards:
            path = source.fetch(shard["path"])
            _check_shard(source, shard, path)
            paths.append(str(path))
        ds = Dataset.from_parquet(paths, features=features)
        _check_rows(source, manifest, len(ds))
        ds.info.description = _info(manifest, source)
    if kept is not None:
        from ..students.vocabulary import remap_ids

        size = manifest.get("tokenizer_vocab_size")
        ds = ds.map(lambda b: {"input_ids": remap_ids(b["input_ids"], kept, size)}, batched=True)
        ds.info.description = _info(manifest, source)
    logger.info(
        "soft targets: %s verified (%d shards, %d rows) in %.1f s",
        source.name,
        len(shards),
        manifest["rows"],
        time.perf_counter() - started,
    )
    return ds


def __getattr__(name: str) -> Any:
    """An old name of this module (`_RENAMED`), with a `FutureWarning` naming the new one.

    Args:
        name: the attribute looked up.

    Raises:
        AttributeError: any other missing name.
    """
    if name not in _RENAMED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"{__name__}.{name} is now {_RENAMED[name]}; the old name works until the next release",
        FutureWarning,
        stacklevel=2,
    )
    return globals()[_RENAMED[name]]
