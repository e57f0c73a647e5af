"""Every kind of run medprobe writes, defined once: its `medprobe.run_kind` tag, the tags it must carry, the kind of
run it nests under, and when it counts as failed. `RunRecorder` applies these to every run it starts and finishes,
and readers select runs with `kind_filter`, so writers and readers cannot disagree on a kind's shape.

Failure rule: a run whose kind `needs_metrics` and that logged no metric is FAILED (a protocol that could not
score); a run with children (a job) is FAILED when it had children and none of them finished with metrics; other
runs fail only when their writer says so (a federated run whose rounds broke off).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from medprobe.tracking import naming

JOB, PROTOCOL, TRANSFER, PAIRED, DIAGNOSTICS, COMPARISON = (
    "job", "protocol", "transfer", "paired", "diagnostics", "comparison")
_RESULT_TAGS = (naming.SITE, naming.MODEL, naming.TASK, naming.TASK_TYPE)


@dataclass(frozen=True)
class RunKind:
    name: str
    required_tags: tuple[str, ...]
    parent: str | None = None  # the kind of run it may nest under; None: always top-level
    needs_metrics: bool = False
    judged_by_children: bool = False


RUN_KINDS = {kind.name: kind for kind in (
    RunKind(JOB, _RESULT_TAGS, judged_by_children=True),
    # a site's protocol runs nest under its job run; a federated protocol run (one across sites) is top-level
    RunKind(PROTOCOL, (*_RESULT_TAGS, naming.PROTOCOL), parent=JOB, needs_metrics=True),
    RunKind(TRANSFER, (*_RESULT_TAGS, naming.PROTOCOL, naming.TRAIN_SITE, naming.HEAD_RUN_UID), needs_metrics=True),
    RunKind(PAIRED, (naming.SITE, naming.MODEL, naming.TASK, naming.PROTOCOL, naming.BASELINE), needs_metrics=True),
    RunKind(DIAGNOSTICS, (naming.SITE, naming.PIPELINE)),
    RunKind(COMPARISON, ()),
)}


def run_kind(name: str) -> RunKind:
    if name not in RUN_KINDS:
        raise ValueError(f"unknown run kind {name!r}; the kinds are {', '.join(RUN_KINDS)}")
    return RUN_KINDS[name]


def kind_tags(kind: RunKind, tags: Mapping[str, str], parent_kind: str | None) -> dict[str, str]:
    """`tags` with the kind's tag; a missing required tag or a parent of the wrong kind is a bug in the writer."""
    missing = [tag for tag in kind.required_tags if not tags.get(tag)]
    if missing:
        raise ValueError(f"a {kind.name} run needs the tag(s) {', '.join(missing)}")
    if parent_kind is not None and parent_kind != kind.parent:
        raise ValueError(f"a {kind.name} run cannot nest under a {parent_kind} run")
    return {**tags, naming.RUN_KIND: kind.name}


def kind_filter(name: str) -> str:
    """The MLflow search filter for the runs of one kind."""
    return f"tags.`{naming.RUN_KIND}` = '{run_kind(name).name}'"
