"""The real-text workflow (experiment: real-text, docs/small-real.md) end to end on small fixtures
written here: AlpacaEval's layout with three generators, HHH's BIG-bench layout, a tiny BERT encoder.
Checks the splits, that a saved reward model scores raw text exactly as its cached states did, and
that the claims table, Table 8, Table 6 and Figure 2 are built with every claim and the gates."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from core.jobs.real_text import seed_benchmarks
from core.plan.real import RealPlan, choose_generators, distill_grid, distill_key
from core.report.paper_claims import CLAIMS
from tests.conftest import make_tiny_tokenizer
from tests.test_workflow import REPO, snakemake

SOURCES = ("helpful_base", "koala", "oasst", "selfinstruct", "vicuna")
GOOD = "yes sure here is my good answer".split()
BAD = "no sorry cannot help bad".split()


def _response(rng: np.random.Generator, good: bool) -> str:
    words = list(rng.choice(GOOD if good else BAD, size=int(rng.integers(3, 12))))
    return " ".join(words + list(rng.choice(["the", "cat", "sun", "one", "two"], size=int(rng.integers(0, 6)))))


def write_alpaca(root: Path, n_instructions: int = 60, generators=("gen-a", "gen-b", "gen-c")) -> None:
    """AlpacaEval's results/<generator>/alpaca_eval_gpt4/annotations.json: the judge prefers "good" words."""
    rng = np.random.default_rng(0)
    instructions = [(f"what is the answer to question {i} please", SOURCES[i % 5]) for i in range(n_instructions)]
    reference = {i: _response(rng, rng.random() < 0.5) for i in range(n_instructions)}
    for gen in generators:
        records = []
        for i, (text, source) in enumerate(instructions):
            good = rng.random() < 0.5
            out = _response(rng, good)
            ref_good = reference[i].split()[0] in GOOD
            pref = 2 if good and not ref_good else 1 if ref_good and not good else int(rng.integers(1, 3))
            records.append({"instruction": text, "dataset": source, "output_1": reference[i],
                            "generator_1": "text_davinci_003", "output_2": out, "generator_2": gen,
                            "annotator": "alpaca_eval_gpt4", "preference": pref})  # fmt: skip
        folder = root / "alpaca_eval" / "results" / gen / "alpaca_eval_gpt4"
        folder.mkdir(parents=True)
        (folder / "annotations.json").write_text(json.dumps(records))


def write_encoder(folder: Path) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    tok = make_tiny_tokenizer()
    tok.cls_token = "<s>"
    tok.chat_template = None
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=128, num_labels=1,
                     pad_token_id=tok.pad_token_id)  # fmt: skip
    BertForSequenceClassification(cfg).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)


def real_config(tmp: Path) -> dict:
    cfg = yaml.safe_load((REPO / "configs" / "small-real.yaml").read_text())
    cfg["name"] = "real-test"
    cfg["seeds"] = [0, 1]
    cfg["tracking"] = {"uri": f"sqlite:///{tmp}/mlflow.db"}
    cfg["data_root"] = str(tmp / "data")
    cfg["data"]["pool"]["n_generators"] = 2
    cfg["data"]["hhh"]["path"] = str(REPO / "tests" / "fixtures" / "data" / "hhh_alignment")
    cfg["encoder"] = {"path": str(tmp / "encoder"), "max_length": 24, "batch_size": 16, "threads": 1}
    cfg["reward"]["head"].update(steps=100, learning_rate=1e-2)
    cfg["reward"]["grids"] = {"unfiltered": {"tv": [0.4], "chi2": [0.1, 0.5]}, "no-helpful-base": {"tv": [0.4]}}
    # the fixture's training mixtures hold 24-28 shorter- and longer-chosen pairs per seed
    cfg["distill"].update(n_train=20, ensemble_n=5, gamma=[0.1])
    return cfg


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    write_alpaca(tmp / "data")
    write_encoder(tmp / "encoder")
    cfg = real_config(tmp)
    path = tmp / "real.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp, "--cores", "2", "--configfile", str(path), timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return tmp, cfg, RealPlan(cfg)


def test_generators_are_a_seeded_choice_without_the_reference():
    names = ["b", "a", "text_davinci_003", "c", "d"]
    chosen = choose_generators(names, 2, "text_davinci_003", 0)
    assert chosen == choose_generators(list(reversed(names)), 2, "text_davinci_003", 0)
    assert len(chosen) == 2 and "text_davinci_003" not in chosen
    with pytest.raises(ValueError, match="n_generators"):
        choose_generators(names, 5, "text_davinci_003", 0)


def test_seed_splits_shift_and_heldout(tmp_path):
    from core.data import load_preferences

    write_alpaca(tmp_path, n_instructions=200)
    pool = load_preferences(tmp_path / "alpaca_eval" / "results", "alpaca-eval")
    plan = RealPlan(real_config(tmp_path))
    sets = seed_benchmarks(pool, plan, "no-helpful-base", 0)
    prompts = {k: set(v["prompt"]) for k, v in sets.items()}
    assert not prompts["train"] & (prompts["val"] | prompts["id"] | prompts["heldout"])
    assert set(sets["heldout"]["source"]) == {"helpful_base"}
    assert "helpful_base" not in set(sets["train"]["source"]) | set(sets["id"]["source"])
    assert set(sets["shifted"]["source"]) == {"vicuna"}
    counts = pd.Series(sets["train"]["source"]).value_counts()
    assert counts["vicuna"] < 0.4 * counts["koala"]  # the under-represented source keeps ~15%
    assert seed_benchmarks(pool, plan, "no-helpful-base", 1)["val"]["id"] != sets["val"]["id"]


def test_saved_model_scores_raw_text_as_its_metrics_say(real_run):
    tmp, cfg, plan = real_run
    metrics = json.loads((tmp / plan.metrics("unfiltered", "tv", 0.4, 1)).read_text())
    model = tmp / plan.model("unfiltered", "tv", 0.4, 1)
    hhh = cfg["data"]["hhh"]["path"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.eval.score",
            "--model",
            str(model),
            "--data",
            hhh,
            "--format",
            "hhh",
            "--max-length",
            "24",
        ],  # fmt: skip
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    scored = json.loads(proc.stdout)
    assert scored["n"] == metrics["benchmarks"]["hhh"]["n"]
    assert scored["accuracy"] == pytest.approx(metrics["benchmarks"]["hhh"]["accuracy"])
    assert metrics["train"]["loss_last"] < metrics["train"]["loss_first"]


def test_claims_and_table8(real_run):
    tmp, _, plan = real_run
    claims = pd.read_csv(tmp / plan.claims("csv"), keep_default_na=False)
    ids = set(claims["claim"])
    assert {c.id for c in CLAIMS} <= {i.split(":")[0] for i in ids}
    measured = claims[claims["verdict"] != "n/a"]
    assert {"a2", "a:shifted", "a:heldout:no-helpful-base", "h", "b1", "b2", "b:shifted", "b:vs-cdpo:shifted",
            "b:vs-rdpo:id"} <= set(measured["claim"])  # fmt: skip
    assert (measured["n_seeds"] == 2).all()
    assert set(claims["verdict"]) <= {"reproduced", "opposite", "inconclusive", "n/a"}
    assert "rm_beyond_length" in (tmp / plan.claims("md")).read_text()
    assert "policy_learned" in (tmp / plan.claims("md")).read_text()
    table6 = pd.read_csv(tmp / plan.table("csv", 6))
    assert table6["policy"].iloc[-2].startswith("π_ref") and table6["policy"].str.startswith("DR-DPO tv").any()
    assert table6["policy"].iloc[-1].startswith("ceiling: the judge's best candidate")
    # no policy of the class beats the ceiling (all mass on a best-judged candidate), seed by seed
    for seed in plan.seeds():
        pols = json.loads((tmp / plan.policy_metrics(seed)).read_text())["policies"]
        ref = pols.pop("reference")
        assert ref["best_id"] >= ref["id"] and ref["best_shifted"] >= ref["shifted"]
        assert all(p[b] <= ref[f"best_{b}"] + 1e-9 for p in pols.values() for b in ("val", "id", "shifted"))
    table = pd.read_csv(tmp / plan.table("csv"))
    unfiltered = table[table["variant"] == "unfiltered"]["model"].tolist()
    assert unfiltered[0] == "BTL" and any(m.startswith("DR tv (ρ=0.4)") for m in unfiltered)
    assert "Reference: longer response preferred" in unfiltered
    runs = subprocess.run(
        [sys.executable, "-c", "import mlflow,sys; mlflow.set_tracking_uri(sys.argv[1]); "
         "print(len(mlflow.search_runs(experiment_names=['real-test'])))", f"sqlite:///{tmp}/mlflow.db"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    # every RM (6 x 2 seeds), the policies and the distillation policies per seed
    assert int(runs.stdout.strip().splitlines()[-1]) == 6 * 2 + 2 + 2


def test_distillation_policies_claims_d_e_and_figure2(real_run):
    tmp, cfg, plan = real_run
    claims = pd.read_csv(tmp / plan.claims("csv"), keep_default_na=False)
    family = claims["claim"].str.split(":").str[0]
    d, e = claims[family == "d"], claims[family == "e"]
    assert {"d:ddpo-vs-dpo", "d:edpo-vs-ipo", "e:pdpo-vs-dpo", "e:ddpo-vs-dpo"} <= set(claims["claim"])
    # d-/e-DPO x DPO/IPO x (in distribution, shifted) at the two biases at least 0.25 from 0.5
    assert len(d) == 2 * 2 * 2 * 2 and set(d["verdict"]) <= {"reproduced", "opposite", "inconclusive"}
    assert set(d["benchmark"]) == {f"{b}, b={x}" for b in ("in-distribution", "shifted sources") for x in (0.2, 0.8)}
    assert sorted(e["treatment"].str.split(" ").str[0]) == ["d-DPO", "p-DPO"] and (e["n_seeds"] == 2).all()
    assert "distill_learned" in (tmp / plan.claims("md")).read_text()
    figure = pd.read_csv(tmp / plan.figure2("csv"), keep_default_na=False)
    assert set(figure["bias b"].astype(float)) == {0.2, 0.5, 0.8}
    assert figure["model"].str.startswith("e-DPO (β=").sum() == 3
    assert "The distilled reward models" in (tmp / plan.figure2("md")).read_text()
    # the metrics hold, per bias, every (method, beta, gamma) of the grid and the reward models
    metrics = json.loads((tmp / plan.distill_metrics(1)).read_text())
    grid = {distill_key(m, b, g) for m, b, g in distill_grid(cfg)}
    assert len(grid) == 5 * 2  # 5 methods x 2 betas, one gamma
    for entry in metrics["biases"].values():
        assert set(entry["policies"]) == grid and set(entry["ensemble"]) == {"0.2", "0.5", "0.8"}
        assert all(math.isfinite(p["preferred_logratio"]) for p in entry["policies"].values())
        # e-DPO records which member its min took at each step: a share per member, summing to 1
        for key, p in entry["policies"].items():
            assert ("member_share" in p) == key.startswith("edpo|")
            if key.startswith("edpo|"):
                assert set(p["member_share"]) == {"0.2", "0.5", "0.8"}
                assert sum(p["member_share"].values()) == pytest.approx(1.0)
    assert "e-DPO's min took it" in (tmp / plan.figure2("md")).read_text()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(colour="red"), r"unknown key\(s\) \['colour'\]"),
        (lambda c: c["data"]["pool"].pop("annotator"), "missing key 'data.pool.annotator'"),
        (lambda c: c["reward"]["grids"].update({"no-such": {"tv": [0.2]}}), "reward.grids.no-such: no such variant"),
        (lambda c: c["reward"]["grids"]["unfiltered"].update({"kl": [0.2]}), "divergence must be one of"),
        (lambda c: c["reward"]["grids"]["unfiltered"].update({"tv": [0.0]}), "rho values must be finite and > 0"),
        (lambda c: c.update(seeds=[]), "'seeds' must be a non-empty list"),
        (lambda c: c["distill"].pop("n_train"), r"missing key\(s\) \['distill.n_train'\]"),
        (lambda c: c["distill"].update(methods=["ipo", "edpo"]), "distill.methods must include dpo"),
        (lambda c: c["distill"].update(biases=[1.5]), "distill.biases must be a non-empty list of numbers in"),
        (lambda c: c["distill"]["probe"].update(beta=0.3), "distill.probe.bias and distill.probe.beta"),
        (lambda c: c.pop("policy"), "'distill' needs the 'policy' section"),
    ],
)
def test_a_bad_config_names_its_key(tmp_path, edit, message):
    cfg = real_config(tmp_path)
    edit(cfg)
    with pytest.raises(ValueError, match=message):
        RealPlan(cfg)


def test_distill_claims_pick_validation_settings_and_flag_degenerate_policies():
    from core.report.real_distill import distill_claims

    rows = []
    for seed in range(3):
        for bias in (0.2, 0.8):
            rows.append({"seed": seed, "bias": bias, "method": "reference", "beta": 0.0, "gamma": 0.0, "val": 60.0,
                         "id": 60.0, "shifted": 60.0, "theta_norm": 0.0, "preferred_logratio": 0.0})  # fmt: skip
            for method, beta, val, idv, norm in (("dpo", 0.1, 70, 70 + seed, 5.0), ("dpo", 1.0, 65, 90, 5.0),
                                                 ("ipo", 0.1, 66, 66, 4.0), ("ddpo", 0.1, 71, 75 + seed, 0.0),
                                                 ("pdpo", 0.1, 70, 70, 3.0), ("edpo", 0.1, 69, 60, 6.0)):  # fmt: skip
                rows.append({"seed": seed, "bias": bias, "method": method, "beta": beta,
                             "gamma": 0.1 if method in ("pdpo", "edpo") else 0.0, "val": val, "id": idv,
                             "shifted": idv, "theta_norm": norm, "preferred_logratio": norm / 10})  # fmt: skip
    frame = pd.DataFrame(rows)
    rms = pd.DataFrame([{"seed": s, "bias": b, "degenerate": s == 1} for s in range(3) for b in (0.2, 0.8)])
    gates = {"rm_beyond_length": {"passed": True}}
    claims, new_gates = distill_claims(frame, rms, {"bias": 0.2, "beta": 0.1}, gates)
    by = {(r["claim"], r["benchmark"]): r for r in claims}
    # DPO's beta is chosen on validation (0.1: 70 > 65), not on the test value (beta 1's 90)
    row = by[("d:ddpo-vs-dpo", "in-distribution, b=0.2")]
    assert row["effect"] == pytest.approx(5.0) and row["baseline"] == "DPO (β=0.1)" and row["n_seeds"] == 3
    assert "degenerate ddpo: seeds 0,1,2" in row["flags"] and "degenerate RM: seeds 1" in row["flags"]
    assert by[("d:edpo-vs-dpo", "in-distribution, b=0.8")]["verdict"] == "opposite"
    assert new_gates == {} and len(claims) == 2 * 2 * 2 * 2 + 2
    assert by[("e:pdpo-vs-dpo", "D_b pairs, b=0.2")]["effect"] == pytest.approx(0.3 - 0.5)
