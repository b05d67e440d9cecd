"""Rules `train_dpo_dr`, `train_distill_policy`: the DPO family on core.trainers.dpo.

DPO -log sigma(beta Delta logratio); IPO (Delta avg-logratio - 1/(2 tau))^2; DR-DPO (DR paper
Algorithm 3): per-example DPO losses reweighted by q*; d-DPO (distillation paper eq. 7)
(r_tgt(y1) - r_tgt(y2) - beta Delta logratio)^2 with precomputed target rewards; p-DPO (eq. 13),
dp-DPO (eq. 11) and e-DPO (min over the reward ensemble) add gamma KL(pi_ref || pi), gamma
annealed linearly or constant. The policy starts from pi_ref. Distillation-paper policies also
record the Figure B.1 probes and, for e-DPO, which ensemble member attains the minimum (Figure B.3).
"""

from core.jobs.launch import entrypoint
from core.jobs.train import train_dpo

if __name__ == "__main__":
    entrypoint(train_dpo, globals())
