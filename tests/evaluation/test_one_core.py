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
from medprobe import split_column
from medprobe.cli.main import build_parser, main
from medprobe.embed.pseudonyms import pseudonym
from medprobe.embed.table import write_table
from medprobe.evaluation import TaskRows, evaluate_task
from medprobe.federated.site_data import load_site
from medprobe.metrics.bootstrap import is_interval_key
from medprobe.options import field_default
from medprobe.probes.options import ProtocolOptions
from medprobe.probes.registry import protocols
from medprobe.transfer.rows import fit_rows, scored_rows

PROTOCOLS = {"linear": {"bootstrap": 50}, "knn": {"k": [3], "primary_k": 3, "bootstrap": 50},
             "fewshot": {"shots": [1, 2], "episodes": 20, "bootstrap": 50}}


def _metrics_json(path: Path) -> dict[str, dict[str, float]]:
    payload = json.loads(path.read_text())
    return {protocol: entry["metrics"] for protocol, entry in payload["protocols"].items()}


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_every_reader_of_a_split_takes_the_same_rows(tmp_path: Path) -> None:
    """Probe inputs, the published head, the transfer scoring, the robustness test rows, the federated site rows and
    the LDAE hold-out all read a split through `medprobe.split_column`: on one table (mixed case, a blank and an
    unknown value, a row without a label) they take the same rows."""
    split = ["Train", "train ", "VAL", "test", "Test", "", "train", "test", "val", "holdout"]
    label = [0, 1, 0, 1, 0, 1, None, 1, 1, 0]
    frame = pd.DataFrame({"sample_id": [f"s{i}" for i in range(10)], "subject_id": [f"p{i}" for i in range(10)],
                          "label": label, "split": split})
    X = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    rows = TaskRows.of(frame, "label")
    inputs, notes = rows.prepare(X)
    ids = rows.sample_ids[inputs.rows]
    fitted, tested = {"s0", "s1", "s2", "s8"}, {"s3", "s4", "s7"}  # s5 blank and s9 unknown: no protocol's
    assert set(ids[inputs.fit_positions()]) == set(ids[fit_rows(inputs)]) == fitted
    assert set(ids[inputs.test_positions()]) == set(ids[scored_rows(inputs)]) == tested
    assert notes == ["2 rows with a split other than train/val/test were ignored"]
    robustness_test_rows = split_column.test_rows(rows.split, len(rows))
    assert set(rows.sample_ids[robustness_test_rows]) == tested

    write_table(frame.assign(embedding=list(X)), tmp_path / "site.parquet", {"model": "m"})
    site = load_site(tmp_path / "site.parquet", "label", "a")
    labelled = frame["label"].notna().to_numpy()
    assert np.array_equal(site.X_train, X[labelled & frame["sample_id"].isin(fitted).to_numpy()])
    assert np.array_equal(site.X_test, X[labelled & frame["sample_id"].isin(tested).to_numpy()])

    never_pretrained = ~split_column.pretraining_rows(split_column.table_split(frame))
    assert set(frame["sample_id"][never_pretrained]) == {"s2", "s3", "s4", "s7", "s8"}  # val and test


def test_cli_defaults_are_the_option_models_defaults() -> None:
    evaluate = build_parser()._subparsers._group_actions[0].choices["evaluate"]
    defaults = {action.dest: action.default for action in evaluate._actions}
    for option in ("bootstrap", "seeds"):
        assert defaults[option] == field_default(ProtocolOptions, option)
    for model in (entry.options for entry in protocols()):  # every protocol shares the common defaults, once
        for option in ProtocolOptions.model_fields:
            assert field_default(model, option) == field_default(ProtocolOptions, option)


@pytest.mark.slow
def test_paired_subgroups_and_curve_are_the_same_through_run_evaluate_and_the_api(volume_dataset, write_spec,
                                                                                   tmp_path: Path) -> None:
    """A site job with two models, subgroups and a label-efficiency curve writes paired.csv, subgroups.csv and
    label_efficiency.csv; `medprobe evaluate --subgroups --bins --label-efficiency` on the job's table and
    `medprobe.evaluate(..., analysis=...)` + `medprobe.compare_models` give the same numbers, and the job logs them
    to MLflow under `subgroup/`, `subgroup_gap/`, `label_efficiency/` and paired runs."""
    manifest = volume_dataset(n=24, split=False)
    frame = pd.read_csv(manifest)
    frame["sex"] = np.where(np.arange(len(frame)) % 3 == 0, "F", "M")
    frame.to_csv(manifest, index=False)
    protocols = {"linear": {"bootstrap": 50}, "knn": {"k": [3], "primary_k": 3, "bootstrap": 50}}
    analysis = {"paired": {"baselines": ["handcrafted"], "bootstrap": 50},
                "subgroups": {"columns": ["sex"], "bins": {"age": [40, 50, 70]}, "min_subjects": 3, "bootstrap": 50},
                "label_efficiency": {"fractions": [0.25, 1.0], "repeats": 2}}
    models = [{"name": "handcrafted"}, {"name": "handcrafted", "alias": "coarse", "options": {"bins": 8}}]
    spec = write_spec(manifest, protocols=protocols, analysis=analysis, models=models)
    assert main(["run", str(spec), "--no-progress"]) == 0
    work = tmp_path / "work" / "evaluation"
    paired = pd.read_csv(work / "paired.csv").fillna({"favours": ""})
    assert set(zip(paired["model"], paired["baseline"], strict=True)) == {("coarse", "handcrafted")}
    assert set(paired["protocol"]) == {"linear", "knn"} and paired["p_holm"].notna().all()

    table = tmp_path / "work" / "embeddings" / "coarse.parquet"
    out = tmp_path / "evaluated"
    assert main(["evaluate", "--embeddings", str(table), "--target", "label", "--protocols", "linear,knn",
                 "--bootstrap", "50", "--subgroups", "sex", "--bins", "age=40,50,70", "--label-efficiency",
                 "--out", str(out), "--no-track"]) == 0
    job = work / "coarse" / "lesion"
    from_evaluate = pd.read_csv(out / "subgroups.csv")
    assert set(from_evaluate["attribute"]) == {"sex", "age"}
    # evaluate takes the linear/k-NN defaults but for --bootstrap; the spec set k: compare the linear rows
    from_run = pd.read_csv(job / "subgroups.csv")
    pd.testing.assert_frame_equal(from_run[from_run["protocol"] == "linear"].reset_index(drop=True),
                                  from_evaluate[from_evaluate["protocol"] == "linear"].reset_index(drop=True))
    assert (pd.read_csv(job / "label_efficiency.csv")["percent"].unique() == [25, 100]).all()

    results = {model: medprobe.evaluate(tmp_path / "work" / "embeddings" / f"{model}.parquet", "label",
                                        protocols=protocols, analysis=analysis)
               for model in ("handcrafted", "coarse")}
    api_paired = medprobe.compare_models(results, baselines=["handcrafted"], n_resamples=50)
    pd.testing.assert_frame_equal(api_paired.drop(columns="task"), paired.drop(columns="task"), check_dtype=False)
    pd.testing.assert_frame_equal(results["coarse"].subgroups["linear"].groups,
                                  from_run[from_run["protocol"] == "linear"].drop(columns="protocol")
                                  .reset_index(drop=True), check_dtype=False)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("medprobe/unit").experiment_id
    linear = client.search_runs([experiment], "tags.`medprobe.protocol` = 'linear' and tags.`medprobe.model` = "
                                              "'coarse' and tags.`medprobe.run_kind` = 'protocol'")
    metrics = linear[0].data.metrics
    assert "label_efficiency/pct_25/auroc" in metrics and "label_efficiency/pct_100/n_subjects" in metrics
    assert any(k.startswith("subgroup/sex/F/") for k in metrics)
    assert any(k.startswith("subgroup_gap/") for k in metrics) or "subgroup/age/too_small" in linear[0].data.params
    assert len(client.search_runs([experiment], "tags.`medprobe.run_kind` = 'paired'")) == 2
