"""Label efficiency: its full point is the plain linear protocol, its subsamples are whole subjects of every class
taken from the fitting side only, its interval is the subject bootstrap of the repeat-mean, and small data gives
notes rather than exceptions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

import medprobe.evaluation.label_efficiency as curve_module
from medprobe.errors import ProbeError
from medprobe.evaluation.label_efficiency import label_efficiency, subsample_subjects
from medprobe.metrics.bootstrap import resample_weights, subject_resamples
from medprobe.probes import evaluate_protocol
from medprobe.probes.estimator import ProbeValueError
from medprobe.probes.inputs import ProbeInputs
from medprobe.probes.linear import run_linear
from medprobe.probes.result import ProtocolResult
from medprobe.probes.splits import Fold

Call = tuple[list[Fold], ProtocolResult]


def _data(task: str, n_subjects: int = 60, rows: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """16-dim embeddings, `rows` per subject; the first dimension carries the subject's class (or the target)."""
    rng = np.random.default_rng(seed)
    subjects = np.repeat([f"P{i:03d}" for i in range(n_subjects)], rows)
    labels = np.repeat(np.arange(n_subjects) % 2, rows)
    X = rng.normal(size=(len(subjects), 16))
    if task == "classification":
        X[:, 0] += 1.5 * (2 * labels - 1)
        return X, labels, subjects
    return X, 3 * X[:, 0] + rng.normal(scale=0.5, size=len(subjects)), subjects


def _split(subjects: np.ndarray) -> np.ndarray:
    """Per row: 30 % of the subjects test, 10 % val, the rest train (both classes in each part)."""
    number = np.array([int(s[1:]) for s in subjects])
    return np.select([number % 10 < 3, number % 10 == 3], ["test", "val"], "train")


@pytest.fixture
def fits(monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    """Every `run_linear` call label_efficiency makes, in order (fractions ascending, then repeats)."""
    calls: list[Call] = []

    def spy(
        inputs: ProbeInputs, folds: list[Fold], classes: np.ndarray | None, options: dict, seed: int
    ) -> ProtocolResult:
        result = run_linear(inputs, folds, classes, options, seed)
        calls.append((folds, result))
        return result

    monkeypatch.setattr(curve_module, "run_linear", spy)
    return calls


def test_the_full_fraction_is_the_plain_linear_protocol_and_beats_five_percent() -> None:
    X, y, subjects = _data("classification")
    curve = label_efficiency(
        X, y, subjects, None, "classification", fractions=(0.05, 1.0), repeats=3, seed=7, n_resamples=0
    )
    plain = evaluate_protocol("linear", {"bootstrap": 0}, X, y, "classification", subjects, seed=7)
    frame = curve.frame.set_index(["fraction", "metric"])
    for metric in ("auroc", "balanced_accuracy", "accuracy"):
        full, small = frame.loc[(1.0, metric)], frame.loc[(0.05, metric)]
        assert full["value"] == pytest.approx(plain.metrics[metric], abs=1e-9)
        assert full["value"] > small["value"]
        assert (full["repeats"], small["repeats"]) == (1, 3)
        assert np.isnan(full["std"]) and small["std"] > 0
        assert np.isnan(full["ci_low"]) and np.isnan(full["ci_high"])  # n_resamples=0: no interval
    # 5 folds of 60 subjects fit on 48; 5 % of 48 rounds to 2, one of each class
    assert frame.loc[(1.0, "auroc"), ["n_subjects", "n_rows"]].tolist() == [48, 96]
    assert frame.loc[(0.05, "auroc"), ["n_subjects", "n_rows"]].tolist() == [2, 4]
    columns = ["fraction", "percent", "n_subjects", "n_rows", "repeats", "metric", "value", "std", "ci_low", "ci_high"]
    assert list(curve.frame.columns) == columns


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("with_split", [True, False], ids=["split", "cv"])
def test_works_with_a_split_and_with_cross_validation(task: str, with_split: bool) -> None:
    X, y, subjects = _data(task)
    split = _split(subjects) if with_split else None
    curve = label_efficiency(X, y, subjects, split, task, fractions=(0.1, 1.0), repeats=2, n_resamples=100)
    plain = evaluate_protocol("linear", {"bootstrap": 0}, X, y, task, subjects, split)
    expected = ["auroc", "balanced_accuracy", "accuracy"] if task == "classification" else ["mae", "r2"]
    frame = curve.frame
    assert frame["metric"].tolist() == expected * 2
    assert frame["repeats"].tolist() == [2] * len(expected) + [1] * len(expected)
    full = frame[frame["fraction"] == 1.0].set_index("metric")["value"]
    assert full.to_dict() == pytest.approx({name: plain.metrics[name] for name in expected}, abs=1e-9)
    small = frame[frame["fraction"] == 0.1]
    assert (small["n_subjects"] < frame[frame["fraction"] == 1.0]["n_subjects"].max()).all()
    assert np.isfinite(small["std"]).all()
    assert (frame["ci_low"] <= frame["ci_high"]).all()


def test_subsample_subjects_keeps_whole_subjects_in_proportion_to_their_class() -> None:
    subjects = np.repeat([f"S{i:02d}" for i in range(40)], 3)
    labels = np.repeat(np.where(np.arange(40) < 7, "a", "b"), 3)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        kept = subsample_subjects(subjects, labels, 0.25, rng)
        chosen = np.unique(subjects[kept])
        assert np.array_equal(kept, np.flatnonzero(np.isin(subjects, chosen)))  # all rows of a kept subject
        # 10 of 40 subjects: 7 · 10/40 = 1.75 and 33 · 10/40 = 8.25, rounded by largest remainder
        assert [len(np.unique(subjects[kept][labels[kept] == c])) for c in "ab"] == [2, 8]
        few = subsample_subjects(subjects, labels, 0.01, rng)  # 0.4 subjects: still one of each class
        assert sorted(labels[few][::3].tolist()) == ["a", "b"]
        assert len(np.unique(subjects[subsample_subjects(subjects, None, 0.01, rng, minimum=2)])) == 2
    assert np.array_equal(subsample_subjects(subjects, labels, 1.0, rng), np.arange(len(subjects)))


def test_a_class_seen_only_in_a_minority_of_a_subjects_rows_keeps_that_subject() -> None:
    subjects = np.array(["A", "A", "A", "B", "C", "D", "E", "F"])
    labels = np.array([0, 0, 2, 0, 0, 1, 1, 1])  # class 2 only in one of A's three rows; A counts as class 0
    for seed in range(10):
        kept = subsample_subjects(subjects, labels, 0.2, np.random.default_rng(seed))
        assert "A" in set(subjects[kept])
        assert set(labels[kept]) == {0, 1, 2}


@pytest.mark.parametrize("with_split", [True, False], ids=["split", "cv"])
def test_fitting_rows_are_whole_subjects_of_every_class_and_never_test_subjects(
    fits: list[Call], with_split: bool
) -> None:
    X, y, subjects = _data("classification")
    split = _split(subjects) if with_split else None
    label_efficiency(X, y, subjects, split, "classification", fractions=(0.25, 1.0), repeats=2, n_resamples=0)
    assert len(fits) == 3
    full_folds = fits[-1][0]  # fraction 1 fits on the plain protocol's folds
    for folds, _ in fits[:2]:
        for fold, full in zip(folds, full_folds, strict=True):
            assert np.array_equal(fold.test, full.test)
            assert not np.intersect1d(subjects[fold.fit_rows], subjects[fold.test]).size
            for part, whole in ((fold.train, full.train), (fold.val, full.val)):
                assert np.isin(part, whole).all()
                # a kept subject brings all its rows of that part
                assert np.array_equal(np.isin(whole, part), np.isin(subjects[whole], subjects[part]))
                assert set(y[part]) == set(y[whole])
                n_part, n_whole = len(np.unique(subjects[part])), len(np.unique(subjects[whole]))
                assert abs(n_part - 0.25 * n_whole) <= 1
            assert len(fold.val) > 0 if with_split else len(fold.val) == 0


@pytest.mark.slow
def test_the_interval_is_the_subject_bootstrap_of_the_repeat_mean(fits: list[Call]) -> None:
    X, y, subjects = _data("classification")
    curve = label_efficiency(
        X, y, subjects, _split(subjects), "classification", fractions=(0.25,), repeats=3, seed=4, n_resamples=200
    )
    predictions = [result.predictions for _, result in fits]
    assert len(predictions) == 3
    codes, drawn = subject_resamples(predictions[0]["subject_id"].to_numpy(), 200, seed=4)
    W = resample_weights(codes, drawn)

    def repeat_mean(weights: np.ndarray | None) -> dict[str, float]:
        values: dict[str, list[float]] = {"auroc": [], "balanced_accuracy": [], "accuracy": []}
        for frame in predictions:
            truth, predicted = frame["y_true"].to_numpy(), frame["y_pred"].to_numpy()
            values["auroc"].append(roc_auc_score(truth, frame["proba_1"], sample_weight=weights))
            values["balanced_accuracy"].append(balanced_accuracy_score(truth, predicted, sample_weight=weights))
            values["accuracy"].append(accuracy_score(truth, predicted, sample_weight=weights))
        return {name: float(np.mean(repeat_values)) for name, repeat_values in values.items()}

    resampled = pd.DataFrame([repeat_mean(W[:, b]) for b in range(W.shape[1])])
    point = repeat_mean(None)
    frame = curve.frame.set_index("metric")
    for name in ("auroc", "balanced_accuracy", "accuracy"):
        low, high = np.percentile(resampled[name], [2.5, 97.5])
        assert frame.loc[name, "ci_low"] == pytest.approx(low, abs=1e-9)
        assert frame.loc[name, "ci_high"] == pytest.approx(high, abs=1e-9)
        assert frame.loc[name, "value"] == pytest.approx(point[name], abs=1e-9)


def test_the_same_seed_gives_the_same_curve_and_another_seed_other_draws(fits: list[Call]) -> None:
    X, y, subjects = _data("classification")
    split = _split(subjects)

    def run(seed: int) -> tuple[pd.DataFrame, np.ndarray]:
        fits.clear()
        frame = label_efficiency(
            X, y, subjects, split, "classification", fractions=(0.1, 1.0), repeats=2, seed=seed, n_resamples=50
        ).frame
        return frame, fits[0][0][0].fit_rows

    first, first_rows = run(0)
    again, again_rows = run(0)
    other, other_rows = run(1)
    pd.testing.assert_frame_equal(first, again)
    assert np.array_equal(first_rows, again_rows)
    assert not np.array_equal(first_rows, other_rows)
    # with a split the folds do not depend on the seed: only the draws (and the resamples) do
    assert (
        first.loc[first["fraction"] == 1.0, "value"].tolist() == other.loc[other["fraction"] == 1.0, "value"].tolist()
    )


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("with_split", [True, False], ids=["split", "cv"])
def test_tiny_data_gives_notes_not_exceptions(task: str, with_split: bool) -> None:
    X, y, subjects = _data(task, n_subjects=6, rows=1)
    split = np.array(["train", "train", "val", "train", "test", "test"]) if with_split else None
    curve = label_efficiency(X, y, subjects, split, task, repeats=2, n_resamples=50)
    assert curve.notes
    assert 1.0 in curve.frame["fraction"].tolist()


def test_a_repeat_that_cannot_be_fitted_is_skipped_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def failing(
        inputs: ProbeInputs, folds: list[Fold], classes: np.ndarray | None, options: dict, seed: int
    ) -> ProtocolResult:
        calls.append(len(calls))
        if len(calls) <= 3:  # both repeats of 25 %, the first of 50 %
            raise ProbeValueError("the training rows hold a single class [0]; need two or more")
        return run_linear(inputs, folds, classes, options, seed)

    monkeypatch.setattr(curve_module, "run_linear", failing)
    X, y, subjects = _data("classification")
    curve = label_efficiency(
        X, y, subjects, None, "classification", fractions=(0.25, 0.5, 1.0), repeats=2, n_resamples=0
    )
    assert sorted(set(curve.frame["fraction"])) == [0.5, 1.0]
    assert set(curve.frame.loc[curve.frame["fraction"] == 0.5, "repeats"]) == {1}
    assert "25 % of subjects: no repeat could be fitted; left out of the curve" in curve.notes
    assert any(
        note.startswith("50 % of subjects, repeat 0: not fitted (the training rows hold a single class")
        for note in curve.notes
    )


@pytest.mark.parametrize(
    "arguments",
    [
        {"fractions": (0.0, 1.0)},
        {"fractions": (1.5,)},
        {"fractions": (float("nan"),)},
        {"fractions": ()},
        {"fractions": 0.5},
        {"repeats": 0},
        {"repeats": True},
        {"seed": -1},
        {"n_resamples": -1},
    ],
)
def test_bad_arguments_are_refused(arguments: dict) -> None:
    X, y, subjects = _data("classification", n_subjects=10)
    with pytest.raises(ProbeError):
        label_efficiency(X, y, subjects, None, "classification", **arguments)
