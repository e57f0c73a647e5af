"""The server's side of one federated job: survey the sites, run the protocol, evaluate the global head everywhere.

1. Survey (`query.moments`): each site's training-row count, feature sums and sums of squares, its label values
   and its encoder; the server derives the exact pooled standardisation and the global label map.
2. The protocol: `linear` runs Flower's FedAvg/FedProx over the linear head; `centroid` and `ridge` need one more
   statistics round and are then solved exactly.
3. Evaluation: the global head goes to every site, which scores its test rows; every site's metrics come back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from flwr.app import ConfigRecord, RecordDict

from medprobe.errors import MedprobeError
from medprobe.federated import records
from medprobe.federated.centroid import CentroidHead
from medprobe.federated.labels import merge_classes
from medprobe.federated.linear_head import LinearHead
from medprobe.federated.messaging import ask_all, wait_for_sites
from medprobe.federated.result import FederatedResult
from medprobe.federated.ridge import RidgeHead
from medprobe.federated.settings import PROTOCOLS, FederatedSettings
from medprobe.federated.statistics import (
    ClassSums,
    Moments,
    RidgeStats,
    Standardisation,
    pooled_class_sums,
    pooled_ridge_stats,
    pooled_standardisation,
)
from medprobe.federated.strategy import SiteMetrics, build_strategy, site_metrics, weighted_means
from medprobe.federated.tracking import FederatedTracker


@dataclass(frozen=True)
class Survey:
    nodes: list[int]
    sites: list[str]  # in node order
    train_counts: dict[str, int]
    scaler: Standardisation
    classes: list[str]
    model: str


def run_job(grid, settings: FederatedSettings) -> FederatedResult:
    nodes = wait_for_sites(grid, settings.min_sites, settings.timeout)
    survey = survey_sites(grid, nodes, settings)
    tracker = FederatedTracker(settings, survey.model, survey.train_counts) if settings.tracking_uri else None
    history: dict[int, dict[str, float]] = {}
    finals: dict[str, SiteMetrics] = {}

    def on_round(server_round: int, per_site: SiteMetrics, aggregate: dict[str, float]) -> None:
        history[server_round] = aggregate
        finals["last"] = per_site
        if tracker is not None:
            tracker.log_round(server_round, per_site, aggregate)

    try:
        head = HEADS[settings.protocol](grid, settings, survey, on_round)
        result = FederatedResult(
            protocol=settings.protocol, task=settings.task_name, model=survey.model,
            site_metrics=finals["last"], aggregate=weighted_means(finals["last"]), history=history,
            head=head, train_counts=survey.train_counts,
        )
        if tracker is not None:
            tracker.finish(result)
    except BaseException:
        if tracker is not None:
            tracker.fail()
        raise
    return result


def survey_sites(grid, nodes: Sequence[int], settings: FederatedSettings) -> Survey:
    config = ConfigRecord({"target": settings.target, "protocol": settings.protocol})
    replies = ask_all(grid, nodes, records.MOMENTS, RecordDict({"config": config}), settings.timeout)
    sites, parts, labels, models, fingerprints = [], [], [], set(), set()
    for reply in replies:
        about, arrays = reply.content["site"], records.from_record(reply.content["arrays"])
        sites.append(str(about["name"]))
        count = int(records.number(reply.content["metrics"][records.NUM_EXAMPLES]))
        parts.append(Moments(count, arrays["total"], arrays["squares"]))
        labels.append(records.texts(about.get("labels", [])))
        models.add(str(about["model"]))
        fingerprints.add(str(about["encoder-fingerprint"]))
    if len(set(sites)) != len(sites):
        raise MedprobeError(f"site names must be unique, got {sites}; set `site` in each node config")
    if len(fingerprints - {""}) > 1:
        raise MedprobeError(f"the sites' tables come from different encoders ({sorted(fingerprints)}); "
                            "embed every site with the same model and preprocessing")
    dims = {len(p.total) for p in parts}
    if len(dims) > 1:
        raise MedprobeError(f"the sites' embeddings have different dimensions {sorted(dims)}")
    classes = merge_classes(labels) if settings.protocol != "ridge" else []
    if settings.protocol != "ridge" and len(classes) < 2:
        raise MedprobeError(f"target {settings.target!r} has fewer than two classes over all sites: {classes}")
    model = settings.model or (models.pop() if len(models) == 1 and "" not in models else "unknown")
    return Survey(list(nodes), sites, {s: p.count for s, p in zip(sites, parts, strict=True)},
                  pooled_standardisation(parts), classes, model)


def _linear(grid, settings: FederatedSettings, survey: Survey, on_round) -> dict:
    config = {
        "protocol": "linear", "target": settings.target, "classes": survey.classes,
        "mean": survey.scaler.mean.tolist(), "std": survey.scaler.std.tolist(),
        "local-iterations": settings.local_iterations, "l2": settings.l2,
    }
    start = LinearHead.zeros(len(survey.classes), len(survey.scaler.mean))
    strategy = build_strategy(settings.strategy, settings.mu, len(survey.nodes), on_round)
    outcome = strategy.start(
        grid, records.to_record({"weight": start.weight, "bias": start.bias}), num_rounds=settings.rounds,
        timeout=settings.timeout, train_config=ConfigRecord(dict(config)), evaluate_config=ConfigRecord(dict(config)),
    )
    arrays = records.from_record(outcome.arrays)
    return {
        **_head_header(settings, survey), "classes": survey.classes,
        "standardisation": {"mean": survey.scaler.mean.tolist(), "std": survey.scaler.std.tolist()},
        "weight": arrays["weight"].tolist(), "bias": arrays["bias"].tolist(),
        "strategy": settings.strategy, "mu": settings.mu if settings.strategy == "fedprox" else 0.0,
        "rounds": settings.rounds, "local_iterations": settings.local_iterations, "l2": settings.l2,
        "optimiser": "full-batch L-BFGS",
    }


def _centroid(grid, settings: FederatedSettings, survey: Survey, on_round) -> dict:
    config = ConfigRecord({"target": settings.target, "classes": survey.classes})
    content = RecordDict({"config": config, "arrays": records.to_record({"mean": survey.scaler.mean})})
    replies = ask_all(grid, survey.nodes, records.CENTROID_SUMS, content, settings.timeout)
    parts = [ClassSums(**records.from_record(r.content["arrays"])) for r in replies]
    head = CentroidHead.from_sums(survey.scaler.mean, pooled_class_sums(parts))
    _evaluate(grid, settings, survey, {"mean": head.mean, "centroids": head.centroids},
              {"protocol": "centroid", "classes": survey.classes}, on_round)
    return {**_head_header(settings, survey), "classes": survey.classes, "mean": head.mean.tolist(),
            "centroids": head.centroids.tolist(), "normalisation": "centre on mean, L2-normalise (SimpleShot CL2N)"}


def _ridge(grid, settings: FederatedSettings, survey: Survey, on_round) -> dict:
    content = RecordDict({"config": ConfigRecord({"target": settings.target})})
    replies = ask_all(grid, survey.nodes, records.RIDGE_STATS, content, settings.timeout)
    parts = []
    for reply in replies:
        arrays, metrics = records.from_record(reply.content["arrays"]), reply.content["metrics"]
        parts.append(RidgeStats(arrays["gram"], arrays["cross"], int(records.number(metrics[records.NUM_EXAMPLES])),
                                arrays["x_total"], float(records.number(metrics["y-total"]))))
    try:
        head = RidgeHead.solve(pooled_ridge_stats(parts), settings.alpha)
    except np.linalg.LinAlgError:
        raise MedprobeError("the pooled ridge system is singular; use alpha > 0") from None
    _evaluate(grid, settings, survey, {"coef": head.coef, "intercept": np.array([head.intercept])},
              {"protocol": "ridge"}, on_round)
    return {**_head_header(settings, survey), "coef": head.coef.tolist(), "intercept": head.intercept,
            "alpha": settings.alpha}


def _evaluate(grid, settings: FederatedSettings, survey: Survey, arrays: dict, config: dict, on_round) -> None:
    content = RecordDict({"arrays": records.to_record(arrays),
                          "config": ConfigRecord({"target": settings.target, **config})})
    per_site = site_metrics(ask_all(grid, survey.nodes, records.EVALUATE, content, settings.timeout))
    on_round(1, per_site, weighted_means(per_site))


def _head_header(settings: FederatedSettings, survey: Survey) -> dict:
    return {"protocol": f"federated_{settings.protocol}", "target": settings.target, "model": survey.model,
            "feature_dim": len(survey.scaler.mean), "train_counts": survey.train_counts}


#: How each federated protocol (`medprobe.federated.settings.PROTOCOLS`, the names the run config is checked against)
#: trains its head. These heads are not the probe registry's protocols: they aggregate sites' statistics or weights.
HEADS = {"linear": _linear, "centroid": _centroid, "ridge": _ridge}
if list(HEADS) != list(PROTOCOLS):
    raise RuntimeError(f"federated heads {list(HEADS)} differ from the run config's protocols {list(PROTOCOLS)}")
