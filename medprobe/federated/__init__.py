"""Federated probes with Flower: linear heads (FedAvg/FedProx), exact centroid and ridge aggregation.

Sites keep their embedding tables; only model parameters and aggregate statistics travel. The server is the single
MLflow writer. Deployed apps: `medprobe.federated.server_app:app` and `medprobe.federated.client_app:app`.

The names below load lazily: a site process (a ClientApp, started once per message when deployed) imports only
what it needs, not MLflow or the simulation engine.
"""

from __future__ import annotations

from medprobe.lazy_exports import lazy_getattr

_EXPORTS = {
    "FederatedResult": "result",
    "FederatedSettings": "settings",
    "PROTOCOLS": "settings",
    "STRATEGIES": "settings",
    "simulate": "simulation",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
