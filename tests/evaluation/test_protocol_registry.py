"""The protocol registry is the one catalogue: the spec's `protocols:` keys, `medprobe evaluate --protocols`, the
API's default, the dry-run plan's applicability and the paired comparisons all say what it says; a protocol
registered in a test appears in every one of them, and is gone once its `with` block ends."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from medprobe.cli.main import build_parser
from medprobe.errors import ProbeError
from medprobe.evaluation.paired import compare_evaluations
from medprobe.evaluation.suite import EvaluationResult, evaluate_task
from medprobe.jobs.plan import planned_runs
from medprobe.pipeline_spec.loading import load_spec
from medprobe.probes import evaluate_protocol
from medprobe.probes.inputs import TASK_TYPES
from medprobe.probes.linear import run_linear
from medprobe.probes.options import LinearOptions, ProtocolsOptions, options_for
from medprobe.probes.registry import (
    RESERVED_NAMES,
    check_protocols,
    default_protocols,
    get_protocol,
    prediction_protocols,
    protocol_names,
    protocols,
    register_protocol,
    registered_protocol,
)

FAST: dict[str, dict[str, Any]] = {
    "linear": {"grid": [0.1, 1.0], "folds": 3, "bootstrap": 0},
    "knn": {"k": [3], "folds": 3, "bootstrap": 0},
    "fewshot": {"shots": [1, 2], "episodes": 3, "folds": 3, "bootstrap": 0},
}


class ToyOptions(LinearOptions):
    """The linear probe's options under another protocol's name."""


def _cli_protocols_option() -> Any:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return next(action for action in commands.choices["evaluate"]._actions if action.dest == "protocols")


def _table(n_subjects: int = 24, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    label = np.repeat(rng.choice(["neg", "pos"], size=n_subjects), 2)
    X = (rng.normal(size=(len(label), 5)) + 2.0 * (label == "pos")[:, None]).astype(np.float32)
    subjects = np.repeat([f"s{i:02d}" for i in range(n_subjects)], 2)
    frame = pd.DataFrame({"sample_id": [f"x{i}" for i in range(len(label))], "subject_id": subjects,
                          "label": label, "age": rng.normal(50, 10, size=len(label))})
    return frame, X


def _plan_spec(volume_dataset: Callable[..., Path], write_spec: Callable[..., Path],
               enabled: dict[str, dict[str, Any]]) -> Any:
    spec = write_spec(
        volume_dataset(n=8),
        models=[{"name": "handcrafted"}, {"name": "handcrafted", "alias": "handcrafted-b"}],
        tasks=[{"name": "lesion", "target": "label"}, {"name": "age", "target": "age", "type": "regression"}],
        protocols=enabled, analysis={"paired": {"bootstrap": 20}},
    )
    return load_spec(spec)


def _expected_runs(names: list[str], task_types: list[str], models: int, pairs: int) -> tuple[int, int]:
    applicable = {t: [n for n in names if t in get_protocol(n).task_types] for t in task_types}
    protocol_runs = models * sum(len(found) for found in applicable.values())
    paired = pairs * sum(len([n for n in found if n in prediction_protocols()]) for found in applicable.values())
    return protocol_runs, paired


def test_every_reader_says_what_the_registry_says(volume_dataset, write_spec) -> None:
    names = protocol_names()
    assert names == ("linear", "knn", "fewshot", "attentive", "zeroshot")
    assert default_protocols() == tuple(e.name for e in protocols() if not e.tokens and not e.text) == (
        "linear", "knn", "fewshot")
    assert prediction_protocols() == ("linear", "knn", "attentive", "zeroshot")
    assert get_protocol("fewshot").task_types == ("classification",)
    for entry in protocols():
        for task_type in TASK_TYPES:
            assert (entry.not_applicable(task_type) is None) == (task_type in entry.task_types)
        assert type(options_for(entry.name)) is entry.options

    # the spec: its protocol keys are the registered names, enabled in the registry's order
    assert [k for k in ProtocolsOptions.model_fields if k not in RESERVED_NAMES] == list(names)
    every = ProtocolsOptions.model_validate({name: {} for name in reversed(names)})
    assert list(every.enabled()) == list(names)
    assert all(type(every.enabled()[e.name]) is e.options for e in protocols())

    # the CLI: `--protocols` defaults to the registry's defaults and names every registered protocol
    option = _cli_protocols_option()
    assert option.default == ",".join(default_protocols())
    assert all(name in option.help for name in names)
    assert option.type("knn, linear") == ["knn", "linear"]

    # the dry-run plan: protocol and paired runs per task type follow the registry's applicability
    spec = _plan_spec(volume_dataset, write_spec, {name: {"bootstrap": 0} for name in names})
    plan = planned_runs(spec)
    assert (plan.protocol, plan.paired) == _expected_runs(list(names), ["classification", "regression"], 2, 2)

    # the one evaluation function and the paired comparisons: not-applicable and prediction protocols
    frame, X = _table()
    by_model = {model: evaluate_task(frame, X + offset, "age", "regression", FAST)
                for model, offset in (("a", 0.0), ("b", 0.5))}
    for evaluation in by_model.values():
        assert set(evaluation.not_applicable) == {n for n in FAST if "regression" not in get_protocol(n).task_types}
        assert set(evaluation.results) == {n for n in FAST if "regression" in get_protocol(n).task_types}
    paired = compare_evaluations({"age": by_model}, [("b", "a")], n_resamples=10)
    compared = set(prediction_protocols()) & set(by_model["a"].results)
    assert set(paired.table["protocol"]) == compared == {"linear", "knn"}


def test_unknown_protocol_is_refused_in_one_place_with_the_registered_names(capsys) -> None:
    message = "unknown protocol 'svm'; choose from linear, knn, fewshot, attentive, zeroshot"
    with pytest.raises(ProbeError) as raised:
        check_protocols(["linear", "svm"])
    assert str(raised.value) == message
    frame, X = _table()
    for call in (lambda: evaluate_protocol("svm", {}, X, frame["label"].to_numpy(), "classification",
                                           frame["subject_id"].to_numpy()),
                 lambda: evaluate_task(frame, X, "label", protocols=["svm"]),
                 lambda: options_for("svm")):
        with pytest.raises(ProbeError) as raised:
            call()
        assert str(raised.value) == message
    with pytest.raises(ProbeError, match="no protocol given; choose from linear"):
        evaluate_task(frame, X, "label", protocols=[])
    with pytest.raises(Exception, match=message):
        ProtocolsOptions.model_validate({"linear": {}, "svm": {}})
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["evaluate", "--embeddings", "t.parquet", "--target", "y", "--protocols", "svm"])
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_a_protocol_registered_in_a_test_appears_in_every_reader(volume_dataset, write_spec) -> None:
    calls: list[str] = []

    def toy_runner(inputs, folds, classes, options, seed, device=None):
        assert isinstance(options, ToyOptions)  # the typed options model, as validated, not a dict
        calls.append(inputs.task_type)
        return run_linear(inputs, folds, classes, options, seed, device)

    with registered_protocol("toy", options=ToyOptions, task_types=("classification",), scores_predictions=True,
                             runner=toy_runner) as toy:
        assert protocol_names()[-1] == "toy" and "toy" in default_protocols() and "toy" in prediction_protocols()
        with pytest.raises(ValueError, match="registered already"):
            register_protocol("toy", options=ToyOptions, scores_predictions=True, runner=toy_runner)

        # the spec takes it as a key, validated by its options model, and enables it after the built-ins
        chosen = ProtocolsOptions.model_validate({"toy": {"grid": [1.0]}, "linear": {}})
        assert list(chosen.enabled()) == ["linear", "toy"]
        assert isinstance(chosen.enabled()["toy"], ToyOptions) and chosen.enabled()["toy"].grid == [1.0]
        with pytest.raises(Exception, match="protocol 'toy'"):
            ProtocolsOptions.model_validate({"toy": {"gird": [1.0]}})

        # the CLI: a choice and part of the default
        option = _cli_protocols_option()
        assert "toy" in option.help and option.default.endswith(",toy") and option.type("toy") == ["toy"]

        # the plan counts it where it applies (classification only) and in the paired runs
        names = ["linear", "fewshot", "toy"]
        spec = _plan_spec(volume_dataset, write_spec, {name: {"bootstrap": 0} for name in names})
        assert list(spec.protocols.enabled()) == names
        plan = planned_runs(spec)
        assert (plan.protocol, plan.paired) == _expected_runs(names, ["classification", "regression"], 2, 2) == (8, 6)

        # the evaluation runs it through its runner, leaves it out for regression, and compares it pairwise
        frame, X = _table()
        options = {"linear": FAST["linear"], "toy": FAST["linear"]}
        by_model: dict[str, EvaluationResult] = {
            model: evaluate_task(frame, X + offset, "label", "classification", options)
            for model, offset in (("a", 0.0), ("b", 0.5))}
        assert calls == ["classification", "classification"]
        assert by_model["a"].results["toy"].metrics == by_model["a"].results["linear"].metrics
        paired = compare_evaluations({"lesion": by_model}, [("b", "a")], n_resamples=10)
        assert set(paired.table["protocol"]) == {"linear", "toy"}
        regression = evaluate_task(frame, X, "age", "regression", ["toy"])
        assert regression.not_applicable == {"toy": toy.not_applicable("regression")} and not regression.results

    assert "toy" not in protocol_names()
    with pytest.raises(ProbeError, match="unknown protocol 'toy'"):
        check_protocols(["toy"])
    assert "toy" not in _cli_protocols_option().help


def test_registration_refuses_what_the_readers_could_not_use() -> None:
    for name, kwargs, match in [
        ("robustness", {}, "identifier other than"),
        ("two words", {}, "identifier other than"),
        ("toy", {"task_types": ("segmentation",)}, "task types"),
        ("toy", {"runner": "medprobe.probes.linear.run_linear"}, "module:function"),
    ]:
        with pytest.raises(ValueError, match=match):
            register_protocol(name, **{"options": ToyOptions, "scores_predictions": True, "runner": run_linear,
                                       **kwargs})
    assert "toy" not in protocol_names()
