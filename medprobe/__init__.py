"""medprobe: evaluate frozen medical-imaging foundation models per hospital site and compare the sites.

The Python API (see `medprobe.api` and the README): `load_encoder`, `embed_images`, `read_table`, `evaluate`,
`compare_models`, `compare_sites`, `compare_experiment`. Importing medprobe loads none of torch, MLflow or
matplotlib and changes no global state; each call loads what it needs.
"""

from __future__ import annotations

from medprobe.lazy_exports import lazy_getattr

__version__ = "0.1.0"

_API = ("compare_experiment", "compare_models", "compare_sites", "embed_images", "evaluate", "load_encoder",
        "read_table")

__all__ = ["__version__", *_API]

__getattr__ = lazy_getattr(__name__, dict.fromkeys(_API, "api"))
