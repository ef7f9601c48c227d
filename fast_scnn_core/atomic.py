"""Atomic file and directory writes: a reader sees the old file or the complete new one, never a half-written one.

A file write goes to a temporary file beside the target (`.<name>.<8 random chars>.tmp<suffix>`),
is fsynced and renamed over the target. A failed write (disk full, read-only file system, no
permission) removes its temporary file and raises StorageError, which says what happened and that
the previous file is intact; a killed process (SIGKILL, power loss) leaves the temporary file
behind, and `remove_stale_temporaries` deletes such files when a program opens its output
directory again. A directory (a bag) is built under `<name>.partial/` and renamed when complete
(`staged_directory`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fast_scnn_core.errors import FastSCNNError, StorageError

# What mkstemp makes for atomic_path: "." + name + "." + 8 of [a-z0-9_] + ".tmp" + the name's suffix.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(?P<suffix>(\.[^.]*)?)$")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it over `path`.

    On an exception the temporary file is removed and `path` is left as it was; an OSError (from the
    body too: it writes the temporary file) becomes a StorageError naming `path`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    except OSError as exc:
        raise storage_error(path, exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the file the mode open() would
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except OSError as exc:
        raise storage_error(path, exc) from None
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | Path, data: bytes | memoryview) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def storage_error(path: Path, exc: OSError) -> StorageError:
    """One line for a failed write of `path`: what happened, where, and that the previous file is intact."""
    kept = f"the previous {path.name} is intact" if path.exists() else f"{path.name} was not written"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what = f"no space left on {_mount_point(path)}" + (" (disk quota)" if exc.errno == errno.EDQUOT else "")
    elif exc.errno == errno.EROFS:
        what = f"{_mount_point(path)} is mounted read-only"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        what = f"no permission to write in {path.parent}"
    else:
        what = exc.strerror or str(exc)
    return StorageError(f"{what} while writing {path}; {kept}")


def _mount_point(path: Path) -> Path:
    """The mount point of the file system `path` is (or would be) on."""
    path = path.absolute()
    while not path.exists() or not os.path.ismount(path):
        if path == path.parent:
            return path
        path = path.parent
    return path


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete the temporary files of writes that were killed mid-way in `directory` (recursively).

    Only names atomic_path makes are removed. Call it when a program opens its own output directory
    (a run directory, an output folder): a directory is written by one program at a time.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for candidate in directory.rglob(".*.tmp*"):
        match = _TEMPORARY.match(candidate.name)
        if match and match["suffix"] == Path(match["name"]).suffix and candidate.is_file():
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def sync_tree(root: Path) -> None:
    """fsync every file under `root` and the directories holding them (before a rename publishes them)."""
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                os.fsync(f.fileno())
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def partial_path(path: str | Path) -> Path:
    """Where `staged_directory` builds `path`: `<path>.partial/<name>`, a place that says it is incomplete.

    The last component keeps the final name because some writers name their files after their
    directory (a rosbag2 `drive/` holds `drive.mcap`), and the name must not change with the rename.
    """
    path = Path(path)
    return path.with_name(f"{path.name}.partial") / path.name


def refuse_overwrite(path: str | Path, overwrite: bool) -> None:
    """FastSCNNError when the output file `path` exists and `overwrite` was not asked for."""
    if not overwrite and Path(path).exists():
        raise FastSCNNError(f"{path} exists; pass --overwrite to replace it")


def check_replaceable(path: str | Path, overwrite: bool) -> None:
    """FastSCNNError unless `path` and its `<path>.partial` are free or `overwrite` allows replacing them."""
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise FastSCNNError(f"{path} exists; pass --overwrite to replace it")
    if partial_path(path).parent.exists() and not overwrite:
        raise FastSCNNError(
            f"{partial_path(path).parent} exists (the incomplete output of an interrupted run); "
            "delete it or pass --overwrite"
        )


@contextlib.contextmanager
def staged_directory(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield `<path>.partial/<name>` (not yet created) to build a directory in; on success publish it as `path`.

    A reader sees no `path`, the old `path` or the complete new one. On an exception the partial
    directory stays where it is, under a name that says it is incomplete (the caller may have closed
    it into a readable state, e.g. a bag with its index, to show how far it got).
    `path` or a leftover `<path>.partial` is replaced only with `overwrite`.
    """
    path = Path(path)
    staging = partial_path(path)
    check_replaceable(path, overwrite)
    try:
        if staging.parent.exists():
            _remove(staging.parent)
        staging.parent.mkdir(parents=True)
        yield staging
        sync_tree(staging.parent)
        old = path.with_name(f".{path.name}.replaced-{os.getpid()}")
        if path.exists() or path.is_symlink():
            os.replace(path, old)
        os.replace(staging, path)
        staging.parent.rmdir()
        if old.exists() or old.is_symlink():
            _remove(old)
    except StorageError:
        raise
    except OSError as exc:  # from the caller's writes too: a full disk is one line, not a writer's traceback
        raise storage_error(path, exc) from None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
