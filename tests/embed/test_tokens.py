"""Patch tokens beside the embedding table: computed with the vectors, cached, aligned with the table's rows."""

from pathlib import Path

import numpy as np
import pytest
import torch

from medprobe.embed import EmbedSettings, embed_manifest
from medprobe.embed.table import read_metadata
from medprobe.embed.tokens import TokenCache, tokens_path
from medprobe.errors import MedprobeError
from medprobe.io import read_image
from medprobe.models import load_encoder
from medprobe.pipeline_spec import DataSpec, load_manifest
from medprobe.preprocess import PreprocessChain


def _embed(manifest: Path, cache: Path, table: Path, tokens: bool, name: str = "dinov2_vits14"):
    encoder = load_encoder(name, input_size=28) if name != "handcrafted" else load_encoder(name)
    chain = PreprocessChain(DataSpec(manifest=manifest, modality="mri"), encoder.preprocessing)
    settings = EmbedSettings(site="s", salt=b"salt", label_columns=("label",), modality="mri", batch_size=4,
                             num_workers=0, progress=False, precision="fp32", tokens=tokens)
    return encoder, chain, embed_manifest(load_manifest(manifest, ["label"]), encoder, chain, cache, settings, table)


@pytest.mark.slow
def test_tokens_match_the_encoder_and_the_table_rows(volume_dataset, tmp_path: Path) -> None:
    manifest = volume_dataset(n=5)
    encoder, chain, result = _embed(manifest, tmp_path / "cache", tmp_path / "t.parquet", tokens=True)
    tokens = result.tokens()
    # 3 axial slices (the default volume_to_2d) of 28 px = 2 x 2 patches each, concatenated along T.
    assert tokens.shape == (5, 3 * 4, 384) and tokens.dtype == np.float16
    assert read_metadata(tmp_path / "t.parquet")["tokens"]["shape"] == [5, 12, 384]

    paths = [manifest.parent / p for p in load_manifest(manifest, ["label"])["path"]]
    views = chain(read_image(paths[3], "mri"))
    with torch.inference_mode():
        pooled, expected = encoder.encode_with_tokens(views)
    np.testing.assert_allclose(tokens[3].astype(np.float32), expected.reshape(-1, 384).numpy(), atol=2e-3, rtol=2e-3)
    np.testing.assert_allclose(result.embeddings()[3], pooled.mean(0).numpy(), atol=1e-5)

    # The pooled vectors are those of a run without tokens.
    plain = _embed(manifest, tmp_path / "cache2", tmp_path / "plain.parquet", tokens=False)[2]
    np.testing.assert_allclose(plain.embeddings(), result.embeddings(), atol=1e-6)
    assert plain.tokens() is None and not tokens_path(tmp_path / "plain.parquet").exists()


@pytest.mark.slow
def test_tokens_are_cached_added_later_and_dropped_when_not_asked(volume_dataset, tmp_path: Path) -> None:
    manifest = volume_dataset(n=4)
    cache, table = tmp_path / "cache", tmp_path / "t.parquet"
    first = _embed(manifest, cache, table, tokens=False)[2]
    assert first.computed == 4 and first.tokens() is None
    vector_shards = sorted(cache.glob("shard-*.parquet"))

    with_tokens = _embed(manifest, cache, table, tokens=True)[2]
    assert with_tokens.computed == 4 and with_tokens.tokens().shape[0] == 4  # recomputed for the tokens only
    assert sorted(cache.glob("shard-*.parquet")) == vector_shards  # no duplicate vectors
    np.testing.assert_array_equal(with_tokens.embeddings(), first.embeddings())

    again = _embed(manifest, cache, table, tokens=True)[2]
    assert again.computed == 0 and again.cached == 4
    np.testing.assert_array_equal(again.tokens(), with_tokens.tokens())

    # A later table without tokens removes the tokens file: it would no longer match the rows.
    assert _embed(manifest, cache, table, tokens=False)[2].tokens() is None
    assert not tokens_path(table).exists() and "tokens" not in read_metadata(table)


def test_encoders_without_tokens_write_none(volume_dataset, tmp_path: Path) -> None:
    _, _, result = _embed(volume_dataset(n=2), tmp_path / "cache", tmp_path / "t.parquet", tokens=True,
                          name="handcrafted")
    assert result.computed == 2 and result.tokens() is None


def test_a_damaged_token_shard_is_ignored_and_a_missing_file_is_named(tmp_path: Path) -> None:
    cache = TokenCache(tmp_path / "tokens")
    cache.put({"a": np.ones((3, 8)), "b": np.zeros((3, 8))})
    (tmp_path / "tokens" / "shard-broken.safetensors").write_bytes(b"\x00" * 20)
    reopened = TokenCache(tmp_path / "tokens")
    assert "a" in reopened and reopened.read(["b", "a"]).shape == (2, 3, 8)
    assert not (tmp_path / "tokens" / "shard-broken.safetensors").exists()  # moved aside, never read again
    assert len(list((tmp_path / "tokens" / "corrupt").glob("*-shard-broken.safetensors"))) == 1


def test_a_table_whose_tokens_file_went_missing_says_so(volume_dataset, tmp_path: Path) -> None:
    result = _embed(volume_dataset(n=2), tmp_path / "cache", tmp_path / "t.parquet", tokens=True)[2]
    tokens_path(tmp_path / "t.parquet").unlink()
    with pytest.raises(MedprobeError, match=r"t\.tokens\.npy is missing"):
        result.tokens()


def test_a_flipped_byte_anywhere_in_the_tokens_file_is_refused(volume_dataset, tmp_path: Path) -> None:
    result = _embed(volume_dataset(n=2), tmp_path / "cache", tmp_path / "t.parquet", tokens=True)[2]
    path = tokens_path(tmp_path / "t.parquet")
    intact = path.read_bytes()
    assert result.tokens() is not None
    for offset in np.linspace(0, len(intact) - 1, 12).astype(int):  # the .npy header and the rows
        damaged = bytearray(intact)
        damaged[offset] ^= 0x10
        path.write_bytes(bytes(damaged))
        with pytest.raises(MedprobeError, match="damaged patch tokens file"):
            result.tokens()
    path.write_bytes(intact)
    assert result.tokens() is not None
