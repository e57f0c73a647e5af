"""Header bombs: files whose header declares far more voxels than they hold are refused before any allocation.

Every hostile file is built for real and is a few hundred bytes. The checks: the ReadError names the declared shape
and what the file holds (or the value limit and how to raise it), it comes back in well under a second, and the
peak of Python/numpy allocations (tracemalloc) stays in the megabytes — reading them before the checks took 2 GB+.
"""

from __future__ import annotations

import gzip
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless

from medprobe.cli.main import main
from medprobe.errors import ReadError
from medprobe.io import read_image
from medprobe.io.limits import DEFAULT_MAX_VOXELS, MAX_VOXELS_ENV
from tests.conftest import write_volume
from tests.dicom_writers import write_ct_series, write_slice

SMALL_PEAK = 64 * 2**20  # bytes: far below any of the declared sizes


@pytest.fixture(autouse=True)
def _default_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(MAX_VOXELS_ENV, raising=False)
    yield


def refused(path: Path, **kwargs: str) -> str:
    """read_image's reason, asserting that it came fast and without allocating what the header claims."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ReadError) as caught:
            read_image(path, **kwargs)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seconds < 5 and peak < SMALL_PEAK, (seconds, peak)
    return caught.value.reason


def nifti_bomb(path: Path, shape: tuple[int, ...] = (800, 800, 800), compress: bool = True) -> Path:
    """A header claiming `shape` float32 voxels, and no voxel data at all."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.float32)
    block = header.binaryblock + b"\0" * 4
    path.write_bytes(gzip.compress(block) if compress else block)
    return path


def test_a_tiny_nii_gz_declaring_800_cubed_float32_is_refused(tmp_path: Path) -> None:
    path = nifti_bomb(tmp_path / "bomb.nii.gz")
    size = path.stat().st_size
    assert size < 100
    reason = refused(path)
    assert "800×800×800 float32" in reason and "2.05 GB" in reason and f"only {size} bytes" in reason
    assert "1032×" in reason


def test_an_uncompressed_nii_declaring_more_than_its_size_is_refused(tmp_path: Path) -> None:
    reason = refused(nifti_bomb(tmp_path / "bomb.nii", compress=False))
    assert "800×800×800 float32" in reason and "only 352 bytes" in reason and "1032" not in reason


def test_highly_compressible_real_volumes_still_load(tmp_path: Path) -> None:
    """An all-zero mask compresses about 1000:1, close to deflate's ceiling, and must not be taken for a bomb."""
    mask = np.zeros((256, 256, 96), dtype=np.uint8)
    raw = tmp_path / "mask.nii"
    nib.save(nib.Nifti1Image(mask, np.eye(4)), str(raw))
    path = tmp_path / "mask.nii.gz"
    path.write_bytes(gzip.compress(raw.read_bytes(), compresslevel=9))
    assert mask.nbytes / path.stat().st_size > 1000
    assert read_image(path).array.shape == (1, 256, 256, 96)
    image = sitk.GetImageFromArray(mask)
    for suffix in (".mha", ".nrrd"):
        sitk.WriteImage(image, str(tmp_path / f"mask{suffix}"), True)
        assert read_image(tmp_path / f"mask{suffix}").spatial_shape == (96, 256, 256)


def test_the_value_limit_is_set_by_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_volume(tmp_path / "v.nii.gz", np.ones((20, 20, 20), dtype=np.float32))
    monkeypatch.setenv(MAX_VOXELS_ENV, "7999")
    reason = refused(path)
    assert "20×20×20 = 8,000 values, above the limit of 7,999" in reason
    assert f"raise the limit with {MAX_VOXELS_ENV}" in reason
    monkeypatch.setenv(MAX_VOXELS_ENV, "8_000")
    assert read_image(path).spatial_shape == (20, 20, 20)
    monkeypatch.setenv(MAX_VOXELS_ENV, "lots")
    assert f"{MAX_VOXELS_ENV}='lots' is not a whole number" in refused(path)


def test_the_default_limit_refuses_a_header_beyond_1024_cubed(tmp_path: Path) -> None:
    reason = refused(nifti_bomb(tmp_path / "huge.nii.gz", (2048, 2048, 512)))
    assert DEFAULT_MAX_VOXELS == 1024**3
    assert "2048×2048×512 = 2,147,483,648 values, above the limit of 1,073,741,824" in reason


def _metaimage(path: Path, dims: str, extra: str = "", data: bytes = b"") -> Path:
    path.write_bytes(f"ObjectType = Image\nNDims = 3\nDimSize = {dims}\nElementType = MET_FLOAT\n{extra}"
                     "ElementDataFile = LOCAL\n".encode() + data)
    return path


def test_an_mha_header_claiming_huge_dims_without_data_is_refused(tmp_path: Path) -> None:
    reason = refused(_metaimage(tmp_path / "bomb.mha", "900 900 900"))
    assert "900×900×900 32-bit float (2.92 GB of voxel data)" in reason and "only 99 bytes" in reason
    compressed = _metaimage(tmp_path / "zbomb.mha", "900 900 900", "CompressedData = True\n",
                            zlib.compress(b"\0" * 4000))
    assert "deflate-compressed" in refused(compressed)
    assert "above the limit" in refused(_metaimage(tmp_path / "big.mha", "2000 2000 2000"))


def test_nrrd_headers_are_checked_by_their_encoding(tmp_path: Path) -> None:
    def nrrd(name: str, sizes: str, encoding: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(f"NRRD0004\ntype: float\ndimension: 3\nsizes: {sizes}\nendian: little\n"
                         f"encoding: {encoding}\n\n".encode() + data)
        return path

    assert "of text numbers" in refused(nrrd("a.nrrd", "2000 2000 20", "ascii", b"1 2 3 4"))
    assert "deflate-compressed" in refused(nrrd("g.nrrd", "700 700 700", "gzip", gzip.compress(b"\0" * 1000)))
    assert read_image(nrrd("ok.nrrd", "2 2 2", "ascii", b"1 2 3 4 5 6 7 8\n")).spatial_shape == (2, 2, 2)
    detached = tmp_path / "d.nhdr"
    detached.write_text("NRRD0004\ntype: float\ndimension: 3\nsizes: 500 500 500\nendian: little\n"
                        "encoding: raw\ndata file: d.raw\n\n")
    (tmp_path / "d.raw").write_bytes(b"\0" * 64)
    assert "only 64 bytes" in refused(detached)


def test_a_dicom_with_huge_rows_and_columns_and_short_pixel_data_is_refused(tmp_path: Path) -> None:
    path = write_slice(tmp_path / "bomb.dcm", np.zeros((4, 4), np.int16), (0.0, 0.0, 0.0), "1.2.3.4",
                       extra={"Rows": 20000, "Columns": 20000})
    reason = refused(path)
    assert reason.startswith("pixel data is truncated (32 of 800000000 bytes)")
    assert "Rows 20000 × Columns 20000 × 1 frame(s)" in reason and "800 MB" in reason


def test_a_compressed_dicom_beyond_the_value_limit_is_refused(tmp_path: Path) -> None:
    path = write_slice(tmp_path / "a.dcm", np.zeros((4, 4), np.int16), (0.0, 0.0, 0.0), "1.2.3.4")
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.Rows = ds.Columns = 60000
    ds.NumberOfFrames = 1
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 40])
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "j2k.dcm", enforce_file_format=True)
    reason = refused(tmp_path / "j2k.dcm")
    assert "Rows 60000 × Columns 60000 × 1 frame(s) × 1 sample(s) = 3,600,000,000 values" in reason


def test_a_series_beyond_the_value_limit_is_refused_before_decoding(tmp_path: Path, monkeypatch) -> None:
    folder = write_ct_series(tmp_path / "ct", np.zeros((8, 8, 4), np.float32))
    monkeypatch.setenv(MAX_VOXELS_ENV, "255")
    reason = refused(folder)
    assert "Columns 8 × Rows 8 × 4 slice(s) or frame(s) = 256 values, above the limit of 255" in reason


def _png(path: Path, width: int, height: int, colour_type: int = 0, data: bytes = b"\0" * 100) -> Path:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(data))
                     + chunk(b"IEND", b""))
    return path


def test_png_bombs_are_refused_by_medprobes_limits(tmp_path: Path) -> None:
    reason = refused(_png(tmp_path / "wide.png", 20000, 20000))
    assert "20000×20000 pixels × 1 sample(s) × 8 bits (400 MB" in reason and "deflate-compressed" in reason
    reason = refused(_png(tmp_path / "huge.png", 40000, 40000, colour_type=2))
    assert "40000×40000 pixels × 3 band(s) = 4,800,000,000 values, above the limit" in reason


def test_pillows_own_limit_gives_way_to_medprobes(png_image: Callable[..., Path], monkeypatch) -> None:
    """One limit for every format: Pillow's pixel ceiling does not apply, MEDPROBE_MAX_VOXELS does."""
    path = png_image("small.png", np.zeros((30, 20), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow alone would refuse 600 pixels
    assert read_image(path).spatial_shape == (20, 30)
    assert Image.MAX_IMAGE_PIXELS == 100  # put back after opening
    monkeypatch.setenv(MAX_VOXELS_ENV, "599")
    assert "20×30 pixels × 1 band(s) = 600 values, above the limit of 599" in refused(path)


def test_medprobe_inspect_reports_bombs_with_exit_3(tmp_path: Path, capsys) -> None:
    import json

    paths = [nifti_bomb(tmp_path / "bomb.nii.gz"), _metaimage(tmp_path / "bomb.mha", "900 900 900"),
             write_slice(tmp_path / "bomb.dcm", np.zeros((4, 4), np.int16), (0.0, 0.0, 0.0), "1.2.3.4",
                         extra={"Rows": 20000, "Columns": 20000})]
    started = time.perf_counter()
    assert main(["inspect", "--json", *map(str, paths)]) == 3
    assert time.perf_counter() - started < 10
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["ok"] for row in rows] == [False, False, False]
    assert "800×800×800 float32" in rows[0]["reason"] and "900×900×900" in rows[1]["reason"]
    assert "Rows 20000 × Columns 20000" in rows[2]["reason"]
    assert main(["inspect", str(paths[0])]) == 3
    out = capsys.readouterr().out
    assert "800×800×800 float32 (2.05 GB of voxel data)" in out and out.rstrip().endswith("0 read, 1 unreadable")
