"""Talking to the Hub: tokens and namespaces, write access, timeouts (`timeout=`, else `HF_DISTILL_HUB_TIMEOUT`,
else 60 s), retries of the idempotent calls (create repo, repo info, branch, listing; never the commit) and one
clear line for each way a request fails (`HubPublishError`)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlparse

from huggingface_hub import (
    HfApi,
    constants,
    get_session,
    get_token,
)
from huggingface_hub.errors import (
    BadRequestError,
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id

from ..errors import HfDistillError

__all__ = [
    "HubPublishError",
    "hub_timeout",
    "resolve_namespace",
    "resolve_token",
    "write_access_problems",
]

logger = logging.getLogger(__name__)
# Seconds a request may wait for the Hub (connect, each read and each write) before it fails.
DEFAULT_TIMEOUT_S = 60.0
TIMEOUT_ENV = "HF_DISTILL_HUB_TIMEOUT"
RETRY_ATTEMPTS = 3  # for idempotent calls only; the commit is never retried (it may have landed)
RETRY_BACKOFF_S = 0.5  # doubled after each failed attempt
# How a repo's web address starts, by type ("https://huggingface.co/datasets/alice/x").
REPO_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


class HubPublishError(HfDistillError, RuntimeError):
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
    elif "://" in raw and repo_type != "model" and len(parts) == 2:
        # a Hub URL without a type prefix is a model's page
        raise HubPublishError(
            f"'{repo_id}' is the address of a model repository, but a {repo_type} is needed here: pass "
            f"'{repo_type}s/{path}' or just '{path}'. Nothing was uploaded.",
            repo_id=repo_id,
        )
    try:
        validate_repo_id(path)
    except HFValidationError as err:
        raise HubPublishError(f"Invalid repo id '{repo_id}': {err}", repo_id=repo_id) from None
    return path


def resolve_namespace(
    repo_id: str,
    repo_type: str,
    *,
    token: str | None = None,
    endpoint: str | None = None,
    timeout: float | None = None,
) -> str:
    """`repo_id` as `namespace/name`, asking the Hub whose token this is when it names no namespace.

    `HfApi.create_repo("name")` creates the repo under the token's user, but every later call (commit, branch,
    variables) needs the full id: with the bare name they fail with "not found" after an empty repo was created.
    So a bare name is resolved first (`whoami`) to the token's user, as the Hub would, and the full id is used
    everywhere, including the card and manifest that name the repo. An id with a namespace makes no request.

    Args:
        repo_id: The repo to create or update: `namespace/name`, `name`, or a Hub URL of a `repo_type` repo.
        repo_type: "model", "dataset" or "space".
        token: The token to publish with; default `HF_TOKEN` or the stored login (only read for a bare name).
        endpoint: Hub URL (default `HF_ENDPOINT`).
        timeout: Seconds the request may wait (default `HF_DISTILL_HUB_TIMEOUT`, else 60).

    Raises:
        HubPublishError: the id is invalid, or the token's user cannot be read (nothing was created).
    """
    repo_id = _normalize_repo_id(repo_id, repo_type)
    if "/" in repo_id:
        return repo_id
    token = resolve_token(token)
    _check_online()
    seconds = hub_timeout(timeout)
    api = _api(endpoint, token)
    try:
        with _client_timeout(seconds):
            user = _retrying(lambda: api.whoami(), what="reading the token's user")["name"]
    except Exception as err:
        reason, status = _explain(err, api=api, repo_id=repo_id, repo_type=repo_type, timeout=seconds)
        message = (
            f"'{repo_id}' names no namespace and the token's user could not be read to put it under: {reason} "
            f"Nothing was created; pass 'namespace/{repo_id}' or fix the token."
        )
        raise HubPublishError(_redact(message, token), repo_id=repo_id, status=status) from None
    logger.info(
        "'%s' names no namespace: publishing to '%s/%s' (the token's user), as the Hub does", repo_id, user, repo_id
    )
    return f"{user}/{repo_id}"


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "<redacted>") if token else text


# ----------------------------------------------------------------------------------------------- network


def hub_timeout(timeout: float | None = None) -> float:
    """Seconds each Hub request may wait: `timeout`, else `HF_DISTILL_HUB_TIMEOUT`, else 60.

    Args:
        timeout: the caller's setting, or None to read the environment.

    Raises:
        HubPublishError: the value is not a positive, finite number.
    """
    raw: Any = timeout if timeout is not None else os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = float("nan")
    if not value > 0 or value == float("inf"):
        source = "timeout" if timeout is not None else TIMEOUT_ENV
        raise HubPublishError(f"{source}={raw!r} is not a positive number of seconds (e.g. 60).")
    return value


@contextlib.contextmanager
def _client_timeout(seconds: float) -> Iterator[None]:
    """Give huggingface_hub's shared HTTP client a timeout while we publish, then restore its own.

    The library's default client has no timeout at all, so a Hub that accepts the connection and never answers
    would hang the push forever. Setting it on the shared client (rather than `set_client_factory`) keeps a
    factory the user configured (proxies, certificates) in place.
    """
    client = get_session()
    previous = client.timeout
    client.timeout = seconds
    try:
        yield
    finally:
        client.timeout = previous


def _network_error_types() -> tuple[type[BaseException], ...]:
    # huggingface_hub 2.x speaks httpx2, 1.x httpx: catch whichever transport errors exist.
    types: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            types.append(__import__(module).TransportError)
    return tuple(types)


def _is_timeout(err: BaseException) -> bool:
    return isinstance(err, TimeoutError) or "Timeout" in type(err).__name__


_T = TypeVar("_T")


def _retrying(call: Callable[[], _T], *, what: str, attempts: int = RETRY_ATTEMPTS) -> _T:
    """Run an idempotent Hub call, retrying network failures and timeouts with a short backoff."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except _network_error_types() as err:
            if attempt == attempts:
                raise
            wait = RETRY_BACKOFF_S * 2 ** (attempt - 1)
            logger.warning(
                "%s failed (%s); retrying in %.1f s (%d/%d)", what, type(err).__name__, wait, attempt, attempts - 1
            )
            time.sleep(wait)
    raise AssertionError("unreachable")


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


def _explain(
    err: BaseException, *, api: HfApi, repo_id: str, repo_type: str, timeout: float = DEFAULT_TIMEOUT_S
) -> tuple[str, int | None]:
    """A user-facing reason for `err` and the HTTP status, if any."""
    kind = "Space" if repo_type == "space" else f"{repo_type} repository"
    namespace = repo_id.split("/")[0] if "/" in repo_id else "your account"
    if isinstance(err, OfflineModeIsEnabled):
        return "Hugging Face offline mode is on (HF_HUB_OFFLINE=1): unset it to publish.", None
    if isinstance(err, _network_error_types()):
        if _is_timeout(err):
            return (
                f"The Hub at {api.endpoint} did not answer within {timeout:g} s ({type(err).__name__}), also after "
                f"{RETRY_ATTEMPTS - 1} retries where a retry is safe. Check your connection or the Hub status, "
                f"or allow more time with {TIMEOUT_ENV}=SECONDS (or --timeout).",
                None,
            )
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


@dataclass
class _Progress:
    """How far a publication got: whether the commit request was sent (then its outcome is unknown)."""

    commit_sent: bool = False


@contextlib.contextmanager
def _publishing(
    api: HfApi, *, repo_id: str, repo_type: str, files: Sequence[str], token: str, timeout: float
) -> Iterator[_Progress]:
    """Set the request timeout, and turn any failure of the create/upload steps into a `HubPublishError`
    that says what was (not) committed."""
    progress = _Progress()
    # The timeout also covers the requests `_explain` makes to say what went wrong.
    with _client_timeout(timeout):
        try:
            yield progress
        except HubPublishError:
            raise
        except Exception as err:
            _raise_publish_error(
                err, api, progress, repo_id=repo_id, repo_type=repo_type, files=files, token=token, timeout=timeout
            )


def _raise_publish_error(
    err: Exception,
    api: HfApi,
    progress: _Progress,
    *,
    repo_id: str,
    repo_type: str,
    files: Sequence[str],
    token: str,
    timeout: float,
) -> None:
    """Raise the `HubPublishError` for `err`: why, whether anything may have been committed, what was not."""
    reason, status = _explain(err, api=api, repo_id=repo_id, repo_type=repo_type, timeout=timeout)
    if progress.commit_sent and isinstance(err, _network_error_types()):
        # The commit request left: the Hub may have applied it before the answer was lost.
        outcome = (
            f"The commit may or may not have been applied: look at {api.endpoint}/"
            f"{REPO_URL_PREFIX.get(repo_type, '')}{repo_id}/commits before pushing again "
            "(pushing the same files again is harmless). Local files were not changed."
        )
    else:
        outcome = (
            "No files were committed: the upload is a single commit that the Hub did not confirm, and local "
            "files were not changed."
        )
    message = f"Could not publish to {repo_type} '{repo_id}'. {reason}\n{outcome} {_files_summary(files)}"
    # The original exception is kept as the cause unless the server echoed the token into it.
    cause = None if token in str(err) else err
    raise HubPublishError(_redact(message, token), repo_id=repo_id, files=files, status=status) from cause


# ----------------------------------------------------------------------------------------------- model


def _library_version() -> str:
    try:
        return importlib.metadata.version("hf-distill")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _api(endpoint: str | None, token: str) -> HfApi:
    return HfApi(endpoint=endpoint, token=token, library_name="hf-distill", library_version=_library_version())


def _writable_namespaces(whoami: dict[str, Any]) -> list[str]:
    """The token's user and the organisations where it may create repos (a 'read' member cannot)."""
    orgs = [o.get("name") for o in whoami.get("orgs") or [] if o.get("roleInOrg", "write") != "read"]
    return [whoami.get("name"), *orgs]


def _fine_grained_can_write(access: dict[str, Any], namespace: str) -> bool | None:
    """Whether a fine-grained token's scopes let it write repos in `namespace` (None when the scopes are unknown)."""
    scoped = (access.get("fineGrained") or {}).get("scoped")
    if not isinstance(scoped, list):
        return None
    return any(
        (entry.get("entity") or {}).get("name") == namespace
        and any("write" in permission for permission in entry.get("permissions") or [])
        for entry in scoped
    )


def write_access_problems(
    repos: Sequence[tuple[str, str]],
    *,
    token: str | None = None,
    endpoint: str | None = None,
    timeout: float | None = None,
) -> list[str]:
    """What stops the token from publishing to `repos`, one line each; empty when it can.

    Asked before any work (``hf-distill run`` with push_to_hub checks it before training): `HfApi.whoami` says
    whether there is a valid token with the write role; `HfApi.auth_check(write=True)` whether it may write an
    existing repo; for a repo that will be created, the repo's namespace must be the token's user or one of its
    organisations. Nothing is created.

    Args:
        repos: (repo id, repo type) pairs, repo type "model", "dataset" or "space".
        token: the token (default: `HF_TOKEN` or the stored login).
        endpoint: the Hub's address (default: huggingface_hub's).
        timeout: seconds per request (see `hub_timeout`).
    """
    if constants.is_offline_mode():
        return [
            "push_to_hub with Hugging Face offline mode on (HF_HUB_OFFLINE=1): unset it, or set push_to_hub: "
            "false and publish later with `hf-distill push`"
        ]
    token = token or get_token()
    if not token:
        return [
            "push_to_hub needs a Hugging Face token with write access: set HF_TOKEN or run `hf auth login` "
            "(checked now, before training)"
        ]
    try:
        seconds = hub_timeout(timeout)
    except HubPublishError as err:
        return [str(err)]
    api = _api(endpoint, token)
    with _client_timeout(seconds):
        try:
            who = _retrying(lambda: api.whoami(), what="whoami")
        except HfHubHTTPError as err:
            status = err.response.status_code if err.response is not None else None
            if status == 401:
                return [
                    "the Hugging Face token (HF_TOKEN or `hf auth login`) is invalid, expired or revoked: "
                    "publishing needs a valid token with write access"
                ]
            return [
                f"the Hub at {api.endpoint} could not check the token (HTTP {status}): try again, or set "
                "push_to_hub: false and publish later with `hf-distill push`"
            ]
        except _network_error_types() as err:
            return [
                f"the Hub at {api.endpoint} cannot be reached to check the token ({type(err).__name__}): check "
                "the connection, or set push_to_hub: false and publish later with `hf-distill push`"
            ]
        access = (who.get("auth") or {}).get("accessToken") or {}
        user = who.get("name")
        if access.get("role") == "read":
            return [
                f"the Hugging Face token of {user!r} is read-only: publishing needs a token with the 'write' role "
                "(or a fine-grained token with write access to the repos)"
            ]
        problems = []
        for repo_id, repo_type in repos:
            kind = "Space" if repo_type == "space" else f"{repo_type} repo"
            namespace = repo_id.split("/")[0]
            try:
                _retrying(
                    lambda rid=repo_id, rt=repo_type: api.auth_check(rid, repo_type=rt, write=True), what="auth check"
                )
                continue  # it exists and the token may write it
            except RepositoryNotFoundError:
                pass  # not there yet (or not visible): it will be created in its namespace
            except HfHubHTTPError as err:
                status = err.response.status_code if err.response is not None else None
                if status in (401, 403):
                    problems.append(
                        f"the token of {user!r} cannot write to the {kind} {repo_id!r} (HTTP {status}): "
                        f"use a token with write access to it, or another repo id"
                    )
                    continue
            except _network_error_types() as err:
                problems.append(
                    f"the Hub at {api.endpoint} cannot be reached to check {repo_id!r} "
                    f"({type(err).__name__}): check the connection"
                )
                continue
            allowed = _writable_namespaces(who)
            if namespace not in allowed:
                problems.append(
                    f"the token of {user!r} cannot create the {kind} {repo_id!r}: it may create repos "
                    f"under {', '.join(repr(n) for n in allowed)} only; use one of those namespaces"
                )
            elif access.get("role") == "fineGrained" and _fine_grained_can_write(access, namespace) is False:
                problems.append(
                    f"the fine-grained token of {user!r} has no write access to {namespace!r}, so it "
                    f"cannot create the {kind} {repo_id!r}: grant it repo write access there"
                )
    return problems
