"""The workflow's plan, importable without torch: config validation (config), the path scheme
(paths), the grids a config expands into (grids), the rule helpers (workflow.Pipeline), the specs
of tables, figures, claims and the report (specs), and a real-text config's plan (real).

The ``.smk`` files hold rules only and call :class:`Pipeline` (or ``real.RealPlan``); what runs is
in core.jobs. See docs/design.md §4-§5."""

from __future__ import annotations

from core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports("core.plan", {"workflow": "Pipeline"})
