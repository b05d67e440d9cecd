"""Rule `train_ppo`: PPO / DR-PPO (DR paper §5.2) against the reward model trained with the same
divergence and rho. The robust weights q* = argmin_{D(q, 1/n) <= rho} sum_i q_i R_i over the
rollout batch of KL-regularised returns R_i = r(x_i, y_i) - beta KL_i; vA scales each sample's
advantages by n q_i, vB its policy loss (core.trainers.ppo). The policy and value model start
from pi_ref and the reward model; the reward model must share the policy's tokenizer."""

import shutil

from wf_io import read_pairs, run_id_of, write_job_metrics
from wf_job import Job, entrypoint, log_metrics_file, rank, set_torch_threads, tracked_run
from wf_train import curves, last_values, trainer_args


def main(job: Job) -> None:
    set_torch_threads(job)
    from core.atomic import atomic_directory
    from core.models import load_causal_lm, load_reward_model, load_tokenizer
    from core.trainers.ppo import DRPPOConfig, DRPPOTrainer, tokenize_prompts

    seed, dr, spec = int(job.params["seed"]), job.params["dr"], job.params["model_spec"]
    reference, reward_dir = job.params["reference"], job.inp("reward")
    train = dict(job.params["train"])
    max_prompt = train.pop("max_prompt_length", None)
    tok = load_tokenizer(reference)
    tok.padding_side = "left"
    prompts = tokenize_prompts(read_pairs(job.inp("data")).select_columns(["prompt"]), tok,
                               max_prompt_length=max_prompt)
    policy = load_causal_lm(reference, dtype=spec.get("dtype"), lora=spec.get("lora"))
    ref = None if spec.get("lora") else load_causal_lm(reference, dtype=spec.get("dtype")).eval()
    reward = load_reward_model(reward_dir).eval()
    value = load_reward_model(reward_dir)
    out = job.out("model")
    version = "none" if dr["version"] == "std" else dr["version"]
    with tracked_run(job, {"reward_model_run": run_id_of(job.inp("reward_metrics"))}) as run:
        job.params["train"] = train
        args = trainer_args(job, DRPPOConfig, out + ".work", seed, robust_version=version,
                            divergence=dr["divergence"] if version != "none" else "none",
                            rho=float(dr["rho"]) if version != "none" else 0.0, stop_token="eos")
        trainer = DRPPOTrainer(args=args, processing_class=tok, model=policy, ref_model=ref, reward_model=reward,
                               train_dataset=prompts, value_model=value, callbacks=[run.callback()])
        final = trainer.train()
        if rank() != 0:
            # collective under DeepSpeed/FSDP; only rank 0 writes (others at most create the folder)
            trainer.save_model(args.output_dir)
        else:
            with atomic_directory(out) as tmp:
                trainer.save_model(str(tmp))
            series = curves(trainer.state.log_history)
            metrics = {"updates": int(trainer.state.global_step), "final": dict(final), "curves": series,
                       "last": last_values(series)}
            write_job_metrics(job, job.out("metrics"), metrics, model_path=out, dataset_path=job.inp("data"),
                              counts={"prompts": len(prompts)}, seed=seed, run_id=run.run_id)
            log_metrics_file(run, job.out("metrics"), {"updates": metrics["updates"]})
    shutil.rmtree(out + ".work", ignore_errors=True)


if __name__ == "__main__":
    entrypoint(main, globals())
