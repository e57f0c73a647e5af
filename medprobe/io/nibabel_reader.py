"""Volumes nibabel reads: NIfTI-1/2, MGH/MGZ, MINC 1/2, Analyze, PAR/REC, AFNI BRIK/HEAD, ECAT.

`nib.load` reads the header only (the voxels stay behind an array proxy), so the declared shape is checked against
MEDPROBE_MAX_VOXELS and against the size of the file that holds the voxels (see `medprobe.io.limits`) before any
voxel is read: a forged or truncated header is refused instead of allocating what it claims.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.spatialimages import SpatialImage

from medprobe.errors import ReadError
from medprobe.io.failures import failure_category
from medprobe.io.image import VOLUMES_KEY, MedicalImage
from medprobe.io.limits import check_stored, check_values, shape_text, stored_encoding

_ECAT_SUFFIXES = (".v",)


def read_nibabel(path: Path) -> MedicalImage:
    """Read a volume with nibabel; scaling (scl_slope/inter, PAR/REC, MINC ranges) is applied by nibabel, and
    the affine is nibabel's best (for NIfTI: sform, else qform).

    A 4th axis becomes channels (time points, echoes, diffusion directions), so a 4D series still loads, and the
    metadata's `volumes` says so: the preprocessing chain then picks or averages volumes, or refuses the image
    (`medprobe.preprocess.volumes`), instead of an encoder taking 20 time points for colours. A vector NIfTI
    (x, y, z, 1, c) becomes c channels without that mark. MINC's time axis, which nibabel puts first, likewise.
    """
    try:
        image = nib.ecat.load(str(path)) if path.name.lower().endswith(_ECAT_SUFFIXES) else nib.load(str(path))
    except Exception as exc:  # noqa: BLE001 - nibabel, gzip, zlib and h5py raise many exception types
        raise ReadError(str(path), f"not a readable {_kind(path)} file ({type(exc).__name__}: {exc})",
                        failure_category(exc)) from None
    if not isinstance(image, SpatialImage) or isinstance(image, nib.Cifti2Image):
        raise ReadError(str(path), f"{type(image).__name__} is not a volume (surface, connectivity or streamlines)",
                        "not-an-image")
    _check_declared(path, image)
    try:
        data = np.asarray(image.get_fdata(dtype=np.float32), dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - truncated data files raise OSError, EOFError, ValueError ...
        raise ReadError(str(path), f"cannot read the voxel data ({type(exc).__name__}: {exc})",
                        failure_category(exc)) from None
    channels_first = _channels_first(data, image, path)
    if np.isnan(channels_first).all():
        raise ReadError(str(path), "every voxel is NaN", "all-nan")
    metadata: dict[str, str | int | float] = {
        "format": type(image).__name__.removesuffix("Image").lower(), "stored_dtype": _stored_dtype(image)}
    if _fourth_axis(data, image) and channels_first.shape[0] > 1:
        metadata[VOLUMES_KEY] = int(channels_first.shape[0])
    return MedicalImage(
        array=np.ascontiguousarray(channels_first),
        affine=np.asarray(image.affine, dtype=np.float64),
        metadata=metadata,
    )


def _check_declared(path: Path, image: SpatialImage) -> None:
    """The header's shape against the value limit and against the bytes of the file holding the voxels."""
    shape = tuple(int(s) for s in image.shape)
    check_values(str(path), shape)
    holder = image.file_map.get("image")
    data_file = Path(holder.filename) if holder is not None and holder.filename else None
    if data_file is None or not data_file.is_file():
        return
    encoding = stored_encoding(data_file)
    if encoding is None:
        return
    dtype = _data_dtype(image)
    check_stored(str(path), shape, dtype.itemsize, data_file.stat().st_size, encoding,
                 label=f"{shape_text(shape)} {dtype.name}")


def _fourth_axis(data: np.ndarray, image: SpatialImage) -> bool:
    """True when the channels come from a 4th (volume) axis, not from vector components (x, y, z, 1, c)."""
    shape = tuple(int(s) for s in image.shape)
    return (len(shape) == 4 and shape[3] > 1) or (isinstance(image, nib.minc1.Minc1Image) and data.ndim == 4)


def _stored_dtype(image: SpatialImage) -> str:
    return str(_data_dtype(image))


def _data_dtype(image: SpatialImage) -> np.dtype:
    if isinstance(image, nib.ecat.EcatImage):  # ECAT stores a dtype per frame
        return np.dtype(image.get_data_dtype(0))
    return np.dtype(image.get_data_dtype())


def _channels_first(data: np.ndarray, image: SpatialImage, path: Path) -> np.ndarray:
    if data.ndim == 5 and data.shape[3] == 1:
        data = data[:, :, :, 0, :]
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim == 3:
        return data[None]
    if data.ndim == 4 and isinstance(image, nib.minc1.Minc1Image):
        return data  # nibabel puts MINC's non-spatial axis (time) first, and the affine maps the other three
    if data.ndim == 4:
        return np.moveaxis(data, 3, 0)
    raise ReadError(str(path), f"cannot interpret a {data.ndim}D array of shape {data.shape} as a volume",
                    "unsupported-layout")


def _kind(path: Path) -> str:
    name = path.name.lower()
    if ".nii" in name:
        return "NIfTI"
    if name.endswith((".mgz", ".mgh")):
        return "MGH"
    return "nibabel volume"
