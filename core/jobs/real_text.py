"""small-real: the DR paper's reward-model claims on real text, over cached encoder states.

The plan of docs/small-real.md for ``experiment: real-text`` configs (configs/small-real.yaml):

1. ``load``: AlpacaEval's verdicts of one annotator on ``G`` generators (format ``alpaca-eval``,
   generators by a seeded permutation of the sorted names) and HHH, normalised;
2. ``encode``: every unique (instruction, response) text once through the frozen encoder
   (core.eval.encoder_states): the cached DAG target every model reads;
3. ``train_rms``: per grid point (variant, divergence, rho) and seed, the instructions are split
   70/10/20 by prompt with the seed (core.data.split_by_prompt), the training mixture keeps
   ``under_represented`` shares of two sources (the DR shift), and the head of a BERT classifier is
   trained with worst-case minibatch weights (core.trainers.feature_head; rho = 0 is BTL), saved as
   an ordinary model folder, and scored on every benchmark from the cached states (exactly what the
   saved model computes on raw text);
4. ``report``: Table 8 (BTL and DR per variant, rho chosen on validation, reference rows) and the
   claims table with the gate ``rm_beyond_length``.

Benchmarks per seed: ``val`` (validation instructions), ``id`` (test instructions drawn to the
training mixture), ``shifted`` (test pairs of the under-represented sources), ``heldout`` (test
pairs of the sources a variant drops), ``hhh`` (221 pairs). Every accuracy comes with its
length-matched accuracy (lengths within 20%) and the length rule's on the same pairs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.plan.paths import fmt
from core.plan.real import BENCHMARKS, RealPlan, choose_generators, policy_grid, policy_key


def seed_benchmarks(pool: Any, plan: RealPlan, variant: str, seed: int) -> dict[str, Any]:
    """``train`` (the training mixture) and the benchmarks ``val, id, shifted, heldout`` of one seed."""
    from core.data import split_by_prompt

    data = plan.config["data"]
    parts = split_by_prompt(pool, float(data["split"]["val"]), float(data["split"]["test"]), seed)
    excluded = set(data["variants"][variant]["exclude"])
    keep = {k: float(v) for k, v in data["under_represented"].items()}
    rng = np.random.default_rng([seed, 1])

    def mixture(ds: Any) -> Any:
        draws = rng.random(len(ds))
        return ds.select([i for i, s in enumerate(ds["source"]) if s not in excluded and draws[i] < keep.get(s, 1.0)])

    test = parts["test"]
    sources = test["source"]
    return {
        "train": mixture(parts["train"]),
        "val": parts["val"].select([i for i, s in enumerate(parts["val"]["source"]) if s not in excluded]),
        "id": mixture(test),
        "shifted": test.select([i for i, s in enumerate(sources) if s in keep and s not in excluded]),
        "heldout": test.select([i for i, s in enumerate(sources) if s in excluded]),
    }


# ---------------------------------------------------------------------- jobs
def load_sources(plan: RealPlan, out_pool: str, out_hhh: str) -> dict[str, Any]:
    """Load the pool (one annotator, ``G`` generators) and HHH; write them with their load reports."""
    from core.data import load_preferences, write_pairs

    data = plan.config["data"]
    spec = data["pool"]
    results = Path(plan.data_path(spec["path"]))
    if not results.is_dir():
        raise FileNotFoundError(f"data.pool.path: {results} is not a folder (AlpacaEval's results/ layout)")
    names = [p.name for p in results.iterdir() if (p / spec["annotator"]).is_dir()]
    gens = choose_generators(names, int(spec["n_generators"]), spec["reference"], int(spec["generator_seed"]))
    common = {"on_bad_rows": data["on_bad_rows"], "max_drop_fraction": float(data["max_drop_fraction"])}
    pool, rep = load_preferences(
        results, "alpaca-eval", return_report=True, annotator=spec["annotator"], generators=gens, **common
    )
    hhh, hrep = load_preferences(plan.data_path(data["hhh"]["path"]), "hhh", return_report=True, **common)
    for ds, report, out in ((pool, rep, out_pool), (hhh, hrep, out_hhh)):
        write_pairs(ds, out)
        Path(out + ".report.json").write_text(
            json.dumps({**report.to_dict(), "bad_rows": [b.to_dict() for b in report.bad_rows]}, indent=2)
        )
    return {"generators": gens, "pool": rep.to_dict(), "hhh": hrep.to_dict()}


def text_keys(*sets: Any) -> list[tuple[str, str]]:
    """Every unique (prompt, response) of the sets, in first-seen order."""
    from core.data.schema import text_of

    keys: dict[tuple[str, str], None] = {}
    for ds in sets:
        for p, c, r in zip(ds["prompt"], ds["chosen"], ds["rejected"], strict=True):
            keys.setdefault((text_of(p), text_of(c)), None)
            keys.setdefault((text_of(p), text_of(r)), None)
    return list(keys)


def encode(plan: RealPlan, pool_path: str, hhh_path: str, out: Mapping[str, str]) -> dict[str, Any]:
    """The encoder's states of every text of the pool and of HHH (``states.npz``: cls, mean,
    n_tokens; ``texts.parquet``: prompt, response, row), written atomically, finite only."""

    import pandas as pd
    import torch

    from core.atomic import atomic_write
    from core.data import read_pairs
    from core.eval.encoder_states import encoder_states
    from core.models import load_reward_model, load_tokenizer

    enc = plan.config["encoder"]
    torch.set_num_threads(int(enc.get("threads", 1)))
    keys = text_keys(read_pairs(pool_path), read_pairs(hhh_path))
    device = str(enc.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = load_reward_model(enc["path"], dtype=enc.get("dtype")).to(torch.device(device)).eval()
    tok = load_tokenizer(enc["path"])
    start = time.perf_counter()
    states = encoder_states(
        model, tok, [k[0] for k in keys], [k[1] for k in keys], max_length=int(enc["max_length"]),
        batch_size=int(enc.get("batch_size", 32)),
    )  # fmt: skip
    seconds = time.perf_counter() - start
    frame = pd.DataFrame({"prompt": [k[0] for k in keys], "response": [k[1] for k in keys]})
    atomic_write(out["texts"], lambda tmp: frame.to_parquet(tmp, index=False))
    atomic_write(out["states"], lambda tmp: _save_npz(tmp, states))
    return {"n_texts": len(keys), "seconds": seconds, "texts_per_second": len(keys) / max(seconds, 1e-9),
            "device": device}  # fmt: skip


def _save_npz(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


class StateLookup:
    """The cached states of (prompt, response) texts."""

    def __init__(self, texts_path: str, states_path: str) -> None:
        import pandas as pd

        frame = pd.read_parquet(texts_path)
        self.index = {(p, r): i for i, (p, r) in enumerate(zip(frame["prompt"], frame["response"], strict=True))}
        with np.load(states_path) as z:
            self.cls, self.mean = z["cls"], z["mean"]

    def rows(self, prompts: Sequence[Any], responses: Sequence[Any], what: str = "text") -> np.ndarray:
        """The row of each (prompt, response) in the cached states."""
        from core.data.schema import text_of

        out = []
        for i, (p, y) in enumerate(zip(prompts, responses, strict=True)):
            key = (text_of(p), text_of(y))
            if key not in self.index:
                raise KeyError(f"{what} {i}: no cached state for this text; re-run the encode rule")
            out.append(self.index[key])
        return np.asarray(out, dtype=np.int64)

    def pairs(self, ds: Any, key: str = "cls") -> tuple[np.ndarray, np.ndarray]:
        """The ``key`` states (cls or mean) of every pair's chosen and rejected text."""
        states = getattr(self, key)
        return tuple(states[self.rows(ds["prompt"], ds[c], f"row ({c})")] for c in ("chosen", "rejected"))


def score_benchmark(ds: Any, chosen: np.ndarray, rejected: np.ndarray, within: float, degenerate_std: float) -> dict:
    """Accuracy, length-matched accuracy and the length rule on the same pairs, score spread."""
    from core.eval.benchmarks import pair_spread
    from core.eval.reference import length_matched, reference_correct
    from core.eval.scoring import pairwise_outcomes

    if len(ds) == 0:
        return {"n": 0}
    correct = pairwise_outcomes(chosen, rejected)
    longer = reference_correct(ds, "longer")
    matched = length_matched(ds, within)
    mean = lambda a: float(a.mean()) if a.size else float("nan")  # noqa: E731
    return {
        "n": len(ds),
        "accuracy": mean(correct),
        "longer": mean(longer),
        "n_matched": int(matched.sum()),
        "matched_accuracy": mean(correct[matched]),
        "matched_longer": mean(longer[matched]),
        "spread": pair_spread(chosen, rejected, degenerate_std),
    }


def train_rms(
    plan: RealPlan, variant: str, div: str, rho: float, paths: Mapping[str, str], seeds: Sequence[int]
) -> None:
    """Every seed of one grid point: train the head, save the model folder, score the benchmarks."""
    import torch

    from core.atomic import atomic_write_json
    from core.data import read_pairs
    from core.models import load_reward_model, load_tokenizer
    from core.tracking import mlflow_run
    from core.trainers.feature_head import HeadConfig, head_scores, save_head_model, train_head

    cfg = plan.config
    enc = cfg["encoder"]
    torch.set_num_threads(int(enc.get("threads", 1)))
    pool, hhh = read_pairs(paths["pool"]), read_pairs(paths["hhh"])
    lookup = StateLookup(paths["texts"], paths["states"])
    tok = load_tokenizer(enc["path"])
    head = HeadConfig(**cfg["reward"]["head"], divergence=div, rho=float(rho))
    within, degenerate = float(cfg["eval"]["length_matched_within"]), float(cfg["eval"]["degenerate_std"])
    for seed in seeds:
        sets = {**seed_benchmarks(pool, plan, variant, seed), "hhh": hhh}
        model = load_reward_model(enc["path"], seed=seed)
        run_params = {"variant": variant, "divergence": div, "rho": rho, "seed": seed, "head": cfg["reward"]["head"],
                      "encoder": enc}  # fmt: skip
        name = f"rm {variant} {div} ρ={fmt(rho)} s{seed}"
        with mlflow_run(cfg["name"], name, run_params, tracking_uri=cfg.get("tracking", {}).get("uri")) as run:
            chosen, rejected = lookup.pairs(sets["train"])
            result = train_head(model, chosen, rejected, head, seed)
            for step, loss in enumerate(result.losses):
                if step % 20 == 0 or step == len(result.losses) - 1:
                    run.log_step_metrics({"train/loss": loss}, step=step)
            scores = {}
            with torch.no_grad():
                for name_b in BENCHMARKS:
                    c, r = lookup.pairs(sets[name_b])
                    sc = head_scores(model, torch.from_numpy(c)).numpy() if len(c) else np.zeros(0)
                    sr = head_scores(model, torch.from_numpy(r)).numpy() if len(r) else np.zeros(0)
                    scores[name_b] = score_benchmark(sets[name_b], sc, sr, within, degenerate)
            save_head_model(model, tok, plan.model(variant, div, rho, seed))
            losses = result.losses
            metrics = {
                "variant": variant, "divergence": div, "rho": float(rho), "seed": seed, "run_id": run.run_id,
                "n_train": len(sets["train"]), "train": {"loss_first": float(np.mean(losses[:20])),
                                                         "loss_last": float(np.mean(losses[-20:]))},
                "benchmarks": scores,
            }  # fmt: skip
            run.log_metrics({f"{b}/accuracy": s["accuracy"] for b, s in scores.items() if s.get("n")})
            atomic_write_json(plan.metrics(variant, div, rho, seed), metrics, indent=2, sort_keys=True)


# ---------------------------------------------------------------------- log-linear policies
@dataclass
class Candidates:
    """Every instruction's real candidates: the generators' responses and the reference's, with the
    judge as oracle: ``r*(x, y)`` = 1 when the judge preferred ``y`` to the reference, 0 when not,
    0.5 for the reference itself (so a policy's value is its expected judged win rate)."""

    prompts: list[str]
    responses: list[str]
    groups: np.ndarray
    rewards: np.ndarray


def candidates(ds: Any, reference: str) -> Candidates:
    """The candidates of the instructions of ``ds`` (one per distinct response of an instruction)."""
    from core.data.schema import text_of

    seen: dict[tuple[str, str], float] = {}
    for p, c, r, cm, rm in zip(ds["prompt"], ds["chosen"], ds["rejected"], ds["chosen_model"], ds["rejected_model"],
                               strict=True):  # fmt: skip
        x = text_of(p)
        for text, model, won in ((text_of(c), cm, True), (text_of(r), rm, False)):
            seen.setdefault((x, text), 0.5 if model == reference else float(won))
    order = {x: i for i, x in enumerate(dict.fromkeys(k[0] for k in seen))}
    keys = list(seen)
    return Candidates([k[0] for k in keys], [k[1] for k in keys], np.asarray([order[k[0]] for k in keys]),
                      np.asarray([seen[k] for k in keys]))  # fmt: skip


class PolicyFeatures:
    """``psi(x, y) = [m / ||m||, clip(z, -3, 3) / 3] / sqrt(2)`` (norm <= 1, DR paper Assumption 2):
    ``m`` the encoder's mean-pooled state of (x, y), ``z`` the response's log-length standardised
    with the training pairs' mean and deviation (a policy can prefer length, as real ones do)."""

    def __init__(self, lookup: StateLookup, train: Any) -> None:
        from core.eval.reference import response_lengths

        self.lookup = lookup
        lengths = np.log1p(np.concatenate(response_lengths(train)))
        self.mu, self.sd = float(lengths.mean()), float(lengths.std() + 1e-6)

    def __call__(self, prompts: Sequence[Any], responses: Sequence[Any]) -> np.ndarray:
        from core.eval.reference import response_text

        m = self.lookup.mean[self.lookup.rows(prompts, responses)].astype(np.float64)
        m /= np.linalg.norm(m, axis=1, keepdims=True) + 1e-12
        z = (np.log1p([len(response_text(y)) for y in responses]) - self.mu) / self.sd
        return (np.hstack([m, (np.clip(z, -3, 3) / 3)[:, None]]) / math.sqrt(2)).astype(np.float32)


def train_policies(plan: RealPlan, paths: Mapping[str, str], seeds: Sequence[int], outputs: Sequence[str]) -> None:
    """Every policy of the grid, every seed: trained on the training mixture's verdict pairs,
    valued under the judge on validation, in-distribution and shifted test instructions, and scored
    on HHH (implicit reward ``theta . psi``); one metrics file per seed."""
    import torch

    from core.atomic import atomic_write_json
    from core.data import read_pairs
    from core.tracking import mlflow_run
    from core.trainers.loglinear import PolicyConfig, policy_probs, train_policy

    cfg, pol = plan.config, plan.config["policy"]
    torch.set_num_threads(int(cfg["encoder"].get("threads", 1)))
    pool, hhh = read_pairs(paths["pool"]), read_pairs(paths["hhh"])
    lookup = StateLookup(paths["texts"], paths["states"])
    reference = cfg["data"]["pool"]["reference"]
    variant = cfg["reward"].get("rm_variant", "unfiltered")
    for seed, out in zip(seeds, outputs, strict=True):
        sets = seed_benchmarks(pool, plan, variant, seed)
        psi = PolicyFeatures(lookup, sets["train"])
        chosen = psi(sets["train"]["prompt"], sets["train"]["chosen"])
        rejected = psi(sets["train"]["prompt"], sets["train"]["rejected"])
        pools = {name: candidates(sets[name], reference) for name in ("val", "id", "shifted")}
        feats = {name: psi(c.prompts, c.responses) for name, c in pools.items()}
        hhh_c, hhh_r = psi(hhh["prompt"], hhh["chosen"]), psi(hhh["prompt"], hhh["rejected"])
        results = {"reference": reference_values(pools)}
        with mlflow_run(cfg["name"], f"policies s{seed}", {"seed": seed, "policy": pol},
                        tracking_uri=cfg.get("tracking", {}).get("uri")) as run:  # fmt: skip
            for method, div, rho, beta in policy_grid(plan):
                config = PolicyConfig(method=method, beta=beta, eps=float(pol["eps"]), divergence=div, rho=rho,
                                      **pol["train"])  # fmt: skip
                res = train_policy(chosen, rejected, config, seed)
                train_probs = policy_probs(res.theta, np.vstack([chosen, rejected]),
                                           np.concatenate([np.arange(len(chosen))] * 2))  # fmt: skip
                entry = evaluate_policy(res, pools, feats, (hhh_c, hhh_r))
                entry["pair_preferred_prob"] = float(train_probs[: len(chosen)].mean())
                results[policy_key(method, div, rho, beta)] = entry
                run.log_metrics({f"{method}:{div}:rho{fmt(rho)}:beta{fmt(beta)}/id_value": entry["id"]})
            atomic_write_json(out, {"seed": seed, "variant": variant, "run_id": run.run_id,
                                    "n_train": len(chosen), "policies": results}, indent=2, sort_keys=True)  # fmt: skip


def reference_values(pools: Mapping[str, Candidates]) -> dict[str, float]:
    """The uniform ``pi_ref``'s judged win rate (%) on each benchmark's instructions, and as
    ``best_<benchmark>`` the ceiling of the class: a policy that puts all its mass on a candidate
    the judge rated highest (per instruction, the best candidate's verdict)."""
    out = {}
    for name, c in pools.items():
        per_group = [c.rewards[c.groups == g] for g in np.unique(c.groups)]
        out[name] = 100 * float(np.mean([r.mean() for r in per_group]))
        out[f"best_{name}"] = 100 * float(np.mean([r.max() for r in per_group]))
    return out


def evaluate_policy(
    result: Any, pools: Mapping[str, Candidates], feats: Mapping[str, np.ndarray], hhh: tuple[np.ndarray, np.ndarray]
) -> dict[str, float]:
    """A trained policy's judged win rate (%) on each benchmark's candidates, HHH accuracy (%) of its
    implicit reward ``theta . psi``, its loss curve's ends and ``||theta||``."""
    from core.eval.scoring import pairwise_outcomes
    from core.trainers.loglinear import policy_value

    theta = result.theta
    entry = {name: 100 * float(policy_value(theta, feats[name], c.groups, c.rewards).mean())
             for name, c in pools.items()}  # fmt: skip
    entry["hhh"] = 100 * float(pairwise_outcomes(hhh[0] @ theta, hhh[1] @ theta).mean())
    entry["loss_first"], entry["loss_last"] = float(np.mean(result.losses[:20])), float(np.mean(result.losses[-20:]))
    entry["theta_norm"] = float(np.linalg.norm(theta))
    return entry
