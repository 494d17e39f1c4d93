"""The demo Space: its README (card metadata), which app files and configuration it gets, and `push_space`."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import (
    CommitInfo,
    CommitOperationAdd,
    CommitOperationDelete,
    SpaceCard,
    SpaceCardData,
    constants,
)

from ..hub.commits import _add_operations, _refuse_if_public, _stale_deletions
from ..hub.http import (
    HubPublishError,
    _api,
    _check_online,
    _client_timeout,
    _explain,
    _normalize_repo_id,
    _publishing,
    _redact,
    _retrying,
    hub_timeout,
    resolve_namespace,
    resolve_token,
)
from ..hub.scrub import _assert_token_absent, publishable_report
from ..hub.selection import DISTILL_CONFIG_FILENAME, EXAMPLES_FILENAME, REPORT_FILENAME, select_space_files
from ..space_app import find_app_dir

__all__ = [
    "SPACE_ENV_VARIABLES",
    "build_space_readme",
    "push_space",
]

logger = logging.getLogger(__name__)
SPACE_ENV_VARIABLES = ("TEACHER_MODEL", "STUDENT_MODEL", "DISTILLATION_REPORT")
SPACE_COLORS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
SHORT_DESCRIPTION_MAX = 60  # the Hub refuses longer Space short descriptions


# ----------------------------------------------------------------------------------------------- space


def _read_space_readme(path: Path) -> tuple[dict[str, Any], str]:
    """(front matter, body) of an app's README.md via `SpaceCard`; an unreadable front matter counts as none."""
    if not path.is_file():
        return {}, ""
    text = path.read_text(encoding="utf-8")
    try:
        card = SpaceCard(text, ignore_metadata_errors=True)
    except Exception:
        return {}, text
    return card.data.to_dict(), card.text.lstrip("\n")


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
    """Return a Space README.md (a `SpaceCard` with `SpaceCardData` metadata) configuring the Gradio demo."""
    for name, color in (("color_from", color_from), ("color_to", color_to)):
        if color not in SPACE_COLORS:
            raise HubPublishError(f"{name}={color!r} is not a Space color; use one of {', '.join(SPACE_COLORS)}.")
    if len(short_description) > SHORT_DESCRIPTION_MAX:
        raise HubPublishError(f"short_description is {len(short_description)} characters; the Hub allows 60.")
    data = SpaceCardData(
        title=title,
        sdk="gradio",
        sdk_version=sdk_version,
        python_version=python_version or f"{sys.version_info.major}.{sys.version_info.minor}",
        app_file="app.py",
        license=license,
        models=[teacher_repo_id, model_repo_id],
        emoji=emoji,
        colorFrom=color_from,
        colorTo=color_to,
        pinned=False,
        short_description=short_description,
    )
    base = (endpoint or constants.ENDPOINT).rstrip("/")
    intro = (
        f"# {title}\n\n"
        "Try a distilled student next to the teacher it learned from, on the same input.\n\n"
        f"- Teacher: [{teacher_repo_id}]({base}/{teacher_repo_id})\n"
        f"- Student: [{model_repo_id}]({base}/{model_repo_id})\n\n"
        f"The app reads the two model ids from `{DISTILL_CONFIG_FILENAME}` and from the Space variables "
        "`TEACHER_MODEL` and `STUDENT_MODEL`.\n"
    )
    text = intro + (f"\n{body.strip()}\n" if body.strip() else "")
    return str(SpaceCard(f"---\n{data.to_yaml()}\n---\n\n{text}"))


def _requirements_with_onnxruntime(app_root: Path) -> bytes:
    """The app's requirements.txt plus `onnxruntime` (unless it already names it): the Space then runs the
    student's ONNX export as a third column."""
    path = app_root / "requirements.txt"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if re.search(r"^\s*onnxruntime\b", text, flags=re.MULTILINE):
        return text.encode("utf-8")
    if text and not text.endswith("\n"):
        text += "\n"
    return (text + "# the student's onnx/ exports run as a third column\nonnxruntime\n").encode("utf-8")


def _gradio_version(gradio_version: str | None) -> str:
    if gradio_version:
        return gradio_version
    try:
        return importlib.metadata.version("gradio")
    except importlib.metadata.PackageNotFoundError:
        raise HubPublishError(
            "gradio is not installed, so the Space's sdk_version is unknown: pass gradio_version=..."
        ) from None


@dataclass(frozen=True)
class _SpacePlan:
    """Everything a Space push sends, decided before any request."""

    repo_id: str
    app_root: Path
    app_files: list[str]
    generated: dict[str, bytes]
    variables: dict[str, str]


def _plan_space(
    repo_id: str,
    model_repo_id: str,
    teacher_repo_id: str,
    *,
    app_dir: str | os.PathLike[str] | None,
    gradio_version: str | None,
    report_path: str | os.PathLike[str] | None,
    endpoint: str | None,
    look: dict[str, str | None] | None = None,
    student_dir: str | os.PathLike[str] | None = None,
) -> _SpacePlan:
    """Validate the ids, the app folder and the report, and build the generated files (no network).

    `look` holds push_space's title, emoji, color_from, color_to, license and short_description (None: from
    the app's README.md front matter, else a default)."""
    look = look or {}
    repo_id = _normalize_repo_id(repo_id, "space")
    model_repo_id = _normalize_repo_id(model_repo_id, "model")
    teacher_repo_id = _normalize_repo_id(teacher_repo_id, "model")
    try:
        app_root = Path(app_dir) if app_dir is not None else find_app_dir()
    except FileNotFoundError as exc:
        raise HubPublishError(f"Cannot push the Space: {exc}.") from None
    if not app_root.is_dir():
        raise HubPublishError(f"Cannot push the Space: the app folder {app_root} does not exist.")
    app_files = select_space_files(app_root)
    if "requirements.txt" not in app_files:
        logger.warning("%s has no requirements.txt: the Space will only have gradio installed.", app_root)
    report = Path(report_path) if report_path is not None else None
    if report is not None and not report.is_file():
        raise HubPublishError(f"Cannot push the Space: the report {report} does not exist.")

    local_meta, body = _read_space_readme(app_root / "README.md")

    def pick(name: str, key: str, default: str) -> str:
        value, local = look.get(name), local_meta.get(key)
        return value if value is not None else (local if isinstance(local, str) and local else default)

    readme = build_space_readme(
        title=pick("title", "title", repo_id.split("/")[-1]),
        teacher_repo_id=teacher_repo_id,
        model_repo_id=model_repo_id,
        sdk_version=_gradio_version(gradio_version),
        license=pick("license", "license", "apache-2.0"),
        emoji=pick("emoji", "emoji", "🧪"),
        color_from=pick("color_from", "colorFrom", "indigo"),
        color_to=pick("color_to", "colorTo", "green"),
        short_description=pick("short_description", "short_description", "A distilled student next to its teacher"),
        body=body,
        endpoint=endpoint,
    )
    config: dict[str, str] = {"teacher": teacher_repo_id, "student": model_repo_id}
    variables = {"TEACHER_MODEL": teacher_repo_id, "STUDENT_MODEL": model_repo_id}
    generated = {"README.md": readme.encode("utf-8")}
    if report is not None:
        from ..core.report import DistillationReport

        try:
            loaded = DistillationReport.from_json(report)
        except (ValueError, KeyError, TypeError) as err:
            raise HubPublishError(f"Cannot push the Space: the report {report} is not usable: {err}") from None
        clean = publishable_report(loaded, repo_id=model_repo_id, teacher_repo_id=teacher_repo_id)
        generated[REPORT_FILENAME] = (json.dumps(clean.to_dict(), indent=2, allow_nan=False) + "\n").encode()
        config["distillation_report"] = REPORT_FILENAME
        variables["DISTILLATION_REPORT"] = REPORT_FILENAME
        from ..evaluation.disagreements import read_examples

        try:  # the app shows them as a table (it looks for the file beside the report)
            examples = read_examples(report.parent)
        except ValueError as err:
            raise HubPublishError(f"Cannot push the Space: {err}") from None
        if examples is not None:
            generated[EXAMPLES_FILENAME] = (
                json.dumps(examples.to_dict(), indent=1, ensure_ascii=False, allow_nan=False) + "\n"
            ).encode()
    if student_dir is not None and any(Path(student_dir, "onnx").glob("*.onnx")):
        generated["requirements.txt"] = _requirements_with_onnxruntime(app_root)
        from ..export.onnx import recommended_onnx_file

        config["onnx"] = recommended_onnx_file(student_dir, loaded if report is not None else None)
    generated[DISTILL_CONFIG_FILENAME] = (json.dumps(config, indent=2) + "\n").encode()
    return _SpacePlan(repo_id, app_root, app_files, generated, variables)


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
    student_dir: str | os.PathLike[str] | None = None,
    title: str | None = None,
    emoji: str | None = None,
    color_from: str | None = None,
    color_to: str | None = None,
    license: str | None = None,
    short_description: str | None = None,
    commit_message: str | None = None,
    delete_stale: bool = False,
    set_variables: bool = True,
    timeout: float | None = None,
) -> CommitInfo:
    """Create the Gradio Space `repo_id` and upload the app that compares `teacher_repo_id` with `model_repo_id`.

    One commit holds the app's files, a generated README.md (`SpaceCard` metadata) and `distill_config.json`;
    `report_path` adds the distillation report (local paths replaced, table rows included) and the
    `evaluation_examples.json` beside it. When `student_dir` (the student folder published as `model_repo_id`) holds
    ONNX exports, the Space's requirements gain `onnxruntime` so the app runs the exported student too. Title, emoji,
    colors, license and short description come from the arguments, else from the app's own README.md front
    matter, else from defaults; sdk, sdk_version, app_file and models are always generated. The Space variables
    TEACHER_MODEL, STUDENT_MODEL (and DISTILLATION_REPORT) are set after the commit.

    Args:
        repo_id: the Space, `namespace/name` (a bare name goes under the token's user).
        model_repo_id: the published student.
        teacher_repo_id: the teacher's Hub id.
        app_dir: the app's folder (default: the packaged app).
        token: a token with write access; default `HF_TOKEN` or the stored login.
        private: create the Space private (an existing public one is refused).
        endpoint: Hub URL (default `HF_ENDPOINT`).
        gradio_version: the Space's `sdk_version` (default: the installed gradio's).
        report_path: the student's distillation report, published beside the app.
        student_dir: the student folder, to see whether it holds ONNX exports.
        title: the Space card's title.
        emoji: the Space card's emoji.
        color_from: the Space card's first gradient color.
        color_to: the Space card's second gradient color.
        license: the Space's license.
        short_description: the Space card's short description.
        commit_message: the commit's title.
        delete_stale: remove remote files the app no longer has.
        set_variables: set the Space variables after the commit (a failure there only warns: the app also reads
            ``distill_config.json``).
        timeout: seconds each request may wait, as in `push_to_hub`.

    Returns:
        The commit.

    Raises:
        HubPublishError: a check or a request fails (names the problem and the fix).
    """
    seconds = hub_timeout(timeout)
    plan = _plan_space(
        repo_id,
        model_repo_id,
        teacher_repo_id,
        app_dir=app_dir,
        gradio_version=gradio_version,
        report_path=report_path,
        endpoint=endpoint,
        student_dir=student_dir,
        look={
            "title": title,
            "emoji": emoji,
            "color_from": color_from,
            "color_to": color_to,
            "license": license,
            "short_description": short_description,
        },
    )
    app_root = plan.app_root
    files = sorted({*plan.app_files, *plan.generated})
    token = resolve_token(token)
    _check_online()
    repo_id = resolve_namespace(plan.repo_id, "space", token=token, endpoint=endpoint, timeout=seconds)
    _assert_token_absent(app_root, files, token, plan.generated)

    api = _api(endpoint, token)
    logger.info("Publishing %d files from %s to Space %s: %s", len(files), app_root, repo_id, ", ".join(files))
    with _publishing(api, repo_id=repo_id, repo_type="space", files=files, token=token, timeout=seconds) as progress:
        _retrying(
            lambda: api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True),
            what="creating the Space",
        )
        if private:
            _refuse_if_public(api, repo_id, "space", files)
        operations: list[CommitOperationAdd | CommitOperationDelete] = list(
            _add_operations(app_root, files, plan.generated)
        )
        if delete_stale:
            operations += _stale_deletions(api, repo_id, "space", None, files, ["*"])
        progress.commit_sent = True
        commit = api.create_commit(
            repo_id=repo_id,
            repo_type="space",
            operations=operations,
            commit_message=commit_message or f"Deploy the hf-distill demo for {plan.variables['STUDENT_MODEL']}",
        )
    logger.info("Published Space %s: %s", repo_id, commit.commit_url)

    if set_variables:
        try:
            with _client_timeout(seconds):
                for key, value in plan.variables.items():
                    api.add_space_variable(repo_id, key, value, description="Set by hf-distill push")
        except Exception as err:
            # The files are committed and the app also reads distill_config.json, so this is not fatal.
            reason, _ = _explain(err, api=api, repo_id=repo_id, repo_type="space", timeout=seconds)
            logger.warning(
                "The Space files were committed (%s) but its variables were not set: %s The app falls back to %s.",
                commit.commit_url,
                _redact(reason, token),
                DISTILL_CONFIG_FILENAME,
            )
    return commit
