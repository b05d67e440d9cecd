"""trl trainer subclasses (docs/design.md §1.2-§1.3): the DR reward model and the DPO family.

Names are imported lazily so that ``import core.trainers`` stays cheap; DR-PPO lives in
``core.trainers.ppo`` and is imported from there.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DRRewardConfig": "core.trainers.reward",
    "DRRewardTrainer": "core.trainers.reward",
    "DRDPOConfig": "core.trainers.dpo",
    "DRDPOTrainer": "core.trainers.dpo",
    "TargetRewardCollator": "core.trainers.dpo",
    "IterateAverager": "core.trainers.robust",
    "RobustMinibatchMixin": "core.trainers.robust",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'core.trainers' has no attribute {name!r}")
