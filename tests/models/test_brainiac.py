"""BrainIAC: random weights saved as the authors' Lightning checkpoint (`backbone.<MONAI ViT key>` plus the SimCLR
projection head) load strictly; the default embedding is what the authors' `ViTBackboneNet.forward` computes on
MONAI's ViT (`features[0][:, 0]`, the first patch token), `pooling: mean` the mean of all tokens; a fine-tuned
checkpoint (`backbone.backbone.*`) loads the same encoder; a checkpoint of another ViT is refused by key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.networks.nets import ViT

from medprobe.errors import MedprobeError, WeightsError
from medprobe.models import load_encoder

pytestmark = pytest.mark.slow(seconds=15)


def _vit(hidden: int = 768, layers: int = 12) -> ViT:
    return ViT(in_channels=1, img_size=(96, 96, 96), patch_size=(16, 16, 16), hidden_size=hidden, mlp_dim=4 * hidden,
               num_layers=layers, num_heads=12)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ViT]:
    torch.manual_seed(0)
    reference = _vit().eval()
    with torch.no_grad():  # the ViT's final norm starts at the identity: make it count
        reference.norm.weight.uniform_(0.5, 1.5)
        reference.norm.bias.normal_(0, 0.1)
    head = {"projection_head.layers.0.weight": torch.randn(768, 768), "projection_head.layers.1.running_mean":
            torch.zeros(768)}
    path = tmp_path_factory.mktemp("brainiac") / "BrainIAC.ckpt"
    torch.save({"state_dict": {**{f"backbone.{k}": v for k, v in reference.state_dict().items()}, **head},
                "epoch": 99, "pytorch-lightning_version": "2.1.0"}, path)
    return path, reference


def test_the_embedding_is_the_authors_first_token_of_monais_vit(published: tuple[Path, ViT]) -> None:
    path, reference = published
    volume = torch.rand(2, 1, 96, 96, 96, generator=torch.Generator().manual_seed(1))
    first = load_encoder("brainiac", weights=path)
    mean = load_encoder("brainiac", weights=path, pooling="mean")
    with torch.no_grad():
        tokens = reference(volume)[0]
        ours_first, ours_mean = first.encode(volume), mean.encode(volume)
    assert ours_first.shape == (2, 768) == (2, first.embed_dim)
    assert torch.max(torch.abs(ours_first - tokens[:, 0])).item() < 1e-4
    assert torch.max(torch.abs(ours_mean - tokens.mean(dim=1))).item() < 1e-4
    assert torch.max(torch.abs(ours_first - ours_mean)).item() > 1e-2  # the two poolings are different features
    assert first.fingerprint != mean.fingerprint and first.weights_sha256


def test_a_fine_tuned_checkpoint_loads_the_same_encoder(published: tuple[Path, ViT], tmp_path: Path) -> None:
    state = torch.load(published[0], map_location="cpu")["state_dict"]
    tuned = tmp_path / "OS_ViT_BrainIAC.ckpt"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in state.items() if k.startswith("backbone.")}
                | {"classifier.fc.weight": torch.ones(1, 768)}}, tuned)
    volume = torch.rand(1, 1, 96, 96, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(load_encoder("brainiac", weights=tuned).encode(volume),
                           load_encoder("brainiac", weights=published[0]).encode(volume))


def test_another_vit_and_an_unknown_pooling_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "small.ckpt"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in _vit(layers=2).state_dict().items()}}, path)
    with pytest.raises(WeightsError, match=r"blocks\.2\."):
        load_encoder("brainiac", weights=path)
    with pytest.raises(MedprobeError, match="pooling must be 'first'"):
        load_encoder("brainiac", pooling="cls")
