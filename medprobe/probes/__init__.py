"""Probing protocols for frozen embeddings: linear, k-NN, few-shot and attentive, each at patient level.

The pipeline calls `evaluate_protocol`; the estimators (`LinearProbe`, `KNNProbe`, `AttentiveProbe`) follow
scikit-learn's contract so they can be used and checked on their own. Each protocol's options model (and so its
defaults) is in `medprobe.probes.options`, registered there with its task types and runner in the protocol registry
(`medprobe.probes.registry`), which every front end reads. Names load on first use (PEP 562): checking a spec's
protocol options must not import torch.
"""

from __future__ import annotations

from medprobe.lazy_exports import lazy_getattr

_WHERE = {
    "evaluate_protocol": "evaluate",
    "evaluate_inputs": "evaluate",
    "AttentiveProbe": "attentive",
    "KNNProbe": "knn",
    "LinearProbe": "linear",
    "ProtocolResult": "result",
    "ProtocolEntry": "registry",
    "default_protocols": "registry",
    "get_protocol": "registry",
    "protocol_names": "registry",
    "register_protocol": "registry",
    "registered_protocol": "registry",
    "ProtocolOptions": "options",
    "ProtocolsOptions": "options",
    "options_for": "options",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_getattr(__name__, _WHERE)
