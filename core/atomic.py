"""Atomic file output: every file the project writes goes through these functions.

A file is written to a temporary file in its target's directory (``tempfile.mkstemp``, so the
final ``os.replace`` is a rename within one file system) and moved onto the target only once it
is complete: a reader sees the old file or the new one, never a half-written one.  On any
exception the temporary file is removed and the target is left as it was.  Parent directories
are created; the finished file gets the permissions a plain ``open`` would give it
(``0o666 & ~umask``) rather than ``mkstemp``'s ``0o600``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
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


@contextmanager
def atomic_directory(path: PathLike) -> Iterator[Path]:
    """Yield a fresh ``<path>.partial`` folder to fill (e.g. ``save_pretrained``); on a normal exit
    it replaces ``path`` (any old folder is removed first, so a reader sees the old folder, none,
    or the complete new one, never a half-written one); on an exception it is removed and
    ``path`` is left as it was."""
    target = Path(path)
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
