"""The MLflow UI as a researcher opens it, in a real browser: headless Chromium (the Debian package
``chromium``, installed here with apt-get when missing and this runs as root) renders pages of
``python -m core.mlflow_ui`` (what ``make mlflow-ui`` runs) on a small store written by the
project's own tracking (core.tracking): the printed link opens the runs list (not MLflow 3's GenAI
overview), with run names that lead with rho and seed; a compare view of two runs shows their
params and metrics; an artifact, stored at a relative location in a copied ``results/``, renders;
a training run's page links its evaluation run."""

from __future__ import annotations

import html
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from core.tracking import mlflow_run

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"], env=env,
                       capture_output=True, timeout=900)  # fmt: skip
        found = shutil.which("chromium")
    if found is None:
        pytest.skip("no chromium (Debian package) and no root apt-get to install it")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _store(work: Path) -> dict[str, str]:
    """Two DR reward-model runs (rho 0.2, 0.6) with curves and an artifact, an evaluation of the
    first, and the first trained twice (its rerun supersedes it); then results/ is moved."""
    os.chdir(work / "orig")
    uri, ids = "sqlite:///results/mlflow.db", {}
    Path("rewardbench.json").write_text('{"accuracy": 0.8125}')
    for rho in ("0.2", "0.2", "0.6"):
        name = f"rm tv ρ={rho} s0 unfiltered"
        with mlflow_run("ui-test", name, {"rho": rho}, tracking_uri=uri, job=f"train_rm_dr[rho={rho}]") as run:
            for step in range(4):
                run.log_metrics({"loss": 0.7 - step * float(rho) / 10}, step=step)
            run.log_artifact("rewardbench.json")
            ids[rho] = run.run_id
    with mlflow_run("ui-test", "eval rm tv ρ=0.2 s0 unfiltered", tracking_uri=uri, job="eval_rm_dr[rho=0.2]") as run:
        run.link_training_run(ids["0.2"], "eval_rm_dr")
        ids["eval"] = run.run_id
    shutil.copytree(work / "orig" / "results", work / "copy" / "results")
    shutil.rmtree(work / "orig" / "results")
    return ids


def _text(chromium: str, url: str) -> str:
    """The page's visible text once the app has rendered (headless, virtual time for its fetches)."""
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", "--virtual-time-budget=20000", url]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    dom = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))) + "".join(re.findall(r'href="[^"]*"', dom))


@pytest.mark.slow
def test_the_ui_opens_on_runs_compares_them_and_shows_an_artifact(chromium, tmp_path, monkeypatch):
    (tmp_path / "orig").mkdir()
    monkeypatch.chdir(tmp_path)
    ids = _store(tmp_path)
    copy, port = tmp_path / "copy", _free_port()
    (copy / "config.yaml").write_text(
        yaml.safe_dump({"name": "ui-test", "tracking": {"uri": "sqlite:///results/mlflow.db"}})
    )
    cmd = [sys.executable, "-m", "core.mlflow_ui", "--configfile", "config.yaml", "--port", str(port)]
    server = subprocess.Popen(cmd, cwd=copy, env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, start_new_session=True)  # fmt: skip
    try:
        link = server.stdout.readline().split("open ")[-1].strip()
        assert link.endswith("?workflowType=machine_learning") and "/#/experiments/" in link, link
        base, experiment = link.split("/#/")[0], link.split("/experiments/")[1].split("?")[0]
        for _ in range(120):
            try:
                if urllib.request.urlopen(f"{base}/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        runs = _text(chromium, link)
        assert "Runs" in runs and "No data available" not in runs  # the runs list, not the traces overview
        assert all(f"rm tv ρ={r} s0 unfiltered" in runs for r in ("0.2", "0.6")) and "3 matching runs" in runs
        compare = _text(
            chromium, f'{base}/#/compare-runs?runs=["{ids["0.2"]}","{ids["0.6"]}"]&experiments=["{experiment}"]'
        )
        assert "Comparing 2 Runs" in compare and "Parallel Coordinates" in compare
        assert "rm tv ρ=0.2 s0 unfiltered" in compare and "rm tv ρ=0.6 s0 unfiltered" in compare and "loss" in compare
        artifact = _text(chromium, f"{base}/#/experiments/{experiment}/runs/{ids['0.6']}/artifacts/rewardbench.json")
        assert '"accuracy": 0.8125' in artifact or "0.8125" in artifact  # read from the copied results/
        trained = _text(chromium, f"{base}/#/experiments/{experiment}/runs/{ids['0.2']}")
        assert "Evaluated in:" in trained and f'href="#/experiments/{experiment}/runs/{ids["eval"]}"' in trained
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
