"""Artefacts of 2D pictures (C, X, Y): fundus and other photographs (RGB, 0–255) and X-rays (grayscale).

Sizes are fractions of the picture's shorter side and intensities fractions of its range, so a severity means the
same for a 224-pixel and a 4000-pixel photograph. The range is `nominal_range` (0–255 for 8-bit pictures) where the
reader kept one, otherwise the image's own minimum and maximum; results are clipped to the nominal range, as a
camera or detector saturates.

JPEG compression is the one artefact written here: neither MONAI nor TorchIO has it, so Pillow's encoder does it.
Vignetting uses TorchIO's BiasField, whose exp(polynomial) field is a radial fall-off for the coefficients chosen.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from medprobe.artefacts.definition import ArtefactDefinition, Parameters, legacy_state, signed
from medprobe.artefacts.library_calls import monai_apply, torchio_apply
from medprobe.io.image import MedicalImage

#: Defocus or a dirty lens: Gaussian blur of σ = fraction × the shorter side (σ 0.56 to 4.9 pixels at 224 pixels,
#: the usual model input).
BLUR_TABLE: dict[int, Parameters] = {
    1: {"sigma_fraction_of_short_side": 0.0025},
    2: {"sigma_fraction_of_short_side": 0.005},
    3: {"sigma_fraction_of_short_side": 0.009},
    4: {"sigma_fraction_of_short_side": 0.014},
    5: {"sigma_fraction_of_short_side": 0.022},
}

#: Lossy storage: 8-bit JPEG at `quality` (Pillow/libjpeg scale), chroma subsampled 4:2:0 for colour pictures, as
#: archives and telemedicine uploads store them. Values are quantised to 8 bits over the range first.
JPEG_TABLE: dict[int, Parameters] = {
    1: {"quality": 90},
    2: {"quality": 70},
    3: {"quality": 50},
    4: {"quality": 30},
    5: {"quality": 10},
}
JPEG_FIXED: Parameters = {"subsampling": "4:2:0", "bits": 8}

#: Exposure and contrast of a different camera or setting: deviations from the image mean scaled by 1 ± contrast
#: (MONAI's ScaleIntensityFixedMean), then everything shifted by ± brightness × range (MONAI's ShiftIntensity);
#: both signs drawn per sample.
BRIGHTNESS_CONTRAST_TABLE: dict[int, Parameters] = {
    1: {"brightness_fraction": 0.03, "contrast_fraction": 0.05},
    2: {"brightness_fraction": 0.06, "contrast_fraction": 0.1},
    3: {"brightness_fraction": 0.1, "contrast_fraction": 0.2},
    4: {"brightness_fraction": 0.15, "contrast_fraction": 0.3},
    5: {"brightness_fraction": 0.2, "contrast_fraction": 0.4},
}

#: Sensor noise: white Gaussian noise, independent per channel, of σ = fraction × range (2.6 to 20 grey levels of
#: an 8-bit picture).
NOISE_TABLE: dict[int, Parameters] = {
    1: {"sigma_fraction_of_range": 0.01},
    2: {"sigma_fraction_of_range": 0.02},
    3: {"sigma_fraction_of_range": 0.035},
    4: {"sigma_fraction_of_range": 0.05},
    5: {"sigma_fraction_of_range": 0.08},
}

#: Vignetting and uneven illumination: gain exp(−a·(x² + y²) + t·(x·cos θ + y·sin θ)) with x, y ∈ [−1, 1] across the
#: picture; a = `falloff`, t = `tilt_ratio` × a off-centre illumination in a direction θ drawn per sample. The gain
#: at the corners is about exp(−2a): 0.82 (severity 1) to 0.25 (severity 5).
VIGNETTING_TABLE: dict[int, Parameters] = {
    1: {"falloff": 0.1},
    2: {"falloff": 0.2},
    3: {"falloff": 0.35},
    4: {"falloff": 0.5},
    5: {"falloff": 0.7},
}
VIGNETTING_FIXED: Parameters = {"tilt_ratio": 0.5}


def value_range(image: MedicalImage, array: np.ndarray) -> tuple[float, float]:
    """The nominal range where the reader kept one, otherwise the image's minimum and maximum."""
    if image.nominal_range is not None:
        return float(image.nominal_range[0]), float(image.nominal_range[1])
    return float(array.min()), float(array.max())


def _saturate(array: np.ndarray, image: MedicalImage) -> np.ndarray:
    if image.nominal_range is None:
        return array
    return np.clip(array, image.nominal_range[0], image.nominal_range[1]).astype(np.float32, copy=False)


def _blur(array: np.ndarray, image: MedicalImage, p: Parameters, rng: np.random.Generator) -> np.ndarray:
    import torchio as tio

    sigma_px = float(p["sigma_fraction_of_short_side"]) * min(image.spatial_shape)
    std_mm = [sigma_px * s for s in image.spacing]
    return torchio_apply(tio.Blur((std_mm[0], std_mm[1], 0.0)), array, image.affine)


def _jpeg(array: np.ndarray, image: MedicalImage, p: Parameters, rng: np.random.Generator) -> np.ndarray:
    """Own code (Pillow): no JPEG transform in MONAI or TorchIO."""
    low, high = value_range(image, array)
    span = max(high - low, 1e-6)
    levels = np.rint(np.clip((array - low) / span, 0.0, 1.0) * 255.0).astype(np.uint8)
    quality = int(p["quality"])
    if levels.shape[0] == 3:
        decoded = _jpeg_roundtrip(np.moveaxis(levels, 0, -1), "RGB", quality)
        out = np.moveaxis(decoded, -1, 0)
    else:  # grayscale, or channels that are not a colour picture: each on its own
        out = np.stack([_jpeg_roundtrip(channel, "L", quality) for channel in levels])
    return (out.astype(np.float32) / np.float32(255.0)) * np.float32(span) + np.float32(low)


def _jpeg_roundtrip(pixels: np.ndarray, mode: str, quality: int) -> np.ndarray:
    """(X, Y[, 3]) uint8 → JPEG → back. Pillow wants rows first, so the picture is stored as the reader found it."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.swapaxes(pixels, 0, 1)), mode=mode).save(
        buffer, format="JPEG", quality=quality, subsampling=2 if mode == "RGB" else 0
    )
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.swapaxes(np.asarray(decoded.convert(mode)), 0, 1)


def _brightness_contrast(array: np.ndarray, image: MedicalImage, p: Parameters,
                         rng: np.random.Generator) -> np.ndarray:
    from monai.transforms import ScaleIntensityFixedMean, ShiftIntensity

    low, high = value_range(image, array)
    contrast = signed(rng) * float(p["contrast_fraction"])
    offset = signed(rng) * float(p["brightness_fraction"]) * (high - low)
    scaled = monai_apply(ScaleIntensityFixedMean(factor=contrast, fixed_mean=True), array)
    return _saturate(monai_apply(ShiftIntensity(offset), scaled), image)


def _noise(array: np.ndarray, image: MedicalImage, p: Parameters, rng: np.random.Generator) -> np.ndarray:
    from monai.transforms import RandGaussianNoise

    low, high = value_range(image, array)
    sigma = float(p["sigma_fraction_of_range"]) * (high - low)
    transform = RandGaussianNoise(prob=1.0, mean=0.0, std=sigma, sample_std=False)
    transform.set_random_state(state=legacy_state(rng))
    return _saturate(monai_apply(transform, array), image)


def _vignetting(array: np.ndarray, image: MedicalImage, p: Parameters, rng: np.random.Generator) -> np.ndarray:
    import torchio as tio

    falloff = float(p["falloff"])
    tilt = float(VIGNETTING_FIXED["tilt_ratio"]) * falloff
    theta = rng.uniform(0.0, 2.0 * np.pi)
    # TorchIO's order-2 terms in its order: 1, z, z², y, yz, y², x, xz, xy, x² (z is constant for a 2D picture).
    coefficients = [0.0, 0.0, 0.0, tilt * np.sin(theta), 0.0, -falloff, tilt * np.cos(theta), 0.0, 0.0, -falloff]
    return _saturate(torchio_apply(tio.BiasField(coefficients, 2), array, image.affine), image)


ARTEFACTS_2D = (
    ArtefactDefinition("blur", "2d", "torchio.Blur", BLUR_TABLE, _blur, random=False),
    ArtefactDefinition("jpeg", "2d", "own: Pillow JPEG encode/decode (no JPEG transform in MONAI or TorchIO)",
                       JPEG_TABLE, _jpeg, random=False, fixed=JPEG_FIXED),
    ArtefactDefinition("brightness_contrast", "2d",
                       "monai.transforms.ScaleIntensityFixedMean + monai.transforms.ShiftIntensity",
                       BRIGHTNESS_CONTRAST_TABLE, _brightness_contrast, random=True),
    ArtefactDefinition("noise", "2d", "monai.transforms.RandGaussianNoise", NOISE_TABLE, _noise, random=True),
    ArtefactDefinition("vignetting", "2d", "torchio.BiasField (order 2, radial coefficients)", VIGNETTING_TABLE,
                       _vignetting, random=True, fixed=VIGNETTING_FIXED),
)
