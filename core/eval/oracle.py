"""Oracle-reward advantage with bootstrap intervals and Wald tests (distillation paper §6, Figure 2).

Completions sampled from a policy on held-out prompts are scored by an oracle ``r*``; the advantage
is ``mean_i r*(x_i, y_i^pi) - mean_i r*(x_i, y_i^SFT)``.  Its 95% interval is the percentile
bootstrap over ``B >= 1000`` seeded resamples of prompts (``paired=True``: the per-prompt
differences are resampled together; ``paired=False``: the two samples independently).  Two
methods are compared by a Wald test: ``z = (mean_a - mean_b) / se`` with
``se = sqrt(var_a/n_a + var_b/n_b)`` (unpaired) or ``sd(a - b)/sqrt(n)`` (paired),
``p = 2 (1 - Phi(|z|)) = erfc(|z|/sqrt 2)``; the common SFT mean cancels from the difference.
:func:`oracle_by_domain` reports the same per domain of a preference set (DR paper §5.2: a policy
judged on prompts in and out of distribution), with the equal-weight mean over domains.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.eval.encoding import Batching, encode_completion, resolve_pad_id
from core.eval.generation import GenerationSettings, generate_completions

__all__ = [
    "MIN_RESAMPLES",
    "OracleAdvantage",
    "SampledRewards",
    "WaldTest",
    "bootstrap_mean_ci",
    "heldout_prompts",
    "load_oracle",
    "oracle_advantage",
    "oracle_by_domain",
    "reward_model_oracle",
    "sample_and_score",
    "score_with_oracle",
    "wald_test",
]

MIN_RESAMPLES = 1000
#: ``oracle(prompts, completions) -> one reward per completion``.
OracleFn = Callable[[Sequence[Any], Sequence[str]], Sequence[float]]


def _vector(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size < 2:
        raise ValueError(f"{name}: need at least 2 values, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: non-finite values at {np.flatnonzero(~np.isfinite(arr))[:10].tolist()}")
    return arr


def _check_bootstrap(n_resamples: int, confidence: float) -> None:
    if n_resamples < MIN_RESAMPLES:
        raise ValueError(f"n_resamples must be >= {MIN_RESAMPLES}, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _bootstrap_means(arr: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    means = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // arr.size)
    for lo in range(0, n_resamples, chunk):
        hi = min(n_resamples, lo + chunk)
        means[lo:hi] = arr[rng.integers(0, arr.size, size=(hi - lo, arr.size))].mean(axis=1)
    return means


def _interval(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(stats, [a, 1.0 - a])
    return float(lo), float(hi)


def _difference_se(a: np.ndarray, b: np.ndarray, paired: bool, paired_needs: str) -> float:
    """Standard error of ``mean(a) - mean(b)``: ``sd(a - b) / sqrt(n)`` when paired, else
    ``sqrt(var_a / n_a + var_b / n_b)`` (sample variances)."""
    if not paired:
        return float(math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size))
    if a.size != b.size:
        raise ValueError(f"paired=True needs {paired_needs}, got {a.size} and {b.size}")
    return float((a - b).std(ddof=1) / math.sqrt(a.size))


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = MIN_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """``(mean, low, high)``: percentile bootstrap interval of the mean."""
    _check_bootstrap(n_resamples, confidence)
    arr = _vector(values, "values")
    means = _bootstrap_means(arr, n_resamples, np.random.default_rng(seed))
    return (float(arr.mean()), *_interval(means, confidence))


@dataclass
class OracleAdvantage:
    """Advantage of a policy over the SFT policy under the oracle reward, with its interval."""

    mean_policy: float
    mean_sft: float
    advantage: float
    ci_low: float
    ci_high: float
    std_error: float
    n_policy: int
    n_sft: int
    paired: bool
    n_resamples: int
    seed: int
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def oracle_advantage(
    policy_rewards: Sequence[float] | np.ndarray,
    sft_rewards: Sequence[float] | np.ndarray,
    *,
    paired: bool = True,
    n_resamples: int = MIN_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> OracleAdvantage:
    """Mean oracle reward of the policy minus the SFT policy's, with a bootstrap interval."""
    _check_bootstrap(n_resamples, confidence)
    p = _vector(policy_rewards, "policy_rewards")
    s = _vector(sft_rewards, "sft_rewards")
    se = _difference_se(p, s, paired, "one reward per prompt for both policies")
    rng = np.random.default_rng(seed)
    if paired:
        stats = _bootstrap_means(p - s, n_resamples, rng)
    else:
        stats = _bootstrap_means(p, n_resamples, rng) - _bootstrap_means(s, n_resamples, rng)
    lo, hi = _interval(stats, confidence)
    return OracleAdvantage(
        float(p.mean()),
        float(s.mean()),
        float(p.mean() - s.mean()),
        lo,
        hi,
        se,
        int(p.size),
        int(s.size),
        paired,
        n_resamples,
        seed,
        confidence,
    )


@dataclass
class WaldTest:
    """Wald test of equal mean oracle reward (equivalently, equal advantage) of methods a and b."""

    difference: float
    std_error: float
    z: float
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wald_test(
    rewards_a: Sequence[float] | np.ndarray, rewards_b: Sequence[float] | np.ndarray, *, paired: bool = False
) -> WaldTest:
    """Two-sided Wald test of ``mean(a) = mean(b)`` (normal approximation)."""
    a = _vector(rewards_a, "rewards_a")
    b = _vector(rewards_b, "rewards_b")
    se = _difference_se(a, b, paired, "equal sizes")
    diff = float(a.mean() - b.mean())
    if se == 0.0:
        z = 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
    else:
        z = diff / se
    return WaldTest(diff, se, z, float(math.erfc(abs(z) / math.sqrt(2.0))))


def score_with_oracle(oracle: OracleFn, prompts: Sequence[Any], completions: Sequence[str]) -> np.ndarray:
    """Call ``oracle(prompts, completions)`` and check it returns one finite reward per completion."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    r = np.asarray(oracle(list(prompts), list(completions)), dtype=np.float64).reshape(-1)
    if r.size != len(completions):
        raise ValueError(f"oracle returned {r.size} rewards for {len(completions)} completions")
    if not np.all(np.isfinite(r)):
        raise ValueError(f"oracle returned non-finite rewards at {np.flatnonzero(~np.isfinite(r))[:10].tolist()}")
    return r


def reward_model_oracle(
    model: Any,
    tokenizer: Any,
    *,
    batch_size: int | Batching = 8,
    max_length: int | None = None,
    truncation: str = "keep_end",
    add_eos: bool = True,
) -> OracleFn:
    """An oracle callable backed by a sequence-classification reward model (distillation paper's
    oracle RM); completions are encoded by the rule of :mod:`core.eval.encoding`."""
    from core.eval.pairwise import score_sequences

    def oracle(prompts: Sequence[Any], completions: Sequence[str]) -> np.ndarray:
        seqs = [
            encode_completion(
                tokenizer, p, c, add_eos=add_eos, max_length=max_length, truncation=truncation, where=f"completion {i}"
            )
            for i, (p, c) in enumerate(zip(prompts, completions, strict=True))
        ]
        pad_id = resolve_pad_id(tokenizer, model)
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = pad_id
        return score_sequences(model, seqs, pad_id, batch_size)

    return oracle


@dataclass
class SampledRewards:
    """Sampled completions and their oracle rewards, one per prompt, in prompt order."""

    prompts: list[Any]
    completions: list[str]
    rewards: np.ndarray
    settings: GenerationSettings

    @property
    def mean(self) -> float:
        return float(self.rewards.mean())


def sample_and_score(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Any],
    oracle: OracleFn,
    settings: GenerationSettings | None = None,
) -> SampledRewards:
    """Sample one completion per held-out prompt (seeded) and score it with the oracle."""
    settings = settings or GenerationSettings()
    completions = generate_completions(model, tokenizer, prompts, settings)
    return SampledRewards(list(prompts), completions, score_with_oracle(oracle, prompts, completions), settings)


def heldout_prompts(ds: Any, n: int) -> list[Any]:
    """The first ``n`` distinct prompts of a split, in order (the same for every policy)."""
    seen, out = set(), []
    for p in ds["prompt"]:
        key = json.dumps(p, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(p)
        if len(out) == n:
            break
    return out


def _domain_prompts(rows: Any, n_per_domain: int) -> dict[str, list[Any]]:
    """The first ``n_per_domain`` distinct prompts of each domain (rows in order; a missing or empty
    domain is ``'unknown'``), domains sorted by name."""
    names = getattr(rows, "column_names", None)
    if names is None:
        raise ValueError(
            f"rows must be a datasets.Dataset with 'prompt' and 'domain' columns, got {type(rows).__name__}"
        )
    for col in ("prompt", "domain"):
        if col not in names:
            raise ValueError(f"rows have no {col!r} column (columns: {sorted(names)})")
    grouped: dict[str, list[Any]] = {}
    for prompt, domain in zip(rows["prompt"], rows["domain"], strict=True):
        grouped.setdefault(str(domain) if domain else "unknown", []).append(prompt)
    if not grouped:
        raise ValueError("rows are empty: no prompts to sample")
    return {d: heldout_prompts({"prompt": grouped[d]}, n_per_domain) for d in sorted(grouped)}


def _stratified_ci(
    arrays: Sequence[np.ndarray], n_resamples: int, seed: int, confidence: float
) -> tuple[float, float, float]:
    """``(mean, low, high)`` of the equal-weight mean of per-domain means: prompts are resampled within
    each domain (one seeded stream, domains in the given order) and the resampled means averaged."""
    rng = np.random.default_rng(seed)
    stats = np.mean([_bootstrap_means(a, n_resamples, rng) for a in arrays], axis=0)
    return (float(np.mean([a.mean() for a in arrays])), *_interval(stats, confidence))


def oracle_by_domain(
    model: Any,
    tokenizer: Any,
    rows: Any,
    oracle: OracleFn,
    settings: GenerationSettings | None = None,
    *,
    n_per_domain: int,
    reference_rewards: Mapping[str, Sequence[float]] | None = None,
    n_resamples: int = MIN_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Oracle reward of a policy's samples per domain, with percentile-bootstrap intervals (DR paper
    §5.2 (PPO judged in and out of distribution); the synthetic world's exact oracle is the judge).

    For each domain ``d`` (``rows['domain']``; missing or empty is ``'unknown'``) take the first
    ``n_per_domain`` distinct prompts in row order, sample one completion per prompt
    (:func:`sample_and_score`, one call per domain so a domain's samples do not depend on the other
    domains) and report ``mean_d = (1/n_d) sum_i r*(x_i, y_i)`` with the percentile bootstrap over
    prompts (:func:`bootstrap_mean_ci`, ``seed``).  ``overall`` is the mean over domains with EQUAL
    weight, ``(1/D) sum_d mean_d`` (not the pooled mean over prompts), its interval a stratified
    bootstrap (prompts resampled within each domain).  With ``reference_rewards`` (this function's
    ``"rewards"`` output for the reference policy: per domain, per prompt, in the same prompt order)
    each domain also gets the paired advantage ``mean_i (r*_pi,i - r*_ref,i)`` with the paired
    bootstrap interval (:func:`oracle_advantage`), and ``overall`` its equal-weight mean.

    ``settings.seed`` seeds the sampling, ``seed`` the bootstrap.  Returns::

        {"domains": {d: {"n", "mean", "ci_low", "ci_high"
                         [, "reference_mean", "advantage", "advantage_ci_low", "advantage_ci_high"]}},
         "overall": {"n_domains", "n", "mean", "ci_low", "ci_high"
                     [, "advantage", "advantage_ci_low", "advantage_ci_high"]},
         "rewards": {d: [per-prompt rewards]},
         "n_per_domain", "n_resamples", "seed", "confidence", "generation": settings.to_dict()}

    ValueError when ``rows`` lack a ``prompt`` or ``domain`` column, a domain has fewer than 2
    distinct prompts, or ``reference_rewards`` does not have the same domains and prompt counts.
    """
    if n_per_domain < 2:
        raise ValueError(f"n_per_domain must be >= 2 (a bootstrap needs 2 prompts), got {n_per_domain}")
    _check_bootstrap(n_resamples, confidence)
    settings = settings or GenerationSettings()
    prompts = _domain_prompts(rows, n_per_domain)
    small = {d: len(p) for d, p in prompts.items() if len(p) < 2}
    if small:
        raise ValueError(f"domains with fewer than 2 distinct prompts (a bootstrap needs 2): {small}")
    if reference_rewards is not None:
        if set(reference_rewards) != set(prompts):
            raise ValueError(
                f"reference_rewards domains {sorted(reference_rewards)} differ from the rows' domains "
                f"{sorted(prompts)} (pass the reference policy's oracle_by_domain(...)['rewards'])"
            )
        ref = {d: np.asarray(v, dtype=np.float64).reshape(-1) for d, v in reference_rewards.items()}
        counts = {d: (ref[d].size, len(p)) for d, p in prompts.items() if ref[d].size != len(p)}
        if counts:
            raise ValueError(f"reference_rewards vs prompts per domain differ in length (reference, policy): {counts}")

    rewards = {d: sample_and_score(model, tokenizer, p, oracle, settings).rewards for d, p in prompts.items()}
    boot = {"n_resamples": n_resamples, "seed": seed, "confidence": confidence}
    domains: dict[str, dict[str, Any]] = {}
    for d, r in rewards.items():
        mean, lo, hi = bootstrap_mean_ci(r, **boot)
        domains[d] = {"n": int(r.size), "mean": mean, "ci_low": lo, "ci_high": hi}
    mean, lo, hi = _stratified_ci(list(rewards.values()), n_resamples, seed, confidence)
    overall: dict[str, Any] = {
        "n_domains": len(rewards),
        "n": int(sum(r.size for r in rewards.values())),
        "mean": mean,
        "ci_low": lo,
        "ci_high": hi,
    }
    if reference_rewards is not None:
        for d, r in rewards.items():
            adv = oracle_advantage(r, ref[d], paired=True, **boot)
            domains[d].update(
                reference_mean=adv.mean_sft,
                advantage=adv.advantage,
                advantage_ci_low=adv.ci_low,
                advantage_ci_high=adv.ci_high,
            )
        a_mean, a_lo, a_hi = _stratified_ci([r - ref[d] for d, r in rewards.items()], n_resamples, seed, confidence)
        overall.update(advantage=a_mean, advantage_ci_low=a_lo, advantage_ci_high=a_hi)
    return {
        "domains": domains,
        "overall": overall,
        "rewards": {d: r.tolist() for d, r in rewards.items()},
        "n_per_domain": n_per_domain,
        **boot,
        "generation": settings.to_dict(),
    }


def load_oracle(
    path: str, kind: str, batch_size: int | Batching = 16, max_length: int = 1024, device: Any = None
) -> OracleFn:
    """The distillation experiments' oracle r*(x, y) as a batch scorer: the synthetic world's
    exact reward (``kind`` 'exact', ``path`` its oracle.json) or an oracle reward model trained on
    the full preference set (``kind`` 'model', ``path`` its folder; distillation paper §6.1) on
    ``device`` (the job's: core.jobs.run.job_device; the CPU when None)."""
    if kind == "exact":
        from core.data.synthetic_oracle import OracleConfig, oracle_reward

        with open(path, encoding="utf-8") as fh:
            cfg = OracleConfig.from_dict(json.load(fh)["oracle"])

        def exact(prompts: Sequence[Any], completions: Sequence[Any]) -> np.ndarray:
            return np.asarray([oracle_reward(p, c, cfg) for p, c in zip(prompts, completions, strict=True)])

        return exact
    if not os.path.isdir(path):
        raise ValueError(f"oracle reward model folder {path} does not exist")
    from core.models import load_reward_model, load_tokenizer

    model = load_reward_model(path).to(device or "cpu").eval()
    return reward_model_oracle(model, load_tokenizer(path), batch_size=batch_size, max_length=max_length)
