"""Tracking: the run layout and naming scheme, the one run recorder (MLflow and the offline bundle), redaction.

Its options (and their defaults) are in `medprobe.tracking.options`. Names load on first use (PEP 562), so a spec
is checked without importing MLflow.
"""

from __future__ import annotations

from medprobe.lazy_exports import lazy_getattr
from medprobe.tracking import naming

_WHERE = {
    "TrackingStore": "store",
    "TrackingOptions": "options",
}

__all__ = ["naming", *sorted(_WHERE)]

__getattr__ = lazy_getattr(__name__, _WHERE)
