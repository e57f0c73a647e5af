from pathlib import Path

import pytest
import torch

from medprobe.errors import MedprobeError
from medprobe.models import load_encoder
from medprobe.models.ldae import PretrainSummary, reconstruct
from medprobe.models.ldae.encoder import load_trained_model
from medprobe.models.ldae.interpolation import interpolate, slerp


def test_slerp_keeps_the_norm_of_orthogonal_codes_and_meets_its_ends() -> None:
    a, b = torch.zeros(1, 4), torch.zeros(1, 4)
    a[0, 0], b[0, 1] = 2.0, 2.0
    assert torch.allclose(slerp(a, b, 0.0), a) and torch.allclose(slerp(a, b, 1.0), b, atol=1e-6)
    middle = slerp(a, b, 0.5)
    assert torch.linalg.norm(middle) == pytest.approx(2.0) and torch.linalg.norm(torch.lerp(a, b, 0.5)) < 1.5
    assert torch.allclose(slerp(a, a, 0.3), a)  # parallel codes: plain linear interpolation, no division by 0


@pytest.mark.slow
def test_interpolation_ends_are_the_reconstructions_of_the_two_scans(
    trained_ldae: tuple[Path, Path, PretrainSummary],
) -> None:
    _, out, _ = trained_ldae
    model = load_trained_model(out)
    x_a, x_b = torch.rand(1, 1, 16, 16, 16), torch.rand(1, 1, 16, 16, 16)
    assert torch.allclose(interpolate(model, x_a, x_b, 0.0), reconstruct(model, x_a), atol=1e-5)
    assert torch.allclose(interpolate(model, x_a, x_b, 1.0), reconstruct(model, x_b), atol=1e-5)
    middle = interpolate(model, x_a, x_b, 0.5)
    assert middle.shape == x_a.shape and float(middle.min()) >= 0 and float(middle.max()) <= 1
    # the exported semantic encoder is the one the zoo adapter serves
    with torch.inference_mode():
        assert torch.allclose(load_encoder("ldae", weights=out).encode(x_a), model.semantic(x_a), atol=1e-6)


def test_random_init_control_of_a_config_file_is_reproducible(tmp_path: Path) -> None:
    config = tmp_path / "mine.yaml"
    config.write_text("preset: tiny\nsemantic: {dim: 8}\n")
    first, second = load_encoder("ldae", config=str(config)), load_encoder("ldae", config=str(config))
    assert first.embed_dim == 8 and not first.pretrained
    assert first.fingerprint == second.fingerprint != load_encoder("ldae", config="tiny").fingerprint
    x = torch.rand(2, 1, 16, 16, 16)
    with torch.inference_mode():
        assert torch.equal(first.encode(x), second.encode(x))
    with pytest.raises(MedprobeError, match="option config"):
        load_encoder("ldae", config=str(tmp_path / "missing.yaml"))
