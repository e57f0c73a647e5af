"""A full disk (ENOSPC) is a one-line DiskFullError naming the folder, and leaves nothing half-written.

The disk is a real 2 MB tmpfs, mounted for the test (root or CAP_SYS_ADMIN needed; skipped otherwise).
"""

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medprobe.cli.main import main
from medprobe.embed import SHARD_SAMPLES_ENV, ShardCache, read_table, site_salt, write_table_chunks
from medprobe.embed.pseudonyms import SALT_ENV
from medprobe.embed.tokens import TokenCache, write_tokens
from medprobe.errors import DiskFullError

N = 24
SHARD = 4


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(disk)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc})")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False, capture_output=True, timeout=30)


def _fill(disk: Path, leave: int) -> Path:
    """Fill the disk up, then give back `leave` bytes (rounded by the filesystem to whole pages)."""
    filler = disk / "filler"
    block = b"\0" * 4096
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while os.write(fd, block):
            pass
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    os.truncate(filler, max(filler.stat().st_size - leave, 0))
    return filler


def _grow(disk: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True, capture_output=True, timeout=30)


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".tmp-")]


def _one_line_naming(error: DiskFullError | str, folder: Path) -> str:
    message = str(error)
    assert f"no space left in {folder}:" in message and "needed about" in message and "\n" not in message
    return message


def test_each_writer_turns_a_full_disk_into_disk_full_error(small_disk: Path, tmp_path: Path) -> None:
    _fill(small_disk, leave=64 * 1024)
    rng = np.random.default_rng(0)
    vectors = {f"k{i}": rng.normal(size=1024).astype(np.float32) for i in range(200)}  # 800 kB, incompressible
    with pytest.raises(DiskFullError) as raised:
        ShardCache(small_disk / "cache").put(vectors)
    assert "an embedding cache shard needed about 820" in _one_line_naming(raised.value, small_disk / "cache")

    tokens = {f"k{i}": rng.normal(size=(64, 384)).astype(np.float16) for i in range(20)}  # 983 kB
    with pytest.raises(DiskFullError) as raised:
        TokenCache(small_disk / "cache/tokens").put(tokens)
    assert "a patch-token cache shard needed about 983" in _one_line_naming(raised.value, small_disk / "cache/tokens")

    columns = pd.DataFrame({"sample_id": [f"s{i}" for i in range(200)], "subject_id": "x", "site": "s"})
    with pytest.raises(DiskFullError) as raised:
        write_table_chunks(small_disk / "out/table.parquet", columns, [np.stack(list(vectors.values()))], {})
    assert "the embedding table needed about 8" in _one_line_naming(raised.value, small_disk / "out")

    cache = TokenCache(tmp_path / "tokens")  # on the big disk
    cache.put(tokens)
    with pytest.raises(DiskFullError) as raised:
        write_tokens(small_disk / "out/t.tokens.npy", cache, list(tokens))
    assert "the patch tokens file needed about 983" in _one_line_naming(raised.value, small_disk / "out")

    (small_disk / "filler").write_bytes(b"")
    _fill(small_disk, leave=0)
    os.environ.pop(SALT_ENV, None)
    with pytest.raises(DiskFullError):
        site_salt(small_disk / "work")

    names = {p.relative_to(small_disk).as_posix() for p in small_disk.rglob("*") if p.is_file()}
    assert names == {"filler"}  # no temporary file, no half-written shard, table or tokens file


def _pngs(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    rows = []
    for i in range(N):
        Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(folder / f"im{i:03d}.png")
        rows.append({"path": f"im{i:03d}.png", "subject_id": f"P{i}", "label": i % 2})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


@pytest.mark.slow
def test_embedding_onto_a_full_disk_stops_cleanly_and_resumes_on_a_bigger_one(small_disk: Path, tmp_path: Path,
                                                                              monkeypatch, capsys) -> None:
    monkeypatch.setenv(SHARD_SAMPLES_ENV, str(SHARD))
    monkeypatch.setenv(SALT_ENV, "a-salt-of-16-chars")
    manifest = _pngs(tmp_path / "data")
    args = ["embed", "--model", "dinov2_vits14", "--option", "input_size=56", "--manifest", str(manifest),
            "--modality", "photo", "--site", "s1", "--precision", "fp32", "--batch-size", str(SHARD),
            "--workers", "0", "--no-progress", "--tokens"]
    assert main([*args, "--out", str(tmp_path / "reference")]) == 0
    reference = read_table(tmp_path / "reference/embeddings.parquet")
    reference_tokens = np.load(tmp_path / "reference/embeddings.tokens.npy")
    capsys.readouterr()

    # Room for a few cache shards (about 50 kB of tokens each), not for all of them.
    out = small_disk / "out"
    filler = _fill(small_disk, leave=160 * 1024)
    assert main([*args, "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("medprobe: error: ") and "\n" not in error
    _one_line_naming(error, out / "cache/tokens")
    assert not _leftovers(out) and not (out / "embeddings.parquet").exists()
    kept = TokenCache(out / "cache/tokens")
    done = len(kept)  # samples with their vector and tokens: the tokens shard is written second
    assert 0 < done < N and done <= len(ShardCache(out / "cache"))  # shards written before the disk filled up
    assert not kept.verify([f"{k}" for k in kept._index.rows])  # ... are whole, and kept

    # The same disk, made bigger: the job resumes and ends with the table a roomy disk gave.
    _grow(small_disk, "8m")
    assert main([*args, "--out", str(out)]) == 0
    assert f"{N - done} computed, {done} cached" in capsys.readouterr().out
    table = read_table(out / "embeddings.parquet")
    pd.testing.assert_frame_equal(table[0], reference[0])
    np.testing.assert_array_equal(table[1], reference[1])
    np.testing.assert_array_equal(np.load(out / "embeddings.tokens.npy"), reference_tokens)

    # A disk that fills up while the tokens file is assembled: no tokens file, no table, no temporary file.
    (out / "embeddings.parquet").unlink()
    (out / "embeddings.tokens.npy").unlink()
    filler.unlink()
    _grow(small_disk, "2m")
    _fill(small_disk, leave=100 * 1024)
    assert main([*args, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "the patch tokens file needed about 295" in _one_line_naming(error.strip(), out)
    assert not _leftovers(out) and not (out / "embeddings.parquet").exists()
    assert not (out / "embeddings.tokens.npy").exists()
