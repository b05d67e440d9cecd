"""Rule `train_ppo`: PPO / DR-PPO (DR paper §5.2) against the reward model trained with the same
divergence and rho. The robust weights q* = argmin_{D(q, 1/n) <= rho} sum_i q_i R_i over the
rollout batch of KL-regularised returns R_i = r(x_i, y_i) - beta KL_i; vA scales each sample's
advantages by n q_i, vB its policy loss (core.trainers.ppo). The policy and value model start
from pi_ref and the reward model; the reward model must share the policy's tokenizer."""

from core.jobs.launch import entrypoint
from core.jobs.train import train_ppo

if __name__ == "__main__":
    entrypoint(train_ppo, globals())
