"""CT-FM: random weights saved as the published safetensors load strictly, and the embedding equals MONAI's
SegResEncoder forward with the authors' pooling (`adaptive_avg_pool3d` of the last map) on the same weights; a
Lighter training checkpoint loads the same encoder, and a checkpoint of another encoder is refused by key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.networks.nets.segresnet_ds import SegResEncoder
from safetensors.torch import load_file, save_file

from medprobe.errors import WeightsError
from medprobe.models import load_encoder

pytestmark = pytest.mark.slow(seconds=8)


def _published(path: Path) -> None:
    """Random weights (batch-norm statistics too) in MONAI's layout, as model.safetensors holds them."""
    generator = torch.Generator().manual_seed(0)
    net = SegResEncoder(spatial_dims=3, in_channels=1, init_filters=32, blocks_down=(1, 2, 2, 4, 4))
    state = {}
    for key, value in net.state_dict().items():
        if key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=generator)
        elif value.is_floating_point():
            state[key] = 0.05 * torch.randn(value.shape, generator=generator)
        else:
            state[key] = value
    save_file(state, str(path))


def test_the_embedding_is_the_authors_pooling_of_monais_forward(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    _published(path)
    encoder = load_encoder("ct_fm", weights=path, input_size=32)
    reference = SegResEncoder(spatial_dims=3, in_channels=1, init_filters=32, blocks_down=(1, 2, 2, 4, 4))
    reference.load_state_dict(load_file(str(path)), strict=True)
    reference.eval()
    volume = torch.rand(2, 1, 32, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = encoder.encode(volume)
        theirs = torch.nn.functional.adaptive_avg_pool3d(reference(volume)[-1], 1).flatten(1)
    assert ours.shape == (2, 512) == (2, encoder.embed_dim)
    assert torch.max(torch.abs(ours - theirs)).item() < 1e-4
    assert encoder.weights_label != "random-init"

    training = tmp_path / "lighter.ckpt"  # the authors' evaluation configs load backbone.* from a Lighter run
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in load_file(str(path)).items()} | {"head.w": torch.ones(1)},
                "epoch": 449}, training)
    with torch.no_grad():
        assert torch.equal(load_encoder("ct_fm", weights=training, input_size=32).encode(volume), ours)


def test_a_checkpoint_of_another_encoder_is_refused_by_key(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    small = SegResEncoder(spatial_dims=3, in_channels=1, init_filters=32, blocks_down=(1, 2, 2, 4))
    save_file(small.state_dict(), str(path))
    with pytest.raises(WeightsError) as refused:
        load_encoder("ct_fm", weights=path)
    assert "missing keys: layers.3.downsample.weight, layers.4.blocks.0.norm1.weight" in str(refused.value)
