"""Atomic file and directory writes: a reader sees the old file or the complete new one, never a half-written one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fast_scnn_core.errors import FastSCNNError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it over `path`.

    On an exception the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the file the mode open() would
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


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


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
