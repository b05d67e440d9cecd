"""The training jobs of the workflow: one function per trainer, ``job -> model folder + train.json``.

* reward models (BTL, DR RM: DR paper Alg. 1) on core.trainers.reward;
* the SFT reference policy on trl's SFTTrainer;
* the DPO family (DPO, IPO, DR-DPO Alg. 3, d-/p-/dp-/e-DPO: distillation paper eqs. 7-13) on
  core.trainers.dpo, with the Figure B.1 probes and e-DPO's member shares (Figure B.3); a
  distillation policy is scored by the oracle in the same process (one start-up instead of two);
* PPO / DR-PPO vA, vB (DR paper §5.2) on core.trainers.ppo.

Each writes its model atomically (rank 0), a metrics file with the step curves, and one MLflow run.
A reward, SFT or DPO job with an input ``val`` also evaluates that validation set during training
(``core.jobs.trainer_setup.eval_args``): its metrics file then has the validation loss curve
``metrics.curves.eval_loss`` (the uniform-weight loss, DR models included). Every trainer
checkpoints into the job's checkpoint folder and a rerun of a killed job resumes from the newest
complete checkpoint (core.jobs.trainer_setup; "[checkpoint] resumed from step N" in the log).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from core.data.io import read_pairs
from core.jobs.checkpoints import checkpoint_dir, checkpoint_step, complete_checkpoints_callback, latest_checkpoint
from core.jobs.job import Job, rank
from core.jobs.metrics import log_metrics_file, run_id_of, tracked_run, write_job_metrics
from core.jobs.run import job_device, model_dtype, set_torch_threads
from core.jobs.trainer_setup import (
    checkpoint_args,
    curves,
    eval_args,
    guard,
    last_values,
    mean_logged_loss,
    member_fractions,
    pairs_only,
    ppo_checkpoint_args,
    robust_summary,
    save_final,
    trainer_args,
)


def _resume_point(trainer: Any, out: str) -> str | None:
    """The newest complete checkpoint of this job (core.jobs.trainer_setup), announced in the log;
    a resumed run does not evaluate again at its first step (that point is in its history)."""
    path = latest_checkpoint(checkpoint_dir(out))
    if path is not None:
        print(f"[checkpoint] resumed from step {checkpoint_step(path)} ({path})", flush=True)
        if getattr(trainer.args, "eval_on_start", False):
            trainer.args.eval_on_start = False
    return path


def _fit(job: Job, trainer: Any, tok: Any, out: str, plain_final: bool = False) -> dict | None:
    """Train (from the newest complete checkpoint, if a killed attempt left one), save the model
    atomically, and return the metrics every trainer shares (rank 0; None on other ranks): final
    loss, steps, last logged values, step curves, DR weight statistics."""
    trainer.train(resume_from_checkpoint=_resume_point(trainer, out))
    save_final(trainer.model, tok, out, trainer)
    if rank() != 0:
        return None
    series = curves(trainer.state.log_history)
    last = {k: v for k, v in series.items() if "/" not in k} if plain_final else series
    metrics = {"train_loss": mean_logged_loss(trainer.state.log_history), "steps": int(trainer.state.global_step)}
    metrics["final"] = last_values(last)
    if hasattr(trainer, "robust_history"):
        metrics["dr"] = robust_summary(trainer.robust_history)
    metrics["curves"] = series
    return metrics


def _finish(job: Job, metrics: dict, run: Any, out: str, counts: dict, seed: int, logged: dict) -> None:
    """The metrics file (naming the MLflow run) and its numbers in the run."""
    write_job_metrics(
        job,
        job.out("metrics"),
        metrics,
        model_path=out,
        dataset_path=job.inp("data"),
        counts=counts,
        seed=seed,
        run_id=run.run_id,
    )
    log_metrics_file(run, job.out("metrics"), logged)


def _validation(job: Job, load: Callable[[str], Any]) -> Any:
    """The job's validation set (input ``val``) read like its training data, or None without one;
    its first ``params.curve_pairs`` rows when set (the learning curve's points cost evaluations)."""
    if not job.inputs("val"):
        return None
    val, n = load(job.inp("val")), job.params.get("curve_pairs")
    return val.select(range(min(int(n), len(val)))) if n else val


def _eval_fields(job: Job, config_cls: Any, val: Any, n_train: int) -> dict[str, Any]:
    return {} if val is None else eval_args(job, config_cls, n_train)


def _pairs(path: str) -> Any:
    return pairs_only(read_pairs(path))


def _encoded_like_eval(tok: Any, load: Callable[[str], Any], **kw: Any) -> Callable[[str], Any]:
    """``load`` whose rows trl tokenises by the evaluation's encoding rule (core.eval.encoding:
    string rows through the tokenizer's chat template, same-role turns merged, else separated text)."""
    from core.eval.encoding import training_rows

    return lambda path: training_rows(load(path), tok, **kw)


def _trainer(job: Job, classes: tuple[Any, Any], out: str, data: Any, val: Any, run: Any, **kw: Any) -> Any:
    """A Trainer of ``classes = (trainer class, its config class)`` for this job: arguments from the
    config slice plus validation (``val``), checkpoints in the job's checkpoint folder and ``fields``
    (the trainer's own settings), the MLflow ``run``'s step callback, its throughput and memory
    (core.trainers.throughput) and ``callbacks``, and the non-finite guard. ``kw`` holds the
    trainer's other arguments (model, processing_class, ref_model), ``fields`` and ``callbacks``. The
    models run their forward in ``resources.train.length_buckets`` length buckets (core.trainers.bucketing)."""
    from core.trainers.bucketing import bucket_forward
    from core.trainers.throughput import ThroughputMeter

    trainer_cls, config_cls = classes
    seed, fields = int(job.params["seed"]), kw.pop("fields", {})
    evaluation = _eval_fields(job, config_cls, val, len(data))
    saving = checkpoint_args(job, config_cls, len(data))
    args = trainer_args(job, config_cls, checkpoint_dir(out), seed, **evaluation, **saving, **fields)
    callbacks = [run.callback(), *kw.pop("callbacks", []), complete_checkpoints_callback()]
    for role in ("model", "ref_model"):
        if kw.get(role) is not None:
            bucket_forward(kw[role], job.length_buckets)
    trainer = guard(trainer_cls(args=args, train_dataset=data, eval_dataset=val, callbacks=callbacks, **kw))
    return ThroughputMeter(run.log_step_metrics, run.set_tags).attach(trainer)


def train_reward(job: Job) -> None:
    """BTL (divergence none / rho 0) or DR reward model (DR paper Alg. 1)."""
    set_torch_threads(job)
    from core.models import load_reward_model, load_tokenizer
    from core.trainers.reward import DRRewardConfig, DRRewardTrainer

    seed, dr, spec = int(job.params["seed"]), job.params["dr"], job.params["model_spec"]
    dtype = model_dtype(spec.get("dtype"), job_device(job))  # the config's, where the device computes it
    base = job.model_source("base")
    tok = load_tokenizer(base)
    load = _encoded_like_eval(tok, _pairs)
    data = load(job.inp("data"))
    val = _validation(job, load)
    model = load_reward_model(base, dtype=dtype, lora=spec.get("lora"), seed=seed)
    out = job.out("model")
    with tracked_run(job) as run:
        classes = (DRRewardTrainer, DRRewardConfig)
        trainer = _trainer(job, classes, out, data, val, run, model=model, processing_class=tok, fields=dr)
        metrics = _fit(job, trainer, tok, out)
        if metrics is not None:
            logged = {k: metrics[k] for k in ("train_loss", "steps", "dr")}
            _finish(job, metrics, run, out, {"pairs": len(data)}, seed, logged)


def demonstrations(ds: Any) -> Any:
    """prompt/completion rows: the dataset's own, or the chosen responses of preference pairs."""
    if "completion" in ds.column_names:
        return ds.select_columns(["prompt", "completion"])
    if "chosen" in ds.column_names:
        return ds.select_columns(["prompt", "chosen"]).rename_column("chosen", "completion")
    raise ValueError(f"SFT dataset has neither a 'completion' nor a 'chosen' column: {ds.column_names}")


def sft_data(path: str) -> Any:
    """A causal-LM training set: a pretraining corpus (``.jsonl``, one JSON string per line) as
    ``text`` rows, or a dataset's demonstrations (:func:`demonstrations`)."""
    if path.endswith(".jsonl"):
        import datasets

        with open(path, encoding="utf-8") as fh:
            texts = [json.loads(line) for line in fh if line.strip()]
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"{path}: expected one JSON string per line (a non-empty corpus)")
        return datasets.Dataset.from_dict({"text": texts})
    return demonstrations(read_pairs(path))


def _sft_loader(tok: Any) -> Callable[[str], Any]:
    """:func:`sft_data` with demonstrations encoded like evaluation rows (a corpus stays plain text)."""
    demos = _encoded_like_eval(tok, sft_data, completions=("completion",))
    return lambda path: sft_data(path) if path.endswith(".jsonl") else demos(path)


def train_sft(job: Job) -> None:
    """The reference policy pi_ref: SFT of the base LM, loss on completion tokens only."""
    set_torch_threads(job)
    from trl import SFTConfig, SFTTrainer

    from core.models import load_causal_lm, load_tokenizer

    seed, spec, base = int(job.params["seed"]), job.params["model_spec"], job.model_source("base")
    dtype = model_dtype(spec.get("dtype"), job_device(job))  # the config's, where the device computes it
    tok = load_tokenizer(base)
    load = _sft_loader(tok)
    data = load(job.inp("data"))
    val = _validation(job, load)
    model = load_causal_lm(base, dtype=dtype, lora=spec.get("lora"))
    out = job.out("model")
    with tracked_run(job) as run:
        classes = (SFTTrainer, SFTConfig)
        trainer = _trainer(job, classes, out, data, val, run, model=model, processing_class=tok)
        metrics = _fit(job, trainer, tok, out)
        if metrics is not None:
            logged = {k: metrics[k] for k in ("train_loss", "steps")}
            _finish(job, metrics, run, out, {"examples": len(data)}, seed, logged)


def _probe_callback(job: Job, ref: Any, tok: Any, seed: int, run: Any) -> Any:
    """Figure B.1's probes: log-likelihoods of preferred / dispreferred validation responses and
    KL(pi_ref || pi) on samples of pi_ref, every ``probes.every`` steps."""
    from core.eval.encoding import Batching
    from core.eval.generation import GenerationSettings
    from core.eval.probes import LikelihoodProbeCallback, build_probe_set

    p, max_length = job.params["probes"], job.params["train"].get("max_length")
    rows = read_pairs(job.inp("probes"))
    rows = rows.select(range(min(int(p["n"]), len(rows))))
    # batches of at most the evaluation's (scoring: its rows and tokens) and the sampler's
    # (generation) batch size, not all probes at once: memory bounded whatever probes.n is
    score_batch = Batching.of(job.params["eval"], rows=int(p["n"]))
    sample_batch = min(int(p["n"]), int(job.params["generation"]["batch_size"]))
    settings = GenerationSettings(max_new_tokens=int(max_length or 128) // 4, seed=seed, batch_size=sample_batch)
    probes = build_probe_set(ref, tok, rows, sample_settings=settings, batch_size=score_batch, max_length=max_length)
    return LikelihoodProbeCallback(probes, int(p["every"]), log_fn=lambda m, s: run.log_step_metrics(m, step=s))


def train_dpo(job: Job) -> None:
    """A DPO-family policy from pi_ref; ``params.loss`` holds DRDPOConfig's own fields."""
    set_torch_threads(job)
    from core.models import load_causal_lm, load_tokenizer
    from core.trainers.dpo import DRDPOConfig, DRDPOTrainer, resolve_target_columns

    seed, loss, spec = int(job.params["seed"]), dict(job.params["loss"]), job.params["model_spec"]
    device = job_device(job)
    dtype = model_dtype(spec.get("dtype"), device)  # the config's, where the device computes it
    members = list(job.params.get("members") or [])
    reference = job.model_source("reference")
    tok = load_tokenizer(reference)
    raw = read_pairs(job.inp("data"))
    chosen, rejected = resolve_target_columns(raw.column_names, loss["loss_type"], "target_chosen", "target_rejected")
    data = _encoded_like_eval(tok, lambda _: pairs_only(raw, (*chosen, *rejected)))(job.inp("data"))
    # prompt/chosen/rejected only: without target rewards, d-/dp-/e-DPO are validated by the DPO
    # loss of the labelled pair (core.trainers.dpo, "Evaluation")
    val = _validation(job, _encoded_like_eval(tok, _pairs))
    policy = load_causal_lm(reference, dtype=dtype, lora=spec.get("lora"))
    ref = load_causal_lm(reference, dtype=dtype).to(device).eval()  # probes are built on it
    out = job.out("model")
    with tracked_run(job) as run:
        probe_cb = _probe_callback(job, ref, tok, seed, run) if job.params.get("probes") else None
        callbacks = [probe_cb] if probe_cb is not None else []
        loss["loss_type"] = [loss["loss_type"]]
        # pi_ref is frozen: its log-probs of every training and validation pair once (trl), not at
        # every step and evaluation (the same values; a config's train block may say otherwise)
        if "precompute_ref_log_probs" not in job.params["train"]:
            loss["precompute_ref_log_probs"] = True
        classes = (DRDPOTrainer, DRDPOConfig)
        trainer = _trainer(job, classes, out, data, val, run, model=policy, ref_model=ref, processing_class=tok,
                           ref_logps_cache=job.cache.setdefault("ref_logps", {}), fields=loss,
                           callbacks=callbacks)  # fmt: skip
        del ref  # the trainer holds pi_ref only where it samples from it (DRDPOTrainer._release_reference)
        metrics = _fit(job, trainer, tok, out, plain_final=True)
        if metrics is not None:
            if probe_cb is not None and probe_cb.history:
                last = probe_cb.history[-1]
                metrics["probes"] = {k.split("/", 1)[1]: v for k, v in last.items() if k.startswith("probe/")}
            if members:
                metrics["member_fraction"], metrics["member_step_fraction"] = member_fractions(
                    trainer.robust_history, members
                )
            _finish(
                job, metrics, run, out, {"pairs": len(data)}, seed, {k: v for k, v in metrics.items() if k != "curves"}
            )
            if job.params.get("oracle"):  # the distillation rule's oracle settings: score the policy's samples
                from core.jobs.evaluate import score_oracle_splits

                score_oracle_splits(job, run, out, train_run=run.run_id, over_sft=True)


def train_ppo(job: Job) -> None:
    """PPO / DR-PPO against the reward model trained with the same divergence and rho; policy and
    value model start from pi_ref and that reward model (which shares the policy's tokenizer)."""
    set_torch_threads(job)
    from core.atomic import atomic_directory
    from core.eval.encoding import stop_token_ids
    from core.models import load_causal_lm, load_reward_model, load_tokenizer
    from core.trainers.ppo import DRPPOConfig, DRPPOTrainer, tokenize_prompts
    from core.trainers.throughput import ThroughputMeter

    seed, dr, spec = int(job.params["seed"]), job.params["dr"], job.params["model_spec"]
    dtype = model_dtype(spec.get("dtype"), job_device(job))  # the config's, where the device computes it
    reference, reward_dir = job.model_source("reference"), job.inp("reward")
    train = dict(job.params["train"])
    max_prompt = train.pop("max_prompt_length", None)
    tok = load_tokenizer(reference)
    tok.padding_side = "left"
    load = _encoded_like_eval(tok, lambda path: read_pairs(path).select_columns(["prompt"]), completions=())
    prompts = tokenize_prompts(load(job.inp("data")), tok, max_prompt_length=max_prompt)
    policy = load_causal_lm(reference, dtype=dtype, lora=spec.get("lora"))
    ref = None if spec.get("lora") else load_causal_lm(reference, dtype=dtype).eval()
    reward = load_reward_model(reward_dir).eval()
    # the critic trains all its weights: float32 master weights (a bf16 config computes in bf16 by
    # autocast), so AdamW's small updates are not rounded away as they would be in bf16 weights
    value = load_reward_model(reward_dir, dtype="float32")
    out = job.out("model")
    with tracked_run(job, {"reward_model_run": run_id_of(job.inp("reward_metrics"))}) as run:
        saving = ppo_checkpoint_args(train, job.nproc)
        # a response ends at its turn's end: the chat template's end-of-turn token where it is not eos
        stops = stop_token_ids(tok)
        stop = {"stop_token": "eos"} if len(stops) == 1 else {"stop_token_id": stops[-1]}
        args = trainer_args(job, DRPPOConfig, checkpoint_dir(out), seed, train=train, **stop, **saving, **dr)
        trainer = DRPPOTrainer(
            args=args,
            processing_class=tok,
            model=policy,
            ref_model=ref,
            reward_model=reward,
            train_dataset=prompts,
            value_model=value,
            callbacks=[run.callback(), complete_checkpoints_callback()],
        )
        trainer.throughput = ThroughputMeter(run.log_step_metrics, run.set_tags)  # rollouts, phases, stops
        trainer.add_callback(trainer.throughput)
        final = trainer.train(resume_from_checkpoint=_resume_point(trainer, out))
        if rank() != 0:
            # collective under DeepSpeed/FSDP; only rank 0 writes (others at most create the folder)
            trainer.save_model(args.output_dir)
        else:
            with atomic_directory(out) as tmp:
                trainer.save_model(str(tmp))
            series = curves(trainer.state.log_history)
            metrics = {
                "updates": int(trainer.state.global_step),
                "final": dict(final),
                "curves": series,
                "last": last_values(series),
            }
            _finish(job, metrics, run, out, {"prompts": len(prompts)}, seed, {"updates": metrics["updates"]})
