"""An in-process fake of the Hugging Face Hub routes that `huggingface_hub.HfApi` uses to create repos and upload.

It serves the real client over HTTP on 127.0.0.1 (random port, daemon threads) and keeps everything that
arrives, so tests can check the exact files and bytes committed, commit messages, flags and Space variables.
It models the parts of the Hub's behaviour the publisher relies on: token roles (401 unknown token, 403
read token or foreign namespace), 404 RepoNotFound / RevisionNotFound, 409 on existing repos, LFS through
the batch API, atomic NDJSON commits, pull-request refs, branches, tree listing and YAML validation.
Faults can be injected per route (an HTTP status, or a dropped connection).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import yaml

PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space"}
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".png", ".jpg", ".jpeg", ".arrow", ".parquet")
SPACE_SDKS = ("gradio", "streamlit", "docker", "static")
SPACE_COLORS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"


@dataclass
class Commit:
    """One commit as the server applied it."""

    repo_type: str
    repo_id: str
    revision: str
    message: str
    description: str
    added: dict[str, bytes]
    deleted: list[str]
    create_pr: bool
    pr_num: int | None
    oid: str


@dataclass
class FakeRepo:
    """A repository: its refs (branch or PR ref -> files), commits and, for Spaces, variables."""

    repo_type: str
    repo_id: str
    visibility: str | None
    owner: str
    sdk: str | None = None
    refs: dict[str, dict[str, bytes]] = field(default_factory=lambda: {"main": {".gitattributes": GITATTRIBUTES}})
    commits: list[Commit] = field(default_factory=list)
    variables: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def private(self) -> bool:
        return self.visibility == "private"

    @property
    def files(self) -> dict[str, bytes]:
        return self.refs["main"]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    authenticated: bool


@dataclass
class _Fault:
    route: str
    status: int | None
    drop: bool
    message: str
    remaining: int


class FakeHub:
    """A threaded HTTP server that answers like the Hub; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        tokens: dict[str, tuple[str, str]] | None = None,
        *,
        orgs: dict[str, list[str]] | None = None,
        names_unique_across_types: bool = False,
        upload_mode: str | None = None,
    ) -> None:
        # token -> (user, role); role is "write" or "read".
        self.tokens = dict(tokens or {})
        self.orgs = dict(orgs or {})
        # When True, a name taken by a repo of one type cannot be created as another type (409).
        self.names_unique_across_types = names_unique_across_types
        # None: "lfs" for binary suffixes and files of 10 MB or more, as the Hub does; "regular": every file
        # goes inline in the commit. With hf_xet installed the client sends LFS files to Xet storage, which
        # this fake does not implement: "regular" lets the real client run its Xet-enabled path end to end.
        if upload_mode not in (None, "regular"):
            raise ValueError(f"upload_mode must be None or 'regular', got {upload_mode!r}")
        self.upload_mode = upload_mode
        self.repos: dict[tuple[str, str], FakeRepo] = {}
        self.lfs: dict[str, bytes] = {}
        self.requests: list[Request] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeHub:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-hub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "FakeHub is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------------ test helpers

    def fail(self, route: str, *, status: int | None = None, drop: bool = False, message: str = "", times: int = 1):
        """Make the next `times` calls to `route` answer `status` (with `message`) or drop the connection."""
        with self._lock:
            self._faults.append(_Fault(route, status, drop, message or f"injected {status}", times))

    def seed(self, repo_type: str, repo_id: str, files: dict[str, bytes] | None = None, **kw) -> FakeRepo:
        """Create a repository directly (no HTTP), optionally with files on main."""
        repo = FakeRepo(repo_type, repo_id, kw.pop("visibility", "public"), repo_id.split("/")[0], **kw)
        repo.files.update(files or {})
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def repo(self, repo_type: str, repo_id: str) -> FakeRepo:
        return self.repos[(repo_type, repo_id)]

    def routes_called(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]

    def all_received_bytes(self) -> Iterator[bytes]:
        """Every request body, every stored file and every LFS object: what a token scan must cover."""
        yield from (r.body for r in self.requests)
        yield from self.lfs.values()
        for repo in self.repos.values():
            for files in repo.refs.values():
                yield from files.values()
            for commit in repo.commits:
                yield commit.message.encode()
                yield commit.description.encode()
            for var in repo.variables.values():
                yield json.dumps(var).encode()

    # ------------------------------------------------------------------ logic used by the handler

    def _take_fault(self, route: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.route == route and fault.remaining > 0:
                    fault.remaining -= 1
                    return fault
        return None

    def _user(self, auth: str | None) -> tuple[str, str] | None:
        if not auth or not auth.startswith("Bearer "):
            return None
        return self.tokens.get(auth[len("Bearer ") :])

    def _can_write(self, user: str, namespace: str) -> bool:
        return namespace == user or namespace in self.orgs.get(user, [])


class _Error(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, extra: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"
    timeout = 10  # idle keep-alive connections end instead of holding a thread forever

    @property
    def server_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence the default stderr log
        pass

    # ---------------------------------------------------------------- plumbing

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: object = None, headers: dict[str, str] | None = None) -> None:
        raw = isinstance(payload, bytes)  # file content (resolve route) goes out as is
        body = payload if raw else (b"" if payload is None else json.dumps(payload).encode())
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if raw else "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        parsed = urlparse(self.path)
        body = self._read_body()
        auth = self.headers.get("Authorization")
        hub = self.hub
        with hub._lock:
            hub.requests.append(Request(self.command, parsed.path, parse_qs(parsed.query), body, auth is not None))
        route, handler, params = _route(self.command, parsed.path)
        fault = hub._take_fault(route) if route else None
        if fault is not None and fault.drop:
            self.close_connection = True  # no response at all: the client sees a broken connection
            return
        if fault is not None:
            self._send(fault.status or 500, {"error": fault.message}, {"X-Error-Message": fault.message})
            return
        if handler is None:
            self._send(404, {"error": f"fake hub: no route for {self.command} {parsed.path}"})
            return
        try:
            status, payload, headers = handler(self, hub, body=body, query=parse_qs(parsed.query), **params)
        except _Error as err:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._send(err.status, {"error": err.message, **err.extra}, headers)
            return
        self._send(status, payload, headers)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    # ---------------------------------------------------------------- auth helpers

    def require_user(self, hub: FakeHub) -> tuple[str, str]:
        user = hub._user(self.headers.get("Authorization"))
        if user is None:
            raise _Error(401, "Invalid credentials in Authorization header")
        return user

    def require_write(self, hub: FakeHub, namespace: str) -> str:
        name, role = self.require_user(hub)
        if role != "write":
            raise _Error(403, "You have read access but not the required permissions for this operation.")
        if not hub._can_write(name, namespace):
            raise _Error(403, f"You don't have the rights to create or modify repositories under '{namespace}'")
        return name

    def visible_repo(self, hub: FakeHub, repo_type: str, repo_id: str) -> FakeRepo:
        repo = hub.repos.get((repo_type, repo_id))
        user = hub._user(self.headers.get("Authorization"))
        if repo is None or (repo.private and (user is None or not hub._can_write(user[0], repo.owner))):
            raise _Error(404, "Repository not found", "RepoNotFound")
        return repo

    def writable_repo(self, hub: FakeHub, repo_type: str, repo_id: str) -> FakeRepo:
        self.require_user(hub)
        repo = self.visible_repo(hub, repo_type, repo_id)
        self.require_write(hub, repo_id.split("/")[0])
        return repo


# -------------------------------------------------------------------------------------------------- routes


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _create(h: _Handler, hub: FakeHub, *, body: bytes, **_):
    data = json.loads(body or b"{}")
    name, org, repo_type = data["name"], data.get("organization"), data.get("type") or "model"
    user, _role = h.require_user(hub)
    namespace = org or user
    repo_id = f"{namespace}/{name}"
    h.require_write(hub, namespace)
    taken = [t for (t, rid) in hub.repos if rid == repo_id]
    url = f"{h.server_url}/{PREFIX[repo_type]}{repo_id}"
    # Like the Hub, a 409 still carries the repo URL: `create_repo(exist_ok=True)` reads it.
    if repo_type in taken:
        raise _Error(409, f"You already created this {repo_type} repo", extra={"url": url})
    if taken and hub.names_unique_across_types:
        raise _Error(409, f"A {taken[0]} repository with this name already exists", extra={"url": url})
    if repo_type == "space" and data.get("sdk") not in SPACE_SDKS:
        raise _Error(400, "sdk is required for a Space")
    hub.seed(repo_type, repo_id, visibility=data.get("visibility"), sdk=data.get("sdk"))
    hub.repos[(repo_type, repo_id)].owner = namespace
    return 200, {"url": url, "name": repo_id}, None


def _delete(h: _Handler, hub: FakeHub, *, body: bytes, **_):
    data = json.loads(body or b"{}")
    user, _role = h.require_user(hub)
    repo_id = f"{data.get('organization') or user}/{data['name']}"
    repo_type = data.get("type") or "model"
    h.writable_repo(hub, repo_type, repo_id)
    del hub.repos[(repo_type, repo_id)]
    return 200, {}, None


def _whoami(h: _Handler, hub: FakeHub, **_):
    user, role = h.require_user(hub)
    orgs = [{"name": o, "type": "org"} for o in hub.orgs.get(user, [])]
    return 200, {"type": "user", "name": user, "orgs": orgs, "auth": {"accessToken": {"role": role}}}, None


def _front_matter(content: str) -> dict:
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, flags=re.DOTALL)
    if not match:
        return {}
    meta = yaml.safe_load(match.group(1))
    if not isinstance(meta, dict):
        raise ValueError("the front matter is not a mapping")
    return meta


def _validate_yaml(h: _Handler, hub: FakeHub, *, body: bytes, **_):
    data = json.loads(body or b"{}")
    errors: list[str] = []
    try:
        meta = _front_matter(data.get("content", ""))
    except (yaml.YAMLError, ValueError) as err:
        return 400, {"errors": [{"message": f"Invalid YAML: {err}"}], "warnings": []}, None
    if data.get("repoType") == "space":
        if meta.get("sdk") not in SPACE_SDKS:
            errors.append(f'"sdk" must be one of {SPACE_SDKS}')
        for key in ("colorFrom", "colorTo"):
            if key in meta and meta[key] not in SPACE_COLORS:
                errors.append(f'"{key}" must be one of {SPACE_COLORS}')
        for key in ("title", "emoji", "sdk_version", "app_file", "python_version", "short_description"):
            if key in meta and not isinstance(meta[key], str):
                errors.append(f'"{key}" must be a string')
        if len(str(meta.get("short_description", ""))) > 60:
            errors.append('"short_description" must be at most 60 characters')
    models = meta.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        errors.append('"models" must be a list of repo ids')
    if "license" in meta and not isinstance(meta["license"], str):
        errors.append('"license" must be a string')
    payload = {"errors": [{"message": e} for e in errors], "warnings": []}
    return (400 if errors else 200), payload, None


def _repo_info(h: _Handler, hub: FakeHub, *, repo_type: str, repo_id: str, revision: str = "main", **_):
    repo = h.visible_repo(hub, repo_type, repo_id)
    if revision not in repo.refs:
        raise _Error(404, "Invalid rev id", "RevisionNotFound")
    files = repo.refs[revision]
    sha = hashlib.sha1(repr(sorted((k, hashlib.sha1(v).hexdigest()) for k, v in files.items())).encode()).hexdigest()
    info = {
        "id": repo_id,
        "sha": sha,
        "cardData": _front_matter(files.get("README.md", b"").decode("utf-8", "replace")) or None,
        "private": repo.private,
        "lastModified": _now(),
        "siblings": [{"rfilename": p} for p in sorted(files)],
    }
    if repo_type == "space":
        info["sdk"] = repo.sdk
    return 200, info, None


def _tree(h: _Handler, hub: FakeHub, *, repo_type: str, repo_id: str, revision: str, path: str = "", **_):
    repo = h.visible_repo(hub, repo_type, repo_id)
    if revision not in repo.refs:
        raise _Error(404, "Invalid rev id", "RevisionNotFound")
    prefix = f"{path.strip('/')}/" if path else ""
    entries = [
        {"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
        for p, b in sorted(repo.refs[revision].items())
        if p.startswith(prefix)
    ]
    return 200, entries, None


def _resolve(h: _Handler, hub: FakeHub, *, repo_type: str, repo_id: str, revision: str, path: str, **_):
    repo = h.visible_repo(hub, repo_type, repo_id)
    if revision not in repo.refs:
        raise _Error(404, "Invalid rev id", "RevisionNotFound")
    data = repo.refs[revision].get(path)
    if data is None:
        raise _Error(404, "Entry not found", "EntryNotFound")
    _, info, _ = _repo_info(h, hub, repo_type=repo_type, repo_id=repo_id, revision=revision)
    headers = {"X-Repo-Commit": info["sha"], "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}
    if path.endswith(LFS_SUFFIXES):
        headers.update({"X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"', "X-Linked-Size": str(len(data))})
    return 200, data, headers


def _preupload(h: _Handler, hub: FakeHub, *, body: bytes, repo_type: str, repo_id: str, revision: str, **_):
    repo = h.writable_repo(hub, repo_type, repo_id)
    if revision not in repo.refs:
        raise _Error(404, "Invalid rev id", "RevisionNotFound")
    files = json.loads(body)["files"]
    modes = [
        {
            "path": f["path"],
            "uploadMode": "lfs"
            if hub.upload_mode is None and (f["path"].endswith(LFS_SUFFIXES) or f["size"] >= 10 * 1024 * 1024)
            else "regular",
            "shouldIgnore": False,
        }
        for f in files
    ]
    return 200, {"files": modes}, None


def _lfs_batch(h: _Handler, hub: FakeHub, *, body: bytes, repo_type: str, repo_id: str, **_):
    h.writable_repo(hub, repo_type, repo_id)
    data = json.loads(body)
    objects = []
    for obj in data["objects"]:
        entry = {"oid": obj["oid"], "size": obj["size"]}
        if obj["oid"] not in hub.lfs:
            entry["actions"] = {
                "upload": {"href": f"{h.server_url}/_lfs/{obj['oid']}?size={obj['size']}"},
                "verify": {"href": f"{h.server_url}/_lfs/verify"},
            }
        objects.append(entry)
    return 200, {"transfer": "basic", "objects": objects}, None


def _lfs_put(h: _Handler, hub: FakeHub, *, body: bytes, oid: str, query: dict, **_):
    if hashlib.sha256(body).hexdigest() != oid or len(body) != int(query["size"][0]):
        raise _Error(400, "content does not match the announced sha256/size")
    hub.lfs[oid] = body
    return 200, None, None


def _lfs_verify(h: _Handler, hub: FakeHub, *, body: bytes, **_):
    data = json.loads(body)
    if hub.lfs.get(data["oid"]) is None or len(hub.lfs[data["oid"]]) != data["size"]:
        raise _Error(404, "object not uploaded")
    return 200, {}, None


def _branch(h: _Handler, hub: FakeHub, *, body: bytes, repo_type: str, repo_id: str, branch: str, **_):
    repo = h.writable_repo(hub, repo_type, repo_id)
    if branch in repo.refs:
        raise _Error(409, "Reference already exists")
    start = (json.loads(body or b"{}") or {}).get("startingPoint") or "main"
    repo.refs[branch] = dict(repo.refs[start])
    return 200, {}, None


def _commit(h: _Handler, hub: FakeHub, *, body: bytes, query: dict, repo_type: str, repo_id: str, revision: str, **_):
    repo = h.writable_repo(hub, repo_type, repo_id)
    if revision not in repo.refs:
        raise _Error(404, "Invalid rev id", "RevisionNotFound")
    header: dict = {}
    added: dict[str, bytes] = {}
    deleted: list[str] = []
    for line in body.splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        key, value = item["key"], item["value"]
        if key == "header":
            header = value
        elif key == "file":
            added[value["path"]] = base64.b64decode(value["content"])
        elif key == "lfsFile":
            if value["oid"] not in hub.lfs:
                raise _Error(422, f"LFS object {value['oid']} was not uploaded")
            added[value["path"]] = hub.lfs[value["oid"]]
        elif key in ("deletedFile", "deletedFolder"):
            deleted.append(value["path"])
        else:
            raise _Error(400, f"unknown commit operation {key}")
    if not header.get("summary"):
        raise _Error(400, "commit summary is required")
    create_pr = query.get("create_pr") == ["1"]
    # Build the new tree first and swap it in at the end: a failed commit changes nothing (atomic).
    target = dict(repo.refs[revision])
    for path in deleted:
        if path not in target and not any(p.startswith(path.rstrip("/") + "/") for p in target):
            raise _Error(404, "A file with this name doesn't exist", "EntryNotFound")
        for p in [p for p in target if p == path or p.startswith(path.rstrip("/") + "/")]:
            del target[p]
    target.update(added)
    pr_num = None
    ref = revision
    if create_pr:
        pr_num = 1 + sum(1 for r in repo.refs if r.startswith("refs/pr/"))
        ref = f"refs/pr/{pr_num}"
    repo.refs[ref] = target
    oid = hashlib.sha1(f"{repo_id}{len(repo.commits)}{header['summary']}".encode()).hexdigest()
    repo.commits.append(
        Commit(
            repo_type,
            repo_id,
            ref,
            header["summary"],
            header.get("description", ""),
            added,
            deleted,
            create_pr,
            pr_num,
            oid,
        )
    )
    base = f"{h.server_url}/{PREFIX[repo_type]}{repo_id}"
    payload = {
        "success": True,
        "commitOid": oid,
        "commitUrl": f"{base}/commit/{oid}",
        "pullRequestUrl": f"{base}/discussions/{pr_num}" if pr_num else None,
    }
    return 200, payload, None


def _variables(h: _Handler, hub: FakeHub, *, body: bytes, repo_type: str, repo_id: str, **_):
    repo = h.writable_repo(hub, repo_type, repo_id)
    data = json.loads(body)
    repo.variables[data["key"]] = {"value": data["value"], "description": data.get("description"), "updatedAt": _now()}
    return 200, repo.variables, None


def _get_variables(h: _Handler, hub: FakeHub, *, repo_type: str, repo_id: str, **_):
    return 200, h.writable_repo(hub, repo_type, repo_id).variables, None


def _auth_check(h: _Handler, hub: FakeHub, *, repo_type: str, repo_id: str, write: str | None = None, **_):
    # As the Hub: 404 for a repo the token cannot see (or that does not exist), 403 without write access.
    h.visible_repo(hub, repo_type, repo_id)
    if write:
        h.require_write(hub, repo_id.split("/")[0])
    return 200, {}, None


_REPO = r"(?P<plural>models|datasets|spaces)/(?P<repo_id>[^/]+/[^/]+)"
_ROUTES = [
    ("POST", r"/api/repos/create", "create", _create),
    ("DELETE", r"/api/repos/delete", "delete", _delete),
    ("GET", r"/api/whoami-v2", "whoami", _whoami),
    ("POST", r"/api/validate-yaml", "validate-yaml", _validate_yaml),
    ("POST", rf"/api/{_REPO}/preupload/(?P<revision>[^/]+)", "preupload", _preupload),
    ("POST", rf"/api/{_REPO}/commit/(?P<revision>[^/]+)", "commit", _commit),
    ("POST", rf"/api/{_REPO}/branch/(?P<branch>[^/]+)", "branch", _branch),
    ("POST", r"/api/(?P<plural>spaces)/(?P<repo_id>[^/]+/[^/]+)/variables", "variables", _variables),
    ("GET", r"/api/(?P<plural>spaces)/(?P<repo_id>[^/]+/[^/]+)/variables", "variables", _get_variables),
    ("GET", rf"/api/{_REPO}/auth-check(?P<write>/write)?", "auth-check", _auth_check),
    ("GET", rf"/api/{_REPO}/tree/(?P<revision>[^/]+)(?:/(?P<path>.*))?", "tree", _tree),
    ("GET", rf"/api/{_REPO}/revision/(?P<revision>[^/]+)", "repo-info", _repo_info),
    ("GET", rf"/api/{_REPO}", "repo-info", _repo_info),
    (
        "POST",
        r"/(?P<prefix>datasets/|spaces/)?(?P<repo_id>[^/]+/[^/]+)\.git/info/lfs/objects/batch",
        "lfs-batch",
        _lfs_batch,
    ),
    ("PUT", r"/_lfs/(?P<oid>[0-9a-f]{64})", "lfs-upload", _lfs_put),
    (
        "GET",
        r"/(?P<prefix>datasets/|spaces/)?(?P<repo_id>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)",
        "resolve",
        _resolve,
    ),
    (
        "HEAD",
        r"/(?P<prefix>datasets/|spaces/)?(?P<repo_id>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)",
        "resolve",
        _resolve,
    ),
    ("POST", r"/_lfs/verify", "lfs-verify", _lfs_verify),
]


def _route(method: str, path: str):
    for route_method, pattern, name, handler in _ROUTES:
        match = re.fullmatch(pattern, path)
        if route_method == method and match:
            params = {k: v for k, v in match.groupdict().items() if v is not None}
            if "plural" in params:
                params["repo_type"] = PLURAL[params.pop("plural")]
            if "prefix" in params or name in ("lfs-batch", "resolve"):
                params["repo_type"] = {"datasets/": "dataset", "spaces/": "space"}.get(
                    params.pop("prefix", ""), "model"
                )
            for key in ("revision", "branch", "repo_id", "path"):
                if key in params:
                    params[key] = unquote(params[key])
            return name, handler, params
    return None, None, {}


_RESERVED: list = []


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens, for 'server down' tests: a connection is refused.

    The socket stays bound (never listening) until the test process ends, so no other process can take the port
    and answer in its place; the few ports this costs are never given back.
    """
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _RESERVED.append(sock)
    return sock.getsockname()[1]


@contextlib.contextmanager
def online_client(monkeypatch, home, *, disable_xet: bool = True, timeout: float = 10.0) -> Iterator[None]:
    """Let `huggingface_hub` talk HTTP inside a test, with a private HF_HOME, no ambient token and timeouts.

    conftest sets HF_HUB_OFFLINE=1 before huggingface_hub is imported, and the library reads it (and
    HF_HUB_DISABLE_XET, HF_HOME, the token path, the endpoint) once at import: the environment *and* the
    module constants are patched. Any request that forgets `endpoint=` goes to a closed local port.
    """
    from huggingface_hub import close_session, constants, set_client_factory
    from huggingface_hub.utils import (
        _http,  # the default client factory is not re-exported
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HUGGINGFACE_HUB_CACHE", str(home / "hub"))
    nowhere = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setattr(constants, "ENDPOINT", nowhere)
    # Derived from ENDPOINT at import; `hf_hub_download(endpoint=...)` rewrites URLs that start with ENDPOINT.
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", nowhere + "/{repo_id}/resolve/{revision}/{filename}")
    if disable_xet:
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    else:  # whatever the outer environment says: the Xet-enabled client path (hf_xet is installed)
        monkeypatch.delenv("HF_HUB_DISABLE_XET", raising=False)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)

    default_factory = _http._GLOBAL_CLIENT_FACTORY

    def factory():
        client = default_factory()
        client.timeout = timeout  # the library's default is no timeout at all
        return client

    bars_were_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    set_client_factory(factory)
    try:
        yield
    finally:
        set_client_factory(default_factory)
        close_session()
        if not bars_were_disabled:
            enable_progress_bars()


class SilentServer:
    """A loopback server that accepts connections and never answers (a Hub behind a stuck proxy)."""

    def __init__(self) -> None:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._held: list = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._held.append(conn)  # kept open, never read, never answered

    @property
    def url(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def connections(self) -> int:
        return len(self._held)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self._sock.close()
        for conn in self._held:
            conn.close()
