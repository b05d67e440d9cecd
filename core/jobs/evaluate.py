"""The evaluation jobs of the workflow.

* :func:`eval_pairs` — pairwise accuracy of a reward model or a policy on every benchmark of the
  DR tables (core.eval.benchmarks), one metrics file per benchmark;
* :func:`score_oracle_splits` — oracle reward of policy samples on held-out prompts (distillation paper
  §6): one seeded completion per prompt scored by the oracle; for a trained policy the advantage
  mean r*(pi) - mean r*(SFT) with a paired percentile-bootstrap 95% interval, plus the per-prompt
  rewards the Wald tests of Figure 2 compare.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from core.data.io import read_pairs
from core.jobs.job import Job
from core.jobs.metrics import log_metrics_file, run_id_of, tracked_run, write_job_metrics
from core.jobs.run import job_device, set_torch_threads


def _benchmark_cache(job: Job, tok: Any, reference: str | None) -> dict:
    """Each benchmark's encoding and pi_ref's log-probs of it, computed once for every seed of the
    job (core.eval.benchmarks.evaluate_benchmark's ``cache``, kept in ``job.cache``): the cache of
    one tokenizer (by its whole definition: vocabulary, rules, special tokens, chat template) and
    reference model; a fresh one for a tokenizer without a fast backend."""
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        return {}
    text = "\0".join([backend.to_str(), str(tok.chat_template), str(tok.special_tokens_map), tok.padding_side])
    return job.cache.setdefault("benchmarks", {}).setdefault((hashlib.sha256(text.encode()).hexdigest(), reference), {})


def eval_pairs(job: Job) -> None:
    """Score the job's model (``params.kind``: reward_model or policy) on ``params.benches``."""
    set_torch_threads(job)
    from core.eval.benchmarks import evaluate_benchmark
    from core.eval.encoding import Batching
    from core.models import load_causal_lm, load_reward_model, load_tokenizer

    model_dir, ev, device = job.inp("model"), job.params["eval"], job_device(job)
    tok = load_tokenizer(model_dir)
    if job.params["kind"] == "reward_model":
        model, ref = load_reward_model(model_dir).to(device).eval(), None
    else:
        model = load_causal_lm(model_dir).to(device).eval()
        ref = load_causal_lm(job.model_source("reference")).to(device).eval()
    cache = _benchmark_cache(job, tok, None if ref is None else job.model_source("reference"))
    train_run = run_id_of(job.inp("train"))
    seed = int(job.wildcards.get("seed", 0))
    with tracked_run(job, train_run_id=train_run) as run:
        for name, bench in job.params["benches"].items():
            metrics, n = evaluate_benchmark(
                read_pairs(job.inp(name)),
                bench,
                tok,
                model,
                ref,
                batch_size=Batching.of(ev),
                max_length=int(ev["max_length"]),
                ties=ev["ties"],
                source=job.inp(name),
                degenerate_std=float(ev["degenerate_std"]),
                cache=cache,
            )
            out = job.out(name)
            write_job_metrics(
                job,
                out,
                metrics,
                model_path=model_dir,
                dataset_path=job.inp(name),
                counts={"pairs": n},
                seed=seed,
                run_id=run.run_id,
                train_run_id=train_run,
                extra={"benchmark": name, "label": bench.get("label", name)},
            )
            log_metrics_file(run, out, {name: metrics})
        if job.params.get("oracle_domains"):  # eval_ppo: the oracle reward of the policy's samples per domain
            score_oracle_domains(job, run, model, tok, train_run)


def score_oracle_domains(job: Job, run: Any, model: Any, tok: Any, train_run: str) -> None:
    """A policy judged by the oracle reward of its samples per domain (DR paper §5.2; the world's
    oracle is the judge): in distribution (the variant's test prompts, ``oracle_id``) and out of
    distribution (``oracle_ood``), each domain's mean with its bootstrap interval, the mean over
    domains, and the advantage over pi_ref's samples on the same prompts (paired by prompt); pi_ref's
    are computed once for every seed of the job (``job.cache``)."""
    from core.eval.encoding import Batching
    from core.eval.generation import GenerationSettings
    from core.eval.oracle import load_oracle, oracle_by_domain
    from core.models import load_causal_lm, load_tokenizer

    p, ev, spec = job.params, job.params["eval"], job.params["oracle_domains"]
    device = job_device(job)
    oracle = load_oracle(job.inp("oracle"), p["oracle"]["kind"], Batching.of(ev), int(ev["max_length"]), device)
    settings = GenerationSettings.from_mapping(p["generation"])
    boot, n = p["bootstrap"], int(spec["n_per_domain"])
    reference = job.model_source("reference")
    reference_rewards = job.cache.setdefault("reference_oracle_rewards", {})
    for split, bench in (("id", "id"), ("ood", spec["ood"])):
        rows = read_pairs(job.inp(bench))
        key = (reference, job.inp(bench))
        if key not in reference_rewards:
            ref_model = load_causal_lm(reference).to(device).eval()
            reference_rewards[key] = oracle_by_domain(ref_model, load_tokenizer(reference), rows, oracle, settings,
                                                       n_per_domain=n, n_resamples=int(boot["n_resamples"]),
                                                       seed=int(boot["seed"]))  # fmt: skip
        ref = reference_rewards[key]
        metrics = oracle_by_domain(model, tok, rows, oracle, settings, n_per_domain=n,
                                   reference_rewards=ref["rewards"], n_resamples=int(boot["n_resamples"]),
                                   seed=int(boot["seed"]))  # fmt: skip
        metrics["reference"] = {"domains": ref["domains"], "overall": ref["overall"]}
        out = job.out(f"oracle_{split}")
        write_job_metrics(job, out, metrics, model_path=job.inp("model"), dataset_path=job.inp(bench),
                          counts={"prompts": metrics["overall"]["n"]}, seed=int(job.wildcards.get("seed", 0)),
                          run_id=run.run_id, train_run_id=train_run,
                          extra={"split": split, "benchmark": bench, "reference": reference})  # fmt: skip
        log_metrics_file(run, out, {f"oracle_{split}": {"overall": metrics["overall"]}})


def sample_sft(job: Job) -> None:
    """Oracle rewards of the SFT policy's samples (rule ``sample_sft``: the advantage baseline)."""
    set_torch_threads(job)
    with tracked_run(job) as run:
        score_oracle_splits(job, run, job.model_source("model"), train_run="", over_sft=False)


def score_oracle_splits(job: Job, run: Any, model_path: str, train_run: str, over_sft: bool) -> None:
    """Oracle reward of one seeded sample per held-out prompt of the val and test splits; a policy
    (``over_sft``) also gets the paired-bootstrap advantage over the SFT policy's rewards (inputs
    ``sft_val`` / ``sft_test``) and writes ``oracle_val`` / ``oracle_test``; the SFT policy itself
    (``sample_sft``) writes ``val`` / ``test``."""
    from core.eval.encoding import Batching
    from core.eval.generation import GenerationSettings
    from core.eval.oracle import heldout_prompts, load_oracle, oracle_advantage, sample_and_score
    from core.models import load_causal_lm, load_tokenizer

    p, ev, device = job.params, job.params["eval"], job_device(job)
    oracle = load_oracle(job.inp("oracle"), p["oracle"]["kind"], Batching.of(ev), int(ev["max_length"]), device)
    settings = GenerationSettings.from_mapping(p["generation"])
    tok = load_tokenizer(model_path)
    model = load_causal_lm(model_path).to(device).eval()
    for split in ("val", "test"):
        prompts = heldout_prompts(read_pairs(job.inp(split)), int(p["n_prompts"]))
        sampled = sample_and_score(model, tok, prompts, oracle, settings)
        metrics = {"mean_reward": sampled.mean, "rewards": sampled.rewards.tolist()}
        if over_sft:
            with open(job.inp(f"sft_{split}"), encoding="utf-8") as fh:
                sft_rewards = json.load(fh)["metrics"]["rewards"]
            boot = p["bootstrap"]
            adv = oracle_advantage(sampled.rewards, sft_rewards, paired=True,
                                   n_resamples=int(boot["n_resamples"]), seed=int(boot["seed"]))  # fmt: skip
            metrics.update(adv.to_dict())
        examples = [
            {"prompt": q, "completion": c, "reward": float(r)}
            for q, c, r in zip(sampled.prompts[:5], sampled.completions[:5], sampled.rewards[:5], strict=True)
        ]
        out = job.out(f"oracle_{split}" if over_sft else split)
        write_job_metrics(job, out, metrics, model_path=model_path, dataset_path=job.inp(split),
                          counts={"prompts": len(prompts)}, seed=int(job.wildcards.get("seed", settings.seed)),
                          run_id=run.run_id, train_run_id=train_run,
                          extra={"split": split, "generation": settings.to_dict(), "examples": examples})  # fmt: skip
        log_metrics_file(run, out, {split: {k: v for k, v in metrics.items() if k != "rewards"}})


def eval_reference(job: Job) -> None:
    """The reference rows (core.eval.reference) of one variant's benchmarks: ``<rule>_<bench>``."""
    from core.eval.benchmarks import evaluate_reference
    from core.eval.oracle import load_oracle

    ev, benches = job.params["eval"], job.params["benches"]
    oracle = load_oracle(job.inp("oracle"), "exact") if "oracle" in job.params["rules"] else None
    with tracked_run(job) as run:
        for rule in job.params["rules"]:
            for name, bench in benches.items():
                ds = read_pairs(job.inp(name))
                metrics, n = evaluate_reference(ds, bench, rule, ev["ties"], oracle if rule == "oracle" else None)
                out = job.out(f"{rule}_{name}")
                write_job_metrics(job, out, metrics, model_path=f"reference:{rule}", dataset_path=job.inp(name),
                                  counts={"pairs": n}, seed=0, run_id=run.run_id,
                                  extra={"benchmark": name, "rule": rule})  # fmt: skip
                log_metrics_file(run, out, {f"{rule}.{name}": metrics["accuracy"]})
