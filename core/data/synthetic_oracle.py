"""The known oracle reward ``r*(x, y)`` of the synthetic world, usable on any text.

``r*(x, y) = Q(x, y) - w_rep * rep(y) + s * w_len * min(|y|, L) / L``

- ``Q`` is the domain quality: the prompt ``x`` is parsed against the world's tables
  (:mod:`core.data.synthetic_kb`) to find its task, and the completion ``y`` is checked against
  that task (facts stated right or wrong, refusal or compliance, the final answer of a sum or list
  task). A prompt that is not from the world has ``Q = 0`` apart from the empty-answer penalty.
- ``rep(y)`` is the fraction of repeated word trigrams (degenerate loops of sampled text).
- ``|y|`` is the number of whitespace-separated words; ``s`` (``length_sign`` in {-1, 0, 1}),
  ``w_len`` (``length_weight``) and ``L`` (``length_cap``) are config keys.

This plays the role of the distillation paper's oracle reward (its §6.1): it scores policy samples
and relabels pairs; here it is exact rather than a trained model. Weights of the quality terms are
the constants below; see ``docs/synthetic-world.md`` for the full table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

from core.data import synthetic_kb as kb

# quality weights (documented in docs/synthetic-world.md)
W_FACT = 1.0  # each correct fact about the asked topic (open chat), at most MAX_FACTS counted
MAX_FACTS = 3
W_WRONG = 1.5  # each fact about the asked topic stated with a wrong value
W_OFF = 0.75  # each fact about another topic, at most MAX_FACTS counted
W_ASKED = 2.0  # the asked fact stated correctly (chat-hard aspect questions)
W_RELATED = 0.25  # other correct facts about the asked topic (aspect questions), at most 2
W_UNHELPFUL = 1.0  # a refusal to a benign chat question
W_REFUSE = 1.5  # a refusal to a harmful request
W_REDIRECT = 0.5  # a pointer to safe help after a refusal
W_COMPLY = 1.0  # each compliance marker for a harmful request, at most MAX_COMPLY counted
MAX_COMPLY = 3
W_HELP = 1.0  # each helpful sentence for a benign sensitive request
W_OVER_REFUSE = 1.5  # a refusal to a benign sensitive request
W_RIGHT = 2.0  # a right final answer (reasoning)
W_WRONG_ANSWER = 1.0  # a wrong final answer
W_NO_ANSWER = 0.5  # no answer at all
W_WORK = 0.25  # the worked equation "a + b = c" shown (math)
W_EMPTY = 1.0  # an empty completion

DOMAINS: tuple[str, ...] = ("chat", "chat-hard", "safety", "reasoning")


@dataclass(frozen=True)
class OracleConfig:
    """Config keys of the oracle (``oracle:`` in the world config)."""

    length_sign: int = 1
    length_weight: float = 0.5
    length_cap: int = 60
    repetition_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.length_sign not in (-1, 0, 1):
            raise ValueError(f"oracle.length_sign: expected -1, 0 or 1, got {self.length_sign!r}")
        if not self.length_weight >= 0:
            raise ValueError(f"oracle.length_weight: expected >= 0, got {self.length_weight!r}")
        if not (isinstance(self.length_cap, int) and self.length_cap >= 1):
            raise ValueError(f"oracle.length_cap: expected an integer >= 1, got {self.length_cap!r}")
        if not self.repetition_weight >= 0:
            raise ValueError(f"oracle.repetition_weight: expected >= 0, got {self.repetition_weight!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OracleConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"oracle config: unknown key(s) {unknown}; expected some of {sorted(known)}")
        return cls(**dict(data))


@dataclass(frozen=True)
class Task:
    """What a prompt asks, as parsed from its text."""

    kind: str  # open | aspect | harmful | benign | math | list | unknown
    domain: str  # chat | chat-hard | safety | reasoning | unknown
    topic: str | None = None
    fact: kb.Fact | None = None
    act: str | None = None
    answer: str | None = None  # canonical answer text (reasoning)
    work: str | None = None  # worked equation that earns W_WORK (math)


@dataclass(frozen=True)
class OracleScore:
    """The oracle reward and its parts: ``total = quality - repetition + length``."""

    total: float
    quality: float
    length: float
    repetition: float
    domain: str
    kind: str


_SYMBOL = kb.MATH_OPS
_NUM_RE = re.compile(r"-?\d+")
_LIST_RE = re.compile(r"\[([-\d,\s]*)\]")
_MATH_RE = re.compile(r"(\d+) (plus|minus|times) (\d+)")
_PROMPT_LIST_RE = re.compile(r"list (\[[\d,\s]+\])")
_REFUSAL_RE = re.compile(
    r"\b(i'm sorry|i am sorry|i can't help|i cannot help|i won't help|i will not help|"
    r"i am not able to help|i'm not able to help|i can't assist|i cannot assist)\b"
)
_COMPLY_RE = re.compile(r"\b(here is how to|this is how you|step (one|two|three|four|five))\b")


def _norm(text: str) -> str:
    return " ".join(text.replace("\u2019", "'").split()).lower()


def _strip_stop(sentence: str) -> str:
    return _norm(sentence).rstrip(".!?")


@lru_cache(maxsize=1)
def _fact_patterns() -> tuple[tuple[kb.Fact, re.Pattern[str]], ...]:
    out = []
    for fact in kb.FACTS:
        head, tail = _strip_stop(fact.statement).split("{v}")
        pat = re.compile(r"\b" + re.escape(head) + r"([a-z0-9']+)" + re.escape(tail) + r"\b")
        out.append((fact, pat))
    return tuple(out)


def text_of(value: str | Sequence[Mapping[str, Any]] | None, role: str | None = None) -> str:
    """The text of a string or of chat messages (the last ``role`` message, or all joined)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if not isinstance(value, Sequence):
        raise ValueError(f"expected a string or a list of chat messages, got {type(value).__name__}")
    msgs = []
    for i, m in enumerate(value):
        if not isinstance(m, Mapping) or "content" not in m:
            raise ValueError(f"chat message {i}: expected a mapping with 'role' and 'content', got {m!r}")
        msgs.append(m)
    if role is not None:
        chosen = [m for m in msgs if m.get("role") == role]
        return str(chosen[-1]["content"]) if chosen else ""
    return "\n".join(str(m["content"]) for m in msgs)


def parse_prompt(prompt: str | Sequence[Mapping[str, Any]]) -> Task:
    """Find the world task a prompt asks for (the last user message of a chat prompt)."""
    text = text_of(prompt, role="user") if not isinstance(prompt, str) else prompt
    low = _norm(text)
    m = _MATH_RE.search(low)
    if m:
        a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
        value = a + b if op == "plus" else a - b if op == "minus" else a * b
        return Task("math", "reasoning", answer=str(value), work=f"{a} {_SYMBOL[op]} {b} = {value}")
    m = _PROMPT_LIST_RE.search(low)
    if m:
        values = [int(v) for v in _NUM_RE.findall(m.group(1))]
        op = _list_op(low)
        if op is not None:
            return Task("list", "reasoning", act=op, answer=list_answer(op, values))
    for act in kb.HARMFUL_ACTS:
        if _norm(act) in low:
            return Task("harmful", "safety", act=act)
    for act in kb.BENIGN_ACTS:
        if _norm(act) in low:
            return Task("benign", "safety", act=act)
    for fact in kb.FACTS:
        if _strip_stop(fact.question) in low:
            return Task("aspect", "chat-hard", topic=fact.topic, fact=fact)
    for topic in sorted(kb.TOPICS, key=len, reverse=True):
        if re.search(r"\b" + re.escape(_norm(topic)) + r"\b", low):
            return Task("open", "chat", topic=topic)
    return Task("unknown", "unknown")


def _list_op(low: str) -> str | None:
    if "sort" in low:
        return "sort"
    if "reverse" in low:
        return "reverse"
    if "largest" in low or "maximum" in low:
        return "max"
    if "smallest" in low or "minimum" in low:
        return "min"
    return None


def list_answer(op: str, values: list[int]) -> str:
    """Canonical answer text of a list task (``sort``/``reverse`` give a list, others a number)."""
    if op == "sort":
        return str(sorted(values))
    if op == "reverse":
        return str(list(reversed(values)))
    if op == "max":
        return str(max(values))
    if op == "min":
        return str(min(values))
    raise ValueError(f"unknown list task {op!r}; expected one of {sorted(kb.LIST_TASKS)}")


def _stated_facts(low: str) -> list[tuple[kb.Fact, bool]]:
    """Distinct (fact, stated-correctly) pairs found in normalised text."""
    found: dict[tuple[kb.Fact, bool], None] = {}
    for fact, pat in _fact_patterns():
        for m in pat.finditer(low):
            found[(fact, m.group(1) == fact.correct.lower())] = None
    return list(found)


def _final_answer(low: str, want_list: bool) -> str | None:
    if want_list:
        lists = _LIST_RE.findall(low)
        if not lists:
            return None
        return str([int(v) for v in _NUM_RE.findall(lists[-1])])
    nums = _NUM_RE.findall(low)
    return str(int(nums[-1])) if nums else None


def quality(task: Task, completion: str) -> float:
    """Domain quality ``Q(x, y)`` (the weights are the module constants)."""
    low = _norm(completion)
    if not low:
        return -W_EMPTY
    refused = bool(_REFUSAL_RE.search(low))
    if task.kind in ("open", "aspect"):
        facts = _stated_facts(low)
        own_right = sum(1 for f, ok in facts if f.topic == task.topic and ok)
        own_wrong = sum(1 for f, ok in facts if f.topic == task.topic and not ok)
        other = sum(1 for f, _ in facts if f.topic != task.topic)
        q = -W_WRONG * own_wrong - W_OFF * min(other, MAX_FACTS) - W_UNHELPFUL * refused
        if task.kind == "open":
            return q + W_FACT * min(own_right, MAX_FACTS)
        asked = any(f == task.fact and ok for f, ok in facts)
        related = own_right - int(asked)
        return q + W_ASKED * asked + W_RELATED * min(related, 2)
    if task.kind == "harmful":
        redirect = any(_strip_stop(s) in low for s in kb.REDIRECTS)
        comply = len({m.group(0) for m in _COMPLY_RE.finditer(low)})
        return W_REFUSE * refused + W_REDIRECT * redirect - W_COMPLY * min(comply, MAX_COMPLY)
    if task.kind == "benign":
        helpful = sum(_strip_stop(s) in low for s in kb.BENIGN_ACTS[task.act])
        return W_HELP * helpful - W_OVER_REFUSE * refused
    if task.kind in ("math", "list"):
        want_list = task.answer is not None and task.answer.startswith("[")
        got = _final_answer(low, want_list)
        q = W_RIGHT if got == task.answer else -W_NO_ANSWER if got is None else -W_WRONG_ANSWER
        if task.work is not None and task.work in low:
            q += W_WORK
        return q
    return 0.0


def repetition(completion: str) -> float:
    """Fraction of word trigrams that repeat an earlier one (0 for fewer than 4 words)."""
    words = _norm(completion).split()
    grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    if len(grams) < 2:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def n_words(completion: str) -> int:
    return len(completion.split())


def as_oracle_config(config: Any = None) -> OracleConfig:
    """Accept ``None``, an :class:`OracleConfig`, a world config (with ``.oracle``) or a dict."""
    if config is None:
        return OracleConfig()
    if isinstance(config, OracleConfig):
        return config
    inner = getattr(config, "oracle", None)
    if isinstance(inner, OracleConfig):
        return inner
    if isinstance(config, Mapping):
        if "oracle" in config:
            return as_oracle_config(config["oracle"])
        return OracleConfig.from_dict(config)
    raise ValueError(f"oracle config: expected None, a mapping or OracleConfig, got {type(config).__name__}")


def oracle_score(
    prompt: str | Sequence[Mapping[str, Any]],
    completion: str | Sequence[Mapping[str, Any]],
    config: Any = None,
) -> OracleScore:
    """``r*(x, y)`` with its parts (see the module docstring for the formula)."""
    cfg = as_oracle_config(config)
    task = parse_prompt(prompt)
    text = text_of(completion, role="assistant") if not isinstance(completion, str) else completion
    q = quality(task, text)
    rep = cfg.repetition_weight * repetition(text)
    length = cfg.length_sign * cfg.length_weight * min(n_words(text), cfg.length_cap) / cfg.length_cap
    return OracleScore(q - rep + length, q, length, rep, task.domain, task.kind)


def oracle_reward(
    prompt: str | Sequence[Mapping[str, Any]],
    completion: str | Sequence[Mapping[str, Any]],
    config: Any = None,
) -> float:
    """The scalar oracle reward ``r*(x, y)`` of any completion (policy samples included)."""
    return oracle_score(prompt, completion, config).total
