"""The authors' preprocessing from a model card fills in what a spec leaves out, for the card's modalities only; a
spec's own step wins and is recorded as an override; the record changes the chain's digest (the cache key); a
malformed card block, an impossible orientation and an empty foreground are refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from medprobe.errors import MedprobeError, ReadError
from medprobe.io import MedicalImage
from medprobe.models import load_encoder
from medprobe.models.cards import authors_defaults, load_card
from medprobe.preprocess import PreprocessChain
from medprobe.preprocess.input_spec import InputSpec
from medprobe.preprocess.model_defaults import ModelDefaults
from medprobe.preprocess.options import CTWindowIntensity, Preprocessing, PreprocessOptions
from medprobe.preprocess.spatial import CropToForeground

CT_FM_DEFAULTS = ModelDefaults.from_card({
    "modalities": ["ct"], "orientation": "SPL", "spacing": [3.0, 1.0, 1.0],
    "intensity": {"mode": "ct_window", "low": -1024, "high": 2048}, "crop_foreground": True,
})


def _chain(modality: str = "ct", defaults: ModelDefaults | None = CT_FM_DEFAULTS, **steps: object) -> PreprocessChain:
    spec = InputSpec(3, (32, 32, 32), 1, None, None, "trilinear", defaults)
    return PreprocessChain(PreprocessOptions.model_validate({"modality": modality, "preprocessing": steps}), spec)


def _step(chain: PreprocessChain, name: str) -> dict[str, object] | None:
    return next((s for s in chain.describe() if s["step"] == name), None)


def test_a_silent_spec_gets_the_authors_steps_and_the_record_says_so() -> None:
    chain = _chain()
    assert _step(chain, "model_defaults") == {"step": "model_defaults", "applied": True, "spec_overrides": [],
                                              "from_model": ["crop_foreground", "intensity", "orientation",
                                                             "spacing"]}
    assert _step(chain, "orientation") == {"step": "orientation", "axcodes": "SPL"}
    assert _step(chain, "spacing") == {"step": "spacing", "pixdim": [3.0, 1.0, 1.0]}
    intensity = _step(chain, "intensity")
    assert intensity is not None and (intensity["low"], intensity["high"]) == (-1024.0, 2048.0)
    assert _step(chain, "crop_foreground") is not None


def test_a_step_the_spec_sets_wins_and_is_recorded_as_an_override() -> None:
    chain = _chain(orientation="RAS", spacing=[3.0, 1.0, 1.0])
    record = _step(chain, "model_defaults")
    assert record is not None and record["spec_overrides"] == ["orientation"]  # spacing equals theirs: no override
    assert record["from_model"] == ["crop_foreground", "intensity"]
    assert _step(chain, "orientation") == {"step": "orientation", "axcodes": "RAS"}
    assert chain.digest_text() != _chain().digest_text()


def test_defaults_apply_only_to_their_modalities_and_can_be_turned_off() -> None:
    mri = _chain("mri")
    assert _step(mri, "model_defaults") == {"step": "model_defaults", "applied": False,
                                            "reason": "made for ct, the data is mri"}
    assert _step(mri, "orientation") == {"step": "orientation", "axcodes": "RAS"} and _step(mri, "spacing") is None
    off = _chain(model_defaults=False)
    assert _step(off, "model_defaults") == {"step": "model_defaults", "applied": False,
                                            "reason": "turned off by the spec"}
    intensity = _step(off, "intensity")
    assert intensity is not None and intensity["preset"] == "brain" and intensity["low"] is None
    assert len({c.digest_text() for c in (mri, off, _chain())}) == 3


def test_a_model_without_defaults_describes_its_chain_as_before() -> None:
    chain = _chain(defaults=None)
    assert _step(chain, "model_defaults") is None
    assert "defaults" not in InputSpec(3, (32, 32, 32), 1, None, None, "trilinear").describe()


def test_zoo_encoders_carry_their_cards_defaults_into_their_fingerprint() -> None:
    encoder = load_encoder("voco_b", input_size=32)
    assert encoder.preprocessing.defaults == authors_defaults(load_card("voco_b"))
    assert encoder.preprocessing.describe()["defaults"]["intensity"]["low"] == -175.0
    assert load_encoder("monai_vit3d", input_size=32).preprocessing.defaults is None


def test_a_malformed_card_block_names_the_card_and_the_field(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    card = load_card("voco_b")
    folder = tmp_path / "voco_b"
    folder.mkdir()
    text = (Path(__file__).parents[2] / "model_zoo" / "voco_b" / "card.yaml").read_text(encoding="utf-8")
    folder.joinpath("card.yaml").write_text(text.replace("orientation: RAS", "orientation: RAP"), encoding="utf-8")
    monkeypatch.setenv("MEDPROBE_MODEL_ZOO", str(tmp_path))
    load_card.cache_clear()
    try:
        with pytest.raises(MedprobeError, match=r"'voco_b': authors_preprocessing .*orientation"):
            authors_defaults(load_card("voco_b"))
    finally:
        load_card.cache_clear()
    assert card.name == "voco_b"


@pytest.mark.parametrize("codes", ["RAP", "RA", "RASS", "XYZ", "LLS"])
def test_orientations_need_one_code_of_each_axis(codes: str) -> None:
    with pytest.raises(ValidationError, match="axis codes"):
        Preprocessing(orientation=codes)


def test_orientation_codes_are_read_in_any_order_and_case() -> None:
    assert Preprocessing(orientation="spl").orientation == "SPL"
    assert Preprocessing(orientation="LPS").orientation == "LPS"


def test_a_ct_window_is_a_preset_centre_and_width_or_low_and_high() -> None:
    assert CTWindowIntensity(low=-1000, high=1000).bounds() == (-1000, 1000)
    assert CTWindowIntensity(center=40, width=80).bounds() == (0, 80)
    assert CTWindowIntensity().bounds() == (0, 80)  # the brain preset
    for bad in ({"low": -1000}, {"low": 10, "high": 0}, {"low": 0, "high": 1, "center": 0, "width": 1}):
        with pytest.raises(ValidationError):
            CTWindowIntensity.model_validate(bad)


def test_an_image_without_foreground_is_refused_not_passed_on_empty() -> None:
    air = MedicalImage(np.zeros((1, 8, 8, 8), np.float32), np.eye(4))
    with pytest.raises(ReadError) as refused:
        CropToForeground()(air, "scan.nii.gz")
    assert refused.value.category == "empty-foreground"
    body = np.zeros((1, 8, 8, 8), np.float32)
    body[0, 2:5, 3:7, 1:2] = 0.5
    cropped = CropToForeground()(MedicalImage(body, np.diag([2.0, 2.0, 2.0, 1.0])), "scan.nii.gz")
    assert cropped.array.shape == (1, 3, 4, 1)
    np.testing.assert_allclose(cropped.affine[:3, 3], [4.0, 6.0, 2.0])  # the crop's corner, in mm
