from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from medprobe.embed import EmbedSettings, ShardCache, embed_manifest, engine, read_table, write_table
from medprobe.errors import MedprobeError
from medprobe.models import load_encoder
from medprobe.pipeline_spec import DataSpec, load_manifest
from medprobe.preprocess import PreprocessChain
from tests.conftest import write_volume


def _settings(**changes: object) -> EmbedSettings:
    base = {"site": "s1", "salt": b"pepper", "label_columns": ("label",), "modality": "mri", "batch_size": 4,
            "num_workers": 0, "progress": False}
    return EmbedSettings(**{**base, **changes})


def _run(manifest: Path, tmp_path: Path, encoder_name: str = "handcrafted", **options: object):
    encoder = load_encoder(encoder_name, **options)
    chain = PreprocessChain(DataSpec(manifest=manifest, modality="mri"), encoder.preprocessing)
    return embed_manifest(load_manifest(manifest, ["label"]), encoder, chain, tmp_path / "cache", _settings(),
                          tmp_path / "table.parquet")


def test_embeds_every_row_and_pseudonymises_ids(volume_dataset, tmp_path: Path) -> None:
    manifest = volume_dataset(n=6)
    result = _run(manifest, tmp_path)
    table, embeddings, metadata = read_table(result.table_path)
    pd.testing.assert_frame_equal(table, result.frame, check_dtype=False)
    assert embeddings.shape == (6, result.embeddings().shape[1]) and metadata["precision"] == "fp32"
    assert len(table) == 6 and result.computed == 6 and result.cached == 0 and not result.skipped
    assert table["subject_id"].str.startswith("sub-").all()
    assert not table["subject_id"].str.contains("S0").any()
    assert table["sample_id"].str.startswith("smp-").all() and table["sample_id"].is_unique
    assert table["site"].eq("s1").all() and "split" in table.columns
    assert table["label"].tolist() == [0, 1, 0, 1, 0, 1]


def test_second_run_is_served_from_the_cache(volume_dataset, tmp_path: Path) -> None:
    manifest = volume_dataset(n=6)
    first = _run(manifest, tmp_path).embeddings()
    second = _run(manifest, tmp_path)
    assert second.computed == 0 and second.cached == 6
    np.testing.assert_array_equal(first, second.embeddings())
    changed = _run(manifest, tmp_path, bins=16)
    assert changed.computed == 6  # another fingerprint never reuses cached vectors


def test_a_changed_file_is_recomputed(volume_dataset, tmp_path: Path) -> None:
    manifest = volume_dataset(n=4)
    _run(manifest, tmp_path)
    write_volume(manifest.parent / "vol002.nii.gz", np.zeros((24, 24, 16), np.float32))
    assert _run(manifest, tmp_path).computed == 1
    # Identical content under another name is the same sample as far as the cache goes.
    (manifest.parent / "vol003.nii.gz").write_bytes((manifest.parent / "vol001.nii.gz").read_bytes())
    assert _run(manifest, tmp_path).computed == 0


def test_bad_inputs_are_skipped_with_reasons(volume_dataset, tmp_path: Path) -> None:
    manifest = volume_dataset(n=6)
    (manifest.parent / "vol001.nii.gz").write_bytes(b"")
    (manifest.parent / "vol003.nii.gz").write_text("not a volume")
    (manifest.parent / "vol005.nii.gz").unlink()
    result = _run(manifest, tmp_path)
    assert len(result) == 3 and len(result.embeddings()) == 3
    reasons = {s.position: s.reason for s in result.skipped}
    assert {s.position: s.cause.category for s in result.skipped} == {
        1: "empty-file", 3: "corrupt-data", 5: "file-not-found"}
    assert "empty" in reasons[1] and "decode" in reasons[3] and "does not exist" in reasons[5]
    assert "NIfTI" in result.skipped[1].cause.detail  # the library's words stay local
    assert not any(str(tmp_path) in r for r in reasons.values())


def test_2d_model_on_volumes_pools_slices(volume_dataset, tmp_path: Path) -> None:
    result = _run(volume_dataset(n=2), tmp_path, "dinov2_vits14", input_size=28)
    assert result.embeddings().shape == (2, 384)


def test_shards_are_atomic_and_reindexed(tmp_path: Path) -> None:
    cache = ShardCache(tmp_path)
    cache.put({"a": np.ones(3), "b": np.zeros(3)})
    cache.put({"c": np.full(3, 2.0)})
    assert not list(tmp_path.glob(".tmp-*"))
    (tmp_path / ".tmp-shard-partial.parquet").write_bytes(b"half a shard")  # what a SIGKILL can leave
    reopened = ShardCache(tmp_path)
    assert len(reopened) == 3
    np.testing.assert_array_equal(reopened.get_many(["c", "zz"])["c"], np.full(3, 2.0, np.float32))


def test_table_round_trip_keeps_metadata(tmp_path: Path) -> None:
    frame = pd.DataFrame({"sample_id": ["a", "b"], "subject_id": ["s", "t"], "site": "x", "y": [0, 1],
                          "embedding": [np.arange(3, dtype=np.float32), np.ones(3, np.float32)]})
    write_table(frame, tmp_path / "t.parquet", {"encoder_fingerprint": "fp"})
    columns, embeddings, metadata = read_table(tmp_path / "t.parquet")
    assert embeddings.shape == (2, 3) and embeddings.dtype == np.float32
    assert list(columns.columns) == ["sample_id", "subject_id", "site", "y"]
    assert metadata["encoder_fingerprint"] == "fp" and "medprobe_version" in metadata
    with pytest.raises(Exception, match="not found"):
        read_table(tmp_path / "none.parquet")


def test_table_is_streamed_in_row_groups_from_small_shards(volume_dataset, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MEDPROBE_SHARD_SAMPLES", "2")
    monkeypatch.setattr("medprobe.embed.engine.TABLE_ROWS", 4)
    manifest = volume_dataset(n=6)
    result = _run(manifest, tmp_path)
    assert len(list((tmp_path / "cache").glob("shard-*.parquet"))) == 3
    assert pq.ParquetFile(result.table_path).metadata.num_row_groups == 2
    assert "embedding" not in result.frame.columns
    reference = _run(manifest, tmp_path / "again").embeddings()
    np.testing.assert_array_equal(result.embeddings(), reference)


def test_dataloader_prefetch_is_bounded(volume_dataset, tmp_path: Path, monkeypatch) -> None:
    seen: list[dict] = []
    real = engine.DataLoader

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "DataLoader", spy)
    manifest = volume_dataset(n=2)
    encoder = load_encoder("handcrafted")
    chain = PreprocessChain(DataSpec(manifest=manifest, modality="mri"), encoder.preprocessing)
    embed_manifest(load_manifest(manifest, ["label"]), encoder, chain, tmp_path / "cache",
                   _settings(num_workers=1), tmp_path / "t.parquet")
    (kwargs,) = seen
    # One batch (4 samples of one view) ready while the model runs the current one; never the whole manifest.
    assert kwargs["batch_size"] == 1 and kwargs["num_workers"] * kwargs["prefetch_factor"] == 4


def test_a_damaged_shard_is_ignored_and_its_samples_recomputed(volume_dataset, tmp_path: Path) -> None:
    manifest = volume_dataset(n=3)
    first = _run(manifest, tmp_path).embeddings()
    (shard,) = (tmp_path / "cache").glob("shard-*.parquet")
    shard.write_bytes(shard.read_bytes()[:100])  # not what an atomic rename leaves, but a bad copy can
    again = _run(manifest, tmp_path)
    assert again.computed == 3
    np.testing.assert_array_equal(first, again.embeddings())


def _auto(manifest: Path, tmp_path: Path):
    encoder = load_encoder("dinov2_vits14", input_size=28)
    chain = PreprocessChain(DataSpec(manifest=manifest, modality="mri"), encoder.preprocessing)
    return embed_manifest(load_manifest(manifest, ["label"]), encoder, chain, tmp_path / "cache",
                          _settings(precision="auto"), tmp_path / "auto.parquet")


@pytest.mark.slow
def test_auto_precision_on_cpu_is_calibrated_and_recorded(volume_dataset, tmp_path: Path, monkeypatch) -> None:
    manifest = volume_dataset(n=3)
    calls: list[tuple] = []
    monkeypatch.setattr(engine, "bf16_cosine", lambda *a: calls.append(a) or 0.9)
    result = _auto(manifest, tmp_path)
    assert result.precision == "fp32" and result.calibration_cosine == 0.9 and len(calls) == 1
    metadata = read_table(result.table_path)[2]
    assert metadata["precision"] == "fp32" and metadata["precision_calibration_cosine"] == 0.9
    assert metadata["precision_requested"] == "auto"
    again = _auto(manifest, tmp_path)  # the decision is kept with the cache: no second calibration, no recompute
    assert len(calls) == 1 and again.computed == 0 and again.precision == "fp32"


def test_auto_precision_keeps_bf16_when_faithful(volume_dataset, tmp_path: Path, monkeypatch) -> None:
    manifest = volume_dataset(n=2)
    cosines: list[float] = []
    real = engine.bf16_cosine
    monkeypatch.setattr(engine, "bf16_cosine", lambda *a: cosines.append(real(*a)) or cosines[-1])
    result = _auto(manifest, tmp_path)
    assert 0.999 <= cosines[0] <= 1.0 + 1e-6
    assert result.precision == "bf16" and read_table(result.table_path)[2]["precision"] == "bf16"


def test_explicit_precision_is_obeyed_and_keys_the_cache(volume_dataset, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(engine, "bf16_cosine", lambda *a: pytest.fail("explicit precision must not calibrate"))
    manifest = volume_dataset(n=2)
    encoder = load_encoder("dinov2_vits14", input_size=28)
    chain = PreprocessChain(DataSpec(manifest=manifest, modality="mri"), encoder.preprocessing)
    frame = load_manifest(manifest, ["label"])
    runs = {p: embed_manifest(frame, encoder, chain, tmp_path / "cache", _settings(precision=p),
                              tmp_path / f"{p}.parquet") for p in ("fp32", "bf16")}
    assert runs["bf16"].computed == 2 and runs["bf16"].precision == "bf16"
    cosine = np.sum(runs["fp32"].embeddings() * runs["bf16"].embeddings(), axis=1) / (
        np.linalg.norm(runs["fp32"].embeddings(), axis=1) * np.linalg.norm(runs["bf16"].embeddings(), axis=1))
    assert cosine.min() > 0.99


def test_site_from_the_manifest_or_an_error(volume_dataset, tmp_path: Path) -> None:
    manifest = volume_dataset(n=2)
    frame = load_manifest(manifest, ["label"])
    encoder = load_encoder("handcrafted")
    chain = PreprocessChain(DataSpec(manifest=manifest, modality="mri"), encoder.preprocessing)
    with pytest.raises(MedprobeError, match="site"):
        embed_manifest(frame, encoder, chain, tmp_path / "c", _settings(site=None), tmp_path / "t.parquet")
    frame["site"] = ["a", "b"]
    result = embed_manifest(frame, encoder, chain, tmp_path / "c", _settings(site=None), tmp_path / "t.parquet")
    assert result.frame["site"].tolist() == ["a", "b"]


def test_a_reader_that_kills_its_worker_costs_one_file_not_the_job(volume_dataset, tmp_path: Path,
                                                                   monkeypatch) -> None:
    """A native decoder aborting on corrupt data (gdcm can) kills the worker process: that file is skipped
    with a reason, and every other file is still embedded."""
    import faulthandler
    import os

    from medprobe.embed import loading

    real = loading.read_image

    def aborting_reader(path: str, modality: str, **options: object):
        if path.endswith("vol002.nii.gz"):
            faulthandler.disable()  # pytest's crash dump would only clutter the output
            os.abort()  # runs in the DataLoader worker (forked), as a native crash would
        return real(path, modality, **options)

    monkeypatch.setattr(loading, "read_image", aborting_reader)
    manifest = volume_dataset(n=6)
    encoder = load_encoder("handcrafted")
    chain = PreprocessChain(DataSpec(manifest=manifest, modality="mri"), encoder.preprocessing)
    result = embed_manifest(load_manifest(manifest, ["label"]), encoder, chain, tmp_path / "cache",
                            _settings(num_workers=1, batch_size=2), tmp_path / "t.parquet")
    assert result.computed == 5 and len(result) == 5
    (skipped,) = result.skipped
    assert skipped.position == 2 and skipped.cause.category == "reader-crashed"
    assert "crashed the reader process" in skipped.reason
