"""The GPU smoke run (docs/gpu.md): configs/gpu-small.yaml's SFT, DPO, DR-DPO and DR-PPO policies
trained through the workflow on one GPU, then what a GPU practitioner checks before a first
paper.yaml run, printed and written to ``results/<name>/gpu_smoke.json``:

* the device and dtype of every trainable parameter of each trainer (its run's ``perf.trainable``):
  all on the GPU, none in 16-bit weights (float32 master weights; bf16 is the compute dtype);
* s/step, tokens/s and peak device memory per trainer (its run's ``perf/*``, core.trainers.throughput);
* DR-PPO's rollout vs optimisation time and the share of responses that stop before the cap;
* chunked log-probs (core.eval.pairwise.token_logprobs under a small logit budget) equal to one
  forward's, on the SFT policy in float32 on the device;
* resume after SIGTERM: the DR-DPO job is stopped as SLURM stops a job (SIGTERM to the process
  group) once its first checkpoint is complete, and the rerun continues from that checkpoint.

Run: ``python benchmarks/gpu_smoke.py [--configfile configs/gpu-small.yaml] [--directory .]``
(``--allow-cpu`` runs it on the CPU, as tests/test_gpu_smoke.py does with tiny models). Exits 1
when a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.jobs.checkpoints import checkpoint_dir  # noqa: E402
from core.jobs.metrics import run_id_of  # noqa: E402
from core.plan.paths import Paths  # noqa: E402

#: the chunked log-probs' largest difference from one forward's (float32, TF32 off)
LOGPROB_TOLERANCE = 1e-5
#: the smoke run's time goal on one GPU
GOAL_S = 600


def trainers(cfg: dict, paths: Paths) -> dict[str, str]:
    """Each smoke trainer's model folder (relative to the working directory)."""
    dpo, ppo = cfg["dr"]["dpo"], cfg["dr"]["ppo"]
    rho_dpo, rho_ppo = float(dpo["rho"][0]), float(ppo["rho"][0])
    return {
        "SFT": paths.model("sft"),
        "DPO": paths.model(paths.dpo(dpo["variant"], "none", 0.0, 0)),
        "DR-DPO": paths.model(paths.dpo(dpo["variant"], dpo["divergence"], rho_dpo, 0)),
        "DR-PPO": paths.model(paths.ppo(ppo["variant"], "vA", ppo["divergence"], rho_ppo, 0)),
    }


def snakemake(args: argparse.Namespace, *options: str, wait: bool = True) -> subprocess.Popen:
    """Snakemake of this interpreter on the config (its jobs' ``python`` too), in its own process group."""
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", args.directory, *options,
           "--configfile", os.path.abspath(args.configfile)]  # fmt: skip
    proc = subprocess.Popen(cmd, start_new_session=True, env=env)
    if wait:
        proc.wait()
    return proc


def build(args: argparse.Namespace, *targets: str, wait: bool = True) -> subprocess.Popen:
    return snakemake(args, "--cores", str(args.cores), "--resources", f"gpu={args.gpus}", "--rerun-incomplete",
                     *targets, wait=wait)  # fmt: skip


def stop_after_first_checkpoint(args: argparse.Namespace, model: str, timeout: float = 900) -> int:
    """Start the job that writes ``model`` and SIGTERM its process group once a checkpoint is complete."""
    folder = Path(args.directory) / checkpoint_dir(model)
    proc, start = build(args, model, wait=False), time.time()
    while not list(folder.glob("checkpoint-*/.complete")):
        if proc.poll() is not None or time.time() - start > timeout:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise SystemExit(f"gpu_smoke: no complete checkpoint under {folder} (workflow rc {proc.poll()})")
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=300)
    snakemake(args, "--unlock")
    return proc.returncode


def perf(client, run_id: str) -> dict:
    """A run's placement tag and its per-step throughput, memory and (PPO) phase metrics."""

    def history(key: str) -> list[float]:
        return [m.value for m in client.get_metric_history(run_id, key)]

    out = {"trainable": client.get_run(run_id).data.tags.get("perf.trainable", "")}
    for key, reduce in (("s_per_step", statistics.median), ("tokens_per_s", statistics.median),
                        ("peak_memory_gib", max), ("rollout_s", sum), ("optimise_s", sum),
                        ("stopped_share", statistics.mean)):  # fmt: skip
        values = history(f"perf/{key}")
        if values:
            out[key] = float(reduce(values))
    return out


def chunked_logprob_error(cfg: dict, paths: Paths, device: str) -> float:
    """The largest |chunked - one forward| log-prob of the SFT policy on eight validation pairs."""
    import torch

    from core.data.io import read_pairs
    from core.eval.encoding import encode_pairs, pad_sequences
    from core.eval.pairwise import token_logprobs
    from core.models import load_causal_lm, load_tokenizer

    torch.backends.cuda.matmul.allow_tf32 = False
    tok, model = load_tokenizer(paths.model("sft")), load_causal_lm(paths.model("sft"), dtype="float32")
    model = model.to(device).eval()
    val = read_pairs(paths.data(paths.dr_data(cfg["dr"]["dpo"]["variant"], "val")))
    enc = encode_pairs(val.select(range(min(8, len(val)))), tok, max_length=int(cfg["eval"]["max_length"]))
    ids, mask = pad_sequences([s.ids for s in enc.chosen], tok.pad_token_id)
    ids, mask = ids.to(device), mask.to(device)
    with torch.inference_mode():
        whole = token_logprobs(model, ids, mask)
        vocab = model.get_output_embeddings().weight.shape[0]
        chunked = token_logprobs(model, ids, mask, max_logits=ids.shape[0] * vocab * 16)  # 16 positions a chunk
    keep = mask[:, 1:].bool()
    return float((whole - chunked)[keep].abs().max())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", default=str(REPO / "configs" / "gpu-small.yaml"))
    parser.add_argument("--directory", default=".", help="the workflow's working directory (snakemake -d)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU where no GPU is visible")
    args = parser.parse_args()
    import torch
    from mlflow.tracking import MlflowClient

    start = time.time()
    args.gpus = torch.cuda.device_count()
    if args.gpus == 0 and not args.allow_cpu:
        raise SystemExit("gpu_smoke: torch sees no CUDA device (pass --allow-cpu to run it on the CPU)")
    device = "cuda" if args.gpus else "cpu"
    cfg = yaml.safe_load(Path(args.configfile).read_text(encoding="utf-8"))
    paths = Paths(f"results/{cfg['name']}")
    models = trainers(cfg, paths)
    stopped_rc = stop_after_first_checkpoint(args, models["DR-DPO"])
    rc = build(args, *models.values()).returncode
    if rc != 0:
        raise SystemExit(f"gpu_smoke: the workflow failed (rc {rc}); see the job logs under {paths.root}/logs")
    os.chdir(args.directory)
    client = MlflowClient(cfg["tracking"]["uri"])
    report: dict = {"device": torch.cuda.get_device_name(0) if args.gpus else "cpu", "trainers": {}}
    for name, model in models.items():
        rel = model.removeprefix(f"{paths.root}/models/")
        report["trainers"][name] = perf(client, run_id_of(paths.metrics(rel, "train")))
    log = Path(paths.log(paths.dpo(cfg["dr"]["dpo"]["variant"], cfg["dr"]["dpo"]["divergence"],
                                   float(cfg["dr"]["dpo"]["rho"][0]), "s"))).read_text()  # fmt: skip
    resumed = [line for line in log.splitlines() if "[checkpoint] resumed from step" in line]
    report["resume"] = {"stopped_rc": stopped_rc, "resumed": resumed[-1] if resumed else None}
    report["chunked_logprob_max_abs_diff"] = chunked_logprob_error(cfg, paths, device)
    report["wall_s"] = time.time() - start
    report["failures"] = failures(report, device)
    Path(paths.root, "gpu_smoke.json").write_text(json.dumps(report, indent=2, sort_keys=True))
    print_report(report)
    return 1 if report["failures"] else 0


def failures(report: dict, device: str) -> list[str]:
    """What the smoke run shows wrong: a trainable parameter off the device, a trainer without its
    throughput, no resume, chunked log-probs off the unchunked ones."""
    out = []
    for name, t in report["trainers"].items():
        if not t["trainable"] or any(not part.startswith(device) for part in t["trainable"].split("; ")):
            out.append(f"{name}: a trainable parameter off the {device}: {t['trainable']!r}")
        if "float16" in t["trainable"]:  # bfloat16 too: AdamW's small updates round away in 16-bit weights
            out.append(f"{name}: trainable parameters in 16-bit weights (no float32 master copy): {t['trainable']!r}")
        if "s_per_step" not in t:
            out.append(f"{name}: no perf/s_per_step in its run")
    if not report["resume"]["resumed"]:
        out.append("DR-DPO: the rerun after SIGTERM did not resume from its checkpoint")
    if not report["chunked_logprob_max_abs_diff"] <= LOGPROB_TOLERANCE:
        out.append(f"chunked log-probs differ by {report['chunked_logprob_max_abs_diff']:.2e}")
    return out


def print_report(report: dict) -> None:
    nan = float("nan")
    print(f"\nGPU smoke on {report['device']}: {report['wall_s']:.0f} s (goal {GOAL_S} s)")
    print(f"{'trainer':8s} {'s/step':>8s} {'tokens/s':>10s} {'peak GiB':>9s}  trainable parameters")
    for name, t in report["trainers"].items():
        print(f"{name:8s} {t.get('s_per_step', nan):8.3f} {t.get('tokens_per_s', nan):10.0f} "
              f"{t.get('peak_memory_gib', nan):9.2f}  {t['trainable']}")  # fmt: skip
    ppo = report["trainers"]["DR-PPO"]
    print(f"DR-PPO: rollout {ppo.get('rollout_s', nan):.1f} s, optimisation {ppo.get('optimise_s', nan):.1f} s; "
          f"{ppo.get('stopped_share', nan):.0%} of responses stop before the cap")  # fmt: skip
    diff = report["chunked_logprob_max_abs_diff"]
    print(f"chunked log-probs: max |diff| {diff:.2e} (tolerance {LOGPROB_TOLERANCE:g})")
    print(f"resume after SIGTERM (rc {report['resume']['stopped_rc']}): {report['resume']['resumed'] or 'NOT RESUMED'}")
    print("\n".join(["FAILED:", *report["failures"]]) if report["failures"] else "all checks passed")


if __name__ == "__main__":
    sys.exit(main())
