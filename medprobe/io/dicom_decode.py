"""Pixel data → float32 frames in display-ready, physical values, or a ReadError naming what is missing.

Decoding is pydicom's (with gdcm, pylibjpeg-openjpeg/-rle, pyjpegls and Pillow as plugins); the value pipeline
follows pydicom's semantics and functions, frame by frame:

* MONOCHROME: the modality transform per frame — Rescale Slope/Intercept in float (`apply_modality_lut`; for
  enhanced objects from each frame's PixelValueTransformationSequence), else the Modality LUT, else RT Dose's
  DoseGridScaling (so dose is in Gy).
* MONOCHROME1 (higher stored value = darker) is inverted so that higher = brighter like MONOCHROME2:
  ``out = lo + hi - value`` where [lo, hi] is the range the stored bits can hold after the same modality
  transform. Values stay in the same units and range; only the direction of the grey scale flips. Presentation
  and VOI LUTs are not applied (windowing belongs to preprocessing).
* YBR_FULL / YBR_FULL_422 → RGB with `convert_color_space` where the decoder did not already convert
  (YBR_ICT/YBR_RCT are converted inside the JPEG 2000 decoder). PALETTE COLOR → RGB with `apply_color_lut`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, as_pixel_options, convert_color_space, get_decoder
from pydicom.pixels.decoders.base import Decoder

from medprobe.errors import ReadError
from medprobe.io.dicom_header import functional_group, int_value, quiet_pydicom
from medprobe.io.dicom_reasons import decoder_hint, scrub, syntax_name
from medprobe.io.dicom_size import check_pixel_size

#: gdcm aborts the whole process (an uncaught C++ exception, not a Python error) on some corrupt JPEG Baseline
#: and JPEG-LS streams, which would kill a batch job. It is therefore skipped wherever another installed plugin
#: decodes the syntax (Pillow, pylibjpeg-openjpeg, pyjpegls, pylibjpeg-rle, pydicom's RLE) and used only where it
#: is the one decoder (JPEG Lossless, Process 14). On pydicom's test files all plugins give identical values.
_LAST_RESORT = frozenset({"gdcm"})
_REQUIRED = ("Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation")
_REQUIRED_INTEGER = ("BitsAllocated", "BitsStored", "PixelRepresentation")
_KNOWN_PHOTOMETRIC = re.compile(r"^(MONOCHROME[12]|RGB|PALETTE COLOR|YBR_[A-Z0-9_]+|ARGB|CMYK|HSV|XYB)$")


@dataclass(frozen=True)
class DecodedPixels:
    """Frames as float32 (F, rows, columns, C), C = 1 or 3, plus what a caller records about them."""

    frames: np.ndarray
    photometric: str
    value_transform: str
    stored_dtype: str
    bits_stored: int | None
    transfer_syntax: str
    stored_range: tuple[float, float] | None


def decode_pixels(path: str, ds: Dataset) -> DecodedPixels:
    """Decode every frame of `ds`. Any failure, whatever raised it, becomes a ReadError with a scrubbed reason."""
    _check_required(path, ds)
    syntax = ds.file_meta.get("TransferSyntaxUID")
    check_pixel_size(path, ds, syntax)  # before a decoder allocates what Rows × Columns × frames declare
    photometric = _photometric(ds)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        hint = decoder_hint(syntax, int_value(ds, "BitsStored")) or "has no decoder in pydicom"
        raise ReadError(path, f"{syntax_name(syntax)} {hint}", "dicom-unsupported-syntax") from None
    array, meta = _decode(path, ds, decoder, syntax)
    frames = array.reshape(int(meta["number_of_frames"]), int(meta["rows"]), int(meta["columns"]), -1)
    decoded_as = str(meta["photometric_interpretation"])
    values, transform, stored_range = _to_values(path, ds, frames, decoded_as)
    return DecodedPixels(
        frames=values,
        photometric=photometric,
        value_transform=transform,
        stored_dtype=np.dtype(array.dtype).name,
        bits_stored=int(meta.get("bits_stored") or 0) or None,
        transfer_syntax=syntax_name(syntax),
        stored_range=stored_range,
    )


def _decode(path: str, ds: Dataset, decoder: Decoder, syntax: str) -> tuple[np.ndarray, dict]:
    """Try the preferred plugins in turn; every failure, even a Rust panic (a BaseException), is collected."""
    available = list(decoder.available_plugins)
    plugins = [p for p in available if p not in _LAST_RESORT] or available or [""]
    failures: list[tuple[str, BaseException]] = []
    for plugin in plugins:
        try:
            with quiet_pydicom():
                return decoder.as_array(ds, validate=True, decoding_plugin=plugin, **as_pixel_options(ds))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - plugins raise anything; pyo3 panics are BaseExceptions
            failures.append((plugin, exc))
    raise ReadError(path, _decode_failure(ds, syntax, failures), "dicom-decode-failed")


def _to_values(
    path: str, ds: Dataset, frames: np.ndarray, decoded_as: str
) -> tuple[np.ndarray, str, tuple[float, float] | None]:
    if decoded_as in ("YBR_FULL", "YBR_FULL_422"):
        frames, decoded_as = convert_color_space(frames, decoded_as, "RGB", per_frame=True), "RGB"
    if decoded_as == "RGB" and frames.shape[-1] == 3:
        limits = _stored_limits(ds, frames.dtype)
        return frames.astype(np.float32), "none", (0.0, float(limits[1])) if limits else None
    if decoded_as == "PALETTE COLOR" and frames.shape[-1] == 1:
        rgb = apply_color_lut(frames[..., 0], ds)
        return rgb.astype(np.float32), "palette colour LUT", (0.0, float(np.iinfo(rgb.dtype).max))
    if decoded_as in ("MONOCHROME1", "MONOCHROME2") and frames.shape[-1] == 1:
        return _monochrome(path, ds, frames, decoded_as == "MONOCHROME1")
    raise ReadError(path, f"photometric interpretation {decoded_as} with {frames.shape[-1]} sample(s) per pixel "
                          "is not supported", "dicom-unsupported-colour")


def _monochrome(
    path: str, ds: Dataset, frames: np.ndarray, inverted: bool
) -> tuple[np.ndarray, str, tuple[float, float] | None]:
    out = np.empty(frames.shape, dtype=np.float32)
    limits = _stored_limits(ds, frames.dtype)
    transform, value_range = "none", None
    for index in range(frames.shape[0]):
        source = functional_group(ds, index, "PixelValueTransformationSequence") or ds
        transform, apply = _value_transform(path, ds, source)
        values = apply(frames[index])
        frame_range = _transformed_range(apply, limits) if inverted or value_range is None else None
        if inverted and frame_range is not None:
            values = frame_range[0] + frame_range[1] - values
        elif inverted:  # float pixel data has no stored range: mirror within the frame's own values
            values = float(np.nanmin(values)) + float(np.nanmax(values)) - values
        out[index] = values
        value_range = value_range or frame_range
    return out, transform, value_range


def _transformed_range(
    apply: Callable[[np.ndarray], np.ndarray], limits: tuple[int, int] | None
) -> tuple[float, float] | None:
    """Where the stored range lands after the modality transform (a LUT need not be monotonic)."""
    if limits is None:
        return None
    low, high = limits
    ends = apply(np.arange(low, high + 1) if high - low < 2**17 else np.array(limits))
    return float(np.min(ends)), float(np.max(ends))


def _value_transform(path: str, ds: Dataset, source: Dataset) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    if "RescaleSlope" in source and "RescaleIntercept" in source:
        if float(source.RescaleSlope) == 0.0:
            raise ReadError(path, "Rescale Slope is 0: every pixel would collapse to the intercept",
                            "dicom-invalid-header")
        return "rescale slope/intercept", lambda a: apply_modality_lut(a, source)
    if ds.get("ModalityLUTSequence"):
        return "modality LUT", lambda a: apply_modality_lut(a, ds)
    if "DoseGridScaling" in ds and ds.get("DoseGridScaling") not in (None, ""):
        scale = float(ds.DoseGridScaling)
        return "dose grid scaling", lambda a: np.asarray(a, dtype=np.float64) * scale
    return "none", lambda a: np.asarray(a, dtype=np.float64)


def _stored_limits(ds: Dataset, dtype: np.dtype) -> tuple[int, int] | None:
    """The integer range Bits Stored and Pixel Representation allow; None for float pixel data."""
    if dtype.kind not in "ui":
        return None
    bits = int_value(ds, "BitsStored") or np.dtype(dtype).itemsize * 8
    if int_value(ds, "PixelRepresentation") == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _check_required(path: str, ds: Dataset) -> None:
    integers = ("Rows", "Columns", "SamplesPerPixel") + (_REQUIRED_INTEGER if "PixelData" in ds else ())
    missing = [keyword for keyword in (*_REQUIRED, *integers) if ds.get(keyword) in (None, "")]
    if missing:
        raise ReadError(path, f"missing required element(s): {', '.join(dict.fromkeys(missing))}",
                        "dicom-invalid-header")
    invalid = [keyword for keyword in integers if int_value(ds, keyword) is None]
    if invalid or not int_value(ds, "Rows") or not int_value(ds, "Columns"):
        raise ReadError(path, f"invalid image size or pixel description ({', '.join(invalid) or 'Rows/Columns 0'})",
                        "dicom-invalid-header")
    if ds.get("NumberOfFrames") not in (None, "") and int_value(ds, "NumberOfFrames") is None:
        raise ReadError(path, "invalid NumberOfFrames value", "dicom-invalid-header")


def _decode_failure(ds: Dataset, syntax: str, failures: list[tuple[str, BaseException]]) -> str:
    name = syntax_name(syntax)
    message = " | ".join(f"{plugin or 'pydicom'}: {type(exc).__name__}: {exc}" for plugin, exc in failures)
    if "less than expected" in message or "truncat" in message.lower():
        numbers = re.search(r"\((\d+) vs (\d+) bytes\)", message)
        detail = f" ({numbers.group(1)} of {numbers.group(2)} bytes)" if numbers else ""
        return f"pixel data is truncated{detail}"
    hint = decoder_hint(syntax, int_value(ds, "BitsStored"))
    if hint:
        return f"{name} {hint}"
    return f"cannot decode {name} pixel data ({scrub(message)})"


def _photometric(ds: Dataset) -> str:
    value = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    return value if _KNOWN_PHOTOMETRIC.match(value) else "unrecognised"
