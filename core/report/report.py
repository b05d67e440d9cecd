"""One readable document from the workflow's tables and figures: ``results/report.md`` (links to
the PNGs next to it) and a self-contained ``results/report.html`` (images embedded).

The outline is a list of sections ``{"heading", "items": [{"table": rel.md} | {"figure": rel.png}]}``
with paths relative to the report's folder; tables are inlined verbatim, so the report shows the
numbers of the table files (which come from the metrics files).
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from core.atomic import atomic_write_text

__all__ = ["anchor", "assemble_markdown", "markdown_to_html", "write_report"]


def _heading_shift(text: str, levels: int) -> str:
    return re.sub(r"^(#+) ", lambda m: "#" * min(6, len(m.group(1)) + levels) + " ", text, flags=re.M)


def anchor(heading: str) -> str:
    """The link target of a heading: lowercase words joined by hyphens (``Contents`` links)."""
    words = re.findall(r"[a-z0-9]+", heading.lower())
    return "-".join(words)


def _summary_line(root: str, item: Mapping[str, Any]) -> str:
    """A theory experiment in one paragraph: what it checks, its headline numbers, and a link to
    its per-replicate table (CSV) instead of the table itself."""
    path = os.path.join(root, item["summary"])
    if not os.path.exists(path):
        raise ValueError(f"report: summary {path} does not exist")
    with open(path, encoding="utf-8") as fh:
        record = json.load(fh)
    numbers = record["metrics"].get("summary", {})
    shown = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in numbers.items())
    checks = record.get("extra", {}).get("checks", "")
    name = os.path.splitext(os.path.basename(item["summary"]))[0]
    return f"**{name}** — checks {checks}. {shown}. Per-replicate table: [`{item['csv']}`]({item['csv']})."


def _source(root: str, table: str) -> str:
    """A table's file and its data file beside it (``.csv``, or ``.json`` as the ablation's), if any."""
    stem = os.path.splitext(table)[0]
    data = next((ext for ext in (".csv", ".json") if os.path.exists(os.path.join(root, stem + ext))), None)
    return f"`{table}`" + (f" (and `{data}`)" if data else "")


def assemble_markdown(title: str, intro: str, sections: Sequence[Mapping[str, Any]], root: str) -> str:
    """The report's Markdown; every referenced file must exist under ``root``."""
    lines = [f"# {title}", ""]
    if intro:
        lines += [intro, ""]
    lines.append("## Contents")
    lines += [f"{i}. [{s['heading']}](#{anchor(s['heading'])})" for i, s in enumerate(sections, 1)]
    lines.append("")
    for section in sections:
        lines += [f'<a id="{anchor(section["heading"])}"></a>', "", f"## {section['heading']}", ""]
        for item in section["items"]:
            if "table" in item:
                path = os.path.join(root, item["table"])
                if not os.path.exists(path):
                    raise ValueError(f"report: table {path} does not exist")
                with open(path, encoding="utf-8") as fh:
                    text = fh.read().strip()
                if not text.startswith("#"):
                    name = os.path.splitext(os.path.basename(item["table"]))[0]
                    text = f"### {name}\n\n{text}"
                lines += [_heading_shift(text, 0), "", f"*Source: {_source(root, item['table'])}.*", ""]
            elif "figure" in item:
                path = os.path.join(root, item["figure"])
                if not os.path.exists(path):
                    raise ValueError(f"report: figure {path} does not exist")
                name = os.path.splitext(os.path.basename(item["figure"]))[0]
                lines += [f"![{name}]({item['figure']})", ""]
            elif "summary" in item:
                lines += [_summary_line(root, item), ""]
            else:
                raise ValueError(f"report: an item must name a table, a figure or a summary, got {dict(item)}")
    return "\n".join(lines).rstrip() + "\n"


_STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
    "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}img{max-width:100%}"
)


def markdown_to_html(markdown: str, root: str, title: str) -> str:
    """HTML of the report with images embedded as data URIs (markdown-it-py, tables enabled)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown)

    def embed(match: re.Match[str]) -> str:
        src = match.group(1)
        path = os.path.join(root, src)
        if not os.path.exists(path):
            return match.group(0)
        with open(path, "rb") as fh:
            data = base64.b64encode(fh.read()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="([^"]+\.png)"', embed, body)
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_STYLE}</style></head><body>\n{body}</body></html>\n"
    )


def write_report(
    md_path: str, html_path: str | None, title: str, intro: str, sections: Sequence[Mapping[str, Any]]
) -> str:
    """Write the Markdown (and HTML) report atomically; returns the Markdown."""
    root = os.path.dirname(os.path.abspath(md_path))
    text = assemble_markdown(title, intro, sections, root)
    atomic_write_text(md_path, text)
    if html_path is not None:
        atomic_write_text(html_path, markdown_to_html(text, root, title))
    return text
