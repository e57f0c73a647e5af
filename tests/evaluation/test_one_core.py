"""One evaluation core: `medprobe run`, `medprobe evaluate` and the Python API give the same numbers for the same
table, blank split column included; results do not depend on the site's pseudonym salt; the CLI shows the option
models' defaults."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import medprobe
from medprobe.cli.main import build_parser, main
from medprobe.embed.pseudonyms import pseudonym
from medprobe.evaluation import TaskRows, evaluate_task
from medprobe.metrics.bootstrap import is_interval_key
from medprobe.options import field_default
from medprobe.probes.options import OPTION_MODELS, ProtocolOptions

PROTOCOLS = {"linear": {"bootstrap": 50}, "knn": {"k": [3], "primary_k": 3, "bootstrap": 50},
             "fewshot": {"shots": [1, 2], "episodes": 20, "bootstrap": 50}}


def _metrics_json(path: Path) -> dict[str, dict[str, float]]:
    payload = json.loads(path.read_text())
    return {protocol: entry["metrics"] for protocol, entry in payload["protocols"].items()}


def test_a_blank_split_column_gives_the_same_results_through_run_and_evaluate(volume_dataset, write_spec,
                                                                              tmp_path: Path) -> None:
    manifest = volume_dataset(n=16, split=False)
    frame = pd.read_csv(manifest)
    frame["split"] = ""  # a split column left blank on every row: no split, cross-validation
    frame.to_csv(manifest, index=False)
    spec = write_spec(manifest, protocols=PROTOCOLS)

    assert main(["run", str(spec), "--no-progress"]) == 0  # every protocol ran: nothing skipped
    from_run = _metrics_json(tmp_path / "work" / "evaluation" / "handcrafted" / "lesion" / "metrics.json")

    table = tmp_path / "work" / "embeddings" / "handcrafted.parquet"
    out = tmp_path / "evaluated"
    args = ["evaluate", "--embeddings", str(table), "--target", "label", "--protocols", "linear,knn,fewshot",
            "--bootstrap", "50", "--out", str(out), "--no-track"]
    # evaluate's flags set common options only; the k-NN and few-shot grids come from the same option models
    exit_code = main(args)
    from_evaluate = _metrics_json(out / "metrics.json")
    assert exit_code == 0
    assert from_run["linear"] == from_evaluate["linear"]

    from_api = medprobe.evaluate(table, "label", protocols=PROTOCOLS)
    assert set(from_api.results) == set(PROTOCOLS)
    for protocol, metrics in from_run.items():
        api = {k: v for k, v in from_api.results[protocol].metrics.items() if not is_interval_key(k)}
        assert metrics == pytest.approx(api, nan_ok=True), protocol


def test_results_do_not_depend_on_the_pseudonym_salt() -> None:
    """Two fresh workdirs draw two salts: every protocol must give identical numbers on the re-keyed table."""
    rng = np.random.default_rng(3)
    n = 60
    subjects = [f"P{i // 2:03d}" for i in range(n)]
    labels = np.array([(i // 2) % 3 for i in range(n)])
    X = rng.normal(size=(n, 16)).astype(np.float32) + labels[:, None] * 0.8

    def evaluated(salt: bytes) -> dict[str, dict[str, float]]:
        table = pd.DataFrame({"sample_id": [pseudonym(salt, "smp", str(i)) for i in range(n)],
                              "subject_id": [pseudonym(salt, "sub", s) for s in subjects], "label": labels})
        result = evaluate_task(table, X, "label", protocols={**PROTOCOLS, "linear": {"bootstrap": 50, "seeds": 2}})
        assert not result.failures
        return {protocol: r.metrics for protocol, r in result.results.items()}

    assert evaluated(b"one salt") == evaluated(b"another salt")


def test_split_rule_is_one_rule() -> None:
    table = pd.DataFrame({"subject_id": ["a", "b", "c", "d"], "y": [0, 1, None, 1],
                          "split": [None, None, None, None]})
    rows = TaskRows.of(table, "y")
    assert rows.split is None and len(rows) == 3 and rows.labels.tolist() == [0, 1, 1]
    table["split"] = ["TRAIN", " test", "", "val"]
    rows = TaskRows.of(table, "y")
    assert rows.split.tolist() == ["train", "test", "val"]


def test_cli_defaults_are_the_option_models_defaults() -> None:
    evaluate = build_parser()._subparsers._group_actions[0].choices["evaluate"]
    defaults = {action.dest: action.default for action in evaluate._actions}
    for option in ("bootstrap", "seeds"):
        assert defaults[option] == field_default(ProtocolOptions, option)
    for model in OPTION_MODELS.values():  # every protocol shares the common defaults, written once
        for option in ProtocolOptions.model_fields:
            assert field_default(model, option) == field_default(ProtocolOptions, option)
