"""What must not be published: the token (checked in every uploaded byte) and local paths (a published report names
repo ids, its local paths replaced by ``local:<name>``)."""

from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .http import HubPublishError

__all__ = [
    "publishable_report",
]

logger = logging.getLogger(__name__)


def _assert_token_absent(
    root: Path, files: Sequence[str], token: str, generated: dict[str, bytes] | None = None
) -> None:
    """Refuse to upload a file that contains the token (a card or report that captured the environment)."""
    needle = token.encode()
    generated = generated or {}
    for rel in files:
        if rel in generated:
            data = generated[rel]
        elif rel.endswith(".safetensors"):
            # Tensors are numbers; only a safetensors file's JSON header can hold a string.
            data = _safetensors_header(root / rel)
        else:
            data = (root / rel).read_bytes()
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


# -- what is published instead of the local card and report -------------------------------------------------

# An absolute (or home-relative) path inside a text: not after a URL scheme, a word or another path character.
_LOCAL_PATH = re.compile(r"(?<![\w.:/~-])~?/(?:[\w.@+-]+/)*[\w.@+-]+")
LOCAL_PREFIX = "local:"


def _local_label(value: str) -> str:
    """'local:sst2/train.tsv' for '/home/me/data/sst2/train.tsv': enough to recognise the file, nothing of the
    author's file system; the colon keeps it from ever being read as a Hub id."""
    parts = [p for p in Path(os.path.expanduser(value)).parts if p not in ("/", "\\", "~", ".", "..")]
    return LOCAL_PREFIX + "/".join(parts[-2:] or ["path"])


def _is_local_path(value: str) -> bool:
    if value.startswith(LOCAL_PREFIX) or "://" in value:
        return False
    if value.startswith(("/", "~", "./", "../", ".\\", "..\\")) or re.match(r"^[A-Za-z]:[\\/]", value):
        return True
    return ("/" in value or os.sep in value) and Path(value).exists()


def _scrub(value: Any) -> Any:
    """Replace local paths in every string of a JSON-like value (whole values, and paths inside texts)."""
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        if _is_local_path(value):
            return _local_label(value)
        return _LOCAL_PATH.sub(lambda m: _local_label(m.group(0)), value)
    return value


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def looks_like_hub_id(value: str | None) -> bool:
    """True for 'name' or 'owner/name' strings that are not a local path or a data file name."""
    from ..core.data import LOCAL_FORMATS

    return (
        bool(value)
        and bool(_HUB_ID.match(value))
        and ".." not in value
        and Path(value).suffix.lower() not in LOCAL_FORMATS
        and not Path(value).exists()
    )


def _hub_id_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and looks_like_hub_id(value) and not _is_local_path(value) else None


def publishable_report(report: Any, *, repo_id: str, teacher_repo_id: str | None = None) -> Any:
    """A copy of a `DistillationReport` fit for the Hub: the student is `repo_id`, the teacher its Hub id
    (its own name when that is a Hub id, else `teacher_repo_id`, else 'local:NAME'), and every other local path
    becomes 'local:PARENT/NAME'. The table rows are kept as they are (they hold no names or paths).

    Args:
        report: the report as `evaluate_pair` wrote it (with local paths).
        repo_id: the Hub repo the student is published to.
        teacher_repo_id: the teacher's Hub id, for a teacher measured from a local folder.
    """
    from ..core.report import DistillationReport

    data = report.to_dict()
    teacher_name = data["teacher"]["name_or_path"]
    # the teacher's own name wins when it is a Hub id (it is what was measured); else the id we were given
    teacher_id = _hub_id_or_none(teacher_name) or _hub_id_or_none(teacher_repo_id)
    data = _scrub(data)
    data["student"]["name_or_path"] = repo_id
    data["teacher"]["name_or_path"] = teacher_id or _local_label(teacher_name)
    return DistillationReport.from_dict(data)


def _leaked_paths(text: str, root: Path) -> list[str]:
    """Absolute paths in `text` that exist on this machine (or whose parent does): what a card must not show."""
    found = []
    for match in _LOCAL_PATH.finditer(text):
        candidate = Path(os.path.expanduser(match.group(0)))
        if candidate.exists() or (len(candidate.parts) > 2 and candidate.parent.exists()):
            found.append(match.group(0))
    resolved = str(root.resolve())
    if resolved in text:
        found.append(resolved)
    return sorted(set(found))
