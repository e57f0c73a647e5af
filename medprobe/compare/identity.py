"""Which model a run measured: the encoder's fingerprint and weights label, not only the name the job gave it.

A job's model key (the zoo name or an alias, the `medprobe.model` tag) is the user's word for a model; two sites
may use the same key for different models, typically a pretrained `dinov2_vitb14` at one site and a random-init
one at another. Runs are therefore compared by identity (key, fingerprint, weights label): runs of one key with
different fingerprints are kept apart and shown under labels that say how they differ, such as
`dinov2_vitb14 (random-init)` and `dinov2_vitb14 (weights sha256:1a2b3c4d)`. A key with one identity across the
experiment is shown as the bare key. Runs without a fingerprint tag (logged before medprobe wrote one) are
identified by key and weights label.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from medprobe.tracking import naming

#: What makes two runs runs of the same model.
IDENTITY = ("model_key", "fingerprint", "weights")
#: The weights label of a run that has no `medprobe.weights` tag.
UNTAGGED = "?"

Identity = tuple[str, str, str]


def identity_of(tags: Mapping[str, str]) -> dict[str, str]:
    """The identity columns of a run (plus its architecture, shown when it tells models apart)."""
    return {"model_key": tags.get(naming.MODEL, UNTAGGED), "fingerprint": tags.get(naming.MODEL_FINGERPRINT, ""),
            "weights": tags.get(naming.WEIGHTS, UNTAGGED), "architecture": tags.get(naming.ARCHITECTURE, "")}


def with_identity(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the identity columns, filled from `model` for frames that lack them (built by hand or by an
    older medprobe): such rows are identified by their model name."""
    frame = frame.copy()
    if "model_key" not in frame:
        frame["model_key"] = frame.get("model", UNTAGGED)
    for column, missing in (("fingerprint", ""), ("weights", UNTAGGED), ("architecture", "")):
        frame[column] = frame[column].fillna(missing).astype(str) if column in frame else missing
    frame["model_key"] = frame["model_key"].astype(str)
    return frame


def model_labels(*frames: pd.DataFrame) -> dict[Identity, str]:
    """A display label per identity found in `frames`: the bare key when the key has one identity, else the key
    with what sets this model apart (architecture when those differ, the weights, the fingerprint if need be)."""
    identities: dict[Identity, str] = {}  # identity → architecture
    for frame in frames:
        if frame.empty:
            continue
        frame = with_identity(frame)
        for row in frame[[*IDENTITY, "architecture"]].itertuples(index=False):
            identity = (row.model_key, row.fingerprint, row.weights)
            if not identities.get(identity):
                identities[identity] = row.architecture
    by_key: dict[str, list[Identity]] = {}
    for identity in sorted(identities):
        by_key.setdefault(identity[0], []).append(identity)
    labels = {}
    for key, group in by_key.items():
        if len(group) == 1:
            labels[group[0]] = key
            continue
        show_architecture = len({identities[i] for i in group}) > 1
        for detail in (_brief, _with_fingerprint, _with_full_fingerprint):
            parts = {i: detail(i, identities[i] if show_architecture else "") for i in group}
            if len(set(parts.values())) == len(group):
                break
        labels |= {i: f"{key} ({parts[i]})" for i in group}
    return labels


def label_models(frame: pd.DataFrame, labels: Mapping[Identity, str] | None = None) -> pd.DataFrame:
    """`frame` with the identity columns and `model` set to each row's display label (`labels`, or labels from
    `frame` alone)."""
    frame = with_identity(frame)
    if frame.empty:
        return frame.assign(model=pd.Series(dtype=str))
    labels = model_labels(frame) if labels is None else labels
    frame["model"] = [labels[identity] for identity in frame[list(IDENTITY)].itertuples(index=False, name=None)]
    return frame


def identity_notes(*frames: pd.DataFrame) -> list[str]:
    """One sentence per model key that stands for more than one model in `frames`, naming the labels the runs
    are kept apart under and the sites of each."""
    labels = model_labels(*frames)
    sites: dict[Identity, set[str]] = {}
    for frame in frames:
        if frame.empty:
            continue
        frame = with_identity(frame)
        columns = [c for c in ("site", "train_site", "test_site") if c in frame]
        for row in frame[[*IDENTITY, *columns]].itertuples(index=False, name=None):
            sites.setdefault(row[:3], set()).update(str(s) for s in row[3:])
    by_key: dict[str, list[Identity]] = {}
    for identity in sorted(labels):
        by_key.setdefault(identity[0], []).append(identity)
    notes = []
    for key, group in by_key.items():
        if len(group) < 2:
            continue
        kept = "; ".join(f"'{labels[i]}'" + (f" at {', '.join(sorted(sites[i]))}" if sites.get(i) else "")
                         for i in group)
        notes.append(f"runs named '{key}' measured {len(group)} different models (different fingerprints: other "
                     f"weights, options or architecture), so they are kept apart: {kept}")
    return notes


def _brief(identity: Identity, architecture: str) -> str:
    return ", ".join(p for p in (architecture, _weights(identity[2])) if p)


def _with_fingerprint(identity: Identity, architecture: str) -> str:
    fingerprint = identity[1]
    short = f"fingerprint {fingerprint.rsplit('-', 1)[-1][:8]}" if fingerprint else "no fingerprint"
    return f"{_brief(identity, architecture)}, {short}"


def _with_full_fingerprint(identity: Identity, architecture: str) -> str:
    parts = (architecture, f"weights {identity[2]}", f"fingerprint {identity[1] or 'none'}")
    return ", ".join(p for p in parts if p)


def _weights(label: str) -> str:
    if label == "random-init":
        return label
    if label in ("", UNTAGGED):
        return "weights not tagged"
    if label.startswith("sha256:"):
        return f"weights {label[:15]}"  # sha256: and 8 hex digits
    return f"weights {label}"
