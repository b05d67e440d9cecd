"""Test helper: nested JSON-like data as one flat {dotted.path: leaf} dict, for comparing runs."""

from __future__ import annotations


def flatten(node: object, prefix: str = "") -> dict[str, object]:
    """``{"a": {"b": [1, 2]}}`` -> ``{"a.b.0": 1, "a.b.1": 2}`` (dict keys and list indices)."""
    if isinstance(node, dict | list):
        items = node.items() if isinstance(node, dict) else enumerate(node)
        out: dict[str, object] = {}
        for key, value in items:
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): node}
