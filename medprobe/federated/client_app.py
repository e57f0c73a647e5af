"""The site side: a Flower ClientApp that answers with statistics, local training and evaluation.

The site's table comes from the node config (`--node-config 'table=PATH site=NAME target=COL'`); in a simulation,
`make_client_app(sites)` maps each virtual node's partition id to a table instead. The target column and the
protocol's settings come with each message from the server (the node's `target` is the fallback).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from medprobe.errors import MedprobeError
from medprobe.federated import records
from medprobe.federated.centroid import CentroidHead, cl2n
from medprobe.federated.labels import encode, label_text
from medprobe.federated.linear_head import LinearHead, train_local
from medprobe.federated.ridge import RidgeHead
from medprobe.federated.site_data import SiteData, load_site
from medprobe.federated.site_metrics import score_site
from medprobe.federated.statistics import Standardisation, class_sums, moments, ridge_stats


def make_client_app(sites: Sequence[tuple[str, Path | str]] = ()) -> ClientApp:
    """A ClientApp; with `sites` (name, table) the node with partition id i serves sites[i] (simulation)."""
    app = ClientApp()
    site_list = [(str(name), str(path)) for name, path in sites]

    def site(message: Message, context: Context) -> SiteData:
        config = message.content["config"]
        target = str(config.get("target") or context.node_config.get("target", ""))
        if site_list:
            name, table = site_list[int(context.node_config["partition-id"])]
        else:
            name, table = str(context.node_config.get("site", "")), str(context.node_config.get("table", ""))
        if not table:
            raise MedprobeError("this node has no `table` in its node config (--node-config 'table=PATH ...')")
        return load_site(table, target, name)

    @app.query("moments")
    def answer_moments(message: Message, context: Context) -> Message:
        data = site(message, context)
        part = moments(data.X_train)
        about = ConfigRecord({"name": data.site, "model": data.model, "encoder-fingerprint": data.encoder_fingerprint})
        if message.content["config"]["protocol"] != "ridge":  # continuous targets' values stay at the site
            about["labels"] = sorted(set(label_text(data.y_train.tolist())))
        return _reply(message, {
            "arrays": records.to_record({"total": part.total, "squares": part.squares}),
            "metrics": MetricRecord({records.NUM_EXAMPLES: part.count, "num-test": len(data.X_test)}),
            "site": about,
        })

    @app.query("centroid")
    def answer_centroid_sums(message: Message, context: Context) -> Message:
        data = site(message, context)
        classes = records.texts(message.content["config"]["classes"])
        mean = records.from_record(message.content["arrays"])["mean"]
        sums = class_sums(cl2n(data.X_train, mean), encode(data.y_train, classes), len(classes))
        return _reply(message, {
            "arrays": records.to_record({"sums": sums.sums, "counts": sums.counts}),
            "metrics": MetricRecord({records.NUM_EXAMPLES: len(data.X_train)}),
        })

    @app.query("ridge")
    def answer_ridge_stats(message: Message, context: Context) -> Message:
        data = site(message, context)
        stats = ridge_stats(data.X_train, _numeric(data.y_train, data.site))
        return _reply(message, {
            "arrays": records.to_record({"gram": stats.gram, "cross": stats.cross, "x_total": stats.x_total}),
            "metrics": MetricRecord({records.NUM_EXAMPLES: stats.count, "y-total": stats.y_total}),
        })

    @app.train()
    def train(message: Message, context: Context) -> Message:
        data = site(message, context)
        config = message.content["config"]
        classes = records.texts(config["classes"])
        scaler = Standardisation(np.asarray(config["mean"]), np.asarray(config["std"]))
        start = LinearHead(**records.from_record(message.content["arrays"]))
        head, loss = train_local(
            start, scaler.apply(data.X_train), encode(data.y_train, classes),
            iterations=int(records.number(config["local-iterations"])), l2=float(records.number(config["l2"])),
            mu=float(records.number(config.get("proximal-mu", 0.0))),
        )
        return _reply(message, {
            "arrays": records.to_record({"weight": head.weight, "bias": head.bias}),
            "metrics": MetricRecord({records.NUM_EXAMPLES: len(data.X_train), "train-loss": loss}),
        })

    @app.evaluate()
    def evaluate(message: Message, context: Context) -> Message:
        data = site(message, context)
        config = message.content["config"]
        arrays = records.from_record(message.content["arrays"])
        protocol = str(config["protocol"])
        if protocol == "ridge":
            head = RidgeHead(arrays["coef"], float(arrays["intercept"].reshape(-1)[0]))
            metrics = score_site(protocol, _numeric(data.y_test, data.site), head.predict(data.X_test))
        else:
            classes = records.texts(config["classes"])
            if protocol == "centroid":
                proba = CentroidHead(arrays["mean"], arrays["centroids"]).predict_proba(data.X_test)
            else:
                scaler = Standardisation(np.asarray(config["mean"]), np.asarray(config["std"]))
                proba = LinearHead(arrays["weight"], arrays["bias"]).predict_proba(scaler.apply(data.X_test))
            metrics = score_site(protocol, np.asarray(label_text(data.y_test.tolist())), proba, classes)
        return _reply(message, {"metrics": MetricRecord(dict(metrics)), "site": ConfigRecord({"name": data.site})})

    return app


def _reply(message: Message, content: dict[str, ArrayRecord | MetricRecord | ConfigRecord]) -> Message:
    return Message(RecordDict(content), reply_to=message)


def _numeric(y: np.ndarray, site: str) -> np.ndarray:
    try:
        return np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise MedprobeError(f"site {site}: the target is not numeric; ridge needs a continuous target") from None


#: The deployed ClientApp (`medprobe.federated.client_app:app`): the table comes from the node config.
app = make_client_app()
