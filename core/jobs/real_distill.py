"""small-real's distillation policies (claims d, e; design in docs/small-real.md, fixed before results).

Per seed, from the training mixture of ``reward.rm_variant`` (the pairs DPO trains on):

1. ``D_b`` for each length bias ``b`` (distillation paper §6.1, core.data.length_bias_subsample):
   ``n_train`` pairs of which a fraction ``b`` has the longer response chosen;
2. reward models on cached [CLS] states (core.trainers.feature_head, BTL): d-DPO's on ``D_b``,
   e-DPO's ensemble on ``D_{b,b'}`` (core.data.ensemble_subsets), each scored in distribution;
3. log-linear policies (core.trainers.loglinear) over the real candidates: DPO, IPO, d-DPO (eq. 7),
   p-DPO (eq. 13) and e-DPO (eq. 11) on ``D_b``, each beta (tau) and gamma; valued under the judge on
   the validation, in-distribution and shifted instructions, HHH, and the preferred log-ratio
   ``log pi(y+|x) - log pi_ref(y+|x)`` over ``D_b``'s pairs (Fig. B.1's quantity, claim e).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.jobs.real_text import (
    PolicyFeatures,
    StateLookup,
    candidates,
    evaluate_policy,
    reference_values,
    score_benchmark,
    seed_benchmarks,
)
from core.plan.paths import fmt
from core.plan.real import distill_grid, distill_key

__all__ = ["train_distill"]


def _reward_head(plan: Any, lookup: Any, train: Any, test: Any, targets_of: Any, seed: int) -> tuple[np.ndarray, dict]:
    """BTL head on ``train``'s cached states: its ``r(y+) - r(y-)`` on ``targets_of``'s pairs and its
    in-distribution test scores (accuracy, length-matched, the length rule, spread), with the mean
    and mean absolute value of those targets."""
    import torch

    from core.models import load_reward_model
    from core.trainers.feature_head import HeadConfig, head_scores, train_head

    cfg = plan.config
    model = load_reward_model(cfg["encoder"]["path"], seed=seed)
    result = train_head(model, *lookup.pairs(train), HeadConfig(**cfg["reward"]["head"]), seed)

    def scores(ds: Any) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            return tuple(head_scores(model, torch.from_numpy(s)).numpy() for s in lookup.pairs(ds))

    c, r = scores(targets_of)
    tc, tr = scores(test)
    report = score_benchmark(test, tc, tr, float(cfg["eval"]["length_matched_within"]),
                             float(cfg["eval"]["degenerate_std"]))  # fmt: skip
    report["loss_first"], report["loss_last"] = float(np.mean(result.losses[:20])), float(np.mean(result.losses[-20:]))
    target = (c - r).astype(np.float64)
    report["target_mean"], report["target_abs_mean"] = float(target.mean()), float(np.abs(target).mean())
    return target, report


def _candidate_sets(train_candidates: Any, features: np.ndarray, pairs: Any) -> Any:
    """The training instructions' candidates (for the forward KL and the probe), mapped to ``pairs``."""
    from core.data.schema import text_of
    from core.trainers.loglinear import CandidateSets

    group_of = {p: int(g) for p, g in zip(train_candidates.prompts, train_candidates.groups, strict=True)}
    pair_group = np.asarray([group_of[text_of(p)] for p in pairs["prompt"]])
    return CandidateSets.from_groups(features, train_candidates.groups, pair_group)


@dataclass
class _Seed:
    """What every bias of one seed shares: the benchmarks, the features and the judged candidates."""

    seed: int
    sets: dict[str, Any]
    psi: Any
    pools: dict[str, Any]
    feats: dict[str, np.ndarray]
    hhh: tuple[np.ndarray, np.ndarray]
    train_candidates: Any  # the training instructions' candidates, and their features (once per seed)
    train_features: np.ndarray


def _one_bias(plan: Any, lookup: Any, tok: Any, ctx: _Seed, bias: float, run: Any) -> dict[str, Any]:
    """``D_b``, its reward models and every policy of the grid on it, for one seed."""
    from core.data import ensemble_subsets, length_bias_subsample
    from core.trainers.loglinear import DISTILLED, PolicyConfig, preferred_logratio, train_policy

    cfg, dist = plan.config, plan.config["distill"]
    margin, seed, train = float(dist["margin"]), ctx.seed, ctx.sets["train"]
    data = length_bias_subsample(train, bias, int(dist["n_train"]), tok, seed, margin=margin)
    target, rm = _reward_head(plan, lookup, data, ctx.sets["id"], data, seed)
    subsets = ensemble_subsets(data, bias, [float(b) for b in dist["ensemble_b"]], int(dist["ensemble_n"]), tok, seed,
                               margin=margin)  # fmt: skip
    members = [_reward_head(plan, lookup, sub, ctx.sets["id"], data, seed) for sub in subsets.values()]
    targets = {"ddpo": target[:, None], "edpo": np.stack([t for t, _ in members], axis=1)}
    chosen, rejected = ctx.psi(data["prompt"], data["chosen"]), ctx.psi(data["prompt"], data["rejected"])
    cand_sets = _candidate_sets(ctx.train_candidates, ctx.train_features, data)
    entry: dict[str, Any] = {"rm": rm, "ensemble": {fmt(b): r for b, (_, r) in zip(subsets, members, strict=True)},
                             "policies": {}}  # fmt: skip
    for method, beta, gamma in distill_grid(cfg):
        config = PolicyConfig(method=method, beta=beta, gamma=gamma, eps=float(cfg["policy"]["eps"]),
                              **cfg["policy"]["train"])  # fmt: skip
        res = train_policy(chosen, rejected, config, seed, targets=targets[method] if method in DISTILLED else None,
                           candidate_sets=cand_sets)  # fmt: skip
        result = evaluate_policy(res, ctx.pools, ctx.feats, ctx.hhh)
        result["preferred_logratio"] = float(preferred_logratio(res.theta, chosen, cand_sets).mean())
        if res.members:  # e-DPO: the share of steps each member (by its b') was the min
            counts = np.bincount(res.members, minlength=len(members)) / len(res.members)
            result["member_share"] = {fmt(b): float(c) for b, c in zip(subsets, counts, strict=True)}
        entry["policies"][distill_key(method, beta, gamma)] = result
        run.log_metrics({f"b{fmt(bias)}:{method}:beta{fmt(beta)}:gamma{fmt(gamma)}/id_value": result["id"]})
    return entry


def train_distill(plan: Any, paths: Mapping[str, str], seeds: Sequence[int], outputs: Sequence[str]) -> None:
    """Every bias, reward model and policy of ``distill`` for every seed; one metrics file per seed."""
    import torch

    from core.atomic import atomic_write_json
    from core.data import read_pairs
    from core.models import load_tokenizer
    from core.tracking import mlflow_run

    cfg = plan.config
    torch.set_num_threads(int(cfg["encoder"].get("threads", 1)))
    pool, hhh = read_pairs(paths["pool"]), read_pairs(paths["hhh"])
    lookup = StateLookup(paths["texts"], paths["states"])
    tok = load_tokenizer(cfg["encoder"]["path"])
    variant = cfg["reward"].get("rm_variant", "unfiltered")
    for seed, out in zip(seeds, outputs, strict=True):
        sets = seed_benchmarks(pool, plan, variant, seed)
        psi = PolicyFeatures(lookup, sets["train"])
        pools = {name: candidates(sets[name], cfg["data"]["pool"]["reference"]) for name in ("val", "id", "shifted")}
        train_cands = candidates(sets["train"], cfg["data"]["pool"]["reference"])
        ctx = _Seed(seed, sets, psi, pools, {name: psi(c.prompts, c.responses) for name, c in pools.items()},
                    (psi(hhh["prompt"], hhh["chosen"]), psi(hhh["prompt"], hhh["rejected"])), train_cands,
                    psi(train_cands.prompts, train_cands.responses))  # fmt: skip
        params = {"seed": seed, "distill": cfg["distill"], "train": cfg["policy"]["train"]}
        uri = cfg.get("tracking", {}).get("uri")
        with mlflow_run(cfg["name"], f"distill s{seed}", params, tracking_uri=uri) as run:
            biases = {fmt(float(b)): _one_bias(plan, lookup, tok, ctx, float(b), run) for b in cfg["distill"]["biases"]}
            metrics = {"seed": seed, "variant": variant, "n_train": int(cfg["distill"]["n_train"]),
                       "run_id": run.run_id, "reference": reference_values(pools), "biases": biases}  # fmt: skip
            atomic_write_json(out, metrics, indent=2, sort_keys=True)
