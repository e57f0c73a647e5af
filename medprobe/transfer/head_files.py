"""A probe head on disk: `head.safetensors` (the tensors) and `head.json` (what they mean). Never pickle.

The same two files are the artifacts of the linear protocol's run (under `probe_head/`), travel in the offline
results bundle, and are what another site downloads. Reading validates everything: a head from another site is
input like any other.

`head.json` carries a digest of both files (`sha256`: of the tensors file's bytes, and of head.json's own other
fields as canonical JSON), checked before anything is used, so a head damaged on disk, in the bundle or on the way
from the tracking server is refused (`HeadError` naming the file) instead of scoring with altered weights. A digest
protects against damage, not forgery: whoever can change the files can recompute it; trust in a head is trust in
the server it came from. Heads written before digests existed (same format, no `sha256`) are still read, with a
warning that they are unverified, so sites on different medprobe versions keep scoring each other's heads; their
tensors are still checked for shape and finite values. The format number is unchanged: older readers ignore the
new key.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from medprobe.embed.cache import file_digest
from medprobe.embed.integrity import json_digest
from medprobe.errors import MedprobeError
from medprobe.transfer.heads import ProbeHead

log = logging.getLogger("medprobe.transfer")

#: The artifact folder of a head in its run, and the value of the run's `medprobe.head` tag.
HEAD_FOLDER = "probe_head"
TENSORS_FILE = "head.safetensors"
METADATA_FILE = "head.json"
HEAD_FORMAT = 1
TENSORS = ("mean", "scale", "weight", "bias")
#: head.json's key for the digests of both files: {file name: sha256}.
DIGEST_KEY = "sha256"


class HeadError(MedprobeError):
    """A probe head's files are missing, malformed or inconsistent."""


def write_head(head: ProbeHead, folder: Path) -> list[Path]:
    """Write both files into `folder`; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = folder / TENSORS_FILE
    save_file({name: np.ascontiguousarray(getattr(head, name)) for name in TENSORS}, str(tensors))
    fields = {f.name: getattr(head, f.name) for f in dataclasses.fields(head) if f.name not in TENSORS}
    metadata = folder / METADATA_FILE
    payload: dict[str, Any] = {"format": HEAD_FORMAT, "embed_dim": head.embed_dim, **fields}
    payload[DIGEST_KEY] = {TENSORS_FILE: file_digest(tensors), METADATA_FILE: json_digest(payload)}
    metadata.write_text(json.dumps(payload, indent=2, sort_keys=True), encoding="utf-8")
    return [tensors, metadata]


def read_head(folder: Path) -> ProbeHead:
    """The head in `folder`; HeadError when its files are missing, damaged or do not describe one consistent head."""
    try:
        payload = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
        if not isinstance(payload, dict) or payload.get("format") != HEAD_FORMAT:
            raise HeadError(f"{folder / METADATA_FILE}: probe head format "
                            f"{payload.get('format') if isinstance(payload, dict) else '?'} is not supported "
                            f"(expected {HEAD_FORMAT})")
        _verify(folder, payload)
        tensors = load_file(str(folder / TENSORS_FILE))
    except (OSError, ValueError, SafetensorError) as exc:
        raise HeadError(f"unreadable probe head in {folder} ({type(exc).__name__}: {exc})") from None
    names = {f.name for f in dataclasses.fields(ProbeHead)} - set(TENSORS)
    fields = {name: payload[name] for name in names if name in payload}
    missing = sorted((names - set(fields)) | (set(TENSORS) - set(tensors)))
    if missing:
        raise HeadError(f"probe head lacks {', '.join(missing)}")
    arrays = {name: tensors[name].astype(np.float64) for name in TENSORS}
    head = ProbeHead(**fields, mean=arrays["mean"], scale=arrays["scale"], weight=arrays["weight"], bias=arrays["bias"])
    _check(head, payload)
    return head


def _verify(folder: Path, payload: dict[str, Any]) -> None:
    """Both files against the digests head.json holds; a head without them is used with a warning."""
    digests = payload.get(DIGEST_KEY)
    if digests is None:
        log.warning("probe head in %s has no digest (written before medprobe recorded one); it is used unverified",
                    folder)
        return
    fields = {key: value for key, value in payload.items() if key != DIGEST_KEY}
    found = {TENSORS_FILE: file_digest(folder / TENSORS_FILE), METADATA_FILE: json_digest(fields)}
    for name, digest in found.items():
        if not isinstance(digests, dict) or digests.get(name) != digest:
            raise HeadError(f"{folder / name}: does not match the digest in {METADATA_FILE} (damaged on disk or on "
                            "the way); download the head again, or have its site publish it again (`medprobe run`)")


def _check(head: ProbeHead, payload: dict[str, Any]) -> None:
    d = head.embed_dim
    if payload.get("embed_dim") != d or head.mean.ndim != 1:
        raise HeadError(f"probe head embed_dim {payload.get('embed_dim')} does not match its mean of shape "
                        f"{head.mean.shape}")
    if head.task_type == "regression":
        outputs = 1
    elif head.task_type == "classification" and len(head.classes) >= 2:
        outputs = 1 if len(head.classes) == 2 else len(head.classes)
    else:
        raise HeadError(f"probe head of task type {head.task_type!r} with {len(head.classes)} class(es)")
    expected = {"scale": (d,), "weight": (outputs, d), "bias": (outputs,)}
    for name, shape in expected.items():
        if getattr(head, name).shape != shape:
            raise HeadError(f"probe head tensor '{name}' has shape {getattr(head, name).shape}, expected {shape}")
    if not all(np.isfinite(getattr(head, name)).all() for name in TENSORS) or (head.scale <= 0).any():
        raise HeadError("probe head holds non-finite values or a non-positive scale")
