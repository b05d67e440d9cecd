"""One style of package ``__init__``: public names imported from their modules on first use.

``core.data``, ``core.trainers`` and ``core.eval`` re-export names from their submodules without
importing them at ``import`` time (PEP 562 module ``__getattr__``), so a process that only passes
a job on (core.pipeline.warm) imports no torch, transformers or datasets.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, defined_in: dict[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """``(__getattr__, __all__)`` for ``package``; ``defined_in`` maps each submodule (relative to
    the package) to its exported names, space-separated. A name is imported once, then cached in
    the package's namespace."""
    where = {name: f"{package}.{module}" for module, names in defined_in.items() for name in names.split()}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__, sorted(where)
