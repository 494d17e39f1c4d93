"""Publish a distilled student (weights, config, tokenizer, card, report, chart) and its demo Space to the Hub.

Everything goes through one `HfApi.upload_folder` call per repository so that each publication is a single
commit: either every file lands or none does. What is uploaded is decided here, file by file, from an
allowlist (never "the whole output folder"), because training folders hold checkpoints, optimizer states,
soft targets and sometimes credentials.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import importlib.metadata
import json
import logging
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import yaml
from huggingface_hub import CommitInfo, HfApi, constants, get_token
from huggingface_hub.errors import (
    BadRequestError,
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

__all__ = [
    "DISTILL_CONFIG_FILENAME",
    "REPORT_FILENAME",
    "SPACE_ENV_VARIABLES",
    "HubPublishError",
    "PublishResult",
    "build_space_readme",
    "publish",
    "push_space",
    "push_to_hub",
    "resolve_token",
    "select_model_files",
    "select_space_files",
]

logger = logging.getLogger(__name__)

REPORT_FILENAME = "distillation_report.json"
# The Space app reads this file (and the variables below) to know which repos to load.
DISTILL_CONFIG_FILENAME = "distill_config.json"
SPACE_ENV_VARIABLES = ("TEACHER_MODEL", "STUDENT_MODEL", "DISTILLATION_REPORT")
DEFAULT_APP_DIR = Path(__file__).resolve().parents[1] / "spaces_app"
SPACE_COLORS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
SHORT_DESCRIPTION_MAX = 60  # the Hub refuses longer Space short descriptions

# Tokenizer files legitimately contain "token" in their name; every other such file is treated as a secret.
TOKENIZER_FILES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "tokenizer.model",
    }
)
# Top-level files of a saved student (transformers / PEFT / tokenizers) plus what the card step writes.
MODEL_TOP_LEVEL_PATTERNS = (
    "*.safetensors",
    "*.safetensors.index.json",
    "config.json",
    "generation_config.json",
    "adapter_config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "*.model",
    "*.tiktoken",
    "chat_template.jinja",
    "chat_template.json",
    "README.md",
    REPORT_FILENAME,
)
MODEL_NESTED_PATTERNS = ("*.png", "additional_chat_templates/*.jinja")
# Pickled weights are refused (arbitrary code on load); these names tell the user why nothing was pushed.
PICKLE_WEIGHT_PATTERNS = ("pytorch_model*.bin", "adapter_model.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle")
# Trainer state files are pickles too, but not weights: they do not explain a refusal.
TRAINING_STATE = ("optimizer*", "scheduler*", "rng_state*", "training_args*")
# Directories never walked into, for the model folder and the app folder.
SKIPPED_DIRS = (
    "checkpoint-*",
    "soft_targets*",
    "runs",
    "wandb",
    "__pycache__",
    ".cache",
    ".git",
    ".huggingface",
    ".ssh",
    ".gradio",
    "flagged",
    ".venv",
    "venv",
    "node_modules",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
)
SECRET_NAME_PATTERNS = (
    ".env",
    ".env.*",
    "*.env",
    ".git-credentials",
    ".netrc",
    ".pypirc",
    "*.pem",
    "*.key",
    "id_rsa*",
    "id_ed25519*",
    "stored_tokens",
    "*token*",
)
# Passed to the client as `ignore_patterns` on top of the exact allowlist: a second guard if the selection
# logic above ever lets something through. Must never match a file that `select_*_files` keeps.
IGNORE_PATTERNS = [
    "checkpoint-*",
    "*/checkpoint-*",
    "soft_targets*",
    "*/soft_targets*",
    "runs/*",
    "*.arrow",
    "*.bin",
    "*.pt",
    "*.pth",
    "*.ckpt",
    "*.pkl",
    "*.pickle",
    "*.pyc",
    "optimizer*",
    "scheduler.pt",
    "rng_state*",
    "training_args*",
    ".env",
    ".env.*",
    "*/.env",
    "*.env",
    ".git-credentials",
    "*/.git-credentials",
    ".netrc",
    ".huggingface/*",
    "*/.huggingface/*",
    "token",
    "*/token",
    "*hf_token*",
    "*.pem",
    "*.key",
    "__pycache__/*",
    "*/__pycache__/*",
    ".cache/*",
    "*/.cache/*",
]
# `delete_stale=True` removes remote files of these kinds that this push does not re-upload (old shards,
# an old pickle, a chart that no longer exists) but leaves unrelated files such as notebooks alone.
STALE_PATTERNS = [
    *MODEL_TOP_LEVEL_PATTERNS,
    *MODEL_NESTED_PATTERNS,
    "pytorch_model*.bin",
    "pytorch_model*.bin.index.json",
    "adapter_model.bin",
    "training_args.bin",
]


class HubPublishError(RuntimeError):
    """Publishing to the Hub failed; the message says what was and was not uploaded and never holds the token."""

    def __init__(
        self,
        message: str,
        *,
        repo_id: str | None = None,
        files: Sequence[str] = (),
        status: int | None = None,
        committed: bool = False,
    ) -> None:
        super().__init__(message)
        self.repo_id = repo_id
        self.files = tuple(files)
        self.status = status
        self.committed = committed


@dataclass(frozen=True)
class PublishResult:
    """What `publish` created: the model commit and, when a Space was pushed, the Space commit."""

    model_commit: CommitInfo
    space_commit: CommitInfo | None = None


# ----------------------------------------------------------------------------------------------- selection


def _match_any(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _is_secret_name(name: str) -> bool:
    if name in TOKENIZER_FILES:
        return False
    return _match_any(name.lower(), SECRET_NAME_PATTERNS)


def _walk_files(root: Path) -> Iterator[str]:
    """Relative POSIX paths of the files under `root`, skipping cache/checkpoint/secret directories."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not _match_any(d, SKIPPED_DIRS) and not _is_secret_name(d))
        rel_dir = Path(dirpath).relative_to(root)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file():
                yield (rel_dir / name).as_posix()


def select_model_files(output_dir: str | os.PathLike[str]) -> list[str]:
    """List the files `push_to_hub` uploads from `output_dir` (sorted relative paths).

    Raises `HubPublishError` when the folder has no `*.safetensors` weights (pickled weights alone are
    refused) or no `config.json` / `adapter_config.json`.
    """
    root = Path(output_dir)
    if not root.is_dir():
        raise HubPublishError(f"Nothing to publish: {root} is not a directory.")
    selected: list[str] = []
    top_level_pickles: list[str] = []
    for rel in _walk_files(root):
        name = PurePosixPath(rel).name
        if _is_secret_name(name):
            continue
        top_level = "/" not in rel
        if top_level and _match_any(name, PICKLE_WEIGHT_PATTERNS) and not _match_any(name, TRAINING_STATE):
            top_level_pickles.append(rel)
        if (top_level and _match_any(name, MODEL_TOP_LEVEL_PATTERNS)) or _match_any(rel, MODEL_NESTED_PATTERNS):
            selected.append(rel)
    if not any(f.endswith(".safetensors") and "/" not in f for f in selected):
        if top_level_pickles:
            raise HubPublishError(
                f"Refusing to publish {root}: it holds only pickled weights ({', '.join(top_level_pickles)}), "
                "which run arbitrary code when loaded. Save the student with `save_pretrained(...)` "
                "(safetensors is the default) and push again."
            )
        raise HubPublishError(f"Refusing to publish {root}: no `*.safetensors` weights found at its top level.")
    if not {"config.json", "adapter_config.json"} & set(selected):
        raise HubPublishError(
            f"Refusing to publish {root}: no config.json (or adapter_config.json), so the weights could not be loaded."
        )
    if "README.md" not in selected:
        logger.warning("%s has no README.md: the model will be published without its card.", root)
    return selected


def select_space_files(app_dir: str | os.PathLike[str]) -> list[str]:
    """List the app files `push_space` uploads from `app_dir` (without README.md and the generated config).

    Caches, virtual environments, pickles, `.gitattributes` and anything that looks like a credential are left out.
    """
    root = Path(app_dir)
    if not (root / "app.py").is_file():
        raise HubPublishError(f"Cannot push the Space: {root} has no app.py.")
    selected = []
    for rel in _walk_files(root):
        name = PurePosixPath(rel).name
        if _is_secret_name(name) or _match_any(name, ("*.pyc", "*.pyo", ".DS_Store", *PICKLE_WEIGHT_PATTERNS)):
            continue
        if rel in ("README.md", DISTILL_CONFIG_FILENAME, ".gitattributes", REPORT_FILENAME):
            continue  # regenerated for the Space, or owned by the Hub
        selected.append(rel)
    return selected


# ----------------------------------------------------------------------------------------------- checks


def resolve_token(token: str | None = None) -> str:
    """Return `token`, else `HF_TOKEN`, else the stored login; raise `HubPublishError` if there is none."""
    resolved = token or get_token()
    if not resolved:
        raise HubPublishError(
            "No Hugging Face token found. Set the HF_TOKEN environment variable or run `hf auth login` "
            "with a token that has the 'write' role (nothing was uploaded)."
        )
    return resolved


def _check_online() -> None:
    if constants.is_offline_mode():
        raise HubPublishError("Hugging Face offline mode is on (HF_HUB_OFFLINE=1): unset it to publish.")


def _normalize_repo_id(repo_id: str, repo_type: str) -> str:
    """Validate `repo_id` for `repo_type` before any network call; accept a Hub URL of the right type."""
    raw = repo_id.strip()
    path = urlparse(raw).path.strip("/") if "://" in raw else raw.strip("/")
    parts = path.split("/")
    prefix_type = {"spaces": "space", "datasets": "dataset", "models": "model"}.get(parts[0])
    if prefix_type is not None and len(parts) == 3:
        if prefix_type != repo_type:
            named = "a Space" if prefix_type == "space" else f"a {prefix_type} repository"
            wanted = "a Space" if repo_type == "space" else f"a {repo_type} repository"
            raise HubPublishError(
                f"'{repo_id}' names {named}, but {wanted} is needed here: pass a {repo_type} repo id such as "
                "'namespace/name' (the demo goes to a Space with push_space / --space-id). Nothing was uploaded.",
                repo_id=repo_id,
            )
        path = "/".join(parts[1:])
    try:
        validate_repo_id(path)
    except HFValidationError as err:
        raise HubPublishError(f"Invalid repo id '{repo_id}': {err}", repo_id=repo_id) from None
    return path


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "<redacted>") if token else text


def _assert_token_absent(root: Path, files: Sequence[str], token: str) -> None:
    """Refuse to upload a file that contains the token (a card or report that captured the environment)."""
    needle = token.encode()
    for rel in files:
        path = root / rel
        # Tensors are numbers; only a safetensors file's JSON header can hold a string.
        data = _safetensors_header(path) if rel.endswith(".safetensors") else path.read_bytes()
        if needle in data:
            raise HubPublishError(
                f"Refusing to upload: {rel} contains your Hugging Face token. Remove it and push again "
                "(nothing was uploaded).",
                files=files,
            )


def _safetensors_header(path: Path) -> bytes:
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return head
        (size,) = struct.unpack("<Q", head)
        return fh.read(min(size, 100 * 1024 * 1024))


# ----------------------------------------------------------------------------------------------- errors


def _network_error_types() -> tuple[type[BaseException], ...]:
    # huggingface_hub 2.x speaks httpx2, 1.x httpx: catch whichever transport errors exist.
    types: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            types.append(__import__(module).TransportError)
    return tuple(types)


def _files_summary(files: Sequence[str]) -> str:
    shown = ", ".join(files[:40]) + (f", ... ({len(files) - 40} more)" if len(files) > 40 else "")
    return f"Files that were to be uploaded ({len(files)}): {shown}."


def _other_type_of(api: HfApi, repo_id: str, repo_type: str) -> str | None:
    for other in ("model", "space", "dataset"):
        if other != repo_type:
            with contextlib.suppress(Exception):
                if api.repo_exists(repo_id, repo_type=other):
                    return other
    return None


def _explain(err: BaseException, *, api: HfApi, repo_id: str, repo_type: str) -> tuple[str, int | None]:
    """A user-facing reason for `err` and the HTTP status, if any."""
    kind = "Space" if repo_type == "space" else f"{repo_type} repository"
    namespace = repo_id.split("/")[0] if "/" in repo_id else "your account"
    if isinstance(err, OfflineModeIsEnabled):
        return "Hugging Face offline mode is on (HF_HUB_OFFLINE=1): unset it to publish.", None
    if isinstance(err, _network_error_types()):
        return f"Network failure while talking to {api.endpoint} ({type(err).__name__}: {err}).", None
    if isinstance(err, ValueError) and "Invalid metadata in README.md" in str(err):
        return f"The Hub rejected the README.md metadata (front matter): {err}", 400
    if not isinstance(err, HfHubHTTPError):
        return f"{type(err).__name__}: {err}", None
    status = err.response.status_code if err.response is not None else None
    server = (err.server_message or "").strip()[:300]
    detail = f" Server said: {server}" if server else ""
    if status == 401:
        return (
            "The Hub rejected the token (401 Unauthorized): it is invalid, expired or revoked. Publishing needs a "
            f"token with the 'write' role, or a fine-grained token with write access to repos in '{namespace}'."
            + detail,
            status,
        )
    if status == 403:
        return (
            f"Permission denied (403 Forbidden) on {kind} '{repo_id}'. The token needs the 'write' role (a 'read' "
            f"token cannot create repos or commit), or a fine-grained token with write access to '{namespace}'."
            + detail,
            status,
        )
    if isinstance(err, RevisionNotFoundError):
        return f"The revision (branch) does not exist in {kind} '{repo_id}'.{detail}", status
    if isinstance(err, RepositoryNotFoundError) or status == 404:
        other = _other_type_of(api, repo_id, repo_type)
        if other is not None:
            return (
                f"'{repo_id}' is a {other} repository, not a {kind}: choose another name or the right command.",
                status,
            )
        return f"{kind.capitalize()} '{repo_id}' was not found, or the token cannot see it.{detail}", status
    if status == 409:
        return (
            f"Conflict (409) on {kind} '{repo_id}': another commit or pull request changed it meanwhile, or the "
            f"name is taken; try again.{detail}",
            status,
        )
    if isinstance(err, BadRequestError) or status == 400:
        return f"The Hub refused the request (400 Bad Request) for {kind} '{repo_id}'.{detail}", status
    return f"The Hub answered HTTP {status} for {kind} '{repo_id}'.{detail}", status


@contextlib.contextmanager
def _publishing(api: HfApi, *, repo_id: str, repo_type: str, files: Sequence[str], token: str) -> Iterator[None]:
    """Turn any failure of the create/upload steps into a `HubPublishError` that lists what was not committed."""
    try:
        yield
    except HubPublishError:
        raise
    except Exception as err:
        reason, status = _explain(err, api=api, repo_id=repo_id, repo_type=repo_type)
        message = (
            f"Could not publish to {repo_type} '{repo_id}'. {reason}\n"
            "No files were committed: the upload is a single commit that the Hub did not confirm, and local "
            f"files were not changed. {_files_summary(files)}"
        )
        # The original exception is kept as the cause unless the server echoed the token into it.
        cause = None if token in str(err) else err
        raise HubPublishError(_redact(message, token), repo_id=repo_id, files=files, status=status) from cause


# ----------------------------------------------------------------------------------------------- model


def _library_version() -> str:
    try:
        return importlib.metadata.version("hf-distill")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _refuse_if_public(api: HfApi, repo_id: str, repo_type: str, files: Sequence[str]) -> None:
    # The Hub ignores `private` for a repo that already exists: never publish into a public repo by surprise.
    if not api.repo_info(repo_id, repo_type=repo_type).private:
        raise HubPublishError(
            f"'{repo_id}' already exists and is public; asking for a private repo does not change an existing "
            "repo's visibility. Nothing was uploaded: make it private in its settings on the Hub, or push "
            "without --private.",
            repo_id=repo_id,
            files=files,
        )


def _api(endpoint: str | None, token: str) -> HfApi:
    return HfApi(endpoint=endpoint, token=token, library_name="hf-distill", library_version=_library_version())


def push_to_hub(
    output_dir: str | os.PathLike[str],
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    commit_description: str | None = None,
    endpoint: str | None = None,
    delete_stale: bool | Sequence[str] = False,
) -> CommitInfo:
    """Create `repo_id` if needed and upload the student, its card, report and chart in one commit.

    Only the files listed by `select_model_files` are sent. `delete_stale=True` also deletes remote model
    files this push does not re-upload (a list of glob patterns narrows that); `.gitattributes` is never
    deleted. Returns the commit (a `str` equal to the commit URL, with `.pr_url` when `create_pr`).
    """
    repo_id = _normalize_repo_id(repo_id, "model")
    root = Path(output_dir)
    files = select_model_files(root)
    if create_pr and revision not in (None, constants.DEFAULT_REVISION):
        raise HubPublishError(
            "create_pr opens a pull request against the main branch: do not combine it with a revision.",
            repo_id=repo_id,
            files=files,
        )
    token = resolve_token(token)
    _check_online()
    _assert_token_absent(root, files, token)
    if delete_stale is True:
        delete_patterns: list[str] | None = list(STALE_PATTERNS)
    elif delete_stale:
        delete_patterns = list(delete_stale)
    else:
        delete_patterns = None

    api = _api(endpoint, token)
    logger.info("Publishing %d files from %s to model repo %s: %s", len(files), root, repo_id, ", ".join(files))
    with _publishing(api, repo_id=repo_id, repo_type="model", files=files, token=token):
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if private:
            _refuse_if_public(api, repo_id, "model", files)
        if revision not in (None, constants.DEFAULT_REVISION) and not create_pr and not revision.startswith("refs/"):
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            repo_type="model",
            folder_path=root,
            # Exact paths (escaped for fnmatch): nothing outside the selection can slip in.
            allow_patterns=[glob.escape(f) for f in files],
            ignore_patterns=list(IGNORE_PATTERNS),
            delete_patterns=delete_patterns,
            commit_message=commit_message or "Upload distilled student with hf-distill",
            commit_description=commit_description,
            revision=revision,
            create_pr=create_pr,
        )
    logger.info("Published %s: %s", repo_id, commit.commit_url)
    if commit.pr_url:
        logger.info("Pull request: %s", commit.pr_url)
    return commit


# ----------------------------------------------------------------------------------------------- space


def _split_front_matter(text: str) -> tuple[dict, str]:
    """Return (front matter as a dict, body) of a README; an unreadable front matter counts as none."""
    if text.startswith("---"):
        lines = text.splitlines(keepends=True)
        for i in range(1, len(lines)):
            if lines[i].strip() == "---":
                try:
                    meta = yaml.safe_load("".join(lines[1:i])) or {}
                except yaml.YAMLError:
                    meta = {}
                return (meta if isinstance(meta, dict) else {}), "".join(lines[i + 1 :]).lstrip("\n")
    return {}, text


def build_space_readme(
    *,
    title: str,
    teacher_repo_id: str,
    model_repo_id: str,
    sdk_version: str,
    python_version: str | None = None,
    license: str = "apache-2.0",
    emoji: str = "🧪",
    color_from: str = "indigo",
    color_to: str = "green",
    short_description: str = "A distilled student next to its teacher",
    body: str = "",
    endpoint: str | None = None,
) -> str:
    """Return a Space README.md whose front matter configures a Gradio Space for the teacher/student demo."""
    for name, color in (("color_from", color_from), ("color_to", color_to)):
        if color not in SPACE_COLORS:
            raise HubPublishError(f"{name}={color!r} is not a Space color; use one of {', '.join(SPACE_COLORS)}.")
    if len(short_description) > SHORT_DESCRIPTION_MAX:
        raise HubPublishError(f"short_description is {len(short_description)} characters; the Hub allows 60.")
    meta = {
        "title": title,
        "emoji": emoji,
        "colorFrom": color_from,
        "colorTo": color_to,
        "sdk": "gradio",
        "sdk_version": sdk_version,
        "python_version": python_version or f"{sys.version_info.major}.{sys.version_info.minor}",
        "app_file": "app.py",
        "pinned": False,
        "license": license,
        "short_description": short_description,
        "models": [teacher_repo_id, model_repo_id],
    }
    base = (endpoint or constants.ENDPOINT).rstrip("/")
    intro = (
        f"# {title}\n\n"
        "Try a distilled student next to the teacher it learned from, on the same input.\n\n"
        f"- Teacher: [{teacher_repo_id}]({base}/{teacher_repo_id})\n"
        f"- Student: [{model_repo_id}]({base}/{model_repo_id})\n\n"
        f"The app reads the two model ids from `{DISTILL_CONFIG_FILENAME}` and from the Space variables "
        "`TEACHER_MODEL` and `STUDENT_MODEL`.\n"
    )
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n\n{intro}" + (f"\n{body.strip()}\n" if body.strip() else "")


def _gradio_version(gradio_version: str | None) -> str:
    if gradio_version:
        return gradio_version
    try:
        return importlib.metadata.version("gradio")
    except importlib.metadata.PackageNotFoundError:
        raise HubPublishError(
            "gradio is not installed, so the Space's sdk_version is unknown: pass gradio_version=..."
        ) from None


def push_space(
    repo_id: str,
    model_repo_id: str,
    teacher_repo_id: str,
    *,
    app_dir: str | os.PathLike[str] | None = None,
    token: str | None = None,
    private: bool = False,
    endpoint: str | None = None,
    gradio_version: str | None = None,
    report_path: str | os.PathLike[str] | None = None,
    title: str | None = None,
    emoji: str | None = None,
    color_from: str | None = None,
    color_to: str | None = None,
    license: str | None = None,
    short_description: str | None = None,
    commit_message: str | None = None,
    delete_stale: bool = False,
    set_variables: bool = True,
) -> CommitInfo:
    """Create the Gradio Space `repo_id` and upload the app that compares `teacher_repo_id` with `model_repo_id`.

    The app folder is copied to a temporary staging folder with a generated README.md (Space front matter)
    and `distill_config.json`; `report_path` adds the distillation report. Title, emoji, colors, license and
    short description come from the arguments, else from the app's own README.md front matter, else from
    defaults; sdk, sdk_version, app_file and models are always generated. The Space variables TEACHER_MODEL,
    STUDENT_MODEL (and DISTILLATION_REPORT) are set after the commit. `delete_stale=True` removes remote
    files the app no longer has. Returns the commit.
    """
    repo_id = _normalize_repo_id(repo_id, "space")
    model_repo_id = _normalize_repo_id(model_repo_id, "model")
    teacher_repo_id = _normalize_repo_id(teacher_repo_id, "model")
    app_root = Path(app_dir) if app_dir is not None else DEFAULT_APP_DIR
    if not app_root.is_dir():
        raise HubPublishError(f"Cannot push the Space: the app folder {app_root} does not exist.")
    app_files = select_space_files(app_root)
    if "requirements.txt" not in app_files:
        logger.warning("%s has no requirements.txt: the Space will only have gradio installed.", app_root)
    report = Path(report_path) if report_path is not None else None
    if report is not None and not report.is_file():
        raise HubPublishError(f"Cannot push the Space: the report {report} does not exist.")

    existing_readme = app_root / "README.md"
    local_meta, body = (
        _split_front_matter(existing_readme.read_text(encoding="utf-8")) if existing_readme.is_file() else ({}, "")
    )

    def pick(value: str | None, key: str, default: str) -> str:
        local = local_meta.get(key)
        return value if value is not None else (local if isinstance(local, str) and local else default)

    readme = build_space_readme(
        title=pick(title, "title", repo_id.split("/")[-1]),
        teacher_repo_id=teacher_repo_id,
        model_repo_id=model_repo_id,
        sdk_version=_gradio_version(gradio_version),
        license=pick(license, "license", "apache-2.0"),
        emoji=pick(emoji, "emoji", "🧪"),
        color_from=pick(color_from, "colorFrom", "indigo"),
        color_to=pick(color_to, "colorTo", "green"),
        short_description=pick(short_description, "short_description", "A distilled student next to its teacher"),
        body=body,
        endpoint=endpoint,
    )
    config: dict[str, str] = {"teacher": teacher_repo_id, "student": model_repo_id}
    variables = {"TEACHER_MODEL": teacher_repo_id, "STUDENT_MODEL": model_repo_id}
    if report is not None:
        config["distillation_report"] = REPORT_FILENAME
        variables["DISTILLATION_REPORT"] = REPORT_FILENAME

    token = resolve_token(token)
    _check_online()
    with tempfile.TemporaryDirectory(prefix="hf-distill-space-") as staging_dir:
        staging = Path(staging_dir)
        for rel in app_files:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(app_root / rel, staging / rel)
        (staging / "README.md").write_text(readme, encoding="utf-8")
        (staging / DISTILL_CONFIG_FILENAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        if report is not None:
            shutil.copy2(report, staging / REPORT_FILENAME)
        files = sorted(_walk_files(staging))
        _assert_token_absent(staging, files, token)

        api = _api(endpoint, token)
        logger.info("Publishing %d files from %s to Space %s: %s", len(files), app_root, repo_id, ", ".join(files))
        with _publishing(api, repo_id=repo_id, repo_type="space", files=files, token=token):
            api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
            if private:
                _refuse_if_public(api, repo_id, "space", files)
            commit = api.upload_folder(
                repo_id=repo_id,
                repo_type="space",
                folder_path=staging,
                allow_patterns=[glob.escape(f) for f in files],
                ignore_patterns=list(IGNORE_PATTERNS),
                delete_patterns="*" if delete_stale else None,
                commit_message=commit_message or f"Deploy the hf-distill demo for {model_repo_id}",
            )
    logger.info("Published Space %s: %s", repo_id, commit.commit_url)

    if set_variables:
        try:
            for key, value in variables.items():
                api.add_space_variable(repo_id, key, value, description="Set by hf-distill push")
        except Exception as err:
            # The files are committed and the app also reads distill_config.json, so this is not fatal.
            reason, _ = _explain(err, api=api, repo_id=repo_id, repo_type="space")
            logger.warning(
                "The Space files were committed (%s) but its variables were not set: %s The app falls back to %s.",
                commit.commit_url,
                _redact(reason, token),
                DISTILL_CONFIG_FILENAME,
            )
    return commit


# ----------------------------------------------------------------------------------------------- both


def publish(
    output_dir: str | os.PathLike[str],
    repo_id: str,
    *,
    space_id: str | None = None,
    teacher_repo_id: str | None = None,
    app_dir: str | os.PathLike[str] | None = None,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    endpoint: str | None = None,
    delete_stale: bool = False,
    gradio_version: str | None = None,
) -> PublishResult:
    """Push the model (see `push_to_hub`), then, if `space_id` is given, the demo Space (see `push_space`)."""
    if space_id is not None and not teacher_repo_id:
        raise HubPublishError("Pushing the Space needs the teacher's repo id (teacher_repo_id).")
    token = resolve_token(token)
    model_commit = push_to_hub(
        output_dir,
        repo_id,
        token=token,
        private=private,
        revision=revision,
        create_pr=create_pr,
        commit_message=commit_message,
        endpoint=endpoint,
        delete_stale=delete_stale,
    )
    if space_id is None:
        return PublishResult(model_commit)
    report = Path(output_dir) / REPORT_FILENAME
    try:
        space_commit = push_space(
            space_id,
            _normalize_repo_id(repo_id, "model"),
            teacher_repo_id or "",
            app_dir=app_dir,
            token=token,
            private=private,
            endpoint=endpoint,
            gradio_version=gradio_version,
            report_path=report if report.is_file() else None,
            delete_stale=delete_stale,
        )
    except HubPublishError as err:
        raise HubPublishError(
            f"The model was published ({model_commit.commit_url}) but the Space was not. {err}",
            repo_id=err.repo_id,
            files=err.files,
            status=err.status,
            committed=False,
        ) from err
    return PublishResult(model_commit, space_commit)
