"""MedicalNet: random weights saved in the published layout load strictly, and the embedding equals MONAI's own
ResNet blocks reconfigured as the authors' network (stride-2 stem, layer3/layer4 at stride 1 dilated 2 and 4) run
on the same weights; a checkpoint of another depth is refused with the keys named."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch
from monai.networks.nets import ResNet
from monai.networks.nets.resnet import ResNetBlock, ResNetBottleneck

from medprobe.errors import WeightsError
from medprobe.models import load_encoder
from medprobe.models.medicalnet import DEPTHS, MedicalNetResNet
from tests.models.random_states import random_state

#: Tencent/MedicalNet models/resnet.py: layer3 and layer4 at stride 1, dilated by 2 and 4 (written here, not read
#: from the module under test).
AUTHORS_DILATION = {3: 2, 4: 4}


def _published(depth: int, path: Path) -> dict[str, torch.Tensor]:
    """Random weights (batch-norm statistics too, so eval mode is not the identity) in the layout of
    resnet_<depth>.pth: {"state_dict": {"module.<key>": ...}} with the segmentation head."""
    state = random_state(MedicalNetResNet(depth), depth, 0.1)
    head = {"conv_seg.0.weight": torch.randn(512, 32, 2, 2, 2), "conv_seg.1.weight": torch.randn(32)}
    torch.save({"state_dict": {f"module.{k}": v for k, v in {**state, **head}.items()}}, path)
    return state


def _monai_as_published(depth: int, state: dict[str, torch.Tensor]) -> ResNet:
    """MONAI's ResNet with the authors' stem, then layer3/layer4 set to stride 1 and dilated 2 and 4."""
    kind, blocks, shortcut = DEPTHS[depth]
    net = ResNet(ResNetBlock if kind == "basic" else ResNetBottleneck, list(blocks), [64, 128, 256, 512],
                 spatial_dims=3, n_input_channels=1, conv1_t_size=7, conv1_t_stride=2, shortcut_type=shortcut,
                 feed_forward=False, bias_downsample=False)
    for index, dilation in AUTHORS_DILATION.items():
        for block in getattr(net, f"layer{index}"):
            for conv in (module for module in block.modules() if isinstance(module, torch.nn.Conv3d)):
                if conv.kernel_size == (3, 3, 3):
                    conv.stride, conv.dilation, conv.padding = (1, 1, 1), (dilation,) * 3, (dilation,) * 3
                else:
                    conv.stride = (1, 1, 1)
            if isinstance(block.downsample, partial):
                block.downsample = partial(block.downsample.func, **{**block.downsample.keywords, "stride": 1})
    net.load_state_dict(state, strict=True)
    return net.eval()


@pytest.mark.parametrize("depth", [10, 18, 50])
def test_the_embedding_equals_monais_blocks_in_the_authors_configuration(depth: int, tmp_path: Path) -> None:
    path = tmp_path / f"resnet_{depth}.pth"
    state = _published(depth, path)
    encoder = load_encoder(f"medicalnet_resnet{depth}", weights=path, input_size=32)
    volume = torch.randn(2, 1, 32, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = encoder.encode(volume)
        theirs = _monai_as_published(depth, state)(volume)
        maps = encoder.module(volume)
    assert ours.shape == (2, encoder.embed_dim) and encoder.embed_dim == (512 if depth < 50 else 2048)
    assert maps.shape[2:] == (4, 4, 4)  # output stride 8: the dilated layers keep the resolution
    assert torch.max(torch.abs(ours - theirs)).item() < 1e-4
    assert encoder.weights_label != "random-init" and encoder.weights_sha256


def test_a_checkpoint_of_another_depth_is_refused_with_its_keys(tmp_path: Path) -> None:
    path = tmp_path / "resnet_18.pth"
    _published(18, path)  # shortcut A: no downsample parameters, which ResNet-10's shortcut B needs
    with pytest.raises(WeightsError) as refused:
        load_encoder("medicalnet_resnet10", weights=path)
    message = str(refused.value)
    assert "layer2.0.downsample.0.weight" in message and "layer1.1.conv1.weight" in message
