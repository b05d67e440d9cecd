"""Atomic file output: every file the project writes goes through these functions.

A file is written to a temporary file in its target's directory (``tempfile.mkstemp``, so the
final ``os.replace`` is a rename within one file system) and moved onto the target only once it
is complete: a reader sees the old file or the new one, never a half-written one.  On any
exception the temporary file is removed and the target is left as it was.  Parent directories
are created; the finished file gets the permissions a plain ``open`` would give it
(``0o666 & ~umask``) rather than ``mkstemp``'s ``0o600``.

A folder is filled in its staging folder ``<path>.partial`` (:func:`atomic_directory`) and then
either replaces ``path`` as a whole or, with ``merge=True``, has its files moved into ``path`` one
by one (each an ``os.replace``), keeping what else ``path`` holds.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_directory",
    "atomic_savefig",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "staging_directory",
]

PathLike = str | os.PathLike[str]


def _default_mode(path: str) -> None:
    """Give a ``mkstemp`` file (mode 0600) the permissions a plain ``open`` would (0666 & ~umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@contextmanager
def _temp_beside(path: PathLike) -> Iterator[tuple[int, str]]:
    """Yield ``(fd, tmp)`` of a new temp file next to ``path``; the caller fills it (and closes
    ``fd``).  A normal exit moves it onto ``path``; an exception removes it and propagates."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        yield fd, tmp
        _default_mode(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: PathLike, write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp_path)`` to fill a temp file beside ``path``, then ``os.replace`` it onto
    ``path``; returns ``Path(path)``.  For writers that take a file name (``save_file``,
    ``Dataset.to_parquet``, ...)."""
    with _temp_beside(path) as (fd, tmp):
        os.close(fd)
        write(tmp)
    return Path(path)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``Path(path)``."""
    with _temp_beside(path) as (fd, tmp):
        try:
            fh = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            raise
        with fh:
            fh.write(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8, no newline translation) to ``path`` atomically; returns ``Path(path)``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj: Any, **json_kwargs: Any) -> Path:
    """Write ``json.dumps(obj, **json_kwargs)`` plus a final newline to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, **json_kwargs) + "\n")


def atomic_savefig(fig: Any, path: PathLike, **savefig_kwargs: Any) -> Path:
    """``fig.savefig(tmp, **savefig_kwargs)`` then ``os.replace`` onto ``path``.  The temp file has
    no image suffix, so ``format`` defaults to the suffix of ``path`` (``rcParams["savefig.format"]``
    when it has none)."""
    if savefig_kwargs.get("format") is None:
        suffix = Path(path).suffix[1:].lower()
        if not suffix:
            import matplotlib

            suffix = matplotlib.rcParams["savefig.format"]
        savefig_kwargs["format"] = suffix
    return atomic_write(path, lambda tmp: fig.savefig(tmp, **savefig_kwargs))


def staging_directory(path: PathLike) -> Path:
    """The folder ``<path>.partial`` that :func:`atomic_directory` fills before moving it into place
    (the other processes of a multi-process job write into it while one process holds the context)."""
    target = Path(path)
    return target.with_name(target.name + ".partial")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _replace_directory(src: Path, target: Path) -> None:
    """Move the finished folder ``src`` onto ``target``: an existing ``target`` is renamed aside first
    and removed after, so ``target`` is never a half-written or half-deleted folder."""
    old = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.old")
        _remove(old)
        os.replace(target, old)
    os.replace(src, target)
    if old is not None:
        _remove(old)


def _merge_directory(src: Path, target: Path, last: Collection[str]) -> None:
    """Move every file of ``src`` to the same relative path under ``target`` (``os.replace`` each,
    the names in ``last`` after the others of their folder), then remove ``src``."""
    for root, _, files in os.walk(src):
        rel = os.path.relpath(root, src)
        os.makedirs(target / rel, exist_ok=True)
        for name in sorted(files, key=lambda f: f in last):
            os.replace(os.path.join(root, name), target / rel / name)
    shutil.rmtree(src, ignore_errors=True)


@contextmanager
def atomic_directory(path: PathLike, *, merge: bool = False, last: Collection[str] = ()) -> Iterator[Path]:
    """Yield a fresh staging folder ``<path>.partial`` to fill (e.g. ``save_pretrained``).

    On a normal exit it replaces ``path`` (an old folder is renamed aside and removed after, so a
    reader sees the old folder or the complete new one, never a half-written one).  With
    ``merge=True`` the old folder is kept and each staged file is moved into it with ``os.replace``
    (names in ``last`` after the others of their folder, e.g. ``config.json``): no file is ever
    half-written and files the new content does not name stay.  On an exception the staging folder
    is removed and ``path`` is left as it was.
    """
    target = Path(path)
    tmp = staging_directory(target)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if merge:
        _merge_directory(tmp, target, last)
    else:
        _replace_directory(tmp, target)
