"""VoCo: a whole SwinUNETR-v2 state dict in the published layouts (DataParallel's `module.`, a VoCoHead's
`backbone.` under `state_dict`) loads strictly into the encoder, whose embedding equals MONAI's SwinUNETR-v2 loaded
from the same weights (its `swinViT`, layer-normalised deepest map, averaged); a Swin UNETR v1 checkpoint is refused
by key."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.networks.nets import SwinUNETR

from medprobe.errors import WeightsError
from medprobe.models import load_encoder

pytestmark = pytest.mark.slow(seconds=8)


def _swin_unetr(use_v2: bool, seed: int = 0) -> SwinUNETR:
    torch.manual_seed(seed)
    return SwinUNETR(in_channels=1, out_channels=21, feature_size=48, use_v2=use_v2).eval()


def test_the_published_layouts_give_monais_swinunetr_v2_embedding(tmp_path: Path) -> None:
    reference = _swin_unetr(use_v2=True)
    state = reference.state_dict()
    volume = torch.rand(2, 1, 32, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs = reference.swinViT(volume, normalize=True)[-1].mean(dim=(2, 3, 4))
    layouts = {"module.pt": {f"module.{k}": v for k, v in state.items()},
               "voco_head.pt": {"state_dict": {f"backbone.{k}": v for k, v in state.items()}, "epoch": 100}}
    for name, payload in layouts.items():
        torch.save(payload, tmp_path / name)
        encoder = load_encoder("voco_b", weights=tmp_path / name, input_size=32)
        with torch.no_grad():
            ours = encoder.encode(volume)
        assert ours.shape == (2, 768) and torch.max(torch.abs(ours - theirs)).item() < 1e-4, name
    assert "v2" in encoder.architecture


def test_a_swin_unetr_v1_checkpoint_is_refused_by_key(tmp_path: Path) -> None:
    torch.save(_swin_unetr(use_v2=False).state_dict(), tmp_path / "v1.pt")
    with pytest.raises(WeightsError) as refused:
        load_encoder("voco_b", weights=tmp_path / "v1.pt")
    assert "layers1c" in str(refused.value)  # v2's residual convolution blocks are missing from a v1 checkpoint
