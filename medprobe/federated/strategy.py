"""Flower's FedAvg and FedProx, with an evaluation step that keeps every site's metrics.

Training aggregation is Flower's own (parameters averaged weighted by each site's training rows). Evaluation
replies are not averaged blindly: each site's metrics are kept under its name and handed to `on_evaluate`, and the
aggregate is the n-weighted mean of each metric over the sites that report it (a site whose test rows hold one
class has no AUROC; it does not void the others').
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flwr.app import Message, MetricRecord
from flwr.serverapp.strategy import FedAvg, FedProx

from medprobe.errors import MedprobeError
from medprobe.federated.records import NUM_EXAMPLES, number

SiteMetrics = dict[str, dict[str, float]]
RoundCallback = Callable[[int, SiteMetrics, dict[str, float]], None]


def site_metrics(replies: Iterable[Message]) -> SiteMetrics:
    """Site name → its metrics; a failed site is an error naming the site's reason."""
    out: SiteMetrics = {}
    for reply in replies:
        if reply.has_error():
            raise MedprobeError(f"a site failed to evaluate: {reply.error.reason}")
        name = str(reply.content["site"]["name"])
        out[name] = {key: float(number(value)) for key, value in reply.content["metrics"].items()}
    return out


def weighted_means(per_site: SiteMetrics) -> dict[str, float]:
    keys = sorted({k for metrics in per_site.values() for k in metrics} - {NUM_EXAMPLES})
    out = {}
    for key in keys:
        pairs = [(m[NUM_EXAMPLES], m[key]) for m in per_site.values() if key in m and m[NUM_EXAMPLES] > 0]
        total = sum(n for n, _ in pairs)
        if total:
            out[key] = sum(n * v for n, v in pairs) / total
    return out


class _SiteEvaluation:
    on_evaluate: RoundCallback | None = None

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        """Flower's aggregation, but a failed site stops the job instead of being averaged out."""
        replies = list(replies)
        failed = [reply.error.reason for reply in replies if reply.has_error()]
        if failed:
            raise MedprobeError(f"{len(failed)} site(s) failed to train in round {server_round}: {failed[0]}")
        return super().aggregate_train(server_round, replies)  # type: ignore[misc]

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        per_site = site_metrics(replies)
        aggregate = weighted_means(per_site)
        if self.on_evaluate is not None:
            self.on_evaluate(server_round, per_site, aggregate)
        return MetricRecord(dict(aggregate)) if aggregate else None


class SiteFedAvg(_SiteEvaluation, FedAvg):
    pass


class SiteFedProx(_SiteEvaluation, FedProx):
    pass


def build_strategy(name: str, mu: float, n_sites: int, on_evaluate: RoundCallback | None) -> FedAvg:
    """Every round trains and evaluates at all `n_sites` sites."""
    strategy: SiteFedProx | SiteFedAvg
    if name == "fedprox":
        strategy = SiteFedProx(proximal_mu=mu, min_train_nodes=n_sites, min_evaluate_nodes=n_sites,
                               min_available_nodes=n_sites)
    else:
        strategy = SiteFedAvg(min_train_nodes=n_sites, min_evaluate_nodes=n_sites, min_available_nodes=n_sites)
    strategy.on_evaluate = on_evaluate
    return strategy
