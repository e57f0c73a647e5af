"""Cache shards carry checksums: a damaged shard is reported once, moved aside and recomputed, never used."""

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from safetensors import safe_open

from medprobe.embed import EmbedSettings, ShardCache, embed_manifest
from medprobe.embed.integrity import CORRUPT_FOLDER
from medprobe.embed.tokens import TokenCache, tokens_path
from medprobe.models import load_encoder
from medprobe.pipeline_spec import DataSpec, load_manifest
from medprobe.preprocess import PreprocessChain


def _flip(path: Path, offset: int, bit: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _embed(manifest: Path, out: Path, model: str = "handcrafted", tokens: bool = False):
    encoder = load_encoder(model, input_size=28) if model != "handcrafted" else load_encoder(model)
    chain = PreprocessChain(DataSpec(manifest=manifest, modality="mri"), encoder.preprocessing)
    settings = EmbedSettings(site="s1", salt=b"a-salt-of-16-chars", label_columns=("label",), modality="mri",
                             batch_size=4, num_workers=0, progress=False, precision="fp32", tokens=tokens)
    return embed_manifest(load_manifest(manifest, ["label"]), encoder, chain, out / "cache", settings,
                          out / "table.parquet")


def _damage_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "damaged" in r.getMessage()]


def _moved_aside(shard: Path) -> list[Path]:
    return list((shard.parent / CORRUPT_FOLDER).glob(f"*-{shard.name}"))


def _data_offset(shard: Path, vector: np.ndarray) -> int:
    """Where one of a vector's float32 values lies in a Parquet shard (values are stored as they are)."""
    data = shard.read_bytes()
    for value in vector.astype(np.float32):
        if data.count(value.tobytes()) == 1:
            return data.find(value.tobytes())
    raise AssertionError("none of the vector's values is stored once in the file")


@pytest.mark.slow
def test_every_single_bit_flip_in_a_vector_shard_is_caught_or_harmless(tmp_path: Path, caplog) -> None:
    rng = np.random.default_rng(0)
    vectors = {f"key{i}": rng.normal(size=6).astype(np.float32) for i in range(3)}
    ShardCache(tmp_path / "made").put(vectors)
    (original,) = (tmp_path / "made").glob("shard-*.parquet")
    caught = 0
    for offset in range(original.stat().st_size):
        folder = tmp_path / f"flip{offset}"
        folder.mkdir()
        shard = folder / original.name
        shutil.copyfile(original, shard)
        _flip(shard, offset, bit=offset % 8)
        served = ShardCache(folder).get_many(vectors)
        for key, vector in served.items():
            np.testing.assert_array_equal(vector, vectors[key], err_msg=f"bit flip at byte {offset} was used")
        if len(served) < len(vectors):
            assert not shard.exists() and _moved_aside(shard), offset
            caught += 1
        shutil.rmtree(folder)
    value = _data_offset(original, vectors["key1"])
    assert caught > original.stat().st_size // 4  # most bytes matter; each flip in a vector's bytes is caught:
    for offset in range(value, value + 4):
        folder = tmp_path / "data"
        folder.mkdir(exist_ok=True)
        shutil.copyfile(original, folder / original.name)
        _flip(folder / original.name, offset)
        assert "key1" not in ShardCache(folder).get_many(vectors)
        shutil.rmtree(folder)


def test_every_single_bit_flip_in_a_token_shard_is_caught_or_harmless(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tokens = {f"key{i}": rng.normal(size=(3, 4)).astype(np.float16) for i in range(3)}
    TokenCache(tmp_path / "made").put(tokens)
    (original,) = (tmp_path / "made").glob("shard-*.safetensors")
    header = 8 + int.from_bytes(original.read_bytes()[:8], "little")
    for offset in range(original.stat().st_size):
        folder = tmp_path / f"flip{offset}"
        folder.mkdir()
        shard = folder / original.name
        shutil.copyfile(original, shard)
        _flip(shard, offset, bit=offset % 8)
        cache = TokenCache(folder)
        try:
            served = dict(zip(tokens, cache.read(list(tokens)), strict=True)) if all(k in cache for k in tokens) else {}
        except Exception:  # noqa: BLE001 - ShardUnusable: the damage was found on reading
            served = {}
        for key, array in served.items():
            np.testing.assert_array_equal(array, tokens[key], err_msg=f"bit flip at byte {offset} was used")
        if offset >= header:  # the token values themselves
            assert not served and _moved_aside(shard), offset
        shutil.rmtree(folder)


def test_shards_from_before_checksums_are_used_with_a_note(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="medprobe.embed")
    offsets = pa.array(np.arange(0, 7, 3, dtype=np.int32))
    old = pa.table({"key": ["a", "b"], "embedding": pa.ListArray.from_arrays(offsets, pa.array(np.arange(6.0),
                                                                                               pa.float32()))})
    pq.write_table(old, tmp_path / "shard-old.parquet")
    np.testing.assert_array_equal(ShardCache(tmp_path).get_many(["b"])["b"], [3.0, 4.0, 5.0])
    assert any("1 cache shard(s)" in m and "predate shard checksums" in m for m in caplog.messages)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_vector_shard_is_moved_aside_and_the_table_is_rebuilt_identical(
        volume_dataset, tmp_path: Path, monkeypatch, caplog, damage: str) -> None:
    monkeypatch.setenv("MEDPROBE_SHARD_SAMPLES", "2")
    manifest = volume_dataset(n=6)
    first = _embed(manifest, tmp_path / "out")
    original = (tmp_path / "out/table.parquet").read_bytes()
    shards = sorted((tmp_path / "out/cache").glob("shard-*.parquet"))
    assert len(shards) == 3
    shard = shards[1]
    if damage == "flip":
        vector = pq.read_table(shard).column("embedding")[0].values.to_numpy()
        _flip(shard, _data_offset(shard, vector) + 5, bit=3)
    else:
        _truncate(shard)

    caplog.set_level(logging.WARNING, logger="medprobe.embed")
    again = _embed(manifest, tmp_path / "out")
    assert again.computed == 2 and again.cached == 4 and not again.skipped
    (warning,) = _damage_warnings(caplog)
    assert shard.name in warning and ("checksum mismatch" if damage == "flip" else "unreadable") in warning
    assert not shard.exists() and len(_moved_aside(shard)) == 1
    pd.testing.assert_frame_equal(again.frame, first.frame)
    np.testing.assert_array_equal(again.embeddings(), first.embeddings())
    assert (tmp_path / "out/table.parquet").read_bytes() == original  # the very same file

    caplog.clear()
    assert _embed(manifest, tmp_path / "out").computed == 0 and not _damage_warnings(caplog)


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_token_shard_is_moved_aside_and_the_tokens_rebuilt_identical(
        volume_dataset, tmp_path: Path, monkeypatch, caplog, damage: str) -> None:
    monkeypatch.setenv("MEDPROBE_SHARD_SAMPLES", "2")
    manifest = volume_dataset(n=4)
    first = _embed(manifest, tmp_path / "out", "dinov2_vits14", tokens=True)
    tokens = np.array(first.tokens())
    shards = sorted((tmp_path / "out/cache/tokens").glob("shard-*.safetensors"))
    assert len(shards) == 2
    shard = shards[0]
    if damage == "flip":
        with safe_open(shard, framework="numpy") as handle:
            assert handle.metadata()["medprobe.sha256"]
        header = 8 + int.from_bytes(shard.read_bytes()[:8], "little")
        _flip(shard, header + 1000, bit=6)
    else:
        _truncate(shard)

    caplog.set_level(logging.WARNING, logger="medprobe.embed")
    again = _embed(manifest, tmp_path / "out", "dinov2_vits14", tokens=True)
    assert again.computed == 2 and again.cached == 2
    (warning,) = _damage_warnings(caplog)
    assert shard.name in warning and not shard.exists() and len(_moved_aside(shard)) == 1
    np.testing.assert_array_equal(np.array(again.tokens()), tokens)
    np.testing.assert_array_equal(again.embeddings(), first.embeddings())
    assert len(list((tmp_path / "out/cache").glob("shard-*.parquet"))) == 2  # vectors were fine: not rewritten
    assert not list(tokens_path(tmp_path / "out/table.parquet").parent.glob(".tmp-*"))


def test_a_damaged_precision_record_means_calibrating_again(volume_dataset, tmp_path: Path, monkeypatch,
                                                            caplog) -> None:
    from medprobe.embed import engine

    calls: list[tuple] = []
    monkeypatch.setattr(engine, "bf16_cosine", lambda *a: calls.append(a) or 0.9)
    manifest = volume_dataset(n=2)
    encoder = load_encoder("handcrafted")
    chain = PreprocessChain(DataSpec(manifest=manifest, modality="mri"), encoder.preprocessing)
    settings = EmbedSettings(site="s1", salt=b"a-salt-of-16-chars", label_columns=("label",), modality="mri",
                             num_workers=0, progress=False, precision="auto")
    frame = load_manifest(manifest, ["label"])
    first = embed_manifest(frame, encoder, chain, tmp_path / "cache", settings, tmp_path / "t.parquet")
    (record,) = (tmp_path / "cache/precision").glob("*.json")
    record.write_text('{"precision": "fp3')
    caplog.set_level(logging.WARNING, logger="medprobe.embed")
    again = embed_manifest(frame, encoder, chain, tmp_path / "cache", settings, tmp_path / "t.parquet")
    assert len(calls) == 2 and again.precision == first.precision == "fp32" and again.computed == 0
    assert any("damaged precision record" in m for m in caplog.messages)
    assert '"precision": "fp32"' in record.read_text()
