"""trl trainer subclasses (docs/design.md §1.2-§1.3): the DR reward model, the DPO family and DR-PPO.

Names are imported from their modules on first use (core.lazy), so ``import core.trainers`` stays cheap.
"""

from __future__ import annotations

from core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    "core.trainers",
    {
        "reward": "DRRewardConfig DRRewardTrainer",
        "dpo": "DRDPOConfig DRDPOTrainer TargetRewardCollator",
        "ppo": "DRPPOConfig DRPPOTrainer",
        "robust": "IterateAverager RobustBallArguments RobustMinibatchMixin RobustTrainingArguments",
    },
)
