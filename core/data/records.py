"""Raw records from local files: the readers behind ``core.data.loaders`` and ``core.data.bigbench``.

Readers yield ``(location, index, record)`` where ``location`` names the file and the line
(JSON lines) or record number (JSON arrays, parquet) so that bad rows can be reported exactly.
Text is decoded as UTF-8 with ``surrogateescape``: bytes that are not valid UTF-8 survive as
lone surrogates and are reported as undecodable by the row check, with their row number. A
leading UTF-8 byte-order mark (files saved by Excel or Notepad) is dropped, so it costs no row.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "SUFFIXES",
    "Unreadable",
    "decode",
    "file_kind",
    "iter_file_records",
    "list_data_files",
    "read_json_document",
    "split_matches",
]

SUFFIXES: tuple[str, ...] = (".jsonl.gz", ".json.gz", ".jsonl", ".json", ".parquet")


class Unreadable:
    """Stands for a record that could not be parsed (e.g. a line that is not JSON)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def file_kind(path: Path) -> str | None:
    """``'jsonl'``, ``'json'`` or ``'parquet'`` from the name (``.gz`` allowed on JSON), else None."""
    name = path.name.lower()
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return suffix.removesuffix(".gz").lstrip(".")
    return None


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise ValueError(f"{path}: not a readable gzip file ({err})") from None
    return data


def decode(data: bytes) -> str:
    """UTF-8 decode keeping invalid bytes as lone surrogates (detected later, per row); a leading
    byte-order mark is dropped (``utf-8-sig``: JSON forbids it, so it would spoil the first row)."""
    return data.decode("utf-8-sig", errors="surrogateescape")


def _iter_json_lines(path: Path, data: bytes) -> Iterator[tuple[str, int, Any]]:
    index = 0
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        location = f"{path}, line {lineno}"
        try:
            record: Any = json.loads(decode(raw))
        except json.JSONDecodeError as err:
            record = Unreadable(f"invalid JSON ({err.msg} at column {err.colno})")
        if not isinstance(record, dict | Unreadable):
            record = Unreadable(f"expected a JSON object, got {type(record).__name__}")
        yield location, index, record
        index += 1


def _first_line_is_object(text: str) -> bool:
    for line in text.splitlines():
        if line.strip():
            try:
                return isinstance(json.loads(line), dict)
            except json.JSONDecodeError:
                return False
    return False


def read_json_document(path: Path) -> Any:
    """Parse a whole JSON file (``.json`` or ``.json.gz``) or raise ValueError naming it."""
    try:
        return json.loads(decode(_read_bytes(path)))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def _iter_json_document(path: Path, data: bytes) -> Iterator[tuple[str, int, Any]]:
    text = decode(data)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data" or _first_line_is_object(text):
            # Hub and OpenAI files named .json are often JSON lines.
            yield from _iter_json_lines(path, data)
            return
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if isinstance(doc, dict) and "examples" in doc:
        raise ValueError(f"{path}: is a BIG-bench task file (has 'examples'); load it with format 'bigbench' or 'hhh'")
    if isinstance(doc, dict) and doc and all(isinstance(v, list) for v in doc.values()):
        lengths = {len(v) for v in doc.values()}
        if len(lengths) != 1:
            raise ValueError(f"{path}: column lists have different lengths {sorted(lengths)}")
        keys = list(doc)
        doc = [dict(zip(keys, values, strict=True)) for values in zip(*doc.values(), strict=True)]
    if not isinstance(doc, list):
        raise ValueError(f"{path}: expected a JSON array of records, got {type(doc).__name__}")
    for i, record in enumerate(doc):
        if not isinstance(record, dict):
            record = Unreadable(f"expected a JSON object, got {type(record).__name__}")
        yield f"{path}, record {i + 1}", i, record


def _iter_parquet(path: Path) -> Iterator[tuple[str, int, Any]]:
    import pyarrow.parquet as pq

    try:
        records = pq.read_table(path).to_pylist()
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise ValueError(f"{path}: cannot read parquet ({type(err).__name__}: {err})") from None
    for i, record in enumerate(records):
        yield f"{path}, record {i + 1}", i, record


def iter_file_records(path: Path) -> Iterator[tuple[str, int, Any]]:
    """Yield ``(location, index, record)`` for every record of a jsonl/json/parquet file."""
    kind = file_kind(path)
    if kind == "parquet":
        yield from _iter_parquet(path)
    elif kind == "jsonl":
        yield from _iter_json_lines(path, _read_bytes(path))
    elif kind == "json":
        yield from _iter_json_document(path, _read_bytes(path))
    else:
        raise ValueError(f"{path}: unsupported file type; expected one of {', '.join(SUFFIXES)}")


def split_matches(path: Path, split: str) -> bool:
    """True when the file is named after ``split`` (``train.jsonl``, ``train-0000.parquet``)."""
    name = path.name
    return any(name.startswith(split + sep) for sep in (".", "-", "_"))


def list_data_files(folder: Path, split: str | None = None) -> list[Path]:
    """Supported data files under ``folder`` (recursively, sorted). With ``split``, only the
    files named after it (``train.jsonl.gz``, ``test-00000-of-00001.parquet``, ``test_prefs.json``);
    when none is so named, all files are returned and the caller filters on a ``split`` field."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and file_kind(p) is not None)
    if not files:
        raise ValueError(f"{folder}: no data files ({', '.join(SUFFIXES)}) in this folder")
    if split is not None:
        named = [p for p in files if split_matches(p, split)]
        if named:
            return named
    return files
