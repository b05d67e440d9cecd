"""The data jobs of the workflow, one per rule, ``job -> pairs files`` (core.data's stages):

* :func:`load_dataset` — a hub id or local file in its native format -> the normalised schema;
* :func:`filter_sources`, :func:`split`, :func:`subsample` — the DR paper's training variants
  (Table 8), the train/val/test split by seed, the n-pair subset of one experiment;
* :func:`relabel`, :func:`bias_subsample`, :func:`ensemble_subsets`, :func:`score_targets` — the
  distillation paper's oracle-relabelled pool, D_bias with a ``bias`` share of longer-preferred
  pairs, e-DPO's D_{bias,b} subsets (§6.1), and the offline target rewards (eqs. 7 and 11).

Each writes atomically and logs its row counts to one MLflow run.
"""

from __future__ import annotations

import core.data as stages
from core.data.io import read_pairs, write_dropped_rows, write_pairs
from core.jobs.job import Job
from core.jobs.metrics import log_metrics_file, tracked_run, write_job_metrics, write_json
from core.jobs.run import job_device, set_torch_threads

#: a data source inside the BIG-bench tasks, fetched once per machine (core.data.fetch_bigbench_tasks)
BIGBENCH_PREFIX = "bigbench:"


def load_dataset(job: Job) -> None:
    """Rule ``load_dataset``: bad rows fail or are dropped as the config says (``data.on_bad_rows``,
    at most ``data.max_drop_fraction`` of the records; no pair kept is always an error). Outputs:
    the pairs, the counts (``report``) and every dropped row's file, line and reason (``dropped``);
    a refused load writes its bad rows to ``<log>.dropped.jsonl`` (Snakemake removes a failed job's
    outputs but keeps its log folder)."""
    spec = job.params["spec"]
    source = spec["source"]
    if source.startswith(BIGBENCH_PREFIX):
        source = str(stages.fetch_bigbench_tasks() / source[len(BIGBENCH_PREFIX) :].lstrip("/"))
    with tracked_run(job) as run:
        try:
            ds, report = stages.load_preferences(
                source,
                spec["format"],
                spec.get("split"),
                hub_name=spec.get("hub_name"),
                on_bad_rows=job.params["on_bad_rows"],
                max_drop_fraction=job.params["max_drop_fraction"],
                return_report=True,
                **dict(spec.get("options") or {}),
            )
        except stages.LoadError as err:
            if job.log:
                print(f"every bad row: {write_dropped_rows(err.report, job.log[0] + '.dropped.jsonl')}", flush=True)
            raise
        if spec.get("max_rows") and len(ds) > int(spec["max_rows"]):
            ds = stages.subsample(ds, int(spec["max_rows"]), seed=0)
        write_pairs(ds, job.out("data"))
        write_json(job.out("report"), report.to_dict())
        write_dropped_rows(report, job.out("dropped"))
        run.log_metrics({"rows": len(ds), "records": report.n_records, "ties": report.n_ties,
                         "dropped": report.n_dropped, "skipped": report.n_skipped})  # fmt: skip


def filter_sources(job: Job) -> None:
    """Rule ``filter_sources``: drop (exclude) or keep (include) whole sources of the training pool
    (the DR paper's "no hh-rlhf" variants); a variant naming a source the pool lacks, or keeping
    no row, fails naming the variant."""
    spec, variant = job.params["spec"], job.wildcards["variant"]
    ds = read_pairs(job.inp("0"))
    with tracked_run(job) as run:
        out = stages.filter_sources(ds, include=spec.get("include"), exclude=spec.get("exclude") or [],
                                    what=f"variant {variant!r} (config key data.variants.{variant})")  # fmt: skip
        write_pairs(out, job.out("0"))
        run.log_metrics({"rows_in": len(ds), "rows_out": len(out)})


def split(job: Job) -> None:
    """Rules ``split_dr`` / ``split_distill``: the deterministic train/val/test split by seed; the
    test split is the in-distribution evaluation set."""
    spec = job.params["spec"]
    ds = read_pairs(job.inp("0"))
    val, test = float(spec["val"]), float(spec["test"])
    with tracked_run(job) as run:
        parts = stages.split_dataset(ds, {"train": 1.0 - val - test, "val": val, "test": test}, seed=int(spec["seed"]))
        for name in ("train", "val", "test"):
            write_pairs(parts[name], job.out(name))
        run.log_metrics({f"rows_{k}": len(parts[k]) for k in ("train", "val", "test")})


def subsample(job: Job) -> None:
    """Rule ``subsample_dr``: the n-pair training subset of one experiment (the DR paper's 400K pairs
    for reward models and DPO, 5K for PPO); n at least the split's size keeps the whole split."""
    ds = read_pairs(job.inp("0"))
    n = int(job.params["n"])
    with tracked_run(job) as run:
        out = ds if n >= len(ds) else stages.subsample(ds, n, seed=int(job.params["seed"]))
        write_pairs(out, job.out("0"))
        run.log_metrics({"rows_in": len(ds), "rows_out": len(out)})


def relabel(job: Job) -> None:
    """Rule ``relabel``: every pair relabelled by the oracle (distillation paper §6.1): chosen = the
    response with the higher oracle reward, exact ties dropped, the flip rate recorded; only the
    normalised columns are kept."""
    from core.eval.encoding import Batching
    from core.eval.oracle import load_oracle

    set_torch_threads(job)
    ds = read_pairs(job.inp("data"))
    ds = ds.select_columns([c for c in stages.NORMALISED_COLUMNS if c in ds.column_names])
    ev = job.params["eval"]
    scorer = load_oracle(job.inp("oracle"), job.params["oracle"]["kind"], Batching.of(ev), int(ev["max_length"]),
                         job_device(job))  # fmt: skip
    with tracked_run(job) as run:
        out, flip_rate, ties = stages.oracle_relabel(ds, scorer, batch_size=int(ev["batch_size"]))
        write_pairs(out, job.out("data"))
        metrics = {"flip_rate": flip_rate, "ties_dropped": ties, "rows_in": len(ds), "rows_out": len(out),
                   "longer_preferred_fraction_words": stages.longer_preferred_fraction(out, str.split)}  # fmt: skip
        write_job_metrics(job, job.out("metrics"), metrics, model_path=job.inp("oracle"),
                          dataset_path=job.inp("data"), counts={"pairs": len(out), "ties": int(ties)}, seed=0,
                          run_id=run.run_id)  # fmt: skip
        log_metrics_file(run, job.out("metrics"), metrics)


def bias_subsample(job: Job) -> None:
    """Rule ``bias_subsample``: D_bias (the paper's D_rho), n pairs of which a ``bias`` share prefer
    the longer response (at least ``longer`` more tokens under the policy's tokenizer; §6.1)."""
    from core.models import load_tokenizer

    tok = load_tokenizer(job.model_source("tokenizer"))
    ds = read_pairs(job.inp("data"))
    margin = float(job.params["longer"])
    with tracked_run(job) as run:
        out = stages.length_bias_subsample(ds, float(job.params["bias"]), int(job.params["n"]), tok,
                                           int(job.params["seed"]), margin=margin)  # fmt: skip
        write_pairs(out, job.out("0"))
        run.log_metrics({"rows": len(out), "pool_longer_preferred": stages.longer_preferred_fraction(ds, tok, margin),
                         "longer_preferred": stages.longer_preferred_fraction(out, tok, margin)})  # fmt: skip


def ensemble_subsets(job: Job) -> None:
    """Rule ``ensemble_subsets``: D_{bias,b} for every b of e-DPO's reward ensemble, subsamples of
    D_bias whose longer-preferred share is b (distillation paper §6.1)."""
    from core.models import load_tokenizer

    tok = load_tokenizer(job.model_source("tokenizer"))
    ds = read_pairs(job.inp("data"))
    bs = [float(b) for b in job.params["bs"]]
    outputs = [job.output[k] for k in sorted(job.output, key=int)]
    margin = float(job.params["longer"])
    with tracked_run(job) as run:
        subsets = stages.ensemble_subsets(ds, float(job.wildcards["bias"]), bs, int(job.params["n"]), tok,
                                          int(job.params["seed"]), margin=margin)  # fmt: skip
        for b, path in zip(bs, outputs, strict=True):
            write_pairs(subsets[b], path)
            run.log_metrics({f"longer_preferred.b{b:g}": stages.longer_preferred_fraction(subsets[b], tok, margin)})


def score_targets(job: Job) -> None:
    """Rule ``score_targets``: offline target rewards of D_bias for distillation (eqs. 7 and 11):
    ``target_chosen`` / ``target_rejected`` from r_bias, ``target_chosen_k`` / ``target_rejected_k``
    from the k-th ensemble member r_{bias,b_k} (the order of ``distill.ensemble_b``)."""
    set_torch_threads(job)
    from core.eval.encoding import Batching, encode_pairs
    from core.eval.pairwise import reward_model_pairwise
    from core.models import load_reward_model, load_tokenizer

    ev = job.params["eval"]
    ds = read_pairs(job.inp("data"))
    models = [("", job.inp("full"))] + [(f"_{k}", path) for k, path in enumerate(job.inputs("members"))]
    device = job_device(job)
    with tracked_run(job) as run:
        enc = None
        for suffix, path in models:
            tok = load_tokenizer(path)
            if enc is None:
                enc = encode_pairs(ds, tok, max_length=int(ev["max_length"]), source=job.inp("data"))
            model = load_reward_model(path).to(device).eval()
            res = reward_model_pairwise(model, tok, enc, batch_size=Batching.of(ev))
            ds = ds.add_column(f"target_chosen{suffix}", [float(x) for x in res.score_chosen])
            ds = ds.add_column(f"target_rejected{suffix}", [float(x) for x in res.score_rejected])
            run.log_metrics({f"target_accuracy{suffix or '_full'}": res.accuracy})
        write_pairs(ds, job.out("0"))
