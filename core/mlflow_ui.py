"""The MLflow UI on a config's runs (``make mlflow-ui [CONFIG=...]``): prints the address that opens
the config's experiment on its runs list, then serves the UI on the config's tracking store.

MLflow 3.17's UI opens an experiment on a GenAI traces overview unless its workflow switch says
"Model training": the printed link sets it (``?workflowType=machine_learning``, which the UI then
keeps). The experiment's ``mlflow.experimentKind`` tag (core.tracking) says the same to MLflow
versions that read it. Start it in the folder the workflow ran in (the store's URI and its
artifact locations are relative to it): ``results/`` copied elsewhere works from beside the copy.

    python -m core.mlflow_ui --configfile config.yaml [--port 5000] [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

import yaml

from core.tracking import experiment_url

DEFAULT_URI = "sqlite:///results/mlflow.db"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", default="config.yaml")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    with open(args.configfile, encoding="utf-8") as fh:
        cfg = yaml.safe_load(fh)
    uri = str((cfg.get("tracking") or {}).get("uri") or DEFAULT_URI)
    address = f"http://{'localhost' if args.host in ('127.0.0.1', '0.0.0.0') else args.host}:{args.port}"
    url = experiment_url(uri, cfg["name"], address)
    if url is None:
        raise SystemExit(f"{args.configfile}: no MLflow experiment {cfg['name']!r} in {uri} (run the workflow first)")
    print(f"MLflow UI for {cfg['name']}: open {url}", flush=True)
    mlflow = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow"
    os.execv(mlflow, [mlflow, "server", "--backend-store-uri", uri, "--host", args.host, "--port", str(args.port)])


if __name__ == "__main__":
    main()
