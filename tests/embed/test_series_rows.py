"""Two manifest rows on one DICOM study folder, each selecting its series by `series_uid`: the engine reads each
row's own series, caches them apart, gives them different sample ids, and writes no UID anywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pydicom.uid import generate_uid

from medprobe.embed import EmbedSettings, embed_manifest
from medprobe.io.manifest import load_manifest
from medprobe.models import load_encoder
from medprobe.preprocess import PreprocessChain
from medprobe.preprocess.options import PreprocessOptions
from tests.dicom_writers import write_ct_series


def test_rows_on_one_study_folder_embed_their_own_series(tmp_path: Path) -> None:
    first, second = generate_uid(), generate_uid()
    base = np.arange(8 * 6 * 4, dtype=np.float32).reshape(8, 6, 4)
    write_ct_series(tmp_path / "study" / "SE01", base, series_uid=first)
    write_ct_series(tmp_path / "study" / "SE02", 3000.0 - 7 * base, series_uid=second, seed=1)
    manifest_path = tmp_path / "manifest.csv"
    pd.DataFrame({"path": ["study", "study"], "subject_id": ["P1", "P1"], "series_uid": [first, second],
                  "label": [0, 1]}).to_csv(manifest_path, index=False)
    manifest = load_manifest(manifest_path)
    encoder = load_encoder("handcrafted")
    chain = PreprocessChain(PreprocessOptions(modality="ct"), encoder.preprocessing)
    settings = EmbedSettings(site="s", salt=b"x" * 32, label_columns=("label",), modality="ct", num_workers=0,
                             progress=False)
    table = tmp_path / "out" / "embeddings.parquet"
    result = embed_manifest(manifest, encoder, chain, tmp_path / "out" / "cache", settings, table)
    assert not result.skipped and result.computed == 2
    X = result.embeddings()
    assert not np.allclose(X[0], X[1])  # each row read its own series
    assert result.frame["sample_id"].nunique() == 2
    for file in (tmp_path / "out").rglob("*"):
        if file.is_file():
            assert first.encode() not in file.read_bytes() and second.encode() not in file.read_bytes()

    again = embed_manifest(manifest, encoder, chain, tmp_path / "out" / "cache", settings, table)
    assert again.cached == 2 and np.array_equal(again.embeddings(), X)
