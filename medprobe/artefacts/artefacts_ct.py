"""CT artefacts on 3D volumes in Hounsfield units (C, X, Y, Z): one parameter table per artefact, and the TorchIO or
MONAI class that makes it. Every artefact here comes from a library.

Left out: streaks (photon starvation, metal, beam hardening) and rings (detector miscalibration). They arise in the
projection data (sinogram) and need a forward projector and a reconstruction; neither MONAI (1.6) nor TorchIO
(1.2) provides one or a transform that imitates them, and an image-space imitation written here would be a guess
whose realism nobody has checked.
"""

from __future__ import annotations

import math

import numpy as np

from medprobe.artefacts.definition import ArtefactDefinition, Parameters, legacy_state, signed
from medprobe.artefacts.library_calls import down_and_back, monai_apply, through_plane_axis, torchio_apply
from medprobe.io.image import MedicalImage

_REFERENCE_NOISE_HU = 10.0
#: Quantum noise of a lower dose. Noise σ scales with dose^-1/2; a reference scan with 10 HU of noise (soft tissue,
#: standard kernel) taken at `dose_fraction` of its dose has σ_total = 10/√dose_fraction HU, so the noise added is
#: σ = 10·√(1/dose_fraction − 1) HU: half dose (10 HU) to 1/32 of the dose (56 HU). White Gaussian noise: real
#: low-dose noise is correlated (its power spectrum peaks at mid frequencies) and streaky near dense objects.
NOISE_TABLE: dict[int, Parameters] = {
    level: {
        "dose_fraction": 0.5**level,
        "sigma_hu": round(_REFERENCE_NOISE_HU * math.sqrt(2.0**level - 1.0), 1),
    }
    for level in (1, 2, 3, 4, 5)
}
NOISE_FIXED: Parameters = {"reference_noise_hu": _REFERENCE_NOISE_HU}

#: A softer reconstruction kernel: in-plane Gaussian blur (none through-plane; slice thickness is its own artefact)
#: of `fwhm_mm`, σ = FWHM / 2.355 in millimetres, so the same blur whatever the pixel size. 0.75 mm is about the
#: step from a sharp to a standard soft-tissue kernel; 3.5 mm smooths away structures of a few millimetres.
BLUR_TABLE: dict[int, Parameters] = {
    level: {"fwhm_mm": fwhm, "sigma_mm": round(fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0))), 4)}
    for level, fwhm in zip((1, 2, 3, 4, 5), (0.75, 1.25, 1.75, 2.5, 3.5), strict=True)
}

#: Thicker reconstructed slices: the through-plane axis (the coarsest; among equal ones, the one closest to
#: superior–inferior) resampled to `thickness_mm` with anti-aliasing, then linearly back onto the original grid.
#: The usual reconstructions, 1.25 to 5 mm, then 7.5 mm (legacy thick-slice head CT). A volume whose slices are
#: already at least this thick is returned unchanged.
SLICE_THICKNESS_TABLE: dict[int, Parameters] = {
    1: {"thickness_mm": 1.25},
    2: {"thickness_mm": 2.5},
    3: {"thickness_mm": 3.75},
    4: {"thickness_mm": 5.0},
    5: {"thickness_mm": 7.5},
}

#: A shifted HU calibration, the same as a window whose centre moved by −shift: every voxel moves by ±`shift_hu`,
#: the sign drawn per sample. 5 HU is the water tolerance of CT acceptance tests; 50 HU moves a brain window
#: (40/80) by more than half its width.
WINDOW_SHIFT_TABLE: dict[int, Parameters] = {
    1: {"shift_hu": 5.0},
    2: {"shift_hu": 10.0},
    3: {"shift_hu": 20.0},
    4: {"shift_hu": 35.0},
    5: {"shift_hu": 50.0},
}


def _noise(array: np.ndarray, image: MedicalImage, p: Parameters, rng: np.random.Generator) -> np.ndarray:
    from monai.transforms import RandGaussianNoise

    transform = RandGaussianNoise(prob=1.0, mean=0.0, std=float(p["sigma_hu"]), sample_std=False)
    transform.set_random_state(state=legacy_state(rng))
    return monai_apply(transform, array)


def _blur(array: np.ndarray, image: MedicalImage, p: Parameters, rng: np.random.Generator) -> np.ndarray:
    import torchio as tio

    axis = through_plane_axis(image.affine, image.spatial_shape)
    std = [0.0 if i == axis else float(p["sigma_mm"]) for i in range(3)]
    return torchio_apply(tio.Blur((std[0], std[1], std[2])), array, image.affine)


def _slice_thickness(array: np.ndarray, image: MedicalImage, p: Parameters, rng: np.random.Generator) -> np.ndarray:
    axis = through_plane_axis(image.affine, image.spatial_shape)
    thickness = float(p["thickness_mm"])
    if thickness <= image.spacing[axis]:
        return array
    return down_and_back(array, image.affine, axis, thickness)


def _window_shift(array: np.ndarray, image: MedicalImage, p: Parameters, rng: np.random.Generator) -> np.ndarray:
    from monai.transforms import ShiftIntensity

    return monai_apply(ShiftIntensity(signed(rng) * float(p["shift_hu"])), array)


CT_ARTEFACTS = (
    ArtefactDefinition("noise", "ct", "monai.transforms.RandGaussianNoise", NOISE_TABLE, _noise, random=True,
                       fixed=NOISE_FIXED),
    ArtefactDefinition("blur", "ct", "torchio.Blur", BLUR_TABLE, _blur, random=False),
    ArtefactDefinition("slice_thickness", "ct", "torchio.Resample (anti-aliased, down and back)",
                       SLICE_THICKNESS_TABLE, _slice_thickness, random=False),
    ArtefactDefinition("window_shift", "ct", "monai.transforms.ShiftIntensity", WINDOW_SHIFT_TABLE, _window_shift,
                       random=True),
)
