"""A warning for embeddings that barely differ between samples.

A random-init ViT's CLS token, for example, is nearly the same vector for every image (pairwise cosine ≥ 0.99999):
every protocol on such embeddings is decided by ties and rounding, whatever its metrics say. Checked on up to
`SAMPLE_ROWS` rows spread evenly over the table, so the cost stays fixed.
"""

from __future__ import annotations

import numpy as np

COSINE_LIMIT = 0.99999
SAMPLE_ROWS = 256


def degenerate_embeddings_note(X: np.ndarray) -> str | None:
    """A note when every pair of (sampled) rows has cosine ≥ COSINE_LIMIT or all rows are equal; else None."""
    X = np.asarray(X, dtype=np.float64)
    if len(X) < 2:
        return None
    rows = X[np.unique(np.linspace(0, len(X) - 1, min(len(X), SAMPLE_ROWS)).round().astype(int))]
    if np.ptp(rows, axis=0).max(initial=0.0) == 0.0:
        return "every sample has the same embedding: no protocol can tell them apart"
    norms = np.linalg.norm(rows, axis=1)
    if np.any(norms == 0):
        return None
    unit = rows / norms[:, None]
    lowest = float((unit @ unit.T).min())
    if lowest < COSINE_LIMIT:
        return None
    return (f"the embeddings are nearly identical across samples (lowest pairwise cosine {lowest:.6f} ≥ "
            f"{COSINE_LIMIT}): every protocol on them is decided by ties and rounding; typical of a random-init "
            "network's output, not of a learned representation")
