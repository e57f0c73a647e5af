"""`evaluate_protocol`: the one entry point the pipeline calls for every (model, task, protocol)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from medprobe.errors import ProbeError
from medprobe.metrics.bootstrap import is_interval_key
from medprobe.metrics.catalogue import seed_std
from medprobe.probes.inputs import ProbeInputs, prepare_inputs, with_tokens
from medprobe.probes.options import ProtocolOptions, options_for
from medprobe.probes.registry import get_protocol
from medprobe.probes.result import ProtocolResult
from medprobe.probes.splits import Fold, make_folds
from medprobe.probes.threads import threads_for

if TYPE_CHECKING:
    from medprobe.probes.registry import Runner


def evaluate_protocol(
    protocol: str,
    options: Mapping[str, Any] | ProtocolOptions | None,
    X: np.ndarray,
    y: np.ndarray,
    task_type: str,
    subject_ids: np.ndarray,
    split: np.ndarray | None = None,
    seed: int = 0,
    *,
    tokens: np.ndarray | None = None,
    device: str | None = None,
) -> ProtocolResult:
    """Probe embeddings `X` (n, d) for labels `y` with one protocol, at patient level.

    With `split` (per-row "train"/"val"/"test"), fit on train + val and test on test; a subject on both sides
    is refused. Without it, cross-validate with subject-grouped (and, for classification, stratified) folds,
    `options.folds` of them, and score the pooled out-of-fold predictions.

    Metrics come with 95 % subject-bootstrap intervals (`<name>_ci_low/high`, option `bootstrap` resamples,
    0 for none; every default is in `medprobe.probes.options`). Option `seeds` N > 1 repeats the protocol with
    seeds `seed … seed+N-1` (other folds, inner splits and episodes): every metric is then the mean over the
    repeats, `<name>_seed_std` its standard deviation, and the predictions are those of `seed`. `tokens`
    (n, T, D), rows matching `X`, feed the "attentive" protocol; `device` ("cuda", ...) runs the torch parts there.

    Degenerate data gives notes, not crashes: rows with NaN embeddings or no label are dropped, too-large k or
    shot levels are clipped or skipped, undefined metrics are left out. Problems no protocol can work around
    raise ProbeError: an unknown protocol or option, a leaking split, or training rows of a single class.
    """
    get_protocol(protocol)
    inputs, notes = prepare_inputs(X, y, subject_ids, split, task_type)
    if tokens is not None:
        inputs = with_tokens(inputs, tokens, len(np.asarray(X)))
    result = evaluate_inputs(protocol, options, inputs, seed, device=device)
    result.notes = [*notes, *result.notes]
    return result


def evaluate_inputs(
    protocol: str,
    options: Mapping[str, Any] | ProtocolOptions | None,
    inputs: ProbeInputs,
    seed: int = 0,
    *,
    device: str | None = None,
) -> ProtocolResult:
    """`evaluate_protocol` on inputs prepared once (`prepare_inputs`, or `TaskRows.prepare` for a table's task),
    so that every protocol of a task works on the very same rows."""
    entry = get_protocol(protocol)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**32:
        raise ProbeError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    runner = entry.load_runner()
    resolved = options_for(protocol, options)  # the runner gets this validated model, nothing re-checks it
    repeats = resolved.seeds
    if int(seed) + repeats > 2**32:
        raise ProbeError(f"seed {seed} + {repeats} repeats leaves the range [0, 2**32)")
    if not entry.tokens:
        inputs = dataclasses.replace(inputs, tokens=None)
    with threads_for(inputs.X.size if inputs.tokens is None else inputs.tokens.size):
        results = [_run(runner, inputs, resolved, int(seed) + repeat, device) for repeat in range(repeats)]
    return results[0] if repeats == 1 else _combine(results, int(seed))


def _run(runner: Runner, inputs: ProbeInputs, options: ProtocolOptions, seed: int, device: str | None
         ) -> ProtocolResult:
    folds, fold_notes = make_folds(inputs, options.folds, seed)
    classes, class_notes = training_classes(inputs, folds)
    result = runner(inputs, folds, classes, options, seed, device)
    result.notes = [*fold_notes, *class_notes, *result.notes]
    return result


def _combine(results: list[ProtocolResult], seed: int) -> ProtocolResult:
    """Mean and standard deviation over repeats of the metrics every repeat has; the first repeat's rest."""
    first = results[0]
    shared = [name for name in first.metrics if all(name in r.metrics for r in results)]
    metrics: dict[str, float] = {}
    for name in shared:
        values = np.array([r.metrics[name] for r in results])
        metrics[name] = float(values.mean())
        if not is_interval_key(name):
            metrics[seed_std(name)] = float(values.std(ddof=1))
    notes = list(dict.fromkeys(note for r in results for note in r.notes))
    notes.append(
        f"metrics are means over {len(results)} seeds ({seed}..{seed + len(results) - 1}), *_seed_std their "
        f"standard deviation; predictions are from seed {seed}"
    )
    dropped = sorted(set().union(*(r.metrics for r in results)) - set(shared))
    if dropped:
        notes.append(f"metrics missing in some repeats were left out: {', '.join(dropped[:5])}")
    params = {**first.params, "seeds": len(results)}
    return ProtocolResult(metrics, first.predictions, params, first.n_train, first.n_test, notes)


def training_classes(inputs: ProbeInputs, folds: list[Fold]) -> tuple[np.ndarray | None, list[str]]:
    """The classes a probe can predict; every fold must train on at least two of them."""
    if inputs.task_type != "classification":
        return None, []
    fit_rows = np.unique(np.concatenate([fold.fit_rows for fold in folds]))
    classes = np.unique(inputs.y[fit_rows])
    for number, fold in enumerate(folds):
        fitted = np.unique(inputs.y[fold.fit_rows])
        if len(fitted) < 2:
            where = "the training rows" if inputs.split is not None else f"cross-validation fold {number}"
            raise ProbeError(
                f"{where} hold a single class {fitted.tolist()}; a classifier needs at least two. "
                "Check the label column, or put rows of another class in training"
            )
    test = np.concatenate([fold.test for fold in folds])
    unseen = np.setdiff1d(np.unique(inputs.y[test]), classes)
    notes = []
    if len(unseen):
        count = int(np.isin(inputs.y[test], unseen).sum())
        notes.append(f"{count} test rows of classes {unseen.tolist()} have no training rows")
    return classes, notes
