"""LDAE configuration: one validated object for the networks, the diffusion schedule, the data and training.

Three presets: `tiny` (16³ volumes, a few thousand parameters per network: smoke runs), `small` (32³ volumes,
the CPU recipe that learns on the phantom study in ~20 minutes) and `realistic` (LDAE's brain-MRI setting:
1×128×160×128 at 1.5 mm, AutoencoderKL [64,128,128,128] with 3 latent channels → latent 3×16×20×16, semantic
vector of 768 values). A YAML file may override any key of a preset.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medprobe.errors import MedprobeError
from medprobe.options import Seed, format_validation_error
from medprobe.yaml_files import read_mapping


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AutoencoderConfig(_Strict):
    """monai.networks.nets.AutoencoderKL, without attention (as LDAE): each level after the first halves the size."""

    channels: tuple[int, ...] = (64, 128, 128, 128)
    latent_channels: int = Field(3, ge=1)
    num_res_blocks: int = Field(2, ge=1)
    norm_num_groups: int = Field(32, ge=1)

    @model_validator(mode="after")
    def _groups_divide(self) -> AutoencoderConfig:
        if any(c % self.norm_num_groups for c in self.channels):
            raise ValueError(f"every channel count {list(self.channels)} must be divisible by norm_num_groups "
                             f"({self.norm_num_groups})")
        return self

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.channels) - 1)


class SemanticConfig(_Strict):
    """The semantic encoder that turns a volume into the representation vector (the zoo embedding).

    kind 'cnn3d': a compact residual 3D CNN, then LayerNorm; `pooling` 'mean' averages its last feature map over
    space, 'flatten' maps the whole map through one linear layer, so the vector knows where a feature is (for
    registered brains, where the position of an atrophy is the information). kind 'slices25d': LDAE's 2.5D
    design — a 2D backbone applied to every slice along one axis, positional encoding, a soft-attention query
    and multi-head attention over the slice tokens, LayerNorm. `backbone` 'cnn' is a small built-in 2D CNN;
    'timm:<name>' uses any timm model (random init, one input channel), e.g. 'timm:convnext_small' as upstream.
    """

    kind: Literal["cnn3d", "slices25d"] = "cnn3d"
    pooling: Literal["mean", "flatten"] = "mean"
    dim: int = Field(768, ge=4)
    channels: tuple[int, ...] = (32, 64, 128, 256)
    backbone: str = "cnn"
    slice_axis: Literal[0, 1, 2] = 2
    heads: int = Field(8, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)

    @model_validator(mode="after")
    def _heads_divide(self) -> SemanticConfig:
        if self.kind == "slices25d" and self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        return self


class UNetConfig(_Strict):
    """monai.networks.nets.DiffusionModelUNet on the latent, conditioned on the semantic vector.

    `conditioning` 'embedding': a linear map of the vector is added to the timestep embedding, so it shifts the
    features of every residual block at every level (the global, AdaGN-like conditioning of diffusion
    autoencoders). 'cross_attention': the vector is the single context token of cross-attention at the attention
    levels only; with one token the attention weights are all 1, so this is a shift at those levels alone.
    The default widths (128, 256, 384) give ~135M parameters; LDAE's own UNet is 256×[1, 2, 3] (set channels to
    [256, 512, 768] for that width: ~530M parameters with MONAI's cross-attention blocks).
    """

    conditioning: Literal["embedding", "cross_attention"] = Field(
        "cross_attention", description="the presets use 'embedding'; the default reads configs written before it")

    channels: tuple[int, ...] = (128, 256, 384)
    attention_levels: tuple[bool, ...] = (False, True, True)
    num_res_blocks: int = Field(2, ge=1)
    num_head_channels: int = Field(64, ge=1)
    norm_num_groups: int = Field(32, ge=1)

    @model_validator(mode="after")
    def _levels_match(self) -> UNetConfig:
        if len(self.attention_levels) != len(self.channels):
            raise ValueError("attention_levels needs one value per entry of channels")
        if any(c % self.norm_num_groups for c in self.channels):
            raise ValueError(f"every channel count {list(self.channels)} must be divisible by norm_num_groups")
        return self


class DiffusionConfig(_Strict):
    """DDPM for training, deterministic DDIM (η=0) for inversion and sampling; linear betas, ε-prediction."""

    train_timesteps: int = Field(1000, ge=10)
    beta_start: float = Field(1e-4, gt=0)
    beta_end: float = Field(2e-2, gt=0, lt=1)
    ddim_steps: int = Field(100, ge=2)

    @model_validator(mode="after")
    def _steps_divide(self) -> DiffusionConfig:
        if self.ddim_steps > self.train_timesteps:
            raise ValueError("ddim_steps cannot exceed train_timesteps")
        return self


class TrainConfig(_Strict):
    stage1_steps: int = Field(20000, ge=0)
    stage2_steps: int = Field(50000, ge=0)
    batch_size: int = Field(2, ge=1)
    lr_autoencoder: float = Field(5e-5, gt=0)
    lr_diffusion: float = Field(2.5e-5, gt=0)
    kl_weight: float = Field(1e-7, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    ema_decay: float = Field(0.999, ge=0, lt=1)
    bf16: bool = Field(True, description="bfloat16 autocast on CUDA (ignored on CPU)")
    checkpoint_every: int = Field(1000, ge=1)
    holdout: int = Field(4, ge=0, description="volumes kept out of training for the reconstruction report")
    scale_batches: int = Field(8, ge=1, description="batches used to estimate the latent scale factor")
    seed: Seed = 0


class DataConfig(_Strict):
    """How manifest images become the (1, *size) model input; the zoo adapter publishes the same input."""

    modality: Literal["mri", "ct", "other"] = "mri"
    size: tuple[int, int, int] = (128, 160, 128)
    spacing: tuple[float, float, float] | None = (1.5, 1.5, 1.5)
    fit: Literal["resize", "crop_or_pad"] = "crop_or_pad"


class LDAEConfig(_Strict):
    preset: str = "realistic"
    data: DataConfig = DataConfig()
    autoencoder: AutoencoderConfig = AutoencoderConfig()
    semantic: SemanticConfig = SemanticConfig(kind="slices25d", backbone="timm:convnext_small")
    unet: UNetConfig = UNetConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    train: TrainConfig = TrainConfig()

    @model_validator(mode="after")
    def _size_fits(self) -> LDAEConfig:
        factor = self.autoencoder.downsampling * 2 ** (len(self.unet.channels) - 1)
        if any(s % factor for s in self.data.size):
            raise ValueError(f"data.size {list(self.data.size)} must be divisible by {factor} (autoencoder "
                             "downsampling × UNet downsampling)")
        return self

    @property
    def latent_shape(self) -> tuple[int, ...]:
        down = self.autoencoder.downsampling
        return (self.autoencoder.latent_channels, *(s // down for s in self.data.size))

    def network_dict(self) -> dict[str, Any]:
        """What determines the networks' shapes and the embedding (the training schedule does not)."""
        return self.model_dump(mode="json", include={"data", "autoencoder", "semantic", "unet", "diffusion"})

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.network_dict(), sort_keys=True).encode()).hexdigest()


def tiny_config() -> LDAEConfig:
    """16³ volumes, one autoencoder downsampling, an 8³ latent: trains for a few steps on a CPU in seconds."""
    return LDAEConfig(
        preset="tiny",
        data=DataConfig(size=(16, 16, 16), spacing=None, fit="resize"),
        autoencoder=AutoencoderConfig(channels=(8, 16), latent_channels=3, num_res_blocks=1, norm_num_groups=4),
        semantic=SemanticConfig(kind="cnn3d", dim=16, channels=(8, 16), heads=4, dropout=0.0),
        unet=UNetConfig(channels=(8, 16), attention_levels=(False, True), num_res_blocks=1, num_head_channels=8,
                        norm_num_groups=4, conditioning="embedding"),
        diffusion=DiffusionConfig(train_timesteps=1000, ddim_steps=10),
        train=TrainConfig(stage1_steps=4, stage2_steps=4, batch_size=2, lr_autoencoder=1e-3, lr_diffusion=1e-3,
                          kl_weight=1e-6, ema_decay=0.9, checkpoint_every=2, holdout=2, scale_batches=2),
    )


def small_config() -> LDAEConfig:
    """32³ volumes (e.g. the phantom study at 5 mm): the CPU recipe that learns a useful semantic vector in about
    20 minutes on 2 cores (see model_zoo/ldae/README.md for what it reaches)."""
    return LDAEConfig(
        preset="small",
        data=DataConfig(size=(32, 32, 32), spacing=None, fit="resize"),
        autoencoder=AutoencoderConfig(channels=(16, 32), latent_channels=4, num_res_blocks=1, norm_num_groups=8),
        semantic=SemanticConfig(kind="cnn3d", dim=64, channels=(16, 32, 64, 128), pooling="flatten", dropout=0.0),
        unet=UNetConfig(channels=(32, 64, 64), attention_levels=(False, False, True), num_res_blocks=1,
                        num_head_channels=32, norm_num_groups=8, conditioning="embedding"),
        diffusion=DiffusionConfig(train_timesteps=1000, ddim_steps=50),
        train=TrainConfig(stage1_steps=600, stage2_steps=1000, batch_size=8, lr_autoencoder=1e-3,
                          lr_diffusion=2e-4, kl_weight=1e-6, ema_decay=0.995, checkpoint_every=250, holdout=6,
                          scale_batches=4),
    )


def realistic_config() -> LDAEConfig:
    """LDAE's brain-MRI setting (see model_zoo/ldae/README.md for the GPU it needs)."""
    return LDAEConfig(unet=UNetConfig(conditioning="embedding"))


PRESETS = {"tiny": tiny_config, "small": small_config, "realistic": realistic_config}


def load_config(choice: str | Path) -> LDAEConfig:
    """A preset name (tiny, small, realistic), or a YAML file with `preset:` (default realistic) and any keys to
    override."""
    if str(choice) in PRESETS:
        return PRESETS[str(choice)]()
    path = Path(choice)
    if not path.is_file():
        raise MedprobeError(f"--config {choice}: not a preset ({', '.join(PRESETS)}) or an existing YAML file")
    raw = read_mapping(path, MedprobeError, "config sections (data, autoencoder, semantic, ...)")
    base = str(raw.get("preset", "realistic"))
    if base not in PRESETS:
        raise MedprobeError(f"{path}: preset must be one of {sorted(PRESETS)}, got {base!r}")
    merged = _merge(PRESETS[base]().model_dump(mode="json"), raw)
    return config_from_dict(merged, str(path))


def config_from_dict(raw: dict[str, Any], source: str) -> LDAEConfig:
    try:
        return LDAEConfig.model_validate(raw)
    except ValidationError as exc:
        raise MedprobeError(f"{source}: {format_validation_error(exc)}") from None


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
