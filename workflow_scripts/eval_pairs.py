"""Rules `eval_rm_dr`, `eval_ppo`, `eval_dpo_dr`: pairwise accuracy on each benchmark (docs/design.md §3).

Reward model: correct when r(x, y+) > r(x, y-); policy: the likelihood rule pi(y+|x) > pi(y-|x)
(DR paper §5.2) and the implicit reward log pi/pi_ref (RewardBench's DPO mode), scored per
benchmark kind by core.eval.benchmarks.
"""

from core.jobs.evaluate import eval_pairs
from core.jobs.launch import entrypoint

if __name__ == "__main__":
    entrypoint(eval_pairs, globals())
