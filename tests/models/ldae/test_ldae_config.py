from pathlib import Path

import pytest
import torch

from medprobe.errors import MedprobeError
from medprobe.models.ldae import load_config, realistic_config, tiny_config
from medprobe.models.ldae.config import DiffusionConfig
from medprobe.models.ldae.schedules import ddim_invert, ddim_sample
from medprobe.models.ldae.semantic import build_semantic_encoder


def test_realistic_config_is_ldae_brain_mri_setting() -> None:
    config = realistic_config()
    assert config.data.size == (128, 160, 128) and config.data.spacing == (1.5, 1.5, 1.5)
    assert config.autoencoder.channels == (64, 128, 128, 128) and config.latent_shape == (3, 16, 20, 16)
    assert config.semantic.dim == 768 and config.semantic.kind == "slices25d"


def test_yaml_overrides_a_preset_and_bad_keys_are_named(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("preset: tiny\ntrain:\n  stage1_steps: 7\nsemantic:\n  kind: slices25d\n")
    config = load_config(good)
    assert config.train.stage1_steps == 7 and config.semantic.kind == "slices25d" and config.preset == "tiny"
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: tiny\nsemantic:\n  dimension: 3\n")
    with pytest.raises(MedprobeError, match=r"semantic\.dimension"):
        load_config(bad)
    odd = tmp_path / "odd.yaml"
    odd.write_text("preset: tiny\ndata:\n  size: [18, 16, 16]\n")
    with pytest.raises(MedprobeError, match="divisible"):
        load_config(odd)
    twice = tmp_path / "twice.yaml"
    twice.write_text("preset: tiny\ntrain:\n  stage1_steps: 7\n  stage1_steps: 9\n")
    with pytest.raises(MedprobeError, match=r"key 'stage1_steps' is given twice \(lines 3 and 4\)"):
        load_config(twice)
    negative = tmp_path / "negative.yaml"
    negative.write_text("preset: tiny\ntrain:\n  seed: -1\n")
    with pytest.raises(MedprobeError, match=r"train\.seed"):
        load_config(negative)


def test_25d_semantic_encoder_gives_one_vector_per_volume() -> None:
    config = tiny_config().semantic.model_copy(update={"kind": "slices25d"})
    encoder = build_semantic_encoder(config, (16, 16, 16)).eval()
    with torch.no_grad():
        out = encoder(torch.rand(2, 1, 16, 16, 16))
    assert out.shape == (2, config.dim) and torch.isfinite(out).all()


def test_ddim_inversion_and_sampling_retrace_the_same_grid() -> None:
    """With a noise predictor that does not depend on z, inversion then sampling is exact."""
    diffusion = DiffusionConfig(train_timesteps=1000, ddim_steps=20)
    fixed = torch.randn(1, 3, 4, 4, 4)
    z0 = torch.randn(1, 3, 4, 4, 4)
    z_T = ddim_invert(lambda z, t: fixed, z0, diffusion)
    assert not torch.allclose(z_T, z0)
    assert torch.allclose(ddim_sample(lambda z, t: fixed, z_T, diffusion), z0, atol=1e-4)


def test_card_describes_the_realistic_preset() -> None:
    import medprobe.models.ldae  # noqa: F401 - registers 'ldae'
    from medprobe.models import model_card

    card = model_card("ldae")
    assert card.embed_dim == realistic_config().semantic.dim and card.checkpoint_file == "ldae.safetensors"


def test_presets_condition_through_the_timestep_embedding_and_old_configs_keep_cross_attention() -> None:
    from medprobe.models.ldae.config import config_from_dict, small_config

    assert {c.unet.conditioning for c in (tiny_config(), small_config(), realistic_config())} == {"embedding"}
    written_before = tiny_config().model_dump(mode="json")
    del written_before["unet"]["conditioning"]
    assert config_from_dict(written_before, "old ldae.json").unet.conditioning == "cross_attention"
    assert load_config("small").latent_shape == (4, 16, 16, 16)


def test_both_conditioning_forms_make_the_noise_prediction_depend_on_the_semantic_vector() -> None:
    from medprobe.models.ldae import LatentDiffusionAutoencoder

    for form in ("embedding", "cross_attention"):
        config = tiny_config()
        config = config.model_copy(update={"unet": config.unet.model_copy(update={"conditioning": form})})
        model = LatentDiffusionAutoencoder(config).eval()
        z, t = torch.randn(1, *config.latent_shape), torch.tensor([500])
        with torch.no_grad():
            for p in model.unet.parameters():  # MONAI zero-initialises output layers; make every path count
                p.add_(0.05 * torch.randn_like(p))
            first = model.predict_noise(z, t, torch.randn(1, config.semantic.dim))
            second = model.predict_noise(z, t, torch.randn(1, config.semantic.dim))
        assert not torch.allclose(first, second), form
