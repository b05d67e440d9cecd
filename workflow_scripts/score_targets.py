"""Rule `score_targets`: offline target rewards of D_bias (the paper's D_rho) for distillation (distillation paper eq. 7
and 11): columns target_chosen/target_rejected from r_bias, and target_chosen_k/target_rejected_k
from the k-th ensemble member r_{bias,b_k} (the order of distill.ensemble_b)."""

from core.data.io import read_pairs, write_pairs
from core.jobs.job import Job
from core.jobs.launch import entrypoint
from core.jobs.metrics import tracked_run
from core.jobs.run import set_torch_threads


def main(job: Job) -> None:
    set_torch_threads(job)
    from core.eval.encoding import encode_pairs
    from core.eval.pairwise import reward_model_pairwise
    from core.models import load_reward_model, load_tokenizer

    ev = job.params["eval"]
    ds = read_pairs(job.inp("data"))
    models = [("", job.inp("full"))] + [(f"_{k}", path) for k, path in enumerate(job.inputs("members"))]
    with tracked_run(job) as run:
        enc = None
        for suffix, path in models:
            tok = load_tokenizer(path)
            if enc is None:
                enc = encode_pairs(ds, tok, max_length=int(ev["max_length"]), source=job.inp("data"))
            model = load_reward_model(path).eval()
            res = reward_model_pairwise(model, tok, enc, batch_size=int(ev["batch_size"]))
            ds = ds.add_column(f"target_chosen{suffix}", [float(x) for x in res.score_chosen])
            ds = ds.add_column(f"target_rejected{suffix}", [float(x) for x in res.score_rejected])
            run.log_metrics({f"target_accuracy{suffix or '_full'}": res.accuracy})
        write_pairs(ds, job.out("0"))


if __name__ == "__main__":
    entrypoint(main, globals())
