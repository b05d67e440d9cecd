"""BIG-bench: pair extraction helpers and the fetch/cache logic (the downloader is injected; no network)."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from core.data import bigbench, fetch_bigbench_tasks, load_preferences
from core.data.bigbench import (
    CACHE_ENV_VAR,
    MARKER_NAME,
    domain_from_keywords,
    extract_task_files,
    pip_download_bigbench,
    scored_pairs,
)

TASK = {
    "name": "toy",
    "keywords": ["logical reasoning"],
    "examples": [{"input": "1 or 0?", "target_scores": {"1": 1, "0": 0}}],
}


def make_sdist(path: Path, with_tasks: bool = True) -> Path:
    """A tiny stand-in for bigbench-1.0.0.tar.gz with task.json files and other members."""
    members = {
        "bigbench-1.0.0/setup.py": b"print('never run')\n",
        "bigbench-1.0.0/bigbench/benchmark_tasks/toy/README.md": b"# toy\n",
        "bigbench-1.0.0/bigbench/benchmark_tasks/toy/task.py": b"raise SystemExit\n",
        "bigbench-1.0.0/../evil/benchmark_tasks/x/task.json": b"{}",
    }
    if with_tasks:
        members |= {
            "bigbench-1.0.0/bigbench/benchmark_tasks/toy/task.json": json.dumps(TASK).encode(),
            "bigbench-1.0.0/bigbench/benchmark_tasks/parent/task.json": json.dumps(
                {"name": "parent", "keywords": ["toxicity"]}
            ).encode(),
            "bigbench-1.0.0/bigbench/benchmark_tasks/parent/child/task.json": json.dumps(
                TASK | {"name": "child", "keywords": []}
            ).encode(),
        }
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


class FakeDownloader:
    def __init__(self, with_tasks: bool = True, fail: bool = False) -> None:
        self.calls = 0
        self.with_tasks = with_tasks
        self.fail = fail

    def __call__(self, dest: Path) -> Path:
        self.calls += 1
        if self.fail:
            raise RuntimeError("network down")
        return make_sdist(dest / "bigbench-1.0.0.tar.gz", self.with_tasks)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_scored_pairs_best_and_all():
    scores = {"a": 1, "b": 0.5, "c": 0, "d": 1}
    assert scored_pairs(scores, "best") == [("a", "b"), ("a", "c"), ("d", "b"), ("d", "c")]
    assert scored_pairs(scores, "all") == [
        ("a", "b"),
        ("a", "c"),
        ("b", "c"),
        ("d", "b"),
        ("d", "c"),
    ]
    assert scored_pairs({"x": 0, "y": 0}) == []


def test_domain_from_keywords():
    assert domain_from_keywords(["zero-shot", "Arithmetic"]) == "reasoning"
    assert domain_from_keywords(["alignment", "mathematics"]) == "safety"  # safety is checked first
    assert domain_from_keywords(["translation"]) == "language"
    assert domain_from_keywords(["json"]) == "general"
    assert domain_from_keywords(["json"], {"format": ["json"]}) == "format"


def test_fetch_extracts_only_task_json_then_skips(tmp_path):
    fake = FakeDownloader()
    tasks = fetch_bigbench_tasks(tmp_path / "cache", downloader=fake)
    assert tasks == tmp_path / "cache" / "bigbench-1.0.0" / "benchmark_tasks"
    assert _files(tasks) == ["parent/child/task.json", "parent/task.json", "toy/task.json"]
    marker = json.loads((tasks.parent / MARKER_NAME).read_text())
    assert marker == {"version": "1.0.0", "n_task_files": 3}
    assert not (tmp_path / "evil").exists() and not list((tmp_path / "cache").glob(".bigbench-fetch-*"))
    assert fetch_bigbench_tasks(tmp_path / "cache", downloader=fake) == tasks
    assert fake.calls == 1
    ds = load_preferences(tasks, "bigbench")
    assert sorted(ds["source"]) == ["parent:child", "toy"]
    assert dict(zip(ds["source"], ds["domain"], strict=True)) == {
        "parent:child": "safety",
        "toy": "reasoning",
    }


def test_incomplete_cache_is_fetched_again(tmp_path):
    fake = FakeDownloader()
    tasks = fetch_bigbench_tasks(tmp_path, downloader=fake)
    (tasks / "toy" / "task.json").unlink()  # files missing: count no longer matches the marker
    fetch_bigbench_tasks(tmp_path, downloader=fake)
    assert fake.calls == 2 and (tasks / "toy" / "task.json").is_file()
    (tasks.parent / MARKER_NAME).unlink()  # interrupted before the marker: redone from scratch
    (tasks / "stray.txt").write_text("left over")
    fetch_bigbench_tasks(tmp_path, downloader=fake)
    assert fake.calls == 3 and not (tasks / "stray.txt").exists()


def test_env_var_and_archive_argument(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "from-env"))
    archive = make_sdist(tmp_path / "bigbench-1.0.0.tar.gz")
    tasks = fetch_bigbench_tasks(archive=archive)
    assert tasks.parent.parent == tmp_path / "from-env" and (tasks / "toy" / "task.json").is_file()
    assert fetch_bigbench_tasks(downloader=FakeDownloader(fail=True)) == tasks  # cached: no download


def test_failures_leave_no_marker(tmp_path):
    with pytest.raises(RuntimeError, match="network down"):
        fetch_bigbench_tasks(tmp_path, downloader=FakeDownloader(fail=True))
    with pytest.raises(ValueError, match="no benchmark_tasks/\\*\\*/task.json"):
        fetch_bigbench_tasks(tmp_path, downloader=FakeDownloader(with_tasks=False))
    assert _files(tmp_path) == []


def test_extract_skips_path_traversal(tmp_path):
    n = extract_task_files(make_sdist(tmp_path / "s.tar.gz"), tmp_path / "out")
    assert n == 3 and not (tmp_path / "evil").exists()


def test_pip_download_falls_back_to_bundled_pip(tmp_path, monkeypatch):
    calls = []

    def fake_pip(python: str, dest: Path):
        calls.append(python)
        if len(calls) == 1:  # recent pip refuses the sdist's direct-URL dependency
            return subprocess.CompletedProcess([], 1, "", "ERROR: cannot declare direct URL dependencies")
        (dest / "bigbench-1.0.0.tar.gz").write_bytes(b"sdist")
        return subprocess.CompletedProcess([], 0, "", "")

    created = []
    monkeypatch.setattr(bigbench, "_pip_download", fake_pip)
    monkeypatch.setattr(bigbench.venv, "create", lambda path, **kw: created.append((path, kw)))
    assert pip_download_bigbench(tmp_path) == tmp_path / "bigbench-1.0.0.tar.gz"
    assert len(calls) == 2 and calls[1].endswith("bin/python") and created[0][1]["with_pip"] is True

    calls.clear()
    monkeypatch.setattr(
        bigbench,
        "_pip_download",
        lambda python, dest: subprocess.CompletedProcess([], 1, "", f"boom {python}"),
    )
    with pytest.raises(RuntimeError, match="pip download --no-deps bigbench==1.0.0 failed"):
        pip_download_bigbench(tmp_path / "empty")
    with pytest.raises(RuntimeError, match=r"fetch_bigbench_tasks as f; print\(f\(archive='PATH'\)\)"):
        pip_download_bigbench(tmp_path / "empty2")


def test_a_repository_tarball_serves_as_the_archive(tmp_path):
    """When PyPI no longer serves the sdist, a tarball of the google/BIG-bench repository does (its
    tasks sit under BIG-bench-main/bigbench/benchmark_tasks/)."""
    repo = tmp_path / "BIG-bench-main.tar.gz"
    with tarfile.open(repo, "w:gz") as tar:
        for name in ("BIG-bench-main/bigbench/benchmark_tasks/toy/task.json", "BIG-bench-main/README.md"):
            data = json.dumps(TASK).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tasks = fetch_bigbench_tasks(tmp_path / "cache", archive=repo)
    assert _files(tasks) == ["toy/task.json"] and json.loads((tasks / "toy" / "task.json").read_text()) == TASK
