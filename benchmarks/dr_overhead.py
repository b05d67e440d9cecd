"""Step-time overhead of DR reweighting (docs/design.md §1.1) for the reward and DPO trainers.

One trainer, one model, one optimiser and a fixed list of batches per trainer; DR steps
(``divergence=tv``, ``rho>0``: per-example losses, all-gather, exact worst-case weights, reweighted
backward) and plain steps (``rho=0``: trl's own loss) are interleaved A-B-B-A on the same batches,
so drift in machine load hits both equally.  A step is forward + backward + optimiser step.
Printed: median step time of each mode and their ratio ``DR / plain`` (goal <= 1.02), plus, for
information, the ratio with 2 accumulated micro-batches per step (DR then adds a no-grad
pre-pass forward, see core/trainers/robust.py).  On CPU the clock defaults to this process's CPU
time with one torch thread (``--clock process``), which other jobs sharing the cores do not
inflate; on a GPU it is wall time after ``cuda.synchronize``.

The defaults mirror the embedded default (config.yaml): Llama hidden 64, 2 layers, 4 heads, a
512-word vocabulary, reward batch 32 and DPO batch 16 pairs, completions of ~48 words.

Run: ``python benchmarks/dr_overhead.py [--steps 40] [--hidden 64] [--layers 2] [--out results.json]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

# vocabulary of ~512 words, as the embedded default's tokenizer (config.yaml: models.tokenizer)
WORDS = ["dA", "dB", "good", "bad", ":"] + [f"t{i}" for i in range(32)] + [f"f{i}" for i in range(471)]


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "<s>", "</s>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


def _model(tok, hidden: int, layers: int, reward: bool):
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, num_labels=1,
    )  # fmt: skip
    return LlamaForSequenceClassification(config) if reward else LlamaForCausalLM(config)


def _data(n: int, length: int, varied: bool = False):
    """``n`` pairs with completions of ``length`` words (``varied``: uniform in [8, 2 length - 8])."""
    import random

    from datasets import Dataset

    rng = random.Random(0)

    def size() -> int:
        return rng.randint(8, max(2 * length - 8, 8)) if varied else length

    rows = []
    for _ in range(n):
        body = lambda: " ".join(f"f{rng.randrange(471)}" for _ in range(size()))  # noqa: E731
        rows.append({
            "prompt": f"d{'AB'[rng.random() < 0.25]} " + " ".join(f"t{rng.randrange(32)}" for _ in range(8)) + " :",
            "chosen": " good " + body(),
            "rejected": " bad " + body(),
        })  # fmt: skip
    return Dataset.from_list(rows)


def _common(out: str, batch: int, accumulation: int) -> dict:
    return dict(
        output_dir=out, per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation, max_steps=1000,
        learning_rate=1e-4, report_to="none", bf16=False, gradient_checkpointing=False, save_strategy="no",
        use_cpu=not torch.cuda.is_available(), disable_tqdm=True, logging_steps=10**9, seed=0,
    )  # fmt: skip


def build(kind: str, args, out: str, accumulation: int):
    """A DR trainer (``divergence=tv``) whose ``args.rho`` the benchmark toggles between 0 and ``args.rho``."""
    tok = _tokenizer()
    batch = args.reward_batch if kind == "reward" else args.dpo_batch
    data = _data(batch * accumulation * 4, args.length, getattr(args, "varied", False))
    common = _common(out, batch, accumulation)
    if kind == "reward":
        from core.trainers.reward import DRRewardConfig, DRRewardTrainer

        model = _model(tok, args.hidden, args.layers, reward=True)
        config = DRRewardConfig(divergence="tv", rho=args.rho, **common)
        return DRRewardTrainer(model=model, args=config, train_dataset=data, processing_class=tok)
    from core.trainers.dpo import DRDPOConfig, DRDPOTrainer

    model = _model(tok, args.hidden, args.layers, reward=False)
    config = DRDPOConfig(loss_type="dpo", divergence="tv", rho=args.rho, beta=0.1, **common)
    return DRDPOTrainer(
        model=model,
        ref_model=copy.deepcopy(model),
        args=config,
        train_dataset=data,
        processing_class=tok,
    )


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def interleaved(trainer, set_mode, steps: int, accumulation: int, clock=time.perf_counter) -> dict[bool, list[float]]:
    """Step times (s) with ``set_mode(False)`` and ``set_mode(True)``, interleaved A-B-B-A on the same
    batches after 4 warm-up steps; a step is forward + backward (+ accumulation) + optimiser step."""
    trainer.create_optimizer()
    trainer.model.to(trainer.args.device)
    loader = trainer.get_train_dataloader()
    batches = [b for b, _ in zip(loader, range(4 * accumulation), strict=False)]
    groups = [batches[i : i + accumulation] for i in range(0, len(batches), accumulation)]

    def step(group: list, mode: bool) -> float:
        set_mode(mode)
        _sync()
        start = clock()
        samples, items = trainer.get_batch_samples(iter(group), len(group), trainer.args.device)
        trainer.current_gradient_accumulation_steps = len(samples)
        for inputs in samples:
            trainer.training_step(trainer.model_wrapped, inputs, items)
        trainer.optimizer.step()
        trainer.model.zero_grad()
        _sync()
        return clock() - start

    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(4):  # warm-up
        step(groups[i % len(groups)], i % 2 == 0)
    for i in range(steps):
        group = groups[i % len(groups)]
        for mode in (False, True) if i % 2 == 0 else (True, False):
            times[mode].append(step(group, mode))
    return times


def measure(trainer, rho: float, steps: int, accumulation: int, clock=time.perf_counter) -> dict[str, float]:
    """Median step time (s) of plain (rho=0) and DR (rho) steps, interleaved A-B-B-A on the same batches."""

    def set_rho(robust: bool) -> None:
        trainer.args.rho = rho if robust else 0.0

    times = interleaved(trainer, set_rho, steps, accumulation, clock)
    trainer.args.rho = rho
    plain, robust = statistics.median(times[False]), statistics.median(times[True])
    paired = statistics.median(d / p for d, p in zip(times[True], times[False], strict=True))
    return {"plain_s": plain, "dr_s": robust, "ratio": robust / plain, "paired_ratio": paired}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="interleaved step pairs per measurement")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--reward-batch", type=int, default=32, help="pairs per reward micro-batch")
    parser.add_argument("--dpo-batch", type=int, default=16, help="pairs per DPO micro-batch")
    parser.add_argument("--length", type=int, default=48, help="completion length in words")
    parser.add_argument("--rho", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch default)")
    parser.add_argument(
        "--clock",
        choices=("auto", "process", "wall"),
        default="auto",
        help="auto: process CPU time on CPU, wall time on GPU",
    )
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    use_process = args.clock == "process" or (args.clock == "auto" and device == "cpu")
    clock = time.process_time if use_process else time.perf_counter
    results: dict = {
        "device": device,
        "clock": "process" if use_process else "wall",
        "config": vars(args),
    }
    print(
        f"device {device}, clock {results['clock']}, {args.steps} interleaved step pairs per row",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as out:
        for kind in ("reward", "dpo"):
            for accumulation in (1, 2):
                trainer = build(kind, args, out, accumulation)
                res = measure(trainer, args.rho, args.steps, accumulation, clock)
                key = f"{kind}_accum{accumulation}"
                results[key] = res
                goal = "  (goal <= 1.02)" if accumulation == 1 else "  (info: includes the no-grad pre-pass)"
                print(
                    f"{key:>14}: plain {res['plain_s'] * 1e3:8.2f} ms  DR {res['dr_s'] * 1e3:8.2f} ms  "
                    f"ratio DR/plain = {res['ratio']:.4f} (median of paired ratios {res['paired_ratio']:.4f}){goal}",
                    flush=True,
                )
    if args.out:
        tmp = f"{args.out}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1)
        os.replace(tmp, args.out)
    return results


if __name__ == "__main__":
    main()
