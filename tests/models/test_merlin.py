"""Merlin's image encoder: the reference is torchvision's ResNet-152 inflated to 3D by the rules of upstream's
`merlin/models/inflate.py` and `i3res.py` (written here, not taken from the module under test, which builds MONAI's
ResNet instead), given random 3D weights and saved in the published whole-model layout. medprobe loads that file
strictly and must give the reference's embedding; a checkpoint without the image encoder is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from medprobe.errors import MedprobeError, WeightsError
from medprobe.models import load_encoder
from medprobe.models.merlin import INPUT_SIZE, merlin_forward
from tests.models.random_states import random_state


def _inflate_conv(conv: nn.Conv2d, time: int, time_stride: int) -> nn.Conv3d:
    """inflate_conv: the 7×7 stem becomes (3, 7, 7) of stride (1, 2, 2); other kernels gain `time` taps with the
    2D stride repeated in time (inflate.py reads stride[0] for both spatial axes)."""
    if conv.kernel_size[0] == 7:
        return nn.Conv3d(conv.in_channels, conv.out_channels, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3),
                         bias=False)
    padding = (time // 2, *conv.padding)
    return nn.Conv3d(conv.in_channels, conv.out_channels, (time, *conv.kernel_size),
                     stride=(time_stride, conv.stride[0], conv.stride[0]), padding=padding, bias=False)


class _Bottleneck3d(nn.Module):
    def __init__(self, block: torchvision.models.resnet.Bottleneck) -> None:
        super().__init__()
        stride = block.conv2.stride[0]
        self.conv1, self.bn1 = _inflate_conv(block.conv1, 1, 1), nn.BatchNorm3d(block.bn1.num_features)
        self.conv2, self.bn2 = _inflate_conv(block.conv2, 3, stride), nn.BatchNorm3d(block.bn2.num_features)
        self.conv3, self.bn3 = _inflate_conv(block.conv3, 1, 1), nn.BatchNorm3d(block.bn3.num_features)
        self.downsample = None
        if block.downsample is not None:
            self.downsample = nn.Sequential(_inflate_conv(block.downsample[0], 1, stride),
                                            nn.BatchNorm3d(block.downsample[1].num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class _I3ResNet(nn.Module):
    """i3res.I3ResNet(conv_class=True, ImageEmbedding=True) with its classifier and contrastive head."""

    def __init__(self) -> None:
        super().__init__()
        resnet = torchvision.models.resnet152(weights=None)
        self.conv1, self.bn1 = _inflate_conv(resnet.conv1, 3, 1), nn.BatchNorm3d(64)
        self.maxpool = nn.MaxPool3d((3, 3, 3), stride=(2, 2, 2), padding=(1, 1, 1))
        for index in range(1, 5):
            self.add_module(f"layer{index}", nn.Sequential(*map(_Bottleneck3d, getattr(resnet, f"layer{index}"))))
        self.classifier = nn.Conv3d(2048, 1692, 1)
        self.contrastive_head = nn.Conv3d(2048, 512, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 1, 4, 2, 3)
        x = torch.cat((x, x, x), dim=1)
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return nn.functional.adaptive_avg_pool3d(x, 1).flatten(1)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, _I3ResNet]:
    """Random weights (batch-norm statistics too) in the layout of the published checkpoint: the whole
    MerlinArchitecture's state dict, the image encoder under encode_image.i3_resnet."""
    reference = _I3ResNet()
    state = random_state(reference, 3, 0.05)
    reference.load_state_dict(state)
    path = tmp_path_factory.mktemp("merlin") / "i3_resnet_clinical_longformer_best_clip.pt"
    text = {"encode_text.linear_layer.weight": torch.randn(512, 768), "logit_scale": torch.ones(())}
    torch.save({**{f"encode_image.i3_resnet.{k}": v for k, v in state.items()}, **text}, path)
    return path, reference.eval()


@pytest.mark.slow(seconds=20)
def test_the_embedding_equals_the_inflated_torchvision_resnet(published: tuple[Path, _I3ResNet]) -> None:
    path, reference = published
    encoder = load_encoder("merlin", weights=path)
    volume = torch.rand(2, 1, 48, 40, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = merlin_forward(encoder.module, volume)
        theirs = reference(volume)
    assert ours.shape == (2, 2048) and encoder.embed_dim == 2048
    assert torch.max(torch.abs(ours - theirs)).item() < 1e-4
    assert encoder.weights_sha256 and encoder.preprocessing.size == INPUT_SIZE
    with pytest.raises(MedprobeError, match="224, 224, 160"):
        encoder.encode(volume)


@pytest.mark.slow(seconds=5)
def test_a_checkpoint_without_the_image_encoder_is_refused_by_key(tmp_path: Path) -> None:
    stem = _inflate_conv(nn.Conv2d(3, 64, 7, 2, 3, bias=False), 3, 1).state_dict()  # the stem alone: the rest missing
    path = tmp_path / "stem_only.pt"
    torch.save({**{f"encode_image.i3_resnet.conv1.{k}": v for k, v in stem.items()},
                "encode_text.linear_layer.weight": torch.randn(512, 768)}, path)
    with pytest.raises(WeightsError, match=r"missing keys: bn1\.weight.*\(929 in all\)"):
        load_encoder("merlin", weights=path)
