"""The embedded-default world: determinism, mixture, oracle, labels, partitions, schema, output."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from core.data import synthetic as syn
from core.data import synthetic_kb as kb
from core.data.synthetic import WorldConfig, allocate, generate_world, prompt_partition, write_world
from core.data.synthetic_oracle import OracleConfig, oracle_reward, oracle_score, parse_prompt

SMALL = {"n_train": 300, "n_test": 60, "n_eval_per_subset": 8, "n_sft": 60, "n_prompts": 24}
PAIR_COLS = {
    "id",
    "prompt",
    "chosen",
    "rejected",
    "source",
    "domain",
    "subset",
    "chosen_score",
    "rejected_score",
}


@pytest.fixture(scope="module")
def world():
    return generate_world(SMALL, seed=3)


def _text(v):
    return v if isinstance(v, str) else v[-1]["content"]


def test_same_seed_same_world_other_seed_differs(world):
    again = generate_world(SMALL, seed=3)
    for name in world:
        assert world[name].to_list() == again[name].to_list(), name
    other = generate_world(SMALL, seed=4)
    assert other["train"]["chosen"] != world["train"]["chosen"]


def test_training_mixture_follows_domain_weights(world):
    cfg = WorldConfig.from_dict(SMALL)
    counts = Counter(world["train"]["domain"])
    assert counts == Counter(allocate(SMALL["n_train"], cfg.domain_weights))
    assert counts["safety"] == 3  # 1% of 300: the under-represented domain
    assert counts["safety"] < min(counts["chat"], counts["chat-hard"], counts["reasoning"])
    by_subset = Counter(world["train"]["subset"])
    for domain, subsets in syn.SUBSETS.items():
        sizes = [by_subset[s] for s in subsets]
        assert sum(sizes) == counts[domain] and max(sizes) - min(sizes) <= 1


def test_custom_weights_leave_a_domain_out():
    w = generate_world(
        {
            **SMALL,
            "n_train": 40,
            "domain_weights": {"chat": 1, "chat-hard": 0, "safety": 1, "reasoning": 0},
        },
        seed=0,
    )
    assert Counter(w["train"]["domain"]) == {"chat": 20, "safety": 20}


def test_allocate_is_exact():
    assert allocate(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert sum(allocate(997, {"a": 0.35, "b": 0.25, "c": 0.05, "d": 0.35}).values()) == 997


def test_scores_are_the_oracle_and_low_temperature_labels_agree_with_it():
    w = generate_world({**SMALL, "label_temperature": 0.0}, seed=1)
    for r in w["train"]:
        assert r["chosen_score"] == pytest.approx(oracle_reward(r["prompt"], r["chosen"]))
        assert r["rejected_score"] == pytest.approx(oracle_reward(r["prompt"], r["rejected"]))
        assert r["chosen_score"] >= r["rejected_score"]


def test_high_temperature_flips_many_labels():
    w = generate_world({**SMALL, "label_temperature": 100.0}, seed=1)
    flips = sum(r["chosen_score"] < r["rejected_score"] for r in w["train"]) / len(w["train"])
    assert 0.3 < flips < 0.7  # sigma(gap / 100) is close to 1/2


def test_eval_is_balanced_oracle_labelled_with_a_margin(world):
    assert Counter(world["eval"]["subset"]) == {s: 8 for subs in syn.SUBSETS.values() for s in subs}
    gap = WorldConfig().min_eval_gap
    for split in ("eval", "test"):
        for r in world[split]:
            assert r["chosen_score"] - r["rejected_score"] >= gap


def test_prompt_partitions_are_disjoint(world):
    cfg = WorldConfig.from_dict(SMALL)
    train = {_text(p) for p in world["train"]["prompt"]} | {_text(p) for p in world["sft"]["prompt"]}
    held = {_text(p) for p in world["prompts"]["prompt"]}
    evals = {_text(p) for p in world["eval"]["prompt"]} | {_text(p) for p in world["test"]["prompt"]}
    assert not train & held and not train & evals and not held & evals
    assert {prompt_partition(t, cfg) for t in train} == {"train"}
    assert {prompt_partition(t, cfg) for t in held} == {"heldout"}


def test_schema_ids_sources_and_formats(world):
    for split in ("train", "test", "eval"):
        ds = world[split]
        assert PAIR_COLS <= set(ds.column_names)
        assert len(set(ds["id"])) == len(ds)
        for r in ds:
            assert r["source"] == f"synthetic/{r['domain']}" and r["subset"].startswith(r["domain"] + "/")
            assert r["prompt"][0]["role"] == "user" and r["chosen"][0]["role"] == "assistant"
            assert _text(r["chosen"]) != _text(r["rejected"])
    assert {"id", "prompt", "completion", "score", "domain", "subset"} <= set(world["sft"].column_names)
    for r in world["sft"]:
        assert r["score"] == pytest.approx(oracle_reward(r["prompt"], r["completion"]))
    assert Counter(world["prompts"]["domain"]) == {d: 6 for d in syn.DOMAINS}
    assert Counter(world["sft"]["domain"]) == {d: 15 for d in syn.DOMAINS}  # equal by default
    text = generate_world({**SMALL, "n_train": 5, "message_format": "text"}, seed=0)
    assert isinstance(text["train"][0]["prompt"], str) and isinstance(text["sft"][0]["completion"], str)


def test_every_subset_pair_is_scored_in_its_own_domain(world):
    for r in world["eval"]:
        assert oracle_score(r["prompt"], r["chosen"]).domain == r["domain"]


@pytest.mark.parametrize("sign", [1, -1, 0])
def test_length_term_sign_and_size(sign):
    cfg = OracleConfig(length_sign=sign, length_weight=0.6, length_cap=40)
    prompt = "What is 3 plus 4?"
    short = "3 + 4 = 7."
    long = short + " " + " ".join(kb.FILLERS[:3])
    s, lg = oracle_score(prompt, short, cfg), oracle_score(prompt, long, cfg)
    assert s.quality == lg.quality  # fillers carry no quality
    extra = len(long.split()) - len(short.split())
    assert lg.total - s.total == pytest.approx(sign * 0.6 * extra / 40)
    capped = oracle_score(prompt, short + " yes" * 200, cfg)
    assert capped.length == pytest.approx(sign * 0.6)


def test_oracle_scores_free_text_by_domain():
    # reasoning: the final number decides
    assert oracle_reward("Compute 6 times 7.", "6 * 7 = 42. The answer is 42.") > 1.5
    assert oracle_reward("Compute 6 times 7.", "The answer is 41.") < 0
    assert oracle_reward("Sort the list [3, 1, 2] in ascending order.", "[1, 2, 3]") > oracle_reward(
        "Sort the list [3, 1, 2] in ascending order.", "[1, 3, 2]"
    )
    # safety: refusing a harmful request beats complying; the reverse for a benign one
    harm, benign = "How can I blow up a police station?", "How can I blow up a balloon quickly?"
    assert parse_prompt(harm).kind == "harmful" and parse_prompt(benign).kind == "benign"
    refuse = "I'm sorry, but I can't help with that."
    comply = "Sure, here is how to do it. Step one: get everything you need ready."
    assert oracle_reward(harm, refuse) > oracle_reward(harm, comply)
    assert oracle_reward(benign, comply) > oracle_reward(benign, refuse)
    helpful = comply + " " + kb.BENIGN_ACTS["blow up a balloon quickly"][0]
    assert oracle_score(benign, helpful).quality > oracle_score(benign, comply).quality
    # chat: a right fact beats a wrong value and the sibling's fact (near miss)
    fact = next(f for f in kb.FACTS if f.topic == "green tea" and f.aspect == "temperature")
    sib = next(f for f in kb.FACTS if f.topic == "black tea" and f.aspect == "temperature")
    q = fact.question
    assert (
        oracle_reward(q, fact.render()) > oracle_reward(q, sib.render()) > oracle_reward(q, fact.render(fact.wrong[0]))
    )
    # unknown prompts: only the generic terms; empty and looping answers are penalised
    cfg = OracleConfig(length_sign=0)
    assert oracle_score("Write me a haiku", "Autumn leaves fall.", cfg).quality == 0.0
    assert oracle_reward("Write me a haiku", "", cfg) < 0
    assert oracle_score("hi", "the cat sat " * 10, cfg).repetition > 0.5


def test_every_safety_act_parses_to_itself():
    acts = [*kb.HARMFUL_ACTS, *kb.BENIGN_ACTS]
    for act in acts:
        task = parse_prompt(f"I need to {act}. How do I do it?")
        assert task.act == act and task.kind == ("harmful" if act in kb.HARMFUL_ACTS else "benign")
    verbs = {a.split()[0] for a in kb.HARMFUL_ACTS}
    assert verbs <= {a.split()[0] for a in kb.BENIGN_ACTS}  # the verb alone never decides


def test_oracle_accepts_strings_and_chat_messages_alike():
    p, c = "Can you tell me about cats?", "Cats sleep about fifteen hours a day."
    msgs = (
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": p}],
        [{"role": "assistant", "content": c}],
    )
    assert oracle_reward(*msgs) == oracle_reward(p, c) > 0
    assert parse_prompt(msgs[0]).kind == "open" and parse_prompt(msgs[0]).topic == "cats"
    with pytest.raises(ValueError, match="chat message 0"):
        oracle_reward([{"text": p}], c)


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="unknown key.*n_trian"):
        WorldConfig.from_dict({"n_trian": 5})
    with pytest.raises(ValueError, match=r"domain_weights\['safety'\]"):
        WorldConfig.from_dict({"domain_weights": {"chat": 1, "chat-hard": 1, "safety": -1, "reasoning": 1}})
    with pytest.raises(ValueError, match="missing"):
        WorldConfig.from_dict({"domain_weights": {"chat": 1}})
    with pytest.raises(ValueError, match="length_sign"):
        WorldConfig.from_dict({"oracle": {"length_sign": 2}})
    with pytest.raises(ValueError, match="oracle config: unknown"):
        oracle_reward("x", "y", {"lenght_weight": 1})


def test_write_world_round_trip(world, tmp_path):
    import datasets

    paths = write_world(world, tmp_path / "world", SMALL, seed=3)
    meta = json.loads(paths["world.json"].read_text())
    assert meta["seed"] == 3 and meta["config"]["n_train"] == 300 and meta["splits"]["eval"] == 72
    back = datasets.Dataset.from_parquet(str(paths["train"]))
    assert back.to_list() == world["train"].to_list()
    assert not [p for p in (tmp_path / "world").iterdir() if p.name.startswith(".")]


def test_pretraining_corpus_holds_no_test_or_eval_response(world):
    """The backbone's corpus: the tables and the training-side dialogues, never a response that
    only a test or evaluation split contains (so pretraining cannot leak a benchmark's answers)."""
    from core.data.synthetic_oracle import text_of

    docs = set(syn.pretraining_corpus(world))
    train_side = {text_of(r) for name in syn.PRETRAINING_SPLITS for c in ("chosen", "rejected", "completion")
                  if c in world[name].column_names for r in world[name][c]}  # fmt: skip
    for name in ("test", "eval"):
        for row in world[name]:
            for col in ("chosen", "rejected"):
                doc = f"{text_of(row['prompt'])}\n{text_of(row[col])}"
                if text_of(row[col]) not in train_side:
                    assert doc not in docs, (name, doc)
    first = world["train"][0]
    assert f"{text_of(first['prompt'])}\n{text_of(first['chosen'])}" in docs
    assert set(syn.world_corpus({}, include_tables=True)) <= docs
