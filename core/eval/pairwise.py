"""Pairwise accuracy of reward models and policies (docs/design.md §3; DR paper §5; RewardBench).

* Reward model: correct when ``r(x, y+) > r(x, y-)`` (strict; ties wrong unless ``ties="half"``).
* Policy, ``mode="implicit"`` (RewardBench's DPO mode): score
  ``h(x, y) = beta * sum_{t in y} [log pi(y_t | x, y_<t) - log pi_ref(y_t | x, y_<t)]``.
* Policy, ``mode="ref_free"`` (RewardBench's reference-free mode): score ``log pi(y|x)`` summed
  (``norm="sum"``), averaged over response tokens (``"avg"``), or ``-||per-token log-probs||_2``
  (``"norm"``).
* Policy, ``mode="likelihood"`` (DR paper §5.2's PPO evaluation): ``pi(y+|x) > pi(y-|x)``, i.e. the
  summed log-likelihood, or the per-token mean with ``length_normalize=True`` (identical to
  ``ref_free`` with ``sum``/``avg``).

Sequences are encoded by :mod:`core.eval.encoding`, right-padded, batched by length and scored
under ``torch.inference_mode`` in eval mode; scores do not depend on the batch they landed in
(up to float round-off).  Per-example scores are kept in :class:`PairwiseResult`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from core.eval.encoding import (
    Batching,
    EncodedPairs,
    EncodedSequence,
    encode_pairs,
    length_sorted_batches,
    pad_sequences,
    resolve_pad_id,
)
from core.eval.scoring import accuracy, grouped_accuracy, pairwise_outcomes

__all__ = [
    "POLICY_MODES",
    "REF_FREE_NORMS",
    "PairLogProbs",
    "PairwiseResult",
    "SequenceLogProbs",
    "pair_logprobs",
    "policy_pairwise",
    "reward_model_pairwise",
    "score_sequences",
    "sequence_logprobs",
]

POLICY_MODES = ("implicit", "ref_free", "likelihood")
#: at most this many float32 logits (rows x positions x vocabulary: 4 GiB) exist at once when
#: :func:`token_logprobs` scores a batch; gemma's 256K vocabulary x 2,048 tokens x 16 rows would be 34 GiB
LOGIT_BUDGET = 2**30
REF_FREE_NORMS = ("sum", "avg", "norm")


@dataclass
class PairwiseResult:
    """Per-example scores of a pairwise evaluation; ``correct`` applies the tie rule."""

    score_chosen: np.ndarray
    score_rejected: np.ndarray
    meta: list[dict[str, Any]]
    ties: str = "wrong"
    kind: str = "reward_model"
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def correct(self) -> np.ndarray:
        return pairwise_outcomes(self.score_chosen, self.score_rejected, self.ties)

    @property
    def accuracy(self) -> float:
        return accuracy(self.correct)

    @property
    def n(self) -> int:
        return int(self.score_chosen.size)

    def summary(self) -> dict[str, Any]:
        """Headline numbers for a metrics file: accuracy, n, ties rule, truncated, merged-turn and tied
        counts."""
        out: dict[str, Any] = {
            "accuracy": self.accuracy,
            "n": self.n,
            "ties": self.ties,
            "kind": self.kind,
            "n_tied": int((self.score_chosen == self.score_rejected).sum()),
        }
        for key in ("truncated", "merged_turns"):
            if key in self.extra:
                out[f"n_{key}"] = int(np.asarray(self.extra[key]).sum())
        return out

    def column(self, key: str) -> list[Any]:
        """A metadata column (e.g. ``"subset"``); ValueError naming the first row that lacks it."""
        out = []
        for i, m in enumerate(self.meta):
            if key not in m:
                raise ValueError(f"row {i} has no metadata column {key!r} (has {sorted(m)})")
            out.append(m[key])
        return out

    def by(self, key: str) -> dict[Hashable, float]:
        """Accuracy per value of a metadata column."""
        return grouped_accuracy(self.column(key), self.correct)

    def with_ties(self, ties: str) -> PairwiseResult:
        """The same scores under another tie rule."""
        return PairwiseResult(self.score_chosen, self.score_rejected, self.meta, ties, self.kind, self.extra)

    def frame(self):
        """One row per example: metadata, ``score_chosen``, ``score_rejected``, ``correct`` and extras."""
        import pandas as pd

        df = pd.DataFrame(self.meta if self.meta else [{} for _ in range(self.n)])
        df["score_chosen"] = self.score_chosen
        df["score_rejected"] = self.score_rejected
        df["correct"] = self.correct
        for k, v in self.extra.items():
            df[k] = v
        return df


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def _device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def score_sequences(
    model: torch.nn.Module, seqs: Sequence[EncodedSequence], pad_id: int, batch_size: int | Batching = 8
) -> np.ndarray:
    """Scalar reward ``r = model(ids).logits[:, 0]`` of every sequence (sequence-classification
    head, pooled by the model at its last non-pad token), batched by length, float64.  When
    pad == EOS the model pools at the last non-EOS token, exactly as during trl training."""
    out = np.empty(len(seqs), dtype=np.float64)
    device = _device(model)
    with _eval_mode(model):
        for batch in length_sorted_batches([len(s.ids) for s in seqs], batch_size):
            ids, mask = pad_sequences([seqs[i].ids for i in batch], pad_id)
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            if logits.ndim != 2 or logits.shape[-1] != 1:
                raise ValueError(
                    f"reward model must output one logit per sequence (num_labels=1), got logits "
                    f"of shape {tuple(logits.shape)}"
                )
            out[batch] = logits[:, 0].float().cpu().double().numpy()
    return out


@dataclass
class SequenceLogProbs:
    """Per sequence: ``total = sum_t log pi(y_t|...)`` over response tokens, their count and
    ``sq = sum_t (log pi)^2`` (for RewardBench's ``norm``)."""

    total: np.ndarray
    n_tokens: np.ndarray
    sq: np.ndarray

    def reduce(self, norm: str = "sum") -> np.ndarray:
        if norm == "sum":
            return self.total
        if norm == "avg":
            return self.total / self.n_tokens
        if norm == "norm":
            return -np.sqrt(self.sq)
        raise ValueError(f"norm must be one of {REF_FREE_NORMS}, got {norm!r}")


def _next_token_logprobs(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[target]`` per position, in float32: the logit of the next token minus
    the logsumexp over the whole vocabulary."""
    logits = logits.float()
    return logits.gather(-1, target.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)


def token_logprobs(
    model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, max_logits: int = LOGIT_BUDGET
) -> torch.Tensor:
    """``log pi(ids[:, t] | ids[:, :t])`` for ``t = 1 .. T-1`` (``[B, T-1]``, float32) under a causal LM.

    When the batch's ``B (T-1) V`` logits fit in ``max_logits`` they come from one forward; otherwise
    from the trunk's last hidden states, ``ceil(B (T-1) V / max_logits)`` chunks of positions
    through the output layer (with the model's final logit soft-capping, if any), each chunk's
    logits freed before the next: the same values (the normaliser of every position is still over
    the whole vocabulary), with peak memory bounded by ``max_logits`` instead of vocabulary x length."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PEFT model's own
    head = inner.get_output_embeddings()
    rows, width = ids.shape
    target = ids[:, 1:]
    if rows * (width - 1) * head.weight.shape[0] <= max_logits:
        return _next_token_logprobs(model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1], target)
    hidden = inner.get_decoder()(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state[:, :-1]
    cap = getattr(inner.config, "final_logit_softcapping", None)
    step = max(1, max_logits // (rows * head.weight.shape[0]))
    parts = []
    for s in range(0, width - 1, step):
        logits = head(hidden[:, s : s + step])
        if cap:
            logits = torch.tanh(logits.float() / cap) * cap
        parts.append(_next_token_logprobs(logits, target[:, s : s + step]))
        del logits
    return torch.cat(parts, dim=1)


def sequence_logprobs(
    model: torch.nn.Module,
    seqs: Sequence[EncodedSequence],
    pad_id: int,
    batch_size: int | Batching = 8,
    max_logits: int = LOGIT_BUDGET,
) -> SequenceLogProbs:
    """Log-likelihood of each sequence's response tokens ``ids[start:]`` under a causal LM
    (token ``t`` is predicted from position ``t-1``; a response token at position 0 is unscored),
    at most ``max_logits`` logits at once (:func:`token_logprobs`)."""
    n = len(seqs)
    total, count, sq = np.zeros(n), np.zeros(n), np.zeros(n)
    device = _device(model)
    with _eval_mode(model):
        for batch in length_sorted_batches([len(s.ids) for s in seqs], batch_size):
            ids, mask = pad_sequences([seqs[i].ids for i in batch], pad_id)
            ids, mask = ids.to(device), mask.to(device)
            tok_logp = token_logprobs(model, ids, mask, max_logits)
            pos = torch.arange(1, ids.shape[1], device=device).unsqueeze(0)
            starts = torch.tensor([max(seqs[i].start, 1) for i in batch], device=device).unsqueeze(1)
            resp = (pos >= starts) & mask[:, 1:].bool()
            tok_logp = torch.where(resp, tok_logp, torch.zeros_like(tok_logp))
            total[batch] = tok_logp.sum(-1).double().cpu().numpy()
            sq[batch] = tok_logp.pow(2).sum(-1).double().cpu().numpy()
            count[batch] = resp.sum(-1).double().cpu().numpy()
    if np.any(count == 0):
        bad = np.flatnonzero(count == 0)[:10].tolist()
        raise ValueError(f"sequences {bad} have no scorable response token")
    return SequenceLogProbs(total, count, sq)


@dataclass
class PairLogProbs:
    """Response log-likelihoods of the chosen and the rejected completions."""

    chosen: SequenceLogProbs
    rejected: SequenceLogProbs


def _split(lp: SequenceLogProbs, n: int) -> PairLogProbs:
    def part(sl: slice) -> SequenceLogProbs:
        return SequenceLogProbs(lp.total[sl], lp.n_tokens[sl], lp.sq[sl])

    return PairLogProbs(part(slice(0, n)), part(slice(n, 2 * n)))


@contextlib.contextmanager
def _adapters_disabled(model: torch.nn.Module) -> Iterator[None]:
    if not hasattr(model, "disable_adapter"):
        raise ValueError(
            "mode='implicit' needs a reference: pass ref_model, ref_logprobs, or a PEFT policy "
            "(its reference is the base model with adapters disabled)"
        )
    with model.disable_adapter():
        yield


def pair_logprobs(
    model: torch.nn.Module, encoded: EncodedPairs, pad_id: int, batch_size: int | Batching = 8
) -> PairLogProbs:
    """Chosen and rejected response log-likelihoods in one length-batched pass."""
    lp = sequence_logprobs(model, encoded.chosen + encoded.rejected, pad_id, batch_size)
    return _split(lp, len(encoded))


def _encode(data: Any, tokenizer: Any, max_length, truncation, add_eos, source) -> EncodedPairs:
    """``data`` encoded (an :class:`EncodedPairs` passes through); ValueError when it has no pair."""
    if isinstance(data, EncodedPairs):
        enc = data
    else:
        enc = encode_pairs(
            data, tokenizer, max_length=max_length, truncation=truncation, add_eos=add_eos, source=source
        )
    if len(enc) == 0:
        raise ValueError(f"{source}: no rows to evaluate")
    return enc


def _pair_extras(enc: EncodedPairs) -> dict[str, np.ndarray]:
    """Per pair: whether its chosen or its rejected sequence was truncated, and how many same-role
    turns the encoding rule merged in the two."""
    pairs = list(zip(enc.chosen, enc.rejected, strict=True))
    return {
        "truncated": np.array([c.truncated or r.truncated for c, r in pairs]),
        "merged_turns": np.array([c.merged_turns + r.merged_turns for c, r in pairs], dtype=np.int64),
    }


def reward_model_pairwise(
    model: torch.nn.Module,
    tokenizer: Any,
    data: Any,
    *,
    batch_size: int | Batching = 8,
    max_length: int | None = None,
    truncation: str = "keep_end",
    add_eos: bool = True,
    ties: str = "wrong",
    source: str = "rows",
) -> PairwiseResult:
    """Pairwise accuracy of a reward model: per-example ``r(x,y+)``, ``r(x,y-)`` and credit.

    ``data``: normalised rows (Dataset, DataFrame, list of dicts) or an :class:`EncodedPairs`.
    """
    enc = _encode(data, tokenizer, max_length, truncation, add_eos, source)
    pad_id = resolve_pad_id(tokenizer, model)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = pad_id  # as trl's RewardTrainer: pooling needs it for batches > 1
    scores = score_sequences(model, enc.chosen + enc.rejected, pad_id, batch_size)
    n = len(enc)
    return PairwiseResult(scores[:n], scores[n:], enc.meta, ties, "reward_model", _pair_extras(enc))


def policy_pairwise(
    model: torch.nn.Module,
    tokenizer: Any,
    data: Any,
    *,
    mode: str = "implicit",
    ref_model: torch.nn.Module | None = None,
    ref_logprobs: PairLogProbs | None = None,
    logprobs: PairLogProbs | None = None,
    norm: str = "avg",
    length_normalize: bool = False,
    beta: float = 1.0,
    batch_size: int | Batching = 8,
    max_length: int | None = None,
    truncation: str = "keep_end",
    add_eos: bool = True,
    ties: str = "wrong",
    source: str = "rows",
) -> PairwiseResult:
    """Pairwise accuracy of a policy (see the module docstring for the three modes).

    ``mode="implicit"`` takes the reference from ``ref_logprobs`` (precomputed), else ``ref_model``,
    else the PEFT base model (adapters disabled). ``logprobs``: the policy's own log-probs of these
    pairs, when already computed (one forward scores every mode).  ``norm`` applies to ``ref_free``;
    ``length_normalize`` to ``likelihood``; ``beta > 0`` only scales implicit rewards.
    """
    if mode not in POLICY_MODES:
        raise ValueError(f"mode must be one of {POLICY_MODES}, got {mode!r}")
    if mode == "ref_free" and norm not in REF_FREE_NORMS:
        raise ValueError(f"norm must be one of {REF_FREE_NORMS}, got {norm!r}")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    enc = _encode(data, tokenizer, max_length, truncation, add_eos, source)
    pad_id = resolve_pad_id(tokenizer, model)
    pol = pair_logprobs(model, enc, pad_id, batch_size) if logprobs is None else logprobs
    if pol.chosen.total.shape != (len(enc),):
        raise ValueError(f"logprobs has {pol.chosen.total.size} pairs, data has {len(enc)}")
    extra = {
        "chosen_logp": pol.chosen.total,
        "rejected_logp": pol.rejected.total,
        "chosen_tokens": pol.chosen.n_tokens,
        "rejected_tokens": pol.rejected.n_tokens,
        **_pair_extras(enc),
    }
    if mode == "implicit":
        ref = ref_logprobs
        if ref is None and ref_model is not None:
            ref = pair_logprobs(ref_model, enc, pad_id, batch_size)
        elif ref is None:
            with _adapters_disabled(model):
                ref = pair_logprobs(model, enc, pad_id, batch_size)
        if ref.chosen.total.shape != pol.chosen.total.shape:
            raise ValueError(f"ref_logprobs has {ref.chosen.total.size} pairs, data has {len(enc)}")
        extra["ref_chosen_logp"] = ref.chosen.total
        extra["ref_rejected_logp"] = ref.rejected.total
        sc = beta * (pol.chosen.total - ref.chosen.total)
        sr = beta * (pol.rejected.total - ref.rejected.total)
    else:
        reduce = norm if mode == "ref_free" else ("avg" if length_normalize else "sum")
        sc, sr = pol.chosen.reduce(reduce), pol.rejected.reduce(reduce)
    return PairwiseResult(np.asarray(sc), np.asarray(sr), enc.meta, ties, f"policy:{mode}", extra)
