"""Label efficiency: how a linear probe's held-out performance grows with the number of labelled training subjects.

The folds are those of the plain linear protocol (`evaluate_protocol("linear", ...)` with the same seed): the
caller's split, or subject-grouped cross-validation. Only the fitting side is subsampled; the test rows never
change, so every point of the curve is scored on the same patients. For a fraction f, each fold keeps
round(f × its fitting subjects) subjects (`subsample_subjects`), train and validation rows drawn separately so a
validation split stays one, and the probe is refitted from scratch, C grid search included. Each fraction is drawn
`repeats` times, independently of the other fractions; fraction 1 is the full fitting set, fitted once, and equals
the plain protocol's result.

Two spreads answer two questions and neither contains the other. `std` is the standard deviation over the repeats:
how much the result depends on which subjects happened to be labelled (training-subset variability). `ci_low` and
`ci_high` are a 95 % subject-bootstrap percentile interval of the repeat-mean, with the draws held fixed: how much
it depends on which patients happen to be in the test set (test-set sampling uncertainty). Every fraction uses the
same test-subject resamples, so the intervals of two fractions are directly comparable.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from medprobe.errors import ProbeError
from medprobe.evaluation.options import LabelEfficiencyOptions
from medprobe.metrics.bootstrap import N_RESAMPLES, bootstrap_intervals
from medprobe.metrics.catalogue import SHOWN
from medprobe.metrics.classification import classification_scores, encode_labels
from medprobe.metrics.weighted import regression_scores
from medprobe.options import field_default
from medprobe.probes.evaluate import training_classes
from medprobe.probes.inputs import ProbeInputs, prepare_inputs
from medprobe.probes.linear import run_linear
from medprobe.probes.options import LinearOptions, ProtocolOptions, options_for
from medprobe.probes.result import ProtocolResult, tested_rows
from medprobe.probes.splits import Fold, make_folds
from medprobe.probes.threads import threads_for

DEFAULT_FRACTIONS = tuple(field_default(LabelEfficiencyOptions, "fractions"))
#: the metrics the curve reports (those present for the task type)
CURVE_METRICS = SHOWN
COLUMNS = ("fraction", "percent", "n_subjects", "n_rows", "repeats", "metric", "value", "std", "ci_low", "ci_high")

#: scores a repeat's test outputs under every column of weights W (n_test, B)
_Scorer = Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]


@dataclass
class LabelEfficiency:
    """The curve in long form, one row per (fraction, metric), in `COLUMNS` order.

    `n_subjects` and `n_rows` are the fitting subjects and rows a fold used, averaged over folds and repeats (at
    small fractions more than the fraction asks for, where every class keeps at least one); `repeats` counts the
    repeats that could be fitted; `std` is NaN with one repeat, `ci_low`/`ci_high` NaN without an interval
    (`n_resamples=0`, or a single test subject).
    """

    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Draw:
    """One fitted repeat: its pooled test outputs, and the mean fitting subjects and rows per fold."""

    outputs: np.ndarray
    n_subjects: float
    n_rows: float


def label_efficiency(
    X: np.ndarray,
    y: np.ndarray,
    subjects: np.ndarray,
    split: np.ndarray | None,
    task_type: str,
    linear: Mapping[str, Any] | ProtocolOptions | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    repeats: int = 5,
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
) -> LabelEfficiency:
    """The linear probe's test metrics when fitted on each fraction of the fitting subjects (see the module).

    Inputs as for `evaluate_protocol`; `linear` holds the linear protocol's options, of which `bootstrap` and
    `seeds` are not used (`n_resamples` and `repeats` take their place). Draw r of fraction f is seeded by
    (seed, f, r), so adding a fraction changes no other. A repeat that cannot be fitted is skipped with a note,
    and a fraction without any fitted repeat is left out of the frame with a note. Data the plain protocol
    refuses (a leaking split, a fold with one class) raises its ProbeError here too.
    """
    inputs, notes = prepare_inputs(X, y, subjects, split, task_type)
    return label_efficiency_of(inputs, notes, linear, fractions, repeats, seed, n_resamples)


def label_efficiency_of(inputs: ProbeInputs, notes: list[str], linear: Mapping[str, Any] | ProtocolOptions | None,
                        fractions: Sequence[float], repeats: int, seed: int, n_resamples: int) -> LabelEfficiency:
    """`label_efficiency` on inputs prepared once (`TaskRows.prepare`); `notes` are what preparing them noted."""
    levels = _check_fractions(fractions)
    if isinstance(repeats, bool) or not isinstance(repeats, numbers.Integral) or repeats < 1:
        raise ProbeError(f"repeats must be an integer >= 1, got {repeats!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**32:
        raise ProbeError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, numbers.Integral) or n_resamples < 0:
        raise ProbeError(f"n_resamples must be an integer >= 0, got {n_resamples!r}")
    notes = list(notes)
    options = options_for("linear", linear).model_copy(update={"bootstrap": 0})
    assert isinstance(options, LinearOptions), "the registry's linear protocol takes LinearOptions"
    rows: list[dict[str, Any]] = []
    with threads_for(inputs.X.size):
        folds, fold_notes = make_folds(inputs, options.folds, int(seed))
        classes, class_notes = training_classes(inputs, folds)
        notes += [*fold_notes, *class_notes]
        test = tested_rows(folds)
        scorer = _test_scorer(inputs, test, classes)
        fitted_notes: dict[str, list[str]] = {}
        for fraction in levels:
            draws, skipped, probe_notes = _fit_fraction(
                inputs, folds, classes, options, fraction, int(repeats), int(seed)
            )
            notes += skipped
            for note in probe_notes:
                fitted_notes.setdefault(note, []).append(_percent(fraction))
            if not draws:
                notes.append(f"{_percent(fraction)} of subjects: no repeat could be fitted; left out of the curve")
                continue
            fraction_rows, score_notes = _curve_rows(
                fraction, draws, scorer, inputs.subjects[test], int(n_resamples), int(seed)
            )
            rows += fraction_rows
            notes += [note for note in score_notes if note not in notes]
    every_level = [_percent(fraction) for fraction in levels]
    for note, where in fitted_notes.items():
        notes.append(note if where == every_level else f"at {', '.join(where)} of subjects: {note}")
    return LabelEfficiency(pd.DataFrame(rows, columns=list(COLUMNS)), notes)


def subsample_subjects(
    subjects: np.ndarray, labels: np.ndarray | None, fraction: float, rng: np.random.Generator, minimum: int = 1
) -> np.ndarray:
    """Positions of the rows of round(fraction × subjects) subjects (rounded half up), all rows of each, sorted.

    With `labels` (classification) the draw is stratified by each subject's most frequent label (on a tie, the
    first in sorted order): every class gets its proportional share by largest remainder, at least `minimum` of
    its subjects; a class only ever in the minority of a subject's rows gets one subject that has it. Without
    (regression) at least `minimum` subjects are kept. Subjects are taken in order of first appearance, so the
    draw depends on the rows' order and `rng`, not on the pseudonyms.
    """
    codes = pd.factorize(np.asarray(subjects))[0]
    if len(codes) == 0:
        return np.empty(0, dtype=np.int64)
    n_subjects = int(codes.max()) + 1
    wanted = math.floor(fraction * n_subjects + 0.5)
    if labels is None:
        kept = rng.choice(n_subjects, size=min(n_subjects, max(minimum, wanted)), replace=False)
        return np.flatnonzero(np.isin(codes, kept))
    label_codes = np.unique(np.asarray(labels), return_inverse=True)[1].ravel()
    tally = np.zeros((n_subjects, int(label_codes.max()) + 1), dtype=np.int64)
    np.add.at(tally, (codes, label_codes), 1)
    majority = tally.argmax(axis=1)
    sizes = np.bincount(majority, minlength=tally.shape[1])
    quotas = _quotas(wanted, sizes, minimum)
    kept = np.concatenate(
        [rng.choice(np.flatnonzero(majority == label), size=quota, replace=False) for label, quota in enumerate(quotas)]
    )
    for label in range(tally.shape[1]):
        if not tally[kept, label].any():
            kept = np.append(kept, rng.choice(np.flatnonzero(tally[:, label])))
    return np.flatnonzero(np.isin(codes, kept))


def _quotas(total: int, sizes: np.ndarray, minimum: int) -> np.ndarray:
    """`total` split over classes of `sizes` subjects by largest remainder, each then held to [minimum, size]."""
    exact = total * sizes / sizes.sum()
    quotas = np.floor(exact).astype(np.int64)
    by_remainder = np.argsort(-(exact - quotas), kind="stable")
    quotas[by_remainder[: total - int(quotas.sum())]] += 1
    return np.clip(quotas, np.minimum(minimum, sizes), sizes)


def _subsample_fold(inputs: ProbeInputs, fold: Fold, fraction: float, rng: np.random.Generator) -> Fold:
    """The fold with train and val each cut to `fraction` of their subjects; test rows unchanged."""
    labels = inputs.y if inputs.task_type == "classification" else None

    def cut(rows: np.ndarray, minimum: int) -> np.ndarray:
        part = None if labels is None else labels[rows]
        return rows[subsample_subjects(inputs.subjects[rows], part, fraction, rng, minimum)]

    # A regression fit needs two subjects (one gives no spread to learn from); a validation split needs only one,
    # and with at least one subject of each class it holds it never empties, so it stays a validation split.
    return Fold(train=cut(fold.train, 1 if labels is not None else 2), test=fold.test, val=cut(fold.val, 1))


def _fit_fraction(
    inputs: ProbeInputs,
    folds: list[Fold],
    classes: np.ndarray | None,
    options: LinearOptions,
    fraction: float,
    repeats: int,
    seed: int,
) -> tuple[list[_Draw], list[str], list[str]]:
    """The fitted repeats of one fraction, notes on skipped repeats, and the probes' notes (deduplicated).

    One `run_linear` call per repeat: the C grid search is the cost, so nothing is fitted twice."""
    draws: list[_Draw] = []
    skipped: list[str] = []
    probe_notes: list[str] = []
    for repeat in range(1 if fraction == 1.0 else repeats):  # the full fit is deterministic: once is enough
        rng = np.random.default_rng([seed, round(fraction * 1e6), repeat])
        used = folds if fraction == 1.0 else [_subsample_fold(inputs, fold, fraction, rng) for fold in folds]
        try:
            result = run_linear(inputs, used, classes, options, seed)
        except (ProbeError, ValueError) as error:  # LinearProbe's ProbeValueError is both
            skipped.append(f"{_percent(fraction)} of subjects, repeat {repeat}: not fitted ({error})")
            continue
        notes = [*result.notes, *_missing_class_notes(inputs, used, classes)]
        probe_notes += [note for note in notes if note not in probe_notes]
        draws.append(
            _Draw(
                outputs=_test_outputs(result, classes),
                n_subjects=float(np.mean([len(np.unique(inputs.subjects[fold.fit_rows])) for fold in used])),
                n_rows=float(np.mean([len(fold.fit_rows) for fold in used])),
            )
        )
    return draws, skipped, probe_notes


def _missing_class_notes(inputs: ProbeInputs, folds: list[Fold], classes: np.ndarray | None) -> list[str]:
    """A fold fitted without some classes still scores: `align_proba` gives those classes probability 0."""
    if classes is None:
        return []
    notes = []
    for number, fold in enumerate(folds):
        missing = np.setdiff1d(classes, inputs.y[fold.fit_rows])
        if len(missing):
            notes.append(f"fold {number} fits without classes {missing.tolist()}: they get probability 0 there")
    return notes


def _test_outputs(result: ProtocolResult, classes: np.ndarray | None) -> np.ndarray:
    """Probabilities (classes in order) or predictions of the pooled test rows, in `tested_rows` order."""
    if classes is None:
        return result.predictions["y_pred"].to_numpy(np.float64)
    return result.predictions[[f"proba_{label}" for label in classes.tolist()]].to_numpy(np.float64)


def _test_scorer(inputs: ProbeInputs, test: np.ndarray, classes: np.ndarray | None) -> _Scorer:
    """The vectorised scorer of the test rows: the one the plain protocol's metrics and intervals use."""
    if classes is None:
        targets = inputs.y[test].astype(np.float64)

        def score_regression(outputs: np.ndarray, W: np.ndarray) -> dict[str, np.ndarray]:
            return regression_scores(W, targets, outputs)

        return score_regression
    codes = encode_labels(inputs.y[test], classes)

    def score_classification(outputs: np.ndarray, W: np.ndarray) -> dict[str, np.ndarray]:
        return classification_scores(codes, outputs, len(classes), W, calibration=False)

    return score_classification


def _curve_rows(
    fraction: float, draws: list[_Draw], scorer: _Scorer, test_subjects: np.ndarray, n_resamples: int, seed: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per curve metric defined on the test rows: the repeat-mean, its spread and its interval.

    Which metrics are defined depends on the test labels alone, the same for every repeat; so does each
    resample's, so the mean over repeats of a resample is NaN only where every repeat's is."""
    ones = np.ones((len(test_subjects), 1))
    per_repeat = [scorer(draw.outputs, ones) for draw in draws]
    names = [
        name
        for name in CURVE_METRICS
        if name in per_repeat[0] and all(np.isfinite(scores[name][0]) for scores in per_repeat)
    ]

    def repeat_mean(W: np.ndarray) -> dict[str, np.ndarray]:
        scores = [scorer(draw.outputs, W) for draw in draws]
        return {name: np.mean([s[name] for s in scores], axis=0) for name in names}

    intervals, notes = bootstrap_intervals(repeat_mean, test_subjects, n_resamples, seed)
    rows = []
    for name in names:
        values = np.array([scores[name][0] for scores in per_repeat])
        low, high, _ = intervals.get(name, (np.nan, np.nan, np.nan))
        rows.append(
            {
                "fraction": fraction,
                "percent": round(100 * fraction, 6),
                "n_subjects": round(float(np.mean([draw.n_subjects for draw in draws]))),
                "n_rows": round(float(np.mean([draw.n_rows for draw in draws]))),
                "repeats": len(draws),
                "metric": name,
                "value": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else np.nan,
                "ci_low": low,
                "ci_high": high,
            }
        )
    return rows, notes


def _check_fractions(fractions: Iterable[float]) -> list[float]:
    """Distinct fractions in (0, 1], ascending."""
    values = list(fractions) if isinstance(fractions, Iterable) and not isinstance(fractions, str) else []
    if not values or any(isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 < v <= 1 for v in values):
        raise ProbeError(f"fractions must be a non-empty list of numbers in (0, 1], got {fractions!r}")
    return sorted({float(value) for value in values})


def _percent(fraction: float) -> str:
    return f"{100 * fraction:g} %"
