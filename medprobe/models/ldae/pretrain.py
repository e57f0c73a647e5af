"""`pretrain_ldae`: a site's unlabeled scans → a trained LDAE in one folder, resumable at any checkpoint.

Order: read and cache volumes → stage 1 (autoencoder) → latent scale factor → stage 2 (semantic encoder +
conditional latent diffusion) → export `ldae.safetensors` + `ldae.json` → reconstruction report on held-out
volumes. With `resume`, the stage in progress continues from its last checkpoint (stage 1 counts as finished
once stage 2 has a checkpoint); step counts given now may extend a stage.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from medprobe.errors import MedprobeError
from medprobe.models.ldae.checkpoint import (
    CHECKPOINTS,
    CONFIG_FILE,
    StageRecord,
    export_model,
    load_optimizer,
    load_stage,
    stage_model_state,
)
from medprobe.models.ldae.config import LDAEConfig, config_from_dict
from medprobe.models.ldae.data import PreparedVolumes, prepare_volumes, write_json_atomic
from medprobe.models.ldae.networks import LatentDiffusionAutoencoder
from medprobe.models.ldae.reconstruction import ReconstructionReport, reconstruction_report
from medprobe.models.ldae.training import (
    EMA,
    StageLoop,
    StageResult,
    estimate_scale_factor,
    stage1_loss,
    stage2_loss,
)


@dataclass
class PretrainSummary:
    out: Path
    device: str
    preset: str
    volumes_total: int
    volumes_train: int
    volumes_holdout: int
    skipped: list[dict[str, Any]]
    stages: list[StageResult] = field(default_factory=list)
    scale_factor: float | None = None
    weights: Path | None = None
    reconstruction: ReconstructionReport | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["stages"] = [{**asdict(s), "steps_run": s.steps_run} for s in self.stages]
        return payload


def resolve_device(requested: str) -> torch.device:
    if requested not in {"auto", "cpu", "cuda"}:
        raise MedprobeError(f"--device must be auto, cpu or cuda, got {requested!r}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise MedprobeError("--device cuda requested but no CUDA GPU is visible; use --device auto or cpu")
    return torch.device("cuda" if requested == "auto" and torch.cuda.is_available() else
                        "cpu" if requested == "auto" else requested)


def settle_config(out: Path, config: LDAEConfig | None, resume: bool, **train_overrides: int | None
                  ) -> LDAEConfig:
    """The run's config: the saved one when resuming (a different --config is an error), else the given one;
    step counts and batch size given on the command line override it. Written to `out/config.json`."""
    saved_path = out / CONFIG_FILE
    started = (out / CHECKPOINTS).is_dir() and any((out / CHECKPOINTS).glob("stage*.json"))
    if started and not resume:
        raise MedprobeError(f"{out} already holds a pretraining run; pass --resume to continue it, or choose a "
                            "new --out")
    if resume and saved_path.is_file():
        saved = config_from_dict(json.loads(saved_path.read_text(encoding="utf-8")), str(saved_path))
        if config is not None and config.digest() != saved.digest():
            raise MedprobeError(f"--config differs from the networks of the run in {out}; resume without "
                                "--config, or start a new --out")
        config = saved
    config = config or LDAEConfig()
    updates = {k: v for k, v in train_overrides.items() if v is not None}
    if updates:
        config = config_from_dict({**config.model_dump(mode="json"),
                                   "train": {**config.train.model_dump(mode="json"), **updates}}, "command line")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(saved_path, config.model_dump(mode="json"))
    return config


def pretrain_ldae(manifest: Path, out: Path, config: LDAEConfig | None = None, *, stage1_steps: int | None = None,
                  stage2_steps: int | None = None, batch_size: int | None = None, device: str = "auto",
                  resume: bool = False, progress: bool = True, workers: int = 0) -> PretrainSummary:
    started = time.monotonic()
    config = settle_config(out, config, resume, stage1_steps=stage1_steps, stage2_steps=stage2_steps,
                           batch_size=batch_size)
    torch_device = resolve_device(device)
    data = prepare_volumes(config, manifest, out, workers=workers, progress=progress)
    summary = PretrainSummary(out, str(torch_device), config.preset, data.total, len(data.train),
                              len(data.holdout), data.skipped)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        model = LatentDiffusionAutoencoder(config).to(torch_device)
    record2 = load_stage(out, 2)
    if record2 is None:
        summary.stages.append(_stage1(model, config, out, data, torch_device, progress))
    if config.train.stage2_steps > 0:
        summary.stages.append(_stage2(model, config, out, data, torch_device, progress, record2))
        summary.scale_factor = float(model.scale_factor)
        summary.weights = _export(model, config, out, summary)
        if data.holdout:
            summary.reconstruction = reconstruction_report(model, data.holdout_batch(), torch_device)
    summary.seconds = time.monotonic() - started
    write_json_atomic(out / "summary.json", summary.to_json())
    return summary


def _stage1(model: LatentDiffusionAutoencoder, config: LDAEConfig, out: Path, data: PreparedVolumes,
            device: torch.device, progress: bool) -> StageResult:
    ae = model.autoencoder.train()
    optimizer = torch.optim.Adam(ae.parameters(), lr=config.train.lr_autoencoder)
    record = load_stage(out, 1) or StageRecord(stage=1, step=0, model="", optimizer="")
    if record.model:
        ae.load_state_dict(stage_model_state(out, record))
        load_optimizer(optimizer, out / CHECKPOINTS / record.optimizer)
    loop = StageLoop(1, config, out, data, device, optimizer, stage1_loss(model, config.train.kl_weight),
                     list(ae.parameters()), ae.state_dict, progress=progress, label="stage 1 autoencoder")
    return loop.run(record, config.train.stage1_steps)


def _stage2(model: LatentDiffusionAutoencoder, config: LDAEConfig, out: Path, data: PreparedVolumes,
            device: torch.device, progress: bool, record: StageRecord | None) -> StageResult:
    trainable = [*model.semantic.parameters(), *model.unet.parameters()]
    optimizer = torch.optim.Adam(trainable, lr=config.train.lr_diffusion)
    ema = EMA({"semantic": model.semantic, "unet": model.unet}, config.train.ema_decay) \
        if config.train.ema_decay > 0 else None
    if record is not None:
        saved = stage_model_state(out, record)
        model.load_state_dict({k: v for k, v in saved.items() if not k.startswith("ema.")})
        if ema is not None:
            ema.load(saved)
        load_optimizer(optimizer, out / CHECKPOINTS / record.optimizer)
    else:
        stage1 = load_stage(out, 1)
        if stage1 is not None:
            model.autoencoder.load_state_dict(stage_model_state(out, stage1))
        model.scale_factor.fill_(estimate_scale_factor(model, data, config, device))
        record = StageRecord(stage=2, step=0, model="", optimizer="",
                             extra={"scale_factor": float(model.scale_factor)})
    model.autoencoder.eval().requires_grad_(False)
    model.semantic.train()
    model.unet.train()

    def state() -> dict[str, torch.Tensor]:
        return {**model.state_dict(), **(ema.state() if ema else {})}

    loop = StageLoop(2, config, out, data, device, optimizer, stage2_loss(model, config), trainable, state,
                     after_step=ema.update if ema else (lambda step: None), progress=progress,
                     label="stage 2 semantic encoder + latent diffusion")
    result = loop.run(record, config.train.stage2_steps)
    if ema is not None:  # from here on (export, reconstruction) the model is the EMA model
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in ema.shadow.items():
                params[name].copy_(value)
    model.eval()
    return result


def _export(model: LatentDiffusionAutoencoder, config: LDAEConfig, out: Path, summary: PretrainSummary) -> Path:
    stage_steps = {f"stage{s.stage}_steps": s.end_step for s in summary.stages}
    return export_model(out, model.state_dict(), config, {"scale_factor": float(model.scale_factor), **stage_steps})
