"""Write a folder (or a small file) so that readers see either the old complete version or the new one, never a mix.

The pattern everywhere: write into a staging path beside the target, then `os.replace` it into place (a rename on
one file system). A process killed half way leaves only the staging path, which the next attempt clears.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PARTIAL_SUFFIX = ".partial"
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NO_SPACE_TEXT = ("No space left on device", "Disk quota exceeded", "os error 28")
# torch.save's failed writes, which say nothing of the disk ("[enforce fail at inline_container.cc] unexpected pos")
_WRITE_FAILURE_TEXT = ("inline_container", "PytorchStreamWriter", "file write failed")


class DiskFullError(OSError):
    """A write failed because the file system (or the user's quota) is full; the message names where and the fix."""


def raise_if_disk_full(err: BaseException, path: str | os.PathLike) -> None:
    """Raise `DiskFullError` naming `path` when `err` is a full disk; return otherwise (the caller re-raises `err`).

    A full disk reaches us as ``OSError: [Errno 28]`` without a file name (matplotlib, `Path.write_text`), as text
    inside another library's error (safetensors: "No space left on device (os error 28)"), or as an unrelated
    message (torch.save: "unexpected pos ..."); the last two are recognised by the file system having no space left.

    Args:
        err: the error a write raised.
        path: the file or folder being written, named in the message.
    """
    if not isinstance(err, Exception) or isinstance(err, DiskFullError):
        return  # Ctrl-C stays Ctrl-C
    full = getattr(err, "errno", None) in _NO_SPACE or any(t in str(err) for t in _NO_SPACE_TEXT)
    written = isinstance(err, OSError) and err.errno is None or any(t in str(err) for t in _WRITE_FAILURE_TEXT)
    if not full and written:
        existing = Path(path).absolute()
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        try:
            full = shutil.disk_usage(existing).free < 1 << 20
        except OSError:
            full = False
    if full:
        cause = (str(err).strip() or type(err).__name__).splitlines()[0]
        raise DiskFullError(
            f"no space left on the device holding {path} ({cause}): free some space there "
            "(`df -h` shows what is left), or write to another disk"
        ) from err


@contextmanager
def disk_space_for(path: str | os.PathLike) -> Iterator[None]:
    """Turn a full disk inside the block into one `DiskFullError` line naming `path` (see `raise_if_disk_full`)."""
    try:
        yield
    except Exception as err:
        raise_if_disk_full(err, path)
        raise


def staging_path(target: str | os.PathLike) -> Path:
    """The staging folder for `target`: ``<target>.partial`` beside it (same file system, so the rename is atomic).

    Args:
        target: the folder that will be replaced.

    Returns:
        The staging path. It is the same for every process of a distributed run, so all of them can write into it.
    """
    target = Path(target)
    return target.with_name(target.name + PARTIAL_SUFFIX)


def clear_staging(target: str | os.PathLike) -> Path:
    """Remove what an interrupted earlier attempt left in `target`'s staging folder; return the (absent) path."""
    staging = staging_path(target)
    shutil.rmtree(staging, ignore_errors=True)
    return staging


def replace_directory(staging: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Move a finished staging folder into place, replacing `target` if it exists.

    The old folder is first renamed aside and deleted only after the new one is in place, so at every moment
    `target` is absent, the old complete folder, or the new complete folder.

    Args:
        staging: the fully written folder.
        target: where it belongs.

    Returns:
        `target` as a `Path`.
    """
    staging, target = Path(staging), Path(target)
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
    return target


@contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging folder to write into; on success it replaces `target`, on an exception it is removed.

    Args:
        target: the folder to (re)write, e.g. ``output_dir / "teacher"``.

    Example:
        >>> with atomic_directory(out / "teacher") as tmp:  # doctest: +SKIP
        ...     model.save_pretrained(tmp)
        ...     tokenizer.save_pretrained(tmp)
    """
    staging = clear_staging(target)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise_if_disk_full(err, target)
        raise
    replace_directory(staging, target)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a small text file through a temporary file and a rename, so it is never seen half written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
    except Exception as err:
        tmp.unlink(missing_ok=True)
        raise_if_disk_full(err, path)
        raise
    os.replace(tmp, path)
    return path
