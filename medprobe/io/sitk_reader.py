"""MetaImage (MHA/MHD) and NRRD through SimpleITK, converted from ITK's LPS world to RAS.

The header is read first (`ImageFileReader.ReadImageInformation`, no voxel data) and its declared size checked
against MEDPROBE_MAX_VOXELS and against the bytes that hold the data (`medprobe.io.limits`, `sitk_header`), so
`Execute` never allocates what a forged or truncated header claims.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medprobe.errors import ReadError
from medprobe.io.image import MedicalImage
from medprobe.io.limits import check_stored, check_values, shape_text
from medprobe.io.sitk_header import stored_data

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_BITS = re.compile(r"(\d+)-bit")


def read_sitk(path: Path) -> MedicalImage:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
        _check_declared(path, reader)
        image = reader.Execute()
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise ReadError(str(path), f"SimpleITK cannot read it ({reason})", "corrupt-data") from None
    # ITK arrays are (z, y, x[, c]); medprobe wants (c, x, y, z).
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    channels = image.GetNumberOfComponentsPerPixel()
    if channels == 1:
        array = array[..., None]
    array = np.moveaxis(array, -1, 0)
    array = np.ascontiguousarray(np.transpose(array, (0, *range(array.ndim - 1, 0, -1))))
    if np.isnan(array).all():
        raise ReadError(str(path), "every voxel is NaN", "all-nan")
    return MedicalImage(
        array=array,
        affine=_ras_affine(image),
        metadata={"format": path.suffix.lower().lstrip("."), "stored_dtype": image.GetPixelIDTypeAsString()},
    )


def _check_declared(path: Path, reader: sitk.ImageFileReader) -> None:
    dims = reader.GetDimension()
    if dims not in (2, 3):
        raise ReadError(str(path), f"expected a 2D or 3D image, got {dims}D", "unsupported-layout")
    components = reader.GetNumberOfComponents()
    shape = (*(int(s) for s in reader.GetSize()), *((components,) if components > 1 else ()))
    type_name = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    label = f"{shape_text(shape)} {type_name}"
    check_values(str(path), shape, label)
    stored, bits = stored_data(path), _BITS.search(type_name)
    if stored is None or bits is None:
        return
    itemsize = int(bits.group(1)) / 8 * (2 if "complex" in type_name else 1)
    check_stored(str(path), shape, itemsize, stored.nbytes, stored.encoding, label)


def _ras_affine(image: sitk.Image) -> np.ndarray:
    dims = image.GetDimension()
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(dims, dims)
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    affine = np.eye(4)
    affine[:dims, :dims] = direction * spacing
    affine[:dims, 3] = image.GetOrigin()
    return _LPS_TO_RAS @ affine
