"""Rules `train_rm_dr`, `train_oracle_rm`, `train_distill_rm`: a reward model r(x, y).

BTL (divergence none / rho 0): minimise the Bradley-Terry loss -log sigma(r(x,y+) - r(x,y-));
DR (DR paper Algorithm 1): the same per-example losses reweighted by the worst-case weights q* in a
`divergence` ball of radius rho over the whole optimiser minibatch (core.trainers.reward).
Writes the model folder and train.json (final metrics, step curves, DR weight statistics).
"""

from core.jobs.launch import entrypoint
from core.jobs.train import train_reward

if __name__ == "__main__":
    entrypoint(train_reward, globals())
