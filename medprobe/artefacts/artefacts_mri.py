"""MRI artefacts on 3D volumes (C, X, Y, Z): one parameter table per artefact, and the TorchIO or MONAI class
that makes it. Every artefact here comes from a library; nothing is simulated by medprobe's own code.

Intensities of MRI are arbitrary scanner units, so noise is scaled by the image itself: its robust maximum, the
99.5th percentile of the foreground (voxels above the channel's mean, a crude head mask that needs no model).
"""

from __future__ import annotations

import numpy as np

from medprobe.artefacts.definition import (
    ArtefactDefinition,
    Parameters,
    legacy_state,
    signed,
)
from medprobe.artefacts.library_calls import down_and_back, monai_apply, through_plane_axis, torchio_apply
from medprobe.io.image import MedicalImage

#: Smooth multiplicative field exp(Σ c·xⁱyʲzᵏ), polynomial order 3 over the field of view scaled to [-1, 1].
#: Each of the 19 non-constant coefficients is `coefficient_max` × U(-1, 1), drawn per sample; the constant term
#: is 0 (it would only rescale the image). TorchIO's RandomBiasField draws from ±0.5 by default. Median max/min of
#: the field within a central sphere of 80% of the field of view: 1.12, 1.24, 1.55, 1.9, 2.7 for severities 1–5,
#: from a well-corrected 3 T head scan to an uncorrected 7 T or surface-coil one.
BIAS_FIELD_TABLE: dict[int, Parameters] = {
    1: {"coefficient_max": 0.05},
    2: {"coefficient_max": 0.1},
    3: {"coefficient_max": 0.2},
    4: {"coefficient_max": 0.3},
    5: {"coefficient_max": 0.45},
}
BIAS_FIELD_ORDER = 3

#: Rician (magnitude) noise: Gaussian noise of σ on the real and imaginary channel, then the magnitude. σ is a
#: fraction of the channel's robust maximum: 1% ≈ SNR 100 (a good 3 T T1), 10% ≈ SNR 10 (a fast low-field scan).
RICIAN_NOISE_TABLE: dict[int, Parameters] = {
    1: {"sigma_fraction_of_robust_max": 0.01},
    2: {"sigma_fraction_of_robust_max": 0.02},
    3: {"sigma_fraction_of_robust_max": 0.04},
    4: {"sigma_fraction_of_robust_max": 0.07},
    5: {"sigma_fraction_of_robust_max": 0.1},
}

#: Gibbs ringing: k-space truncated to a sphere (MONAI's GibbsNoise: radius (1 − alpha)·√2/2 of the longest matrix
#: side). `k_radius_fraction` is that radius as a fraction of the half-matrix: 0.92 keeps nearly all of k-space along
#: the axes (only the corners go), 0.35 is a low-resolution scan reconstructed on a fine grid.
GIBBS_TABLE: dict[int, Parameters] = {
    1: {"alpha": 0.35, "k_radius_fraction": 0.919},
    2: {"alpha": 0.45, "k_radius_fraction": 0.778},
    3: {"alpha": 0.55, "k_radius_fraction": 0.636},
    4: {"alpha": 0.65, "k_radius_fraction": 0.495},
    5: {"alpha": 0.75, "k_radius_fraction": 0.354},
}

#: k-space spikes (herringbone): `num_spikes` points of k-space raised by `intensity` × the k-space maximum, which
#: lays stripes of amplitude ≈ intensity × the mean image intensity over the volume. Positions are drawn per sample,
#: 10–45% of the matrix away from the centre along each axis; severities share them (the first `num_spikes`).
SPIKES_TABLE: dict[int, Parameters] = {
    1: {"num_spikes": 1, "intensity": 0.05},
    2: {"num_spikes": 1, "intensity": 0.1},
    3: {"num_spikes": 1, "intensity": 0.2},
    4: {"num_spikes": 2, "intensity": 0.3},
    5: {"num_spikes": 3, "intensity": 0.5},
}
_MAX_SPIKES = 3

#: Rigid head motion during the scan (Shaw et al. 2019): the head moves `num_movements` times; each movement's
#: rotation about the centre (3 angles) and translation (3 axes) are `max_degrees` / `max_translation_mm` × U(-1, 1),
#: drawn per sample, at times near 1/3 and 2/3 of the acquisition; k-space is filled from the poses in turn.
#: 0.5 mm is a cooperative adult; 5 mm and 5° a restless patient or a child.
MOTION_TABLE: dict[int, Parameters] = {
    1: {"max_degrees": 0.5, "max_translation_mm": 0.5},
    2: {"max_degrees": 1.0, "max_translation_mm": 1.0},
    3: {"max_degrees": 2.0, "max_translation_mm": 2.0},
    4: {"max_degrees": 3.0, "max_translation_mm": 3.0},
    5: {"max_degrees": 5.0, "max_translation_mm": 5.0},
}
MOTION_FIXED: Parameters = {"num_movements": 2, "interpolation": "linear"}

#: Ghosting from periodic motion (pulsation, breathing): every n-th k-space plane along the phase-encoding axis is
#: scaled by (1 − intensity), which repeats the object n times across the field of view at about intensity / n of
#: its brightness. n (4–10, TorchIO's default range) and the phase-encoding axis (one of the two in-plane axes) are
#: drawn per sample; the central 2% of k-space is restored, as TorchIO's RandomGhosting does.
GHOSTING_TABLE: dict[int, Parameters] = {
    1: {"intensity": 0.15},
    2: {"intensity": 0.3},
    3: {"intensity": 0.45},
    4: {"intensity": 0.6},
    5: {"intensity": 0.8},
}
GHOSTING_FIXED: Parameters = {"num_ghosts_min": 4, "num_ghosts_max": 10, "restore_fraction": 0.02}

#: Resolution loss: the through-plane voxel size (the coarsest axis; among equal ones, the one closest to
#: superior–inferior) multiplied by `factor` with anti-aliasing, then resampled back onto the original grid.
#: 1 mm isotropic becomes 1.5 mm (severity 1) to 6 mm (severity 5, a thick-slice clinical 2D acquisition).
RESOLUTION_TABLE: dict[int, Parameters] = {
    1: {"factor": 1.5},
    2: {"factor": 2.0},
    3: {"factor": 3.0},
    4: {"factor": 4.0},
    5: {"factor": 6.0},
}

#: Contrast change: MONAI's AdjustContrast, ((x − min) / range)^γ · range + min. γ = exp(± log_gamma), the sign
#: drawn per sample (brighter or darker mid-tones): γ 1.11/0.90 (severity 1) to 1.82/0.55 (severity 5).
GAMMA_TABLE: dict[int, Parameters] = {
    1: {"log_gamma": 0.1},
    2: {"log_gamma": 0.2},
    3: {"log_gamma": 0.3},
    4: {"log_gamma": 0.45},
    5: {"log_gamma": 0.6},
}


def _bias_field(array: np.ndarray, image: MedicalImage, p: Parameters, rng: np.random.Generator) -> np.ndarray:
    import torchio as tio

    n_terms = (BIAS_FIELD_ORDER + 1) * (BIAS_FIELD_ORDER + 2) * (BIAS_FIELD_ORDER + 3) // 6
    unit = rng.uniform(-1.0, 1.0, n_terms)
    unit[0] = 0.0  # TorchIO's first term is the constant one
    coefficients = (float(p["coefficient_max"]) * unit).tolist()
    return torchio_apply(tio.BiasField(coefficients, BIAS_FIELD_ORDER), array, image.affine)


def robust_max(channel: np.ndarray) -> float:
    """99.5th percentile of the voxels above the channel's mean (the foreground); at least a tiny positive value."""
    foreground = channel[channel > channel.mean()]
    values = foreground if foreground.size else channel.ravel()
    return max(float(np.percentile(values, 99.5)), 1e-6)


def _rician_noise(array: np.ndarray, image: MedicalImage, p: Parameters, rng: np.random.Generator) -> np.ndarray:
    from monai.transforms import RandRicianNoise

    fraction = float(p["sigma_fraction_of_robust_max"])
    sigmas = [fraction * robust_max(channel) for channel in array]
    transform = RandRicianNoise(prob=1.0, mean=0.0, std=sigmas, channel_wise=True, sample_std=False)
    transform.set_random_state(state=legacy_state(rng))
    return monai_apply(transform, array)


def _gibbs(array: np.ndarray, image: MedicalImage, p: Parameters, rng: np.random.Generator) -> np.ndarray:
    from monai.transforms import GibbsNoise

    return monai_apply(GibbsNoise(alpha=float(p["alpha"])), array)


def _spikes(array: np.ndarray, image: MedicalImage, p: Parameters, rng: np.random.Generator) -> np.ndarray:
    import torchio as tio

    offsets = rng.uniform(0.1, 0.45, (_MAX_SPIKES, 3)) * rng.choice([-1.0, 1.0], (_MAX_SPIKES, 3))
    positions = (0.5 + offsets)[: int(p["num_spikes"])]
    return torchio_apply(tio.Spike(positions, float(p["intensity"])), array, image.affine)


def _motion(array: np.ndarray, image: MedicalImage, p: Parameters, rng: np.random.Generator) -> np.ndarray:
    import torchio as tio

    n = int(MOTION_FIXED["num_movements"])
    degrees = float(p["max_degrees"]) * rng.uniform(-1.0, 1.0, (n, 3))
    translation = float(p["max_translation_mm"]) * rng.uniform(-1.0, 1.0, (n, 3))
    step = 1.0 / (n + 1)  # as TorchIO's RandomMotion: evenly spaced times, jittered
    times = np.arange(1, n + 1) * step + rng.uniform(-step / (2 * n), step / (2 * n), n)
    transform = tio.Motion(degrees, translation, times, str(MOTION_FIXED["interpolation"]))
    return torchio_apply(transform, array, image.affine)


def _ghosting(array: np.ndarray, image: MedicalImage, p: Parameters, rng: np.random.Generator) -> np.ndarray:
    import torchio as tio

    slice_axis = through_plane_axis(image.affine, image.spatial_shape)
    in_plane = [axis for axis in range(3) if axis != slice_axis]
    axis = in_plane[int(rng.integers(len(in_plane)))]
    num_ghosts = int(rng.integers(int(GHOSTING_FIXED["num_ghosts_min"]), int(GHOSTING_FIXED["num_ghosts_max"]) + 1))
    transform = tio.Ghosting(num_ghosts, axis, float(p["intensity"]), float(GHOSTING_FIXED["restore_fraction"]))
    return torchio_apply(transform, array, image.affine)


def _resolution(array: np.ndarray, image: MedicalImage, p: Parameters, rng: np.random.Generator) -> np.ndarray:
    axis = through_plane_axis(image.affine, image.spatial_shape)
    return down_and_back(array, image.affine, axis, image.spacing[axis] * float(p["factor"]))


def _gamma(array: np.ndarray, image: MedicalImage, p: Parameters, rng: np.random.Generator) -> np.ndarray:
    from monai.transforms import AdjustContrast

    gamma = float(np.exp(signed(rng) * float(p["log_gamma"])))
    return monai_apply(AdjustContrast(gamma), array)


MRI_ARTEFACTS = (
    ArtefactDefinition("bias_field", "mri", "torchio.BiasField", BIAS_FIELD_TABLE, _bias_field, random=True,
                       fixed={"order": BIAS_FIELD_ORDER}),
    ArtefactDefinition("rician_noise", "mri", "monai.transforms.RandRicianNoise", RICIAN_NOISE_TABLE,
                       _rician_noise, random=True),
    ArtefactDefinition("gibbs", "mri", "monai.transforms.GibbsNoise", GIBBS_TABLE, _gibbs, random=False),
    ArtefactDefinition("spikes", "mri", "torchio.Spike", SPIKES_TABLE, _spikes, random=True),
    ArtefactDefinition("motion", "mri", "torchio.Motion", MOTION_TABLE, _motion, random=True, fixed=MOTION_FIXED),
    ArtefactDefinition("ghosting", "mri", "torchio.Ghosting", GHOSTING_TABLE, _ghosting, random=True,
                       fixed=GHOSTING_FIXED),
    ArtefactDefinition("resolution", "mri", "torchio.Resample (anti-aliased, down and back)", RESOLUTION_TABLE,
                       _resolution, random=False),
    ArtefactDefinition("gamma", "mri", "monai.transforms.AdjustContrast", GAMMA_TABLE, _gamma, random=True),
)
