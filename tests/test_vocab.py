"""One vocabulary: the config schema's enums, the wildcard constraints and the trainers' checks
use core.vocab's words and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from core import vocab
from core.plan.paths import WILDCARD_CONSTRAINTS

SCHEMA = yaml.safe_load((Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml").read_text())


def prop(*keys: str) -> dict:
    node = SCHEMA["properties"]
    for k in keys:
        node = node[k]
    return node


def test_schema_enums_are_the_vocabulary():
    dr = prop("dr", "properties")
    robust = set(vocab.DIVERGENCES) - {"none"}
    assert set(dr["ppo"]["properties"]["divergence"]["enum"]) == robust
    assert set(dr["dpo"]["properties"]["divergence"]["enum"]) == robust
    assert set(dr["reward"]["properties"]["grids"]["additionalProperties"]["properties"]) == robust
    assert set(dr["ppo"]["properties"]["versions"]["items"]["enum"]) == set(vocab.PPO_VERSIONS) - {"none"}
    assert set(dr["reward"]["properties"]["average_iterates"]["enum"]) == set(vocab.AVERAGE_ITERATES)
    d = prop("distill", "properties")
    assert d["methods"]["items"]["enum"] == list(vocab.LOSS_TYPES)
    assert d["gamma"]["properties"]["schedule"]["enum"] == list(vocab.GAMMA_SCHEDULES)
    assert d["kl_estimator"]["enum"] == list(vocab.FORWARD_KL_ESTIMATORS)
    assert set(prop("report", "properties", "ppo_version")["enum"]) == set(vocab.PPO_VERSIONS) - {"none"}
    assert set(prop("eval", "properties", "benchmarks", "properties")) == set(vocab.BENCHMARKS) - {"id"}


def test_wildcards_accept_exactly_the_vocabulary():
    def words(name: str) -> set[str]:
        return set(WILDCARD_CONSTRAINTS[name].split("|"))

    assert words("div") == set(vocab.DIVERGENCES)
    assert words("version") == set(vocab.PPO_VERSIONS)
    assert words("method") == set(vocab.LOSS_TYPES)
    assert words("gamma") == {vocab.NO_GAMMA, *vocab.GAMMA_SCHEDULES}
    assert all(re.fullmatch(WILDCARD_CONSTRAINTS["div"], d) for d in vocab.DIVERGENCES)


def test_library_uses_the_same_words():
    from core import dro
    from core.eval import rewardbench
    from core.trainers import dpo, ppo

    assert dro.DIVERGENCES is vocab.DIVERGENCES
    assert rewardbench.SECTIONS == vocab.REWARDBENCH_SECTIONS
    assert dpo.LOSS_TYPES is vocab.LOSS_TYPES
    assert ppo.PPO_VERSIONS is vocab.PPO_VERSIONS
    assert dpo.GAMMA_SCHEDULES is vocab.GAMMA_SCHEDULES
