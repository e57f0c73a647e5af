"""The run naming scheme that lines sites up side by side in the MLflow UI and in `medprobe compare`.

One experiment per pipeline; one parent run per job (site × model × task) named `site · model · task`; one child
run per protocol named `site · model · task · protocol`. Metrics of the held-out evaluation are `test/<metric>`.

Cross-site transfer: the linear protocol's run publishes its probe head as artifacts (`probe_head/head.safetensors`
and `probe_head/head.json`) and says so with the tag `medprobe.head`. Another site scores that head on its own
embeddings in a top-level run named `train_site → site · model · task · transfer`, tagged `medprobe.run_kind` and
`medprobe.protocol` = `transfer`, `medprobe.site` = the site whose rows were scored (the test site),
`medprobe.train_site` = the site that fitted the head and `medprobe.head_run_uid` = the publishing run's
`medprobe.run_uid`, with the same model, task and fingerprint tags as a protocol run.
"""

from __future__ import annotations

import hashlib
import re

TAG_PREFIX = "medprobe."
SITE = "medprobe.site"
MODEL = "medprobe.model"
ARCHITECTURE = "medprobe.architecture"
MODEL_FINGERPRINT = "medprobe.model_fingerprint"
WEIGHTS = "medprobe.weights"
PROTOCOL = "medprobe.protocol"
TASK = "medprobe.task"
TASK_TYPE = "medprobe.task_type"
TARGET = "medprobe.target"
DATASET_DIGEST = "medprobe.dataset_digest"
VERSION = "medprobe.version"
PIPELINE = "medprobe.pipeline"
RUN_KIND = "medprobe.run_kind"
#: Digest of the preprocessing chain's description (`medprobe.transfer.space.preprocessing_digest`).
PREPROCESSING = "medprobe.preprocessing"
RANDOM_INIT_NOTE = "medprobe.note"
#: A result's plausibility flags ('; '-joined names from `medprobe.evaluation.plausibility.FLAGS`).
FLAGS = "medprobe.flags"
TRAIN_SITE = "medprobe.train_site"
#: On a linear protocol run: the artifact folder of the probe head it published.
HEAD = "medprobe.head"
HEAD_RUN_UID = "medprobe.head_run_uid"
#: On a paired-comparison run (`medprobe.jobs.paired_step`): the model the run's model was compared with.
BASELINE = "medprobe.baseline"
#: Identity of a run across the offline bundle and the server: what makes `medprobe sync` idempotent.
RUN_UID = "medprobe.run_uid"
#: Identity of a job (experiment, site, pipeline, workdir; hashed) and of one attempt at it: a re-run closes the runs
#: a killed attempt left RUNNING and marks the finished runs it repeats `medprobe.superseded_by` its own attempt.
JOB = "medprobe.job"
ATTEMPT = "medprobe.attempt"
SUPERSEDED_BY = "medprobe.superseded_by"

#: MLflow fills these from the OS user and the script path; they identify people and folders, so medprobe
#: always sets neutral values itself.
NEUTRAL_SYSTEM_TAGS = {
    "mlflow.user": "medprobe",
    "mlflow.source.name": "medprobe",
    "mlflow.source.type": "JOB",
}

RANDOM_INIT_TEXT = "random-init weights: a smoke test or control, not an evaluation of the pretrained model"


def job_run_name(site: str, model: str, task: str) -> str:
    return f"{site} · {model} · {task}"


def protocol_run_name(site: str, model: str, task: str, protocol: str) -> str:
    return f"{job_run_name(site, model, task)} · {protocol}"


def transfer_run_name(train_site: str, site: str, model: str, task: str) -> str:
    return f"{train_site} → {job_run_name(site, model, task)} · transfer"


#: A protocol run's analyses (`medprobe.jobs.analysis_runs`): subgroup metrics, subgroup gaps, the linear
#: probe's label-efficiency curve.
SUBGROUP_PREFIX = "subgroup/"
GAP_PREFIX = "subgroup_gap/"
LABEL_EFFICIENCY_PREFIX = "label_efficiency/"
#: The robustness protocol's run (`medprobe.jobs.robustness_step.run_metrics`).
ROBUSTNESS_PREFIX = "robustness/"
ANALYSIS_PREFIXES = (SUBGROUP_PREFIX, GAP_PREFIX, LABEL_EFFICIENCY_PREFIX, ROBUSTNESS_PREFIX)


KEY_PART_LENGTH = 48


def percent_key(percent: float) -> str:
    """The label-efficiency key segment of a share of training subjects: `pct_2.5`."""
    return f"pct_{percent:g}"


def paired_run_name(site: str, model: str, baseline: str, task: str, protocol: str) -> str:
    return f"{job_run_name(site, f'{model} vs {baseline}', task)} · {protocol}"


def key_part(text: str) -> str:
    """`text` as one segment of an MLflow metric or parameter key: letters, digits, `_ - .` and spaces are kept.
    Text with anything else ("Siemens/Skyra", "≥60"), or longer than 48 characters, is cleaned (others become `_`,
    cut to 40) and gets 8 hex digits of its sha256, so two values never share a key ("<60" and "≥60" differ)."""
    text = str(text)
    part = re.sub(r"[^\w.\- ]", "_", text, flags=re.ASCII).strip()
    if part == text and len(part) <= KEY_PART_LENGTH and part.strip("."):
        return part
    return f"{part[:40]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def test_metric(name: str) -> str:
    return f"test/{name}"


def model_tags(model: str, architecture: str, fingerprint: str, weights: str, pretrained: bool) -> dict[str, str]:
    """What identifies a model in a run: the user's key, the architecture, the encoder fingerprint (weights and
    options) and the weights label; a random-init network says so. `medprobe compare` keys models by these."""
    tags = {MODEL: model, ARCHITECTURE: architecture, MODEL_FINGERPRINT: fingerprint, WEIGHTS: weights}
    if not pretrained:
        tags[RANDOM_INIT_NOTE] = RANDOM_INIT_TEXT
    return tags
