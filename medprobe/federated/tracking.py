"""The single MLflow writer of a federated job: one run, written by the server only (sites never log).

Tags follow `medprobe.tracking.naming` (protocol `federated_<protocol>`, run kind `protocol`, site `federated`);
per-round aggregate metrics are `round/<metric>` with step = round, per-site per-round metrics
`round/<site>/<metric>`; final metrics `test/<site>/<metric>` and the n-weighted `test/<metric>`; the global head
is the artifact `head/federated_<protocol>.json`.
"""

from __future__ import annotations

from collections.abc import Mapping

from medprobe.federated.result import FederatedResult
from medprobe.federated.settings import FederatedSettings
from medprobe.tracking import naming
from medprobe.tracking.recorder import RunRecorder
from medprobe.tracking.run_kinds import PROTOCOL

FEDERATED_SITE = "federated"


class FederatedTracker:
    def __init__(self, settings: FederatedSettings, model: str, train_counts: Mapping[str, int]) -> None:
        self.runs = RunRecorder(settings.tracking_uri, settings.experiment)
        protocol = f"federated_{settings.protocol}"
        tags = {
            naming.PROTOCOL: protocol,
            naming.SITE: FEDERATED_SITE,
            naming.MODEL: model,
            naming.TASK: settings.task_name,
            naming.TARGET: settings.target,
            naming.TASK_TYPE: "regression" if settings.protocol == "ridge" else "classification",
        }
        name = naming.protocol_run_name(FEDERATED_SITE, model, settings.task_name, protocol)
        self.run_id = self.runs.start_run(PROTOCOL, name, tags)
        params = {key: value for key, value in settings.to_config().items() if key not in ("tracking-uri",)}
        params.update({"sites": ",".join(sorted(train_counts)), "num_sites": len(train_counts)})
        params.update({f"n_train/{site}": n for site, n in train_counts.items()})
        self.runs.log(self.run_id, params=params)

    def log_round(self, server_round: int, per_site: Mapping[str, Mapping[str, float]],
                  aggregate: Mapping[str, float]) -> None:
        values = {f"round/{key}": value for key, value in aggregate.items()}
        for site, metrics in per_site.items():
            values.update({f"round/{site}/{key}": value for key, value in metrics.items()})
        self.runs.log(self.run_id, metrics=values, step=server_round)

    def finish(self, result: FederatedResult) -> None:
        values = {naming.test_metric(key): value for key, value in result.aggregate.items()}
        for site, metrics in result.site_metrics.items():
            values.update({naming.test_metric(f"{site}/{key}"): value for key, value in metrics.items()})
        self.runs.log(self.run_id, metrics=values)
        self.runs.log_json(self.run_id, result.head, f"head/{result.protocol_tag}.json")
        self.runs.finish(self.run_id)
        result.run_id = self.runs.server_run_id(self.run_id)

    def fail(self) -> None:
        self.runs.finish(self.run_id, failed=True)
