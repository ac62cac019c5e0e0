"""Files and folders that appear whole or not at all.

:func:`atomic_path` hands out a hidden temporary name beside the target (same folder, so the
same file system); whatever is written there is flushed to disk and renamed over the target
only when the writer finishes. A crash leaves at most a ``.<name>.<pid>-<random>.tmp`` entry,
which :func:`remove_orphans` deletes on the next start. :func:`store_by_digest` keeps one copy
of identical files (hard links to a blob named by the content's SHA-256). New files get the permissions the umask
allows (not ``mkstemp``'s 0600), and a full disk is reported naming the file and the device.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_SUFFIX = ".tmp"


def current_umask() -> int:
    """The process's umask, read without changing it where ``/proc`` allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def mount_point(path: str | Path) -> Path:
    """The mount point of the file system holding ``path`` (or its nearest existing parent)."""
    path = Path(os.path.abspath(path))
    while not path.exists():
        path = path.parent
    while not os.path.ismount(path):
        path = path.parent
    return path


def disk_full_error(path: str | Path, cause: BaseException) -> OSError | None:
    """An ENOSPC ``OSError`` naming ``path`` and its device when ``cause`` comes from a full
    disk (libsndfile and pyarrow hide the errno: the free space is checked too), else None."""
    full = isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)
    if not full:
        try:
            stats = os.statvfs(mount_point(path))
            full = stats.f_bavail * stats.f_frsize < 64 * 1024
        except OSError:
            return None
    if not full:
        return None
    where = mount_point(path)
    device = os.stat(where).st_dev
    return OSError(
        errno.ENOSPC,
        f"no space left on device {os.major(device)}:{os.minor(device)} (mounted at {where}) "
        f"while writing {str(path)!r} ({type(cause).__name__}: {cause})",
    )


def _fsync(path: Path) -> None:
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file():
                _fsync(child)
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _apply_umask(path: Path) -> None:
    mask = current_umask()
    targets = [path, *path.rglob("*")] if path.is_dir() else [path]
    for target in targets:
        base = 0o777 if target.is_dir() else 0o666
        os.chmod(target, base & ~mask)


def temporary_sibling(path: str | Path) -> Path:
    """A fresh hidden name beside ``path``: ``.<name>.<writer pid>-<random>.tmp``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


@contextmanager
def atomic_path(path: str | Path, sync_folder: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write a file or a folder to; on success it is fsynced,
    given umask permissions and renamed over ``path`` (a folder target must not exist yet).
    ``sync_folder`` also fsyncs the containing folder, so the rename itself survives a power
    loss (about 0.1 s on some disks: callers writing thousands of small files turn it off;
    a kill still never exposes a partial file).

    On any failure the temporary entry is removed and ``path`` is untouched; a full disk is
    raised as an ENOSPC ``OSError`` naming ``path`` and the device.
    """
    path = Path(path)
    created_parent = not path.parent.exists()  # e.g. a new version folder
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written for {str(path)!r}")
        _apply_umask(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
        if sync_folder:
            _fsync(path.parent)
    except BaseException as err:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if created_parent:
            try:
                path.parent.rmdir()  # only if still empty
            except OSError:
                pass
        full = disk_full_error(path, err) if isinstance(err, Exception) else None
        if full is not None:
            raise full from err
        raise


def _writer_pid(path: Path) -> int | None:
    """The writer's pid in a name from :func:`temporary_sibling`, or None for other names."""
    name = path.name
    if not (name.startswith(".") and name.endswith(TMP_SUFFIX)):
        return None
    pid, _, token = name[: -len(TMP_SUFFIX)].rsplit(".", 1)[-1].partition("-")
    if not (pid.isdigit() and len(token) == 8 and all(c in "0123456789abcdef" for c in token)):
        return None
    return int(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphans(root: str | Path, max_age_s: float = 86_400.0) -> list[Path]:
    """Delete the temporary entries that killed writers left under ``root``: those whose
    writer process is gone, or older than ``max_age_s`` (a writer on another host); returns
    what went. A writer still at work keeps its own."""
    root = Path(root)
    if not root.is_dir():
        return []
    removed = []
    now = time.time()
    for candidate in sorted(root.rglob(f".*{TMP_SUFFIX}")):
        pid = _writer_pid(candidate)
        if pid is None:
            continue
        try:
            if _alive(pid) and now - candidate.lstat().st_mtime < max_age_s:
                continue
            if candidate.is_dir():
                shutil.rmtree(candidate)
            else:
                candidate.unlink()
        except FileNotFoundError:
            continue
        removed.append(candidate)
    return removed


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def store_by_digest(written: Path, path: str | Path, blob_dir: str | Path) -> Path:
    """Move the finished file ``written`` into ``blob_dir`` under its SHA-256 (unless a blob
    with those bytes is there already) and make ``path`` a hard link to the blob, atomically:
    identical files are stored once. Falls back to a copy where hard links are refused.
    Returns the blob."""
    path, blob_dir = Path(path), Path(blob_dir)
    blob_dir.mkdir(parents=True, exist_ok=True)
    blob = blob_dir / f"sha256-{file_digest(written)}{Path(path).suffix}"
    if blob.exists():
        written.unlink()
    else:
        _apply_umask(written)
        _fsync(written)
        os.replace(written, blob)
        _fsync(blob_dir)
    with atomic_path(path) as tmp:
        try:
            os.link(blob, tmp)
        except OSError:
            shutil.copy2(blob, tmp)
    return blob
