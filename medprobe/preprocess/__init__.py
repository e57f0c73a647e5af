"""Preprocessing: modality intensity, orientation, 3D→2D views, model input; an explicit, describable chain.

Its options (and their defaults) are in `medprobe.preprocess.options`. Names load on first use (PEP 562), so a spec
is checked without importing torch.
"""

from __future__ import annotations

from medprobe.lazy_exports import lazy_getattr

_WHERE = {
    "PreprocessChain": "chain",
    "IMAGENET_MEAN": "input_spec",
    "IMAGENET_STD": "input_spec",
    "InputSpec": "input_spec",
    "Preprocessing": "options",
    "PreprocessOptions": "options",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_getattr(__name__, _WHERE)
