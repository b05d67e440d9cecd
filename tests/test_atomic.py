"""core.atomic: complete files or none, temp files cleaned up, plain-open permissions."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from core.atomic import (
    atomic_directory,
    atomic_savefig,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    staging_directory,
)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_text_json_and_bytes_land_whole_in_new_dirs(tmp_path):
    target = tmp_path / "a" / "b" / "t.txt"
    assert atomic_write_text(target, "héllo\nwörld\n") == target
    assert target.read_bytes() == "héllo\nwörld\n".encode()
    out = atomic_write_json(str(tmp_path / "j.json"), {"b": 1, "a": [1.5]}, indent=2, sort_keys=True)
    assert out.read_text() == '{\n  "a": [\n    1.5\n  ],\n  "b": 1\n}\n'
    atomic_write_bytes(tmp_path / "x.bin", b"\x00\xff")
    assert (tmp_path / "x.bin").read_bytes() == b"\x00\xff"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "j.json", "x.bin"]


def test_failed_write_keeps_old_file_and_removes_temp(tmp_path):
    target = tmp_path / "f.json"
    atomic_write_json(target, {"v": 1})

    def half_then_fail(tmp: str) -> None:
        with open(tmp, "w") as fh:
            fh.write("{")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    with pytest.raises(TypeError):
        atomic_write_json(target, {"v": object()})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_replaces_existing_with_plain_open_permissions(tmp_path):
    target = tmp_path / "p.txt"
    atomic_write_text(target, "old")
    atomic_write(target, lambda tmp: Path(tmp).write_text("new"))
    assert target.read_text() == "new"
    umask = os.umask(0o022)
    try:
        atomic_write_text(target, "x")
        assert _mode(target) == 0o644  # not mkstemp's 0o600
    finally:
        os.umask(umask)


def test_savefig_infers_format_from_target_suffix(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.subplots().plot([0, 1], [1, 0])
    png = atomic_savefig(fig, tmp_path / "f.png", dpi=20)
    svg = atomic_savefig(fig, tmp_path / "f.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in svg.read_bytes()[:500]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "f.svg"]


def test_directory_replaces_old_folder_only_when_complete(tmp_path):
    target = tmp_path / "models" / "rm"
    with atomic_directory(target) as tmp:
        (tmp / "weights.bin").write_bytes(b"v1")
        assert not target.exists()  # nothing visible while it is being written
    assert (target / "weights.bin").read_bytes() == b"v1"

    with pytest.raises(RuntimeError, match="crash"), atomic_directory(target) as tmp:
        (tmp / "weights.bin").write_bytes(b"half")
        raise RuntimeError("crash")
    assert (target / "weights.bin").read_bytes() == b"v1"  # old folder intact
    assert sorted(p.name for p in target.parent.iterdir()) == ["rm"]  # no .partial left

    with atomic_directory(str(target)) as tmp:
        (tmp / "other.bin").write_bytes(b"v2")
    assert sorted(p.name for p in target.iterdir()) == ["other.bin"]  # old content replaced, not merged


def test_directory_merge_keeps_other_files_and_moves_last_names_last(tmp_path, monkeypatch):
    target = tmp_path / "out"
    (target / "checkpoint-1").mkdir(parents=True)
    (target / "weights.bin").write_bytes(b"old")
    moved = []
    real_replace = os.replace

    def recording_replace(src, dst):
        moved.append(Path(dst).relative_to(target).as_posix())
        real_replace(src, dst)

    with atomic_directory(target, merge=True, last=("config.json",)) as tmp:
        assert tmp == staging_directory(target) == tmp_path / "out.partial"
        (tmp / "config.json").write_text("{}")
        (tmp / "weights.bin").write_bytes(b"new")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "a.txt").write_text("a")
        monkeypatch.setattr(os, "replace", recording_replace)
    monkeypatch.undo()
    assert moved.index("config.json") > moved.index("weights.bin")
    assert sorted(moved) == ["config.json", "sub/a.txt", "weights.bin"]
    assert (target / "weights.bin").read_bytes() == b"new" and (target / "checkpoint-1").is_dir()
    assert (target / "sub" / "a.txt").read_text() == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # staging folder removed
