"""Finding and fetching the probe heads other sites published in an experiment of the tracking store."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from medprobe.tracking import TrackingStore, naming
from medprobe.tracking.run_kinds import PROTOCOL, kind_filter
from medprobe.transfer.head_files import HEAD_FOLDER, HeadError, read_head
from medprobe.transfer.heads import ProbeHead
from medprobe.transfer.space import FeatureSpace


@dataclass(frozen=True)
class PublishedHead:
    run_uid: str  # the publishing run's `medprobe.run_uid`: the same on the server and in its site's bundle
    head: ProbeHead


def published_heads(store: TrackingStore, experiment: str, space: FeatureSpace, task: str, task_type: str,
                    site: str) -> tuple[list[PublishedHead], list[str]]:
    """The newest head every other site published for `task` in embedding space `space`, one per site, and a note
    for each site whose heads cannot be applied (another encoder fingerprint, another task type, bad files).

    A site's heads are those of its finished linear runs for `task` whose model has this model key or this
    fingerprint; only a head of exactly this fingerprint is applied (other weights or options give other features).
    """
    found = store.client.get_experiment_by_name(experiment)
    if found is None:
        return [], []
    query = (f"{kind_filter(PROTOCOL)} AND tags.`{naming.PROTOCOL}` = 'linear' AND "
             f"tags.`{naming.TASK}` = '{task}' AND tags.`{naming.HEAD}` = '{HEAD_FOLDER}'")
    by_site: dict[str, list[Run]] = defaultdict(list)
    for run in store.results(found.experiment_id, query, order_by=["attributes.start_time DESC"]):
        tags = run.data.tags
        same_model = space.fingerprint == tags.get(naming.MODEL_FINGERPRINT) or space.model == tags.get(naming.MODEL)
        if tags.get(naming.SITE, site) != site and same_model:
            by_site[tags[naming.SITE]].append(run)
    heads, notes = [], []
    for source, runs in sorted(by_site.items()):
        run = next((r for r in runs if r.data.tags.get(naming.MODEL_FINGERPRINT) == space.fingerprint), None)
        if run is None:
            other = runs[0].data.tags.get(naming.MODEL_FINGERPRINT, "?")
            notes.append(f"{source}'s {space.model}/{task} head skipped: it was fitted on embeddings of encoder "
                         f"{other}, these are {space.fingerprint}")
            continue
        try:
            head = _download(store, run)
        except HeadError as exc:
            notes.append(f"{source}'s {space.model}/{task} head skipped: {exc}")
            continue
        if head.task_type != task_type or head.fingerprint != space.fingerprint:
            notes.append(f"{source}'s {space.model}/{task} head skipped: it is a {head.task_type} head on "
                         f"{head.fingerprint}, this task is {task_type} on {space.fingerprint}")
            continue
        heads.append(PublishedHead(run.data.tags.get(naming.RUN_UID, run.info.run_id), head))
    return heads, notes


def _download(store: TrackingStore, run: Run) -> ProbeHead:
    with tempfile.TemporaryDirectory(prefix="medprobe-head-") as folder:
        try:
            local = store.download_artifacts(run.info.run_id, HEAD_FOLDER, Path(folder))
        except (MlflowException, OSError) as exc:  # OSError covers requests' errors
            raise HeadError(f"its files could not be downloaded ({type(exc).__name__})") from None
        return read_head(local)
