import numpy as np
import pandas as pd

from medprobe.api import evaluate
from medprobe.evaluation.degenerate import degenerate_embeddings_note


def test_nearly_identical_embeddings_are_noted_and_learned_ones_are_not() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=64)
    collapsed = base + 1e-4 * rng.normal(size=(40, 64))  # cosine ≈ 1 - 1e-8, like a random-init ViT's CLS
    note = degenerate_embeddings_note(collapsed)
    assert note is not None and "nearly identical" in note
    assert "same embedding" in (degenerate_embeddings_note(np.ones((5, 3))) or "")
    assert degenerate_embeddings_note(rng.normal(size=(40, 64))) is None
    assert degenerate_embeddings_note(collapsed[:1]) is None

    frame = pd.DataFrame({"subject_id": [f"s{i}" for i in range(40)], "label": [0, 1] * 20})
    result = evaluate(frame, "label", protocols=["linear"], embeddings=collapsed)
    assert any("nearly identical" in n for n in result.notes("linear"))
