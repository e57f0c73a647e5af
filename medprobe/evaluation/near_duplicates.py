"""Near-duplicate images across subjects, seen in the embeddings: a note, never a refusal.

Two rows of different subjects whose centred embeddings have cosine ≥ `COSINE_LIMIT` are almost certainly the
same image (pixel-identical copies with different headers, or one scan re-exported): across the train and test
splits that is leakage the byte digests of `medprobe.embed.duplicates` cannot see. Embeddings are centred on
their mean first, so that a model whose vectors all point one way does not make every pair look alike. Test rows
are compared with fitting rows (or every row with every other without a split), `BLOCK` rows at a time; at most
`MAX_QUERIES` query rows are checked, spread evenly, so the cost stays bounded on a large archive.
"""

from __future__ import annotations

import numpy as np

from medprobe.split_column import fit_rows, test_rows

COSINE_LIMIT = 0.9999
MAX_QUERIES = 5000
BLOCK = 1024


def near_duplicates_note(X: np.ndarray, subjects: np.ndarray, split: np.ndarray | None) -> str | None:
    """A note counting the query rows (test rows, or all rows without a split) that have a near-duplicate of
    another subject among the reference rows (fitting rows, or all rows)."""
    X = np.asarray(X, dtype=np.float64)
    finite = np.isfinite(X).all(axis=1)
    if finite.sum() < 2:
        return None
    centred = np.where(finite[:, None], X - X[finite].mean(axis=0), 0.0)
    norms = np.linalg.norm(centred, axis=1)
    usable = finite & (norms > 0)
    unit = np.zeros_like(centred)
    unit[usable] = centred[usable] / norms[usable, None]
    queries = np.flatnonzero(test_rows(split, len(X)) & usable) if split is not None else np.flatnonzero(usable)
    reference = np.flatnonzero(fit_rows(split, len(X)) & usable)
    if len(queries) == 0 or len(reference) == 0:
        return None
    if len(queries) > MAX_QUERIES:
        queries = queries[np.linspace(0, len(queries) - 1, MAX_QUERIES).round().astype(int)]
    found = 0
    for start in range(0, len(queries), BLOCK):
        block = queries[start:start + BLOCK]
        similar = unit[block] @ unit[reference].T >= COSINE_LIMIT
        similar &= subjects[block][:, None] != subjects[reference][None, :]
        found += int(similar.any(axis=1).sum())
    if not found:
        return None
    where = "test rows have" if split is not None else "rows have"
    return (f"{found} of {len(queries)} {where} a near-duplicate of another subject "
            f"{'among the fitting rows ' if split is not None else ''}(centred embedding cosine ≥ {COSINE_LIMIT}): "
            "worth checking: the same image under two subject IDs leaks between training and test")
