"""The three LDAE networks on MONAI's generative API, held together in one module for saving and loading.

- `autoencoder`: `AutoencoderKL` (stage 1), frozen in stage 2; its latents are multiplied by `scale_factor`
  (1/std of the training latents, estimated at the start of stage 2) before diffusion.
- `semantic`: the semantic encoder (the representation vector y).
- `unet`: `DiffusionModelUNet` on the scaled latent, conditioned on y either through the timestep embedding
  (MONAI's class-embedding slot holds a linear map of y instead of a lookup table, so y shifts every residual
  block) or by cross-attention with `context = y[:, None, :]` at the attention levels and the middle block.
"""

from __future__ import annotations

import torch
from monai.networks.nets import AutoencoderKL, DiffusionModelUNet
from torch import nn

from medprobe.models.ldae.config import LDAEConfig
from medprobe.models.ldae.semantic import build_semantic_encoder


def build_autoencoder(config: LDAEConfig) -> AutoencoderKL:
    ae = config.autoencoder
    return AutoencoderKL(
        spatial_dims=3, in_channels=1, out_channels=1, num_res_blocks=ae.num_res_blocks, channels=ae.channels,
        attention_levels=(False,) * len(ae.channels), latent_channels=ae.latent_channels,
        norm_num_groups=ae.norm_num_groups, with_encoder_nonlocal_attn=False, with_decoder_nonlocal_attn=False,
    )


def build_unet(config: LDAEConfig) -> DiffusionModelUNet:
    net = config.unet
    channels = config.autoencoder.latent_channels
    by_embedding = net.conditioning == "embedding"
    unet = DiffusionModelUNet(
        spatial_dims=3, in_channels=channels, out_channels=channels, num_res_blocks=net.num_res_blocks,
        channels=net.channels, attention_levels=net.attention_levels, norm_num_groups=net.norm_num_groups,
        num_head_channels=net.num_head_channels, with_conditioning=not by_embedding,
        cross_attention_dim=None if by_embedding else config.semantic.dim, num_class_embeds=1 if by_embedding else None,
    )
    if by_embedding:  # the UNet adds class_embedding(class_labels) to the timestep embedding; y takes that slot
        unet.class_embedding = nn.Linear(config.semantic.dim, net.channels[0] * 4)  # type: ignore[assignment]
    return unet


class LatentDiffusionAutoencoder(nn.Module):
    scale_factor: torch.Tensor  # a registered buffer

    def __init__(self, config: LDAEConfig) -> None:
        super().__init__()
        self.config = config
        self.autoencoder = build_autoencoder(config)
        self.semantic = build_semantic_encoder(config.semantic, config.data.size)
        self.unet = build_unet(config)
        self.register_buffer("scale_factor", torch.ones(()))

    def encode_latent(self, x: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """Scaled latent of a volume: sampled (training, as LDAE) or the posterior mean (reconstruction)."""
        z_mu, z_sigma = self.autoencoder.encode(x)
        z = self.autoencoder.sampling(z_mu, z_sigma) if sample else z_mu
        return z * self.scale_factor

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(z / self.scale_factor)

    def predict_noise(self, z_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.config.unet.conditioning == "embedding":
            return self.unet(z_t, timesteps=t, class_labels=y)
        return self.unet(z_t, timesteps=t, context=y[:, None, :])
