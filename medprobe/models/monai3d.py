"""MONAI 3D encoders as frozen, pooled feature extractors: the Swin UNETR encoder and MONAI's ViT.

`swin_unetr_encoder` is `SwinUNETR.swinViT` (MONAI's `SwinTransformer`), loading the self-supervised weights that
Project-MONAI publishes (`model_swinvit.pt`), an SSL training checkpoint, or any full SwinUNETR state dict.
`monai_vit3d` is MONAI's `ViT` (UNETR's encoder), with no published weights: a random-init control, or a home for
site-trained weights in MONAI's layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypedDict

import torch
from monai.networks.nets import ViT
from monai.networks.nets.swin_unetr import SwinTransformer

from medprobe.errors import MedprobeError, WeightsError
from medprobe.models.registry import register_model
from medprobe.models.volume_encoder import CubeEncoder
from medprobe.models.weights import load_published

SWIN_STAGES = ("last", "all")
SWIN_STRIDE = 32  # patch embedding (2) and four patch mergings (2 each): input sides must be multiples of 32


class _SwinArgs(TypedDict):
    window_size: tuple[int, int, int]
    patch_size: tuple[int, int, int]
    depths: tuple[int, int, int, int]
    num_heads: tuple[int, int, int, int]
    mlp_ratio: float
    qkv_bias: bool
    patch_norm: bool
    spatial_dims: int
    downsample: str


# What SwinUNETR passes to its SwinTransformer (MONAI 1.6.1); the published SSL weights use feature_size 48.
SWIN_ARGS: _SwinArgs = {
    "window_size": (7, 7, 7), "patch_size": (2, 2, 2), "depths": (2, 2, 2, 2), "num_heads": (3, 6, 12, 24),
    "mlp_ratio": 4.0, "qkv_bias": True, "patch_norm": False, "spatial_dims": 3, "downsample": "merging",
}
# Top-level keys of research-contributions' SwinUNETR/Pretrain checkpoints that are pretext-task heads, not encoder:
# `model_swinvit.pt` carries norm, convTrans3d, rotation_head, contrastive_head; SSLHead adds *_pre and conv.
SSL_HEAD_PREFIXES = ("norm.", "convTrans3d.", "rotation_pre.", "rotation_head.", "contrastive_pre.",
                     "contrastive_head.", "conv.")
ENCODER_PREFIXES = ("swinViT.", "swin_vit.")  # full SwinUNETR (and SSLHead variants), research SSLHead

VIT_ARGS = ("patch_size", "hidden_size", "mlp_dim", "num_layers", "num_heads")


class SwinUNETREncoder(CubeEncoder):
    """Global average pooling of the deepest Swin stage (16 × feature_size values; 768 at feature_size 48), or with
    `stages: all` of all five maps the encoder returns (patch embedding and four stages: 31 × feature_size, 1488).

    Maps are layer-normalised over channels first (`normalize=True`), exactly what SwinUNETR's decoder receives.
    """

    def __init__(self, name: str, module: SwinTransformer, *, stages: str, feature_size: int, use_v2: bool,
                 input_size: int, weights_sha256: str | None, seed: int) -> None:
        options = {"stages": stages, "feature_size": feature_size, "use_v2": use_v2}
        super().__init__(name, module, input_size, options, weights_sha256, seed)
        self.stages = stages
        self.feature_size = feature_size
        self.use_v2 = use_v2
        self.embed_dim = feature_size * (16 if stages == "last" else 31)

    @property
    def architecture(self) -> str:
        v2 = "-v2" if self.use_v2 else ""
        return f"monai:SwinUNETR.swinViT(feature_size={self.feature_size}{v2})/gap-{self.stages}"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        maps = self.module(x, normalize=True)  # [(B, C_i, X_i, Y_i, Z_i)] for i = 0..4
        if self.stages == "last":
            maps = maps[-1:]
        return torch.cat([m.mean(dim=(2, 3, 4)) for m in maps], dim=1)


class MonaiViTEncoder(CubeEncoder):
    """The final tokens after the ViT's final LayerNorm (no CLS token: `classification=False`), pooled: their mean,
    or (`pooling: first`) the first patch token, which BrainIAC's authors take as their "CLS" feature."""

    def __init__(self, name: str, module: ViT, *, arch: dict[str, int], input_size: int,
                 weights_sha256: str | None, seed: int, pooling: str = "mean") -> None:
        options: dict[str, Any] = dict(arch) if pooling == "mean" else {**arch, "pooling": pooling}
        super().__init__(name, module, input_size, options, weights_sha256, seed)
        self.arch = arch
        self.pooling = pooling
        self.embed_dim = arch["hidden_size"]
        self.token_dim = arch["hidden_size"]

    @property
    def architecture(self) -> str:
        a = self.arch
        return (f"monai:ViT(patch={a['patch_size']},hidden={a['hidden_size']},mlp={a['mlp_dim']},"
                f"layers={a['num_layers']},heads={a['num_heads']})/{self.pooling}-token")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_with_tokens(x)[0]

    def encode_with_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.check_input(x)
        tokens, _ = self.module(x)  # (B, patches, hidden), final norm applied
        return (tokens[:, 0] if self.pooling == "first" else tokens.mean(dim=1)), tokens


@register_model("swin_unetr_encoder")
def build_swin_unetr_encoder(name: str, weights: Path | None, stages: str = "last", input_size: int = 96,
                             feature_size: int = 48, use_v2: bool = False, seed: int = 0,
                             **unknown: Any) -> SwinUNETREncoder:
    _reject_unknown(name, unknown, "stages, input_size, feature_size, use_v2, seed")
    return _swin_encoder(name, weights, stages, input_size, feature_size, use_v2, seed)


def _swin_encoder(name: str, weights: Path | None, stages: str, input_size: int, feature_size: int, use_v2: bool,
                  seed: int) -> SwinUNETREncoder:
    if stages not in SWIN_STAGES:
        raise MedprobeError(f"model '{name}': stages must be one of {SWIN_STAGES}, got {stages!r}")
    size = _positive_int(name, "input_size", input_size)
    if size % SWIN_STRIDE:
        raise MedprobeError(f"model '{name}': input_size must be a multiple of {SWIN_STRIDE} (e.g. 64, 96), got {size}")
    width = _positive_int(name, "feature_size", feature_size)
    if width % 12:
        raise MedprobeError(f"model '{name}': feature_size must be a multiple of 12 (48 for the published "
                            f"weights), got {width}")
    if not isinstance(use_v2, bool):
        raise MedprobeError(f"model '{name}': use_v2 must be true or false, got {use_v2!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = SwinTransformer(in_chans=1, embed_dim=width, use_v2=use_v2, **SWIN_ARGS)
    sha = load_published(module, weights, name, lambda state: swin_encoder_state(_unwrap(state, weights)))
    return SwinUNETREncoder(name, module, stages=stages, feature_size=width, use_v2=use_v2, input_size=size,
                            weights_sha256=sha, seed=seed)


def swin_encoder_state(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The one adapter for Swin UNETR checkpoints, onto `SwinUNETR.swinViT` keys.

    Accepts, with or without DataParallel's `module.` and a training wrapper's `backbone.` (VoCo's `VoCoHead`): the
    published `model_swinvit.pt` (encoder keys at top level, pretext heads dropped); an SSLHead training checkpoint
    (`swin_vit.*`); a full SwinUNETR state dict, e.g. fine-tuned on BTCV or VoCo's published files (`swinViT.*`,
    the decoder dropped). Whatever is left must fit strictly.
    The SSL weights predate MONAI's MLP renaming: `mlp.fc1/fc2` become `mlp.linear1/linear2`.
    """
    state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()}
    prefix = next((p for p in ENCODER_PREFIXES if any(k.startswith(p) for k in state)), None)
    if prefix is not None:
        encoder = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    else:
        encoder = {k: v for k, v in state.items() if not k.startswith(SSL_HEAD_PREFIXES)}
    return {k.replace(".mlp.fc1.", ".mlp.linear1.").replace(".mlp.fc2.", ".mlp.linear2."): v
            for k, v in encoder.items()}


#: VoCo's published sizes (Wu, Zhuang & Chen, CVPR 2024 / TPAMI): SwinUNETR-v2 at feature size 48, 96, 192.
VOCO_FEATURE_SIZE = {"voco_b": 48, "voco_l": 96, "voco_h": 192}


@register_model(*VOCO_FEATURE_SIZE)
def build_voco(name: str, weights: Path | None, stages: str = "last", input_size: int = 96, seed: int = 0,
               **unknown: Any) -> SwinUNETREncoder:
    """VoCo's SwinUNETR-v2 encoder at the size its name gives (feature size and v2 fixed by the published files)."""
    _reject_unknown(name, unknown, "stages, input_size, seed")
    return _swin_encoder(name, weights, stages, input_size, VOCO_FEATURE_SIZE[name], True, seed)


@register_model("monai_vit3d")
def build_monai_vit3d(name: str, weights: Path | None, input_size: int = 96, patch_size: int = 16,
                      hidden_size: int = 768, mlp_dim: int = 3072, num_layers: int = 12, num_heads: int = 12,
                      seed: int = 0, **unknown: Any) -> MonaiViTEncoder:
    _reject_unknown(name, unknown, "input_size, seed, " + ", ".join(VIT_ARGS))
    arch = {key: _positive_int(name, key, value) for key, value in
            zip(VIT_ARGS, (patch_size, hidden_size, mlp_dim, num_layers, num_heads), strict=True)}
    size = _positive_int(name, "input_size", input_size)
    if size % arch["patch_size"]:
        raise MedprobeError(f"model '{name}': input_size must be a multiple of patch_size {arch['patch_size']}, "
                            f"got {size}")
    if arch["hidden_size"] % arch["num_heads"]:
        raise MedprobeError(f"model '{name}': hidden_size {arch['hidden_size']} must be divisible by num_heads "
                            f"{arch['num_heads']}")
    module = seeded_vit(arch, size, seed)
    sha = load_published(module, weights, name, lambda state: vit_state(_unwrap(state, weights), module))
    return MonaiViTEncoder(name, module, arch=arch, input_size=size, weights_sha256=sha, seed=seed)


def seeded_vit(arch: dict[str, int], size: int, seed: int) -> ViT:
    """MONAI's 3D ViT without classification (one channel, a cube of `size`), initialised from `seed` alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ViT(in_channels=1, img_size=size, classification=False, spatial_dims=3,
                   patch_size=arch["patch_size"], hidden_size=arch["hidden_size"], mlp_dim=arch["mlp_dim"],
                   num_layers=arch["num_layers"], num_heads=arch["num_heads"])


def vit_state(state: dict[str, Any], module: ViT) -> dict[str, torch.Tensor]:
    """A MONAI `ViT` state dict, or the `vit.*` encoder of a UNETR checkpoint (decoder dropped).

    Checkpoints from MONAI before 1.4 lack `blocks.N.norm_cross_attn.*`, a LayerNorm that exists but is never
    called without cross-attention; those are filled with the module's own (untouched) values. Nothing else is.
    """
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith("vit.") for k in state):
        state = {k.removeprefix("vit."): v for k, v in state.items() if k.startswith("vit.")}
    has_blocks = any(k.startswith("blocks.") for k in state)
    if has_blocks and not any(".norm_cross_attn." in k for k in state):
        state.update({k: v for k, v in module.state_dict().items() if ".norm_cross_attn." in k})
    return state


def _unwrap(state: dict[str, Any], path: Path | None) -> dict[str, torch.Tensor]:
    """The state dict inside a training checkpoint ({"state_dict": ...}, {"model": ...}), tensors only."""
    for key in ("state_dict", "model"):
        if isinstance(state.get(key), dict):
            state = state[key]
            break
    odd = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if odd:
        raise WeightsError(f"{path}: checkpoint holds non-tensor entries {odd[:5]}; expected a state dict of tensors "
                           "(or one under 'state_dict' or 'model')")
    return state


def _reject_unknown(name: str, unknown: dict[str, Any], known: str) -> None:
    if unknown:
        raise MedprobeError(f"model '{name}': unknown option(s) {sorted(unknown)}; known: {known}")


def _positive_int(name: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise MedprobeError(f"model '{name}': {key} must be a positive integer, got {value!r}")
    return value

