"""Rule `label_noise_ablation`: DR vs BTL reward models with and without label noise
(core.jobs.report.label_noise_ablation)."""

from core.jobs.launch import entrypoint
from core.jobs.report import label_noise_ablation

if __name__ == "__main__":
    entrypoint(label_noise_ablation, globals())
