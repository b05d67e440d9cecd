"""BIG-bench multiple-choice tasks as preference pairs, and fetching them from PyPI.

A BIG-bench JSON task is a ``task.json`` with ``examples[]`` of ``input`` and ``target_scores``
(choice -> score); a task with subtasks keeps a metadata-only ``task.json`` in its folder and
one ``task.json`` per subtask in subfolders. Each example gives the pairs (prompt, correct
choice, incorrect choice): the correct choices are those with the highest score, the incorrect
ones every choice scoring strictly lower. ``source`` is the task name (``task`` or
``task:subtask``, named after the folders as in BIG-bench's results), ``domain`` comes from the
task's keywords (``KEYWORD_DOMAINS``; first matching domain wins, else ``"general"``).

``fetch_bigbench_tasks`` obtains the tasks from the ``bigbench==1.0.0`` sdist on PyPI (about
358 MB; only ``benchmark_tasks/**/task.json`` is kept, about 1.7 GB unpacked) and caches them
once per machine in ``$ROBUST_RLHF_BIGBENCH_DIR`` or ``~/.cache/robust-rlhf/bigbench``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import venv
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from core.atomic import atomic_directory
from core.data.records import Unreadable, read_json_document
from core.data.schema import RowError

BIGBENCH_VERSION = "1.0.0"
CACHE_ENV_VAR = "ROBUST_RLHF_BIGBENCH_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/robust-rlhf/bigbench")
MARKER_NAME = "COMPLETE.json"

KEYWORD_DOMAINS: dict[str, tuple[str, ...]] = {
    "safety": (
        "alignment",
        "toxicity",
        "social bias",
        "gender bias",
        "racial bias",
        "religious bias",
        "truthfulness",
        "misconceptions",
    ),
    "reasoning": (
        "mathematics",
        "arithmetic",
        "algebra",
        "mathematical proof",
        "logical reasoning",
        "deductive reasoning",
        "algorithms",
        "computer code",
        "multi-step",
        "implicit reasoning",
        "causal reasoning",
        "analogical reasoning",
    ),
    "language": (
        "non-English",
        "low-resource language",
        "multilingual",
        "translation",
        "linguistics",
        "word sense disambiguation",
        "paraphrase",
    ),
}


@dataclass(frozen=True)
class TaskInfo:
    """Task-level fields that every example of a task.json shares."""

    name: str
    keywords: tuple[str, ...]
    task_prefix: str
    path: Path
    input_prefix: str = ""
    output_prefix: str = ""

    def prompt(self, text: str) -> str:
        """An example's prompt as the task states it: ``task_prefix + example_input_prefix + input +
        example_output_prefix`` (prefixes the task.json, or an enclosing one, declares; else empty)."""
        return self.task_prefix + self.input_prefix + text + self.output_prefix


def domain_from_keywords(keywords: Iterable[str], mapping: Mapping[str, Sequence[str]] | None = None) -> str:
    """The first domain of ``mapping`` (default ``KEYWORD_DOMAINS``) sharing a keyword, else 'general'."""
    keys = {k.strip().lower() for k in keywords}
    for domain, words in (mapping or KEYWORD_DOMAINS).items():
        if keys & {w.lower() for w in words}:
            return domain
    return "general"


def scored_pairs(scores: Mapping[str, Any], mode: str = "best") -> list[tuple[str, str]]:
    """(preferred, dispreferred) choice pairs from ``choice -> score``.

    ``mode='best'``: every highest-scoring choice against every choice scoring strictly lower
    (BIG-bench's correct vs incorrect). ``mode='all'``: every pair with a strictly higher score
    first (HHH's every (good, bad) pair). An empty list means no choice is preferred (a tie).
    """
    items = []
    for choice, score in scores.items():
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise RowError(f"target score of choice {choice!r} must be a number, got {score!r}")
        items.append((choice, float(score)))
    if mode == "best":
        top = max((s for _, s in items), default=0.0)
        return [(g, b) for g, sg in items if sg == top for b, sb in items if sb < top]
    if mode == "all":
        return [(g, b) for g, sg in items for b, sb in items if sg > sb]
    raise ValueError(f"mode must be 'best' or 'all', got {mode!r}")


def _meta(doc: Any, path: Path) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: a BIG-bench task.json must be a JSON object")
    return {k: v for k, v in doc.items() if k != "examples"}


def _task_info(path: Path, doc: Mapping[str, Any], parents: list[tuple[str, dict[str, Any]]]) -> TaskInfo:
    names = [name for name, _ in parents] + [path.parent.name]
    merged: dict[str, Any] = {}
    keywords: list[str] = []
    for _, meta in [*parents, (path.parent.name, _meta(doc, path))]:
        merged.update(meta)
        for kw in meta.get("keywords") or []:
            if isinstance(kw, str) and kw not in keywords:
                keywords.append(kw)
    prefixes = {}
    for key in ("task_prefix", "example_input_prefix", "example_output_prefix"):
        prefixes[key] = merged.get(key) or ""
        if not isinstance(prefixes[key], str):
            raise ValueError(f"{path}: '{key}' must be a string")
    return TaskInfo(
        name=":".join(names),
        keywords=tuple(keywords),
        task_prefix=prefixes["task_prefix"],
        path=path,
        input_prefix=prefixes["example_input_prefix"],
        output_prefix=prefixes["example_output_prefix"],
    )


def _parents(path: Path, cache: dict[Path, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Metadata of the enclosing task folders (those holding their own task.json)."""
    out: list[tuple[str, dict[str, Any]]] = []
    folder = path.parent.parent
    while (folder / "task.json").is_file():
        if folder not in cache:
            cache[folder] = _meta(read_json_document(folder / "task.json"), folder / "task.json")
        out.insert(0, (folder.name, cache[folder]))
        folder = folder.parent
    return out


def task_files(source: Path) -> list[Path]:
    """All task.json files of a file or folder source, sorted."""
    if source.is_file():
        return [source]
    files = sorted(source.rglob("task.json"))
    if not files:
        raise ValueError(f"{source}: no task.json files in this folder")
    return files


def is_task_source(source: Path) -> bool:
    """True for a task.json file, a JSON file holding ``examples``, or a folder with task.json files."""
    if source.is_dir():
        return next(source.rglob("task.json"), None) is not None
    if source.name == "task.json":
        return True
    if source.name.endswith(".json") and source.stat().st_size < 512 * 1024 * 1024:
        try:
            doc = read_json_document(source)
        except ValueError:
            return False
        return isinstance(doc, dict) and "examples" in doc
    return False


def _selected(name: str, tasks: Sequence[str] | None) -> bool:
    return tasks is None or name in tasks or name.split(":")[0] in tasks


def iter_task_records(source: Path, tasks: Sequence[str] | None = None) -> Iterator[tuple[str, int, Any]]:
    """Yield ``(location, index, example)`` for every example of the task.json files under
    ``source``; each example carries its ``TaskInfo`` under the key ``'__task__'``.

    ``tasks`` keeps only the named tasks (``'task'`` selects all its subtasks too). Metadata-only
    task.json files (tasks split into subtasks) yield nothing.
    """
    if isinstance(tasks, str):
        tasks = [tasks]
    cache: dict[Path, dict[str, Any]] = {}
    selected = []
    for path in task_files(source):
        parents = _parents(path, cache)
        name = ":".join([n for n, _ in parents] + [path.parent.name])
        if _selected(name, tasks):
            selected.append((path, parents, name))
    if tasks is not None:
        names = {name for _, _, name in selected}
        missing = [t for t in tasks if not any(n == t or n.split(":")[0] == t for n in names)]
        if missing:
            raise ValueError(
                f"{source}: no task named {missing} (task names are folder names, 'task' or 'task:subtask')"
            )
    for path, parents, _ in selected:
        doc = read_json_document(path)
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: a BIG-bench task.json must be a JSON object")
        examples = doc.get("examples")
        if examples is None:
            continue
        if not isinstance(examples, list):
            raise ValueError(f"{path}: 'examples' must be a list")
        info = _task_info(path, doc, parents)
        for i, example in enumerate(examples):
            record: Any = (
                dict(example, __task__=info)
                if isinstance(example, dict)
                else Unreadable(f"expected an example object, got {type(example).__name__}")
            )
            yield f"{path}, examples[{i}]", i, record


OPTIONS: frozenset[str] = frozenset({"tasks", "keyword_domains"})
HUB_SPLIT = None


def convert(record: Mapping[str, Any], ctx: Any) -> list[dict[str, Any]]:
    """One BIG-bench example -> its (prompt, correct, incorrect) pairs.

    The prompt is :meth:`TaskInfo.prompt` of the example's ``input`` (task prefix, input and output
    prefixes kept); examples without ``target_scores`` (generative ones) are skipped and counted.
    """
    info = record.get("__task__")
    if not isinstance(info, TaskInfo):
        raise RowError("not a BIG-bench task example (load task.json files with format 'bigbench')")
    scores = record.get("target_scores")
    if scores is None:
        ctx.report.n_skipped += 1
        return []
    if not isinstance(scores, dict):
        raise RowError("field 'target_scores' must be an object of choice -> score")
    if record.get("input") is None:
        raise RowError("missing field 'input'")
    if not isinstance(record["input"], str):
        raise RowError("field 'input' must be a string")
    pairs = scored_pairs(scores, mode="best")
    if not pairs:
        ctx.report.n_ties += 1
        return []
    domain = domain_from_keywords(info.keywords, ctx.options.get("keyword_domains"))
    prompt = info.prompt(record["input"])
    return [
        {
            "id": f"{info.name}-{ctx.index}-{j}",
            "prompt": prompt,
            "chosen": good,
            "rejected": bad,
            "source": info.name,
            "chosen_score": float(scores[good]),
            "rejected_score": float(scores[bad]),
            "domain": domain,
        }
        for j, (good, bad) in enumerate(pairs)
    ]


# --- fetching the tasks from the PyPI sdist -------------------------------------------------

Downloader = Callable[[Path], Path]
#: what to do when PyPI does not serve the sdist (on 2026-12-05 its index listed bigbench 0.0.1 only)
NO_DOWNLOAD_HINT = (
    f"If your package index does not serve bigbench=={BIGBENCH_VERSION}, give any archive holding "
    "BIG-bench's benchmark_tasks/**/task.json -- that sdist, or a tarball of the google/BIG-bench "
    'repository -- once: python -c "from core.data import fetch_bigbench_tasks as f; '
    "print(f(archive='PATH'))\" (the tasks are then cached for every later run)."
)


def bigbench_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir``, else ``$ROBUST_RLHF_BIGBENCH_DIR``, else ``~/.cache/robust-rlhf/bigbench``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env).expanduser() if env else DEFAULT_CACHE_DIR.expanduser()


def _pip_download(python: str, dest: Path) -> subprocess.CompletedProcess[str]:
    cmd = [
        python,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        f"bigbench=={BIGBENCH_VERSION}",
        "-d",
        str(dest),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _find_sdist(dest: Path) -> Path | None:
    found = sorted(dest.glob(f"bigbench-{BIGBENCH_VERSION}.tar.gz"))
    return found[0] if found else None


def pip_download_bigbench(dest: Path) -> Path:
    """Download the ``bigbench`` sdist into ``dest`` with pip and return the archive's path.

    ``pip download --no-deps bigbench==1.0.0``. Recent pip refuses this sdist after building its
    metadata (it declares a ``file://`` dependency on bleurt, and pip rejects direct-URL
    dependencies of PyPI distributions even with ``--no-deps``); the download is then retried
    with the pip that ``ensurepip`` bundles, in a throwaway virtual environment (no network
    needed for that pip), which still accepts it.
    """
    first = _pip_download(sys.executable, dest)
    if first.returncode == 0 and _find_sdist(dest):
        return _find_sdist(dest)  # type: ignore[return-value]
    env_dir = dest / "bundled-pip-venv"
    venv.create(env_dir, with_pip=True, clear=True)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    second = _pip_download(str(python), dest)
    sdist = _find_sdist(dest)
    if second.returncode != 0 or sdist is None:
        raise RuntimeError(
            f"pip download --no-deps bigbench=={BIGBENCH_VERSION} failed.\n"
            f"With {sys.executable}: {first.stderr.strip()[-1500:]}\n"
            f"With the bundled pip: {second.stderr.strip()[-1500:]}\n{NO_DOWNLOAD_HINT}"
        )
    return sdist


def _task_member_path(name: str) -> PurePosixPath | None:
    """Path below ``benchmark_tasks/`` of an archive member ``.../benchmark_tasks/**/task.json``, else None."""
    parts = PurePosixPath(name).parts
    if ".." in parts or name.startswith("/") or "benchmark_tasks" not in parts:
        return None
    rel = PurePosixPath(*parts[parts.index("benchmark_tasks") + 1 :])
    return rel if rel.name == "task.json" and len(rel.parts) >= 2 else None


def extract_task_files(archive: Path, dest: Path) -> int:
    """Extract only ``benchmark_tasks/**/task.json`` of ``archive`` into ``dest``; return the count."""
    count = 0
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            rel = _task_member_path(member.name)
            if rel is None or not member.isfile():
                continue
            target = dest.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            if src is None:
                continue
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            count += 1
    if count == 0:
        raise ValueError(f"{archive}: no benchmark_tasks/**/task.json in this archive")
    return count


def _complete(root: Path) -> bool:
    marker = root / MARKER_NAME
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    tasks = root / "benchmark_tasks"
    return (
        info.get("version") == BIGBENCH_VERSION
        and tasks.is_dir()
        and sum(1 for _ in tasks.rglob("task.json")) == info.get("n_task_files")
    )


def fetch_bigbench_tasks(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    archive: str | os.PathLike[str] | None = None,
    downloader: Downloader | None = None,
) -> Path:
    """Return ``<cache>/bigbench-1.0.0/benchmark_tasks``, downloading and extracting it once.

    The cache is complete when ``<cache>/bigbench-1.0.0/COMPLETE.json`` exists, names the
    version and the number of task.json files present; the folder is extracted with the marker
    written last into ``core.atomic.atomic_directory``, so it appears complete or not at all and
    an interrupted fetch is redone from scratch. ``archive`` uses an already downloaded sdist;
    ``downloader(tmp_dir) -> archive_path`` replaces ``pip_download_bigbench`` (tests inject one).
    From a shell: ``python -c "from core.data import fetch_bigbench_tasks as f; print(f())"``.
    """
    root = bigbench_cache_dir(cache_dir) / f"bigbench-{BIGBENCH_VERSION}"
    if _complete(root):
        return root / "benchmark_tasks"
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".bigbench-fetch-") as tmp:
        tmp_path = Path(tmp)
        if archive is not None:
            sdist = Path(archive)
        else:
            download_dir = tmp_path / "download"
            download_dir.mkdir()
            sdist = (downloader or pip_download_bigbench)(download_dir)
        with atomic_directory(root) as staging:
            n_files = extract_task_files(Path(sdist), staging / "benchmark_tasks")
            (staging / MARKER_NAME).write_text(
                json.dumps({"version": BIGBENCH_VERSION, "n_task_files": n_files}), encoding="utf-8"
            )
    return root / "benchmark_tasks"
