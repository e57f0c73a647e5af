"""The artefact suites: identity at severity 0, monotone in severity, deterministic per key, inputs untouched."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import get_args

import numpy as np
import pytest

from medprobe.artefacts import SEVERITIES, Corruption, artefacts_for, parse_artefacts
from medprobe.artefacts.definition import Suite
from medprobe.artefacts.registry import SUITE_OF_MODALITY, SUITES
from medprobe.errors import SpecError
from medprobe.io.image import MedicalImage
from medprobe.preprocess.options import Modality

# --------------------------------------------------------------------------------------------- phantoms


def mri_phantom() -> MedicalImage:
    """An ellipsoid head (600) around a brighter core (900) on a zero background; 1 × 1 × 1.5 mm voxels."""
    x, y, z = np.meshgrid(np.arange(32), np.arange(32), np.arange(24), indexing="ij")
    r = np.sqrt(((x - 15.5) / 12) ** 2 + ((y - 15.5) / 12) ** 2 + ((z - 11.5) / 9) ** 2)
    volume = np.where(r < 1.0, 600.0, 0.0)
    volume[r < 0.6] = 900.0
    affine = np.diag([1.0, 1.0, 1.5, 1.0])
    affine[:3, 3] = [-16.0, -16.0, -18.0]
    return MedicalImage(volume[None].astype(np.float32), affine, "mri", None, {"format": "nifti"})


def ct_phantom() -> MedicalImage:
    """Air (−1000 HU) around a soft-tissue body (40 HU) holding a bone sphere (700 HU); 0.8 × 0.8 × 1 mm voxels."""
    x, y, z = np.meshgrid(np.arange(32), np.arange(32), np.arange(24), indexing="ij")
    volume = np.full((32, 32, 24), -1000.0)
    volume[(np.abs(x - 15.5) < 11) & (np.abs(y - 15.5) < 9)] = 40.0
    volume[np.sqrt((x - 15.5) ** 2 + (y - 15.5) ** 2 + ((z - 11.5) * 1.25) ** 2) < 5] = 700.0
    return MedicalImage(volume[None].astype(np.float32), np.diag([0.8, 0.8, 1.0, 1.0]), "ct")


def fundus_phantom() -> MedicalImage:
    """An 8-bit RGB disc with shading and a fine texture on black, 128 × 128."""
    x, y = np.meshgrid(np.arange(128), np.arange(128), indexing="ij")
    r = np.hypot(x - 63.5, y - 63.5)
    shade = (1 - 0.4 * (r / 60) ** 2) * (1 + 0.1 * np.sin(x / 2.0) * np.cos(y / 3.0))
    picture = np.where(r < 60, np.array([200.0, 90.0, 40.0])[:, None, None] * shade[None], 0.0)
    picture += np.random.default_rng(1).normal(0, 2, picture.shape)
    pixels = np.clip(np.rint(picture), 0, 255).astype(np.float32)
    return MedicalImage(pixels, np.eye(4), "fundus", (0.0, 255.0), {"format": "png", "stored_dtype": "uint8"})


def xray_phantom() -> MedicalImage:
    """A 12-bit grayscale chest-like picture: a bright frame with two darker lungs, 64 × 64."""
    x, y = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    picture = np.full((64, 64), 3000.0)
    for cx in (20, 44):
        picture[np.hypot((x - cx) / 9, (y - 32) / 20) < 1] = 900.0
    return MedicalImage(picture[None].astype(np.float32), np.diag([0.2, 0.2, 1.0, 1.0]), "xray", (0.0, 4095.0))


PHANTOM_OF_SUITE: dict[Suite, Callable[[], MedicalImage]] = {"mri": mri_phantom, "ct": ct_phantom,
                                                            "2d": fundus_phantom}
MODALITY_OF_SUITE: dict[Suite, str] = {"mri": "mri", "ct": "ct", "2d": "fundus"}
ALL = [(suite, name) for suite, names in SUITES.items() for name in names]
KEYS = ("sample-a", "sample-b")


@pytest.fixture(scope="module")
def phantoms() -> dict[Suite, MedicalImage]:
    return {suite: make() for suite, make in PHANTOM_OF_SUITE.items()}


def corrupt(suite: Suite, name: str, severity: int, image: MedicalImage, key: str = "k", seed: int = 0) -> np.ndarray:
    return Corruption(name, severity, seed, MODALITY_OF_SUITE[suite])(image, key).array


# --------------------------------------------------------------------------------------------- statistics


def _error_energy(out: np.ndarray, clean: np.ndarray) -> float:
    return float(((out.astype(np.float64) - clean) ** 2).mean())


def _error_std(out: np.ndarray, clean: np.ndarray) -> float:
    return float((out.astype(np.float64) - clean).std())


def _distance(out: np.ndarray, clean: np.ndarray) -> float:
    return float(np.abs(out.astype(np.float64) - clean).mean())


def _sharpness(axes: tuple[int, ...]) -> Callable[[np.ndarray, np.ndarray], float]:
    """Minus the gradient energy along spatial `axes`: rises as the image loses detail."""

    def statistic(out: np.ndarray, clean: np.ndarray) -> float:
        return -float(sum((np.diff(out.astype(np.float64), axis=a + 1) ** 2).mean() for a in axes))

    return statistic


def _core_variation(out: np.ndarray, clean: np.ndarray) -> float:
    """Coefficient of variation within the MRI phantom's homogeneous core."""
    core = out[clean == 900.0]
    return float(core.std() / core.mean())


#: The statistic that must rise strictly from severity 0 through 5 (averaged over KEYS for random artefacts).
STATISTIC: dict[tuple[Suite, str], Callable[[np.ndarray, np.ndarray], float]] = {
    ("mri", "bias_field"): _core_variation,
    ("mri", "rician_noise"): _error_std,
    ("mri", "gibbs"): _error_energy,
    ("mri", "spikes"): _error_energy,
    ("mri", "motion"): _error_energy,
    ("mri", "ghosting"): _error_energy,
    ("mri", "resolution"): _sharpness((2,)),
    ("mri", "gamma"): _distance,
    ("ct", "noise"): _error_std,
    ("ct", "blur"): _sharpness((0, 1)),
    ("ct", "slice_thickness"): _sharpness((2,)),
    ("ct", "window_shift"): _distance,
    ("2d", "blur"): _sharpness((0, 1)),
    ("2d", "jpeg"): _error_energy,
    ("2d", "brightness_contrast"): _distance,
    ("2d", "noise"): _error_std,
    ("2d", "vignetting"): _distance,
}


def test_every_artefact_has_a_monotonicity_statistic() -> None:
    assert set(STATISTIC) == set(ALL)


# --------------------------------------------------------------------------------------------- behaviour


@pytest.mark.parametrize(("suite", "name"), ALL)
def test_severity_zero_is_the_identity(phantoms: dict[Suite, MedicalImage], suite: Suite, name: str) -> None:
    image = phantoms[suite]
    out = Corruption(name, 0, 7, MODALITY_OF_SUITE[suite])(image, "any")
    assert np.array_equal(out.array, image.array)
    assert Corruption(name, 0, modality=MODALITY_OF_SUITE[suite]).parameters() == {}


@pytest.mark.parametrize(("suite", "name"), ALL)
def test_monotone_in_severity(phantoms: dict[Suite, MedicalImage], suite: Suite, name: str) -> None:
    image = phantoms[suite]
    statistic = STATISTIC[(suite, name)]
    keys = KEYS if SUITES[suite][name].random else KEYS[:1]
    values = [np.mean([statistic(corrupt(suite, name, s, image, key), image.array) for key in keys])
              for s in (0, *SEVERITIES)]
    assert np.all(np.diff(values) > 0), f"{suite}.{name}: {np.round(values, 4).tolist()}"


@pytest.mark.parametrize(("suite", "name"), ALL)
def test_deterministic_per_sample_and_keeps_the_image(phantoms: dict[Suite, MedicalImage], suite: Suite,
                                                      name: str) -> None:
    image = phantoms[suite]
    before, affine_before = image.array.copy(), image.affine.copy()
    first = Corruption(name, 3, 5, MODALITY_OF_SUITE[suite])(image, "sample-a")
    again = Corruption(name, 3, 5, MODALITY_OF_SUITE[suite])(image, "sample-a")
    assert np.array_equal(first.array, again.array)
    assert not np.array_equal(first.array, image.array)

    # Some artefacts draw only a sign (gamma, window shift), so one other key may draw the same: try a few.
    other_keys = [corrupt(suite, name, 3, image, f"sample-{i}", seed=5) for i in range(4)]
    other_seeds = [corrupt(suite, name, 3, image, "sample-a", seed=6 + i) for i in range(4)]
    same_key = [np.array_equal(first.array, other) for other in other_keys]
    same_seed = [np.array_equal(first.array, other) for other in other_seeds]
    if SUITES[suite][name].random:
        assert not all(same_key) and not all(same_seed)
    else:  # nothing is drawn: key and seed cannot matter
        assert all(same_key) and all(same_seed)

    assert np.array_equal(image.array, before) and np.array_equal(image.affine, affine_before)
    assert first.array.dtype == np.float32 and first.array.shape == image.array.shape
    assert np.array_equal(first.affine, image.affine) and first.affine is not image.affine
    assert (first.modality, first.nominal_range, first.metadata) == (image.modality, image.nominal_range,
                                                                    image.metadata)
    assert np.isfinite(first.array).all()


@pytest.mark.parametrize("name", list(SUITES["2d"]))
def test_grayscale_xray(name: str) -> None:
    image = xray_phantom()
    before = image.array.copy()
    outs = [Corruption(name, s, modality="xray")(image, "x").array for s in (0, 1, 5)]
    assert np.array_equal(outs[0], before) and np.array_equal(image.array, before)
    assert all(o.shape == (1, 64, 64) and o.dtype == np.float32 for o in outs)
    assert _error_energy(outs[1], before) < _error_energy(outs[2], before)
    assert outs[2].min() >= 0.0 and outs[2].max() <= 4095.0  # saturates at the detector's range


def test_nan_voxels_do_not_spread() -> None:
    image = mri_phantom()
    array = image.array.copy()
    array[0, 0, 0, 0] = np.nan
    out = Corruption("gibbs", 2)(MedicalImage(array, image.affine, "mri"))
    assert np.isfinite(out.array).all()


def test_slice_thickness_already_thick_is_unchanged() -> None:
    image = ct_phantom()
    thick = MedicalImage(image.array, np.diag([0.8, 0.8, 3.0, 1.0]), "ct")
    assert np.array_equal(Corruption("slice_thickness", 2, modality="ct")(thick).array, thick.array)
    assert not np.array_equal(Corruption("slice_thickness", 3, modality="ct")(thick).array, thick.array)


# --------------------------------------------------------------------------------------------- records


@pytest.mark.parametrize(("suite", "name"), ALL)
def test_describe_round_trips_through_json(suite: Suite, name: str) -> None:
    definition = SUITES[suite][name]
    assert tuple(sorted(definition.table)) == SEVERITIES
    for severity in (0, *SEVERITIES):
        corruption = Corruption(name, severity, 3, MODALITY_OF_SUITE[suite])
        record = corruption.describe()
        assert json.loads(json.dumps(record)) == record
        assert record["parameters"] == corruption.parameters()
        assert (record["artefact"], record["severity"], record["seed"], record["suite"]) == (name, severity, 3,
                                                                                              suite)
        assert record["library"] and isinstance(record["library"], str)
        if severity:
            assert set(definition.table[severity]) <= set(corruption.parameters())


def test_only_jpeg_is_written_here() -> None:
    own = {f"{suite}.{name}" for suite, name in ALL if SUITES[suite][name].library.startswith("own:")}
    assert own == {"2d.jpeg"}


def test_severity_tables_are_documented_values() -> None:
    """Spot checks of the tables the run records: JPEG quality 90→10, CT noise 10→56 HU at half→1/32 dose."""
    assert [Corruption("jpeg", s).parameters()["quality"] for s in SEVERITIES] == [90, 70, 50, 30, 10]
    ct_noise = [Corruption("noise", s, modality="ct").parameters() for s in SEVERITIES]
    assert [p["sigma_hu"] for p in ct_noise] == [10.0, 17.3, 26.5, 38.7, 55.7]
    assert [p["dose_fraction"] for p in ct_noise] == [0.5, 0.25, 0.125, 0.0625, 0.03125]


# --------------------------------------------------------------------------------------------- suites and errors


def test_suites_cover_every_modality() -> None:
    assert set(SUITE_OF_MODALITY) == set(get_args(Modality))
    assert artefacts_for("mri") == ("bias_field", "rician_noise", "gibbs", "spikes", "motion", "ghosting",
                                    "resolution", "gamma")
    assert artefacts_for("ct") == ("noise", "blur", "slice_thickness", "window_shift")
    for modality in ("xray", "fundus", "photo", "other"):
        assert artefacts_for(modality) == ("blur", "jpeg", "brightness_contrast", "noise", "vignetting")
    with pytest.raises(SpecError, match=r"'pet'.*mri, ct, xray"):
        artefacts_for("pet")


def test_parse_artefacts() -> None:
    assert parse_artefacts("gibbs, motion,gibbs", "mri") == ("gibbs", "motion")
    assert parse_artefacts(["noise"], "ct") == ("noise",)
    assert parse_artefacts(None, "fundus") == parse_artefacts("all", "fundus") == artefacts_for("fundus")
    with pytest.raises(SpecError) as error:
        parse_artefacts(["motion", "jpeg", "fog"], "mri")
    message = str(error.value)
    assert "'jpeg', 'fog'" in message and "'jpeg' is for 2D pictures" in message
    assert "valid: bias_field, rician_noise, gibbs" in message and "'motion'" not in message.split("valid:")[0]
    with pytest.raises(SpecError, match="no artefacts given"):
        parse_artefacts(" , ", "ct")


def test_unknown_or_ambiguous_names_are_refused() -> None:
    with pytest.raises(SpecError, match=r"unknown artefact 'fog'.*MRI volumes: bias_field"):
        Corruption("fog", 1)
    with pytest.raises(SpecError, match=r"'blur' exists for CT volumes and 2D pictures.*give the modality"):
        Corruption("blur", 1)
    with pytest.raises(SpecError, match=r"unknown artefact 'motion' for modality 'ct'.*valid: noise, blur"):
        Corruption("motion", 1, modality="ct")
    for bad in (6, -1, True, 1.0):
        with pytest.raises(SpecError, match="severity must be an integer 0–5"):
            Corruption("gibbs", bad)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="seed must be a non-negative integer"):
        Corruption("gibbs", 1, -1)


def test_wrong_dimensionality_is_refused(phantoms: dict[Suite, MedicalImage]) -> None:
    with pytest.raises(SpecError, match=r"'motion' is for MRI volumes but the image is a 2D picture.*jpeg"):
        Corruption("motion", 0)(phantoms["2d"])
    with pytest.raises(SpecError, match=r"'jpeg' is for 2D pictures but the image is a 3D volume.*bias_field.*"
                                        r"window_shift"):
        Corruption("jpeg", 2)(phantoms["mri"])
    with pytest.raises(SpecError, match=r"'blur' is for CT volumes but the image is a 2D picture"):
        Corruption("blur", 1, modality="ct")(phantoms["2d"])


def test_artefact_of_another_modality_is_refused(phantoms: dict[Suite, MedicalImage]) -> None:
    with pytest.raises(SpecError, match=r"'noise' for this 'mri' image.*valid: bias_field"):
        Corruption("noise", 1, modality="ct")(phantoms["mri"])


def test_import_is_light() -> None:
    """Listing and recording artefacts must not load MONAI or TorchIO (a spec check never corrupts an image)."""
    code = ("import sys; import medprobe.artefacts as r; r.Corruption('motion', 2).describe(); "
            "assert 'monai' not in sys.modules and 'torchio' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)
