"""The two training stages and the loop they share (progress, clipping, checkpoints, resume, interruption).

Stage 1 trains the AutoencoderKL with L1 + kl_weight·KL (LDAE's KL: 0.5·Σ(μ²+σ²−log σ²−1) over C,D,H,W, mean
over the batch). LDAE adds 0.001·perceptual (LPIPS SqueezeNet, fake-3D) and 0.025·patch-adversarial terms; they
are left out here: the perceptual network's ImageNet weights cannot be fetched on an offline site machine and the
discriminator doubles memory and tuning. The ceiling is reported (autoencoder SSIM/MSE) so their absence shows.

Stage 2 freezes the autoencoder and trains the semantic encoder jointly with the conditional latent UNet:
z0 = sampled latent × scale_factor, z_t = DDPM.add_noise(z0, ε, t), loss = MSE(ε, UNet(z_t, t, context=y)).
(LDAE itself first trains an unconditional UNet, then a PDAE shift branch with a weighted loss; the joint
cross-attention objective here is the diffusion-autoencoder form of the same idea, in one stage.)

Each step draws its batch, noise and timesteps from generators seeded by (seed, stage, step), so a resumed run
sees the same data as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medprobe.errors import MedprobeError
from medprobe.models.ldae.checkpoint import StageRecord, save_stage
from medprobe.models.ldae.config import LDAEConfig
from medprobe.models.ldae.data import PreparedVolumes
from medprobe.models.ldae.networks import LatentDiffusionAutoencoder
from medprobe.models.ldae.schedules import ddpm_scheduler

LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


@dataclass
class StageResult:
    stage: int
    start_step: int
    end_step: int
    log: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def steps_run(self) -> int:
        return self.end_step - self.start_step


def kl_divergence(z_mu: torch.Tensor, z_sigma: torch.Tensor) -> torch.Tensor:
    var = z_sigma.float().pow(2)
    return 0.5 * (z_mu.float().pow(2) + var - torch.log(var) - 1).flatten(1).sum(1).mean()


def stage1_loss(model: LatentDiffusionAutoencoder, kl_weight: float) -> LossFn:
    def loss(x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        recon, z_mu, z_sigma = model.autoencoder(x)
        l1 = (recon.float() - x).abs().mean()
        kl = kl_divergence(z_mu, z_sigma)
        total = l1 + kl_weight * kl
        return total, {"loss": total.item(), "l1": l1.item(), "kl": kl.item()}

    return loss


def stage2_loss(model: LatentDiffusionAutoencoder, config: LDAEConfig) -> LossFn:
    scheduler = ddpm_scheduler(config.diffusion)

    def loss(x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        with torch.no_grad():
            z0 = model.encode_latent(x, sample=True).float()
        noise = torch.randn_like(z0)
        t = torch.randint(0, config.diffusion.train_timesteps, (x.shape[0],), device=x.device)
        z_t = scheduler.add_noise(z0, noise, t)
        y = model.semantic(x)
        mse = (model.predict_noise(z_t, t, y).float() - noise).pow(2).mean()
        return mse, {"loss": mse.item()}

    return loss


@torch.no_grad()
def estimate_scale_factor(model: LatentDiffusionAutoencoder, data: PreparedVolumes, config: LDAEConfig,
                          device: torch.device) -> float:
    """1/std of the sampled latents over a few training batches (LDAE hard-codes 0.8730 for its autoencoder)."""
    model.autoencoder.eval()
    latents = [model.autoencoder.encode_stage_2_inputs(data.batch(_batch_indices(config, len(data.train), 0, s))
                                                       .to(device)).float()
               for s in range(config.train.scale_batches)]
    return float(1.0 / torch.cat(latents).std().clamp_min(1e-6))


class EMA:
    """Exponential moving average of the trainable stage-2 weights (warm-up: decay ramps in over early steps)."""

    def __init__(self, modules: dict[str, nn.Module], decay: float) -> None:
        self.decay = decay
        self.params = {f"{prefix}.{name}": p for prefix, module in modules.items()
                       for name, p in module.named_parameters()}
        self.shadow = {name: p.detach().clone() for name, p in self.params.items()}

    @torch.no_grad()
    def update(self, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for name, p in self.params.items():
            self.shadow[name].lerp_(p.detach(), 1 - decay)

    def state(self) -> dict[str, torch.Tensor]:
        return {f"ema.{k}": v for k, v in self.shadow.items()}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        for name in self.shadow:
            self.shadow[name].copy_(state[f"ema.{name}"])


def _batch_indices(config: LDAEConfig, n: int, stage: int, step: int) -> list[int]:
    rng = np.random.default_rng([config.train.seed, stage, step])
    return rng.choice(n, size=config.train.batch_size, replace=n < config.train.batch_size).tolist()


@contextlib.contextmanager
def training_autocast(config: LDAEConfig, device: torch.device) -> Iterator[None]:
    enabled = config.train.bf16 and device.type == "cuda"
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled):
        yield


@dataclass
class StageLoop:
    """Runs one stage from `record.step` to `total` steps, checkpointing every `checkpoint_every` steps, at the
    end, and when interrupted (then re-raises)."""

    stage: int
    config: LDAEConfig
    out: Path
    data: PreparedVolumes
    device: torch.device
    optimizer: torch.optim.Optimizer
    loss_fn: LossFn
    params: list[nn.Parameter]
    model_state: Callable[[], dict[str, torch.Tensor]]
    after_step: Callable[[int], None] = lambda step: None
    progress: bool = True
    label: str = ""

    def run(self, record: StageRecord, total: int) -> StageResult:
        from tqdm import tqdm

        result = StageResult(self.stage, record.step, record.step, list(record.log))
        sums: dict[str, float] = {}
        count = 0
        started = time.monotonic()
        bar = tqdm(total=total, initial=record.step, desc=self.label, unit="step", dynamic_ncols=True,
                   disable=not self.progress)

        def checkpoint() -> None:
            nonlocal sums, count
            if count:
                record.log.append({"step": record.step, **{k: v / count for k, v in sums.items()}})
                sums, count = {}, 0
            save_stage(self.out, record, self.model_state(), self.optimizer)

        try:
            while record.step < total:
                parts = self._one_step(record.step)
                record.step += 1
                self.after_step(record.step)
                for key, value in parts.items():
                    sums[key] = sums.get(key, 0.0) + value
                count += 1
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in parts.items()}, refresh=False)
                if record.step % self.config.train.checkpoint_every == 0 or record.step == total:
                    checkpoint()
        except KeyboardInterrupt:
            checkpoint()
            raise
        finally:
            bar.close()
        result.end_step, result.log, result.seconds = record.step, list(record.log), time.monotonic() - started
        return result

    def _one_step(self, step: int) -> dict[str, float]:
        """One optimiser step whose noise and timesteps depend on (seed, stage, step) only, so a resumed run repeats
        the same steps; torch's global random state is left as it was."""
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(hash((self.config.train.seed, self.stage, step)) & 0x7FFFFFFF)
            return self._step(step)

    def _step(self, step: int) -> dict[str, float]:
        x = self.data.batch(_batch_indices(self.config, len(self.data.train), self.stage, step)).to(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with training_autocast(self.config, self.device):
            loss, parts = self.loss_fn(x)
        if not torch.isfinite(loss):
            raise MedprobeError(f"stage {self.stage} step {step + 1}: loss is {float(loss)}; lower the "
                                     "learning rate or check the input volumes")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.config.train.grad_clip)
        self.optimizer.step()
        return parts
