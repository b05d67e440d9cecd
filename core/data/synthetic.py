"""The embedded-default preference world: a seeded, deterministic generator of readable text.

Four domains mirror RewardBench's sections (chat, chat-hard, safety, reasoning); each has named
subsets (``SUBSETS``). Every pair is scored by the known oracle ``r*`` of
:mod:`core.data.synthetic_oracle`; training labels are Bradley-Terry draws from it,
``P(y1 > y2 | x) = sigma((r*(x, y1) - r*(x, y2)) / T)`` with ``T = label_temperature`` (``T = 0``
gives the oracle's argmax). The training mixture follows ``domain_weights`` (by default the safety
domain is rare, so safety is the out-of-distribution test). Prompts are split into train / eval /
held-out partitions by a hash of their text, so no evaluation or generation prompt is ever a
training prompt.

``generate_world(config, seed)`` returns ``{"train", "test", "eval", "sft", "prompts"}`` datasets
(see ``docs/synthetic-world.md``); ``write_world`` saves them as parquet plus ``world.json``.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.atomic import atomic_write, atomic_write_json
from core.data import synthetic_kb as kb
from core.data.synthetic_oracle import (
    DOMAINS,
    OracleConfig,
    list_answer,
    oracle_reward,
    oracle_score,
    parse_prompt,
)

__all__ = [
    "DOMAINS",
    "REWARDBENCH_SUBSETS",
    "SUBSETS",
    "OracleConfig",
    "WorldConfig",
    "generate_world",
    "oracle_reward",
    "oracle_score",
    "parse_prompt",
    "world_corpus",
    "pretraining_corpus",
    "PRETRAINING_SPLITS",
    "write_world",
]

SUBSETS: dict[str, tuple[str, ...]] = {
    "chat": ("chat/easy", "chat/length", "chat/medium"),
    "chat-hard": ("chat-hard/near-miss", "chat-hard/subtle"),
    "safety": ("safety/should-refuse", "safety/should-respond"),
    "reasoning": ("reasoning/math", "reasoning/code-like"),
}
# the RewardBench subsets each synthetic subset stands in for (used by configs to map scores)
REWARDBENCH_SUBSETS: dict[str, tuple[str, ...]] = {
    "chat/easy": ("alpacaeval-easy", "mt-bench-easy"),
    "chat/length": ("alpacaeval-length",),
    "chat/medium": ("alpacaeval-hard", "mt-bench-med"),
    "chat-hard/near-miss": (
        "llmbar-adver-neighbor",
        "llmbar-adver-GPTInst",
        "llmbar-adver-GPTOut",
        "llmbar-adver-manual",
    ),
    "chat-hard/subtle": ("mt-bench-hard", "llmbar-natural"),
    "safety/should-refuse": (
        "refusals-dangerous",
        "refusals-offensive",
        "xstest-should-refuse",
        "donotanswer",
    ),
    "safety/should-respond": ("xstest-should-respond",),
    "reasoning/math": ("math-prm",),
    "reasoning/code-like": (
        "hep-cpp",
        "hep-go",
        "hep-java",
        "hep-js",
        "hep-python",
        "hep-rust",
    ),
}


def _default_domain_weights() -> dict[str, float]:
    return {"chat": 0.4, "chat-hard": 0.25, "safety": 0.01, "reasoning": 0.34}


@dataclass(frozen=True)
class WorldConfig:
    """Config of the world (every key has a default; ``from_dict`` validates a mapping)."""

    n_train: int = 8000  # training pairs (BT labels, training mixture)
    n_test: int = 1000  # in-distribution held-out pairs (training mixture, oracle labels)
    n_eval_per_subset: int = 100  # balanced RewardBench-style evaluation pairs per subset
    n_sft: int = 2000  # SFT demonstrations for the reference policy
    n_prompts: int = 200  # held-out generation prompts (equal per domain)
    domain_weights: Mapping[str, float] = field(default_factory=_default_domain_weights)
    subset_weights: Mapping[str, float] | None = None  # within a domain; default equal
    sft_domain_weights: Mapping[str, float] | None = None  # default: equal over domains
    label_temperature: float = 0.5
    min_eval_gap: float = 0.25  # eval/test pairs need |r*(chosen) - r*(rejected)| >= this
    sft_good_prob: float = 0.6  # chance an SFT demonstration is the best kind of answer
    max_operand: int = 9
    max_list_value: int = 20
    list_length: tuple[int, int] = (3, 5)
    max_fillers: int = 3
    eval_prompt_fraction: float = 0.15
    heldout_prompt_fraction: float = 0.1
    message_format: str = "chat"  # chat: lists of {role, content}; text: plain strings
    oracle: OracleConfig = field(default_factory=OracleConfig)

    def __post_init__(self) -> None:
        for key in ("n_train", "n_test", "n_eval_per_subset", "n_sft", "n_prompts"):
            value = getattr(self, key)
            if not (isinstance(value, int) and value >= 0):
                raise ValueError(f"world config {key}: expected an integer >= 0, got {value!r}")
        _check_weights("domain_weights", self.domain_weights, DOMAINS)
        if self.sft_domain_weights is not None:
            _check_weights("sft_domain_weights", self.sft_domain_weights, DOMAINS)
        if self.subset_weights is not None:
            all_subsets = tuple(s for subs in SUBSETS.values() for s in subs)
            _check_weights("subset_weights", self.subset_weights, all_subsets, need_all=False)
        if not self.label_temperature >= 0:
            raise ValueError(f"world config label_temperature: expected >= 0, got {self.label_temperature!r}")
        if not 0 <= self.sft_good_prob <= 1:
            raise ValueError(f"world config sft_good_prob: expected in [0, 1], got {self.sft_good_prob!r}")
        if not (isinstance(self.max_operand, int) and self.max_operand >= 1):
            raise ValueError(f"world config max_operand: expected an integer >= 1, got {self.max_operand!r}")
        if not (isinstance(self.max_list_value, int) and self.max_list_value >= 5):
            raise ValueError(f"world config max_list_value: expected an integer >= 5, got {self.max_list_value!r}")
        lo, hi = self.list_length
        if not (2 <= lo <= hi):
            raise ValueError(
                f"world config list_length: expected (lo, hi) with 2 <= lo <= hi, got {self.list_length!r}"
            )
        if not 0 <= self.max_fillers <= len(kb.FILLERS) // 2:
            raise ValueError(f"world config max_fillers: expected 0..{len(kb.FILLERS) // 2}, got {self.max_fillers!r}")
        fe, fh = self.eval_prompt_fraction, self.heldout_prompt_fraction
        if not (0 < fe and 0 < fh and fe + fh < 0.9):
            raise ValueError(
                "world config eval_prompt_fraction/heldout_prompt_fraction: expected both > 0 with "
                f"a sum < 0.9, got {fe!r} and {fh!r}"
            )
        if self.message_format not in ("chat", "text"):
            raise ValueError(f"world config message_format: expected 'chat' or 'text', got {self.message_format!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> WorldConfig:
        """Build from a (YAML) mapping; unknown keys are an error naming the key."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"world config: unknown key(s) {unknown}; expected some of {sorted(known)}")
        if "oracle" in data and not isinstance(data["oracle"], OracleConfig):
            if not isinstance(data["oracle"], Mapping):
                raise ValueError(f"world config oracle: expected a mapping, got {data['oracle']!r}")
            data["oracle"] = OracleConfig.from_dict(data["oracle"])
        if "list_length" in data:
            data["list_length"] = tuple(data["list_length"])
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["list_length"] = list(self.list_length)
        for key in ("domain_weights", "subset_weights", "sft_domain_weights"):
            if out[key] is not None:
                out[key] = dict(out[key])
        return out


def _check_weights(name: str, weights: Any, allowed: Iterable[str], need_all: bool = True) -> None:
    allowed = tuple(allowed)
    if not isinstance(weights, Mapping):
        raise ValueError(f"world config {name}: expected a mapping, got {weights!r}")
    unknown = sorted(set(weights) - set(allowed))
    if unknown:
        raise ValueError(f"world config {name}: unknown name(s) {unknown}; expected some of {list(allowed)}")
    if need_all:
        missing = [d for d in allowed if d not in weights]
        if missing:
            raise ValueError(f"world config {name}: missing {missing} (give 0 to leave one out)")
    for key, value in weights.items():
        if not (isinstance(value, int | float) and value >= 0 and math.isfinite(value)):
            raise ValueError(f"world config {name}[{key!r}]: expected a finite number >= 0, got {value!r}")
    if sum(weights.values()) <= 0:
        raise ValueError(f"world config {name}: weights must not all be 0")


def allocate(n: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split ``n`` into integer counts proportional to ``weights`` (largest remainder; exact)."""
    names = list(weights)
    total = float(sum(weights.values()))
    raw = {k: n * weights[k] / total for k in names}
    counts = {k: int(math.floor(raw[k])) for k in names}
    rest = n - sum(counts.values())
    order = sorted(names, key=lambda k: (-(raw[k] - counts[k]), names.index(k)))
    for k in order[:rest]:
        counts[k] += 1
    return counts


def prompt_partition(text: str, config: WorldConfig) -> str:
    """``eval``, ``heldout`` or ``train``, by a hash of the prompt text (seed independent)."""
    u = int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:12], 16) / float(16**12)
    if u < config.eval_prompt_fraction:
        return "eval"
    if u < config.eval_prompt_fraction + config.heldout_prompt_fraction:
        return "heldout"
    return "train"


# ---------------------------------------------------------------- prompts -----------------------


@dataclass(frozen=True)
class _Prompt:
    text: str
    kind: str  # open | aspect | harmful | benign | math | list
    topic: str | None = None
    fact: kb.Fact | None = None
    act: str | None = None
    nums: tuple[int, ...] = ()
    op: str | None = None


def _prefixed(rng: random.Random, body: str) -> str:
    prefix = rng.choice(kb.PREFIXES)
    return f"{prefix} {body}" if prefix else body


def _draw_prompt(rng: random.Random, kind: str, cfg: WorldConfig) -> _Prompt:
    if kind == "open":
        topic = rng.choice(kb.TOPICS)
        return _Prompt(_prefixed(rng, rng.choice(kb.OPEN_TEMPLATES).format(t=topic)), kind, topic=topic)
    if kind == "aspect":
        fact = rng.choice(kb.FACTS)
        return _Prompt(_prefixed(rng, fact.question), kind, topic=fact.topic, fact=fact)
    if kind == "harmful":
        act = rng.choice(kb.HARMFUL_ACTS)
        return _Prompt(_prefixed(rng, rng.choice(kb.SAFETY_TEMPLATES).format(a=act)), kind, act=act)
    if kind == "benign":
        act = rng.choice(sorted(kb.BENIGN_ACTS))
        return _Prompt(_prefixed(rng, rng.choice(kb.SAFETY_TEMPLATES).format(a=act)), kind, act=act)
    if kind == "math":
        op = rng.choice(sorted(kb.MATH_OPS))
        a, b = rng.randint(0, cfg.max_operand), rng.randint(0, cfg.max_operand)
        if op == "minus" and b > a:
            a, b = b, a
        body = rng.choice(kb.MATH_TEMPLATES).format(a=a, op=op, b=b)
        return _Prompt(_prefixed(rng, body), kind, nums=(a, b), op=op)
    if kind == "list":
        op = rng.choice(sorted(kb.LIST_TASKS))
        k = rng.randint(*cfg.list_length)
        values = tuple(rng.sample(range(cfg.max_list_value + 1), k))
        body = rng.choice(kb.LIST_TASKS[op]).format(l=list(values))
        return _Prompt(_prefixed(rng, body), kind, nums=values, op=op)
    raise ValueError(f"unknown prompt kind {kind!r}")


def _draw_prompt_in(rng: random.Random, kind: str, cfg: WorldConfig, part: str) -> _Prompt:
    for _ in range(10_000):
        p = _draw_prompt(rng, kind, cfg)
        if prompt_partition(p.text, cfg) == part:
            return p
    raise RuntimeError(f"could not draw a {kind!r} prompt in partition {part!r}")  # pragma: no cover


_SUBSET_KINDS: dict[str, tuple[str, ...]] = {
    "chat/easy": ("open",),
    "chat/length": ("open",),
    "chat/medium": ("open",),
    "chat-hard/near-miss": ("aspect",),
    "chat-hard/subtle": ("aspect",),
    "safety/should-refuse": ("harmful",),
    "safety/should-respond": ("benign",),
    "reasoning/math": ("math",),
    "reasoning/code-like": ("list",),
}

# ---------------------------------------------------------------- responses ---------------------


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _vague(rng: random.Random, topic: str, k: int) -> list[str]:
    return [v.format(t=topic, T=_cap(topic)) for v in rng.sample(kb.VAGUE, k)]


def _topic_facts(topic: str) -> list[kb.Fact]:
    return [f for f in kb.FACTS if f.topic == topic]


def _other_topic(rng: random.Random, topic: str) -> str:
    return rng.choice([t for t in kb.TOPICS if t not in (topic, kb.SIBLING[topic])])


def _good_chat(rng: random.Random, topic: str, k: int) -> list[str]:
    return [f.render() for f in rng.sample(_topic_facts(topic), k)]


def _refusal(rng: random.Random, redirect_prob: float) -> list[str]:
    out = [rng.choice(kb.REFUSALS)]
    if rng.random() < redirect_prob:
        out.append(rng.choice(kb.REDIRECTS))
    return out


def _steps(rng: random.Random) -> list[str]:
    return list(kb.COMPLIANCE_STEPS[: rng.randint(2, len(kb.COMPLIANCE_STEPS))])


def _compliance(rng: random.Random, act: str) -> list[str]:
    return [rng.choice(kb.COMPLIANCE_OPENERS).format(a=act), *_steps(rng)]


def _helpful(rng: random.Random, act: str) -> list[str]:
    """The same surface form as compliance (opener + steps); most carry helpful sentences."""
    u = rng.random()
    if u < 0.6:
        sentences = _steps(rng)  # steps only: better than refusing, worse than real help
    elif u < 0.8:
        sentences = [rng.choice(kb.BENIGN_ACTS[act]), *_steps(rng)[:2]]
    else:
        sentences = list(kb.BENIGN_ACTS[act])
    return [rng.choice(kb.COMPLIANCE_OPENERS).format(a=act), *sentences]


def _math_text(rng: random.Random, p: _Prompt, value: int, work: int | None = None) -> list[str]:
    """A worked step ``a op b = work`` and a final answer ``value`` (a slip when they differ)."""
    a, b = p.nums
    sym, w = kb.MATH_OPS[p.op], value if work is None else work
    style = rng.randrange(3)
    if style == 0:
        return [f"{a} {sym} {b} = {w}.", f"The answer is {value}."]
    if style == 1:
        return [f"{a} {p.op} {b} equals {w}, so the answer is {value}."]
    return [f"Let me work it out: {a} {sym} {b} = {w}.", f"So the result is {value}."]


def _math_value(p: _Prompt) -> int:
    a, b = p.nums
    return a + b if p.op == "plus" else a - b if p.op == "minus" else a * b


def _math_wrong(rng: random.Random, p: _Prompt) -> int:
    right = _math_value(p)
    a, b = p.nums
    options = [right + d for d in (-3, -2, -1, 1, 2, 3)] + [a + b, a * b, abs(a - b)]
    return rng.choice([v for v in options if v != right])


def _list_text(rng: random.Random, p: _Prompt, answer: str, work: str | None = None) -> list[str]:
    """Optionally a worked call ``f(list) gives work``, then the final ``answer``."""
    call = f"{kb.LIST_CALLS[p.op]}({list(p.nums)})"
    if work is not None or rng.random() < 0.5:
        return [f"{call} gives {answer if work is None else work}.", f"The answer is {answer}."]
    return [f"The answer is {answer}."]


def _list_wrong(rng: random.Random, p: _Prompt) -> str:
    values = list(p.nums)
    right = list_answer(p.op, values)
    if p.op in ("sort", "reverse"):
        target = sorted(values) if p.op == "sort" else list(reversed(values))
        for _ in range(50):
            cand = list(target)
            i = rng.randrange(len(cand) - 1)
            cand[i], cand[i + 1] = cand[i + 1], cand[i]
            if rng.random() < 0.3:
                cand = list(values)
            if str(cand) != right:
                return str(cand)
        return str(list(reversed(target)))  # pragma: no cover
    ordered = sorted(values)
    if p.op == "max":
        return str(rng.choice([ordered[0], ordered[-2]]))
    return str(rng.choice([ordered[-1], ordered[1]]))  # min


def _pad(rng: random.Random, sentences: list[str], n_fill: int) -> str:
    fillers = rng.sample(kb.FILLERS, n_fill)
    head = fillers[: rng.randint(0, n_fill)]
    return " ".join([*head, *sentences, *fillers[len(head) :]])


def _pair(rng: random.Random, subset: str, p: _Prompt, cfg: WorldConfig) -> tuple[str, str]:
    """(better-by-construction, worse-by-construction) completions for a subset's pair type."""
    m = cfg.max_fillers
    n1, n2 = rng.randint(0, m), rng.randint(0, m)
    if subset == "chat/easy":
        good = _good_chat(rng, p.topic, rng.randint(2, 3))
        kind = rng.randrange(3)
        if kind == 0:
            bad = _good_chat(rng, _other_topic(rng, p.topic), rng.randint(1, 2))
        elif kind == 1:
            bad = _refusal(rng, 0.0)
        else:
            bad = _vague(rng, p.topic, rng.randint(1, 2))
        return _pad(rng, good, n1), _pad(rng, bad, n2)
    if subset == "chat/length":
        good = _good_chat(rng, p.topic, rng.randint(1, 2))
        bad = _vague(rng, p.topic, rng.randint(2, 3))
        return _pad(rng, good, 0), _pad(rng, bad, m + 2)
    if subset == "chat/medium":
        good = _good_chat(rng, p.topic, 3)
        facts = rng.sample(_topic_facts(p.topic), 2)
        if rng.random() < 0.5:
            bad = [facts[0].render(), *_vague(rng, p.topic, 1)]
        else:
            bad = [facts[0].render(), facts[1].render(rng.choice(facts[1].wrong))]
        return _pad(rng, good, n1), _pad(rng, bad, n2)
    if subset == "chat-hard/near-miss":
        sib = next(f for f in kb.FACTS if f.topic == kb.SIBLING[p.topic] and f.aspect == p.fact.aspect)
        if rng.random() < 0.7:
            bad = [sib.render()]
        else:
            bad = [rng.choice([f for f in _topic_facts(p.topic) if f != p.fact]).render()]
        return _pad(rng, [p.fact.render()], n1), _pad(rng, bad, n2)
    if subset == "chat-hard/subtle":
        fill = rng.sample(kb.FILLERS, n1)
        good = " ".join([*fill, p.fact.render()])
        bad = " ".join([*fill, p.fact.render(rng.choice(p.fact.wrong))])
        return good, bad
    if subset == "safety/should-refuse":
        return _pad(rng, _refusal(rng, 0.5), n1), _pad(rng, _compliance(rng, p.act), n2)
    if subset == "safety/should-respond":
        return _pad(rng, _helpful(rng, p.act), n1), _pad(rng, _refusal(rng, 0.3), n2)
    if subset == "reasoning/math":  # half the wrong answers are slips after a right step
        right = _math_value(p)
        work = right if rng.random() < 0.5 else None
        return (
            _pad(rng, _math_text(rng, p, right), n1),
            _pad(rng, _math_text(rng, p, _math_wrong(rng, p), work), n2),
        )
    if subset == "reasoning/code-like":
        right = list_answer(p.op, list(p.nums))
        work = right if rng.random() < 0.5 else None
        return (
            _pad(rng, _list_text(rng, p, right), n1),
            _pad(rng, _list_text(rng, p, _list_wrong(rng, p), work), n2),
        )
    raise ValueError(f"unknown subset {subset!r}; expected one of {sorted(_SUBSET_KINDS)}")


# ---------------------------------------------------------------- datasets ----------------------


def _fmt_prompt(text: str, cfg: WorldConfig) -> Any:
    return [{"role": "user", "content": text}] if cfg.message_format == "chat" else text


def _fmt_completion(text: str, cfg: WorldConfig) -> Any:
    return [{"role": "assistant", "content": text}] if cfg.message_format == "chat" else text


def _subset_plan(n: int, weights: Mapping[str, float], cfg: WorldConfig) -> list[str]:
    """Exact per-domain counts, then exact per-subset counts within each domain."""
    plan: list[str] = []
    for domain, count in allocate(n, weights).items():
        subs = SUBSETS[domain]
        sw = {s: (cfg.subset_weights or {}).get(s, 1.0) for s in subs}
        if sum(sw.values()) <= 0:
            sw = dict.fromkeys(subs, 1.0)
        for subset, k in allocate(count, sw).items():
            plan.extend([subset] * k)
    return plan


def _bt_label(rng: random.Random, r1: float, r2: float, temperature: float) -> bool:
    """True when completion 1 wins: ``P = sigma((r1 - r2) / T)``; ``T = 0`` is the argmax."""
    if temperature == 0:
        return r1 > r2 or (r1 == r2 and rng.random() < 0.5)
    z = (r1 - r2) / temperature
    p = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    return rng.random() < p


def _pairs(
    name: str,
    plan: list[str],
    cfg: WorldConfig,
    seed: int,
    part: str,
    temperature: float,
    min_gap: float,
) -> list[dict[str, Any]]:
    """One pair per planned subset, from prompts of partition ``part``, labelled at ``temperature``."""
    rng = random.Random(f"{seed}:{name}")
    plan = list(plan)
    rng.shuffle(plan)
    rows = []
    for i, subset in enumerate(plan):
        domain = subset.split("/")[0]
        for _ in range(1000):
            p = _draw_prompt_in(rng, rng.choice(_SUBSET_KINDS[subset]), cfg, part)
            a, b = _pair(rng, subset, p, cfg)
            ra, rb = oracle_reward(p.text, a, cfg.oracle), oracle_reward(p.text, b, cfg.oracle)
            if a != b and abs(ra - rb) >= min_gap:
                break
        else:  # pragma: no cover - only with a pathological config
            raise ValueError(f"{name}: cannot make a {subset} pair with an oracle gap >= {min_gap}")
        if rng.random() < 0.5:  # present the two in random order before labelling
            a, b, ra, rb = b, a, rb, ra
        a_wins = _bt_label(rng, ra, rb, temperature)
        chosen, rejected, rc, rr = (a, b, ra, rb) if a_wins else (b, a, rb, ra)
        rows.append(
            {
                "id": f"synthetic-{name}-{i:06d}",
                "prompt": _fmt_prompt(p.text, cfg),
                "chosen": _fmt_completion(chosen, cfg),
                "rejected": _fmt_completion(rejected, cfg),
                "source": f"synthetic/{domain}",
                "domain": domain,
                "subset": subset,
                "chosen_score": float(rc),
                "rejected_score": float(rr),
            }
        )
    return rows


def _sft_rows(cfg: WorldConfig, seed: int) -> list[dict[str, Any]]:
    """Demonstrations: the better pair member with prob. ``sft_good_prob``, else the worse one."""
    rng = random.Random(f"{seed}:sft")
    plan = _subset_plan(cfg.n_sft, cfg.sft_domain_weights or dict.fromkeys(DOMAINS, 1.0), cfg)
    rng.shuffle(plan)
    rows = []
    for i, subset in enumerate(plan):
        p = _draw_prompt_in(rng, _SUBSET_KINDS[subset][0], cfg, "train")
        good, bad = _pair(rng, subset, p, cfg)
        text = good if rng.random() < cfg.sft_good_prob else bad
        rows.append(
            {
                "id": f"synthetic-sft-{i:06d}",
                "prompt": _fmt_prompt(p.text, cfg),
                "completion": _fmt_completion(text, cfg),
                "source": f"synthetic/{subset.split('/')[0]}",
                "domain": subset.split("/")[0],
                "subset": subset,
                "score": float(oracle_reward(p.text, text, cfg.oracle)),
            }
        )
    return rows


_PROMPT_SUBSETS: dict[str, tuple[tuple[str, str], ...]] = {
    "chat": (("open", "chat/open"),),
    "chat-hard": (("aspect", "chat-hard/aspect"),),
    "safety": (("harmful", "safety/should-refuse"), ("benign", "safety/should-respond")),
    "reasoning": (("math", "reasoning/math"), ("list", "reasoning/code-like")),
}


def _prompt_rows(cfg: WorldConfig, seed: int) -> list[dict[str, Any]]:
    """Held-out generation prompts: equal per domain, equal per prompt kind within a domain."""
    rng = random.Random(f"{seed}:prompts")
    rows, seen = [], set()
    for domain, count in allocate(cfg.n_prompts, dict.fromkeys(DOMAINS, 1.0)).items():
        kinds = _PROMPT_SUBSETS[domain]
        for (kind, subset), k in zip(kinds, allocate(count, dict.fromkeys(kinds, 1.0)).values(), strict=True):
            for _ in range(k):
                for _ in range(200):  # prefer distinct prompts; repeat only if the pool is small
                    p = _draw_prompt_in(rng, kind, cfg, "heldout")
                    if p.text not in seen:
                        break
                seen.add(p.text)
                rows.append(
                    {
                        "id": f"synthetic-prompt-{len(rows):06d}",
                        "prompt": _fmt_prompt(p.text, cfg),
                        "source": f"synthetic/{domain}",
                        "domain": domain,
                        "subset": subset,
                    }
                )
    return rows


def generate_world(config: WorldConfig | Mapping[str, Any] | None = None, seed: int = 0) -> dict[str, Any]:
    """Generate every split of the world; the same ``(config, seed)`` gives identical rows.

    Returns ``datasets.Dataset`` objects: ``train`` (BT-labelled pairs, training mixture),
    ``test`` (in-distribution held-out pairs, oracle labels), ``eval`` (``n_eval_per_subset`` pairs
    per subset, oracle labels), ``sft`` (prompt/completion demonstrations) and ``prompts``.
    """
    import datasets

    cfg = config if isinstance(config, WorldConfig) else WorldConfig.from_dict(config)
    if not isinstance(seed, int):
        raise ValueError(f"generate_world: seed must be an int, got {seed!r}")
    rows = {
        "train": _pairs(
            "train",
            _subset_plan(cfg.n_train, cfg.domain_weights, cfg),
            cfg,
            seed,
            "train",
            cfg.label_temperature,
            0.0,
        ),
        "test": _pairs(
            "test",
            _subset_plan(cfg.n_test, cfg.domain_weights, cfg),
            cfg,
            seed,
            "eval",
            0.0,
            cfg.min_eval_gap,
        ),
        "eval": _eval_rows(cfg, seed),
        "sft": _sft_rows(cfg, seed),
        "prompts": _prompt_rows(cfg, seed),
    }
    return {name: datasets.Dataset.from_list(r) if r else _empty(name, cfg) for name, r in rows.items()}


def _eval_rows(cfg: WorldConfig, seed: int) -> list[dict[str, Any]]:
    """``n_eval_per_subset`` oracle-labelled pairs per subset (balanced), in subset order."""
    rows: list[dict[str, Any]] = []
    for subs in SUBSETS.values():
        for subset in subs:
            name = f"eval-{subset.replace('/', '-')}"
            rows.extend(_pairs(name, [subset] * cfg.n_eval_per_subset, cfg, seed, "eval", 0.0, cfg.min_eval_gap))
    for i, r in enumerate(rows):
        r["id"] = f"synthetic-eval-{i:06d}"
    return rows


def _empty(name: str, cfg: WorldConfig) -> Any:
    import datasets

    cols = {
        "sft": ["id", "prompt", "completion", "source", "domain", "subset", "score"],
        "prompts": ["id", "prompt", "source", "domain", "subset"],
    }.get(
        name,
        [
            "id",
            "prompt",
            "chosen",
            "rejected",
            "source",
            "domain",
            "subset",
            "chosen_score",
            "rejected_score",
        ],
    )
    return datasets.Dataset.from_dict({c: [] for c in cols})


def world_corpus(world: Mapping[str, Any], include_tables: bool = True) -> list[str]:
    """Every text of a world (plus, by default, every table string) for tokenizer training."""
    from core.data.synthetic_oracle import text_of

    texts: list[str] = []
    for ds in world.values():
        for col in ("prompt", "chosen", "rejected", "completion"):
            if col in ds.column_names:
                texts.extend(text_of(v) for v in ds[col])
    if include_tables:
        for f in kb.FACTS:
            texts.append(f.question)
            texts.extend(f.render(v) for v in (f.correct, *f.wrong))
        texts.extend([*kb.FILLERS, *kb.REFUSALS, *kb.REDIRECTS, *kb.COMPLIANCE_STEPS])
        texts.extend(s for pair in kb.BENIGN_ACTS.values() for s in pair)
    return texts


#: the world's splits a backbone may be pretrained on: the training pool and the SFT demonstrations
PRETRAINING_SPLITS = ("train", "sft")


def pretraining_corpus(world: Mapping[str, Any]) -> list[str]:
    """The backbone's pretraining corpus: the world's tables (every fact with its right and wrong
    values, refusals, compliance and filler sentences) and the texts of its training-side splits
    (``PRETRAINING_SPLITS``) -- nothing of a test or evaluation split, and no preference label.
    Each prompt+response is one document (a dialogue as plain text), so the LM sees responses in
    the context of their prompts."""
    from core.data.synthetic_oracle import text_of

    docs = world_corpus({}, include_tables=True)
    for name in PRETRAINING_SPLITS:
        ds = world.get(name)
        if ds is None:
            continue
        responses = [c for c in ("chosen", "rejected", "completion") if c in ds.column_names]
        for row in ds.select_columns(["prompt", *responses]):
            prompt = text_of(row["prompt"])
            docs.extend(f"{prompt}\n{text_of(row[c])}" for c in responses if row[c])
    return docs


def write_world(
    world: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    config: WorldConfig | Mapping[str, Any] | None = None,
    seed: int | None = None,
) -> dict[str, Path]:
    """Write each split as ``<out_dir>/<split>.parquet`` and ``world.json`` (config, seed), atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, ds in world.items():
        paths[name] = atomic_write(out / f"{name}.parquet", ds.to_parquet)
    cfg = config if isinstance(config, WorldConfig) else WorldConfig.from_dict(config)
    meta = {"config": cfg.to_dict(), "seed": seed, "splits": {k: len(v) for k, v in world.items()}}
    paths["world.json"] = atomic_write_json(out / "world.json", meta, indent=2, sort_keys=True)
    return paths
