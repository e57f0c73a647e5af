"""A federated job's settings: one dataclass, read from Flower's run config (`[tool.flwr.app.config]` or
`flwr run --run-config`), keys spelled with dashes as Flower does.

Site-local settings (which table, which site name) are not here: they are the node's `--node-config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from medprobe.errors import MedprobeError

#: The federated protocols a run config may name (`protocol`); `medprobe.federated.job.HEADS` trains each. They are
#: not the probe registry's protocols (`medprobe.probes.registry`): a federated head aggregates what sites send.
PROTOCOLS = ("linear", "centroid", "ridge")
STRATEGIES = ("fedavg", "fedprox")


@dataclass(frozen=True)
class FederatedSettings:
    target: str = ""
    protocol: str = "linear"
    rounds: int = 10
    strategy: str = "fedavg"
    mu: float = 0.01  # FedProx proximal weight (ignored by fedavg)
    local_iterations: int = 20  # L-BFGS iterations per round at each site
    l2: float = 1e-4  # weight decay of the linear head
    alpha: float = 1.0  # ridge penalty
    min_sites: int = 2  # the job waits until this many sites are connected
    timeout: float = 600.0  # seconds to wait for sites, per message round
    tracking_uri: str = ""  # empty: no MLflow run
    experiment: str = "medprobe-federated"
    model: str = ""  # empty: the encoder name the sites' tables record
    task: str = ""  # empty: the target column

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise MedprobeError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.strategy not in STRATEGIES:
            raise MedprobeError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if not self.target:
            raise MedprobeError("no target column: set `target` in the run config (or --target)")
        if self.rounds < 1 or self.min_sites < 1 or self.local_iterations < 1:
            raise MedprobeError("rounds, min-sites and local-iterations must be at least 1")
        if self.mu < 0 or self.l2 < 0 or self.alpha < 0:
            raise MedprobeError("mu, l2 and alpha must not be negative")

    @property
    def task_name(self) -> str:
        return self.task or self.target

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FederatedSettings:
        """From a run config; unknown keys are an error (a misspelt key should not silently do nothing)."""
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in config.items():
            name = key.replace("-", "_")
            if name not in known:
                spelled = sorted(k.replace("_", "-") for k in known)
                raise MedprobeError(f"unknown run-config key {key!r}; known: {spelled}")
            default = getattr(cls, name)
            values[name] = type(default)(value)
        return cls(**values)

    def to_config(self) -> dict[str, str | int | float]:
        return {key.replace("_", "-"): value for key, value in asdict(self).items()}
