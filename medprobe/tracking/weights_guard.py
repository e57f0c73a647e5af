"""Model weights never leave a site through the tracking store or the results bundle.

Why: several zoo models' weights may not be redistributed (RETFound and BrainIAC are CC BY-NC, DINOv3 and MedSigLIP
have their own terms), and a site's own pretrained LDAE is the site's. The only files medprobe uploads are tables,
plots, JSON and probe heads; a checkpoint among them is a bug or a mistake, so it is refused by content, whatever
its name: a PyTorch checkpoint (zip with a pickled `data.pkl`, or a bare pickle) or a safetensors file holding other
tensors than a probe head's four.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

#: The tensors of a probe head (`medprobe.transfer.head_files.TENSORS`): the one safetensors file that may leave.
PROBE_HEAD_TENSORS = frozenset({"mean", "scale", "weight", "bias"})
_PICKLE = b"\x80"
_ZIP = b"PK\x03\x04"
#: The safetensors format's own limit on its JSON header. A text or PNG file never decodes to a length this small
#: (its first eight bytes are printable or the PNG signature, so their little-endian value is above 2^61).
_MAX_HEADER = 100_000_000


def weights_problem(path: Path) -> str | None:
    """What makes `path` model weights that must not be uploaded, or None for any other file."""
    with path.open("rb") as handle:
        start = handle.read(8)
        if start.startswith(_PICKLE):
            return "a pickled file (a PyTorch checkpoint in the old format)"
        if start.startswith(_ZIP) and _is_torch_zip(path):
            return "a PyTorch checkpoint"
        if len(start) == 8:
            size = struct.unpack("<Q", start)[0]
            if 2 <= size <= _MAX_HEADER and handle.read(1) == b"{":
                names = _safetensors_names(b"{" + handle.read(size - 1))
                if names is not None and not names <= PROBE_HEAD_TENSORS:
                    return f"a safetensors file of {len(names)} tensors, not a probe head's"
    return None


def _is_torch_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    except zipfile.BadZipFile:
        return False


def _safetensors_names(header: bytes) -> frozenset[str] | None:
    try:
        entries = json.loads(header)
    except ValueError:
        return None
    if not isinstance(entries, dict):
        return None
    return frozenset(k for k in entries if k != "__metadata__")
