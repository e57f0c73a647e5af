"""The zoo adapter: a pretrained LDAE's semantic encoder as the `ldae` encoder; its vector is the embedding.

`weights` is the output folder of `medprobe pretrain ldae` (its `ldae.safetensors`), or a `.safetensors` file with
its config beside it (`<stem>.json`). The fingerprint covers the weights' sha256 and the network config (in the
architecture string), so two runs trained differently never share cached embeddings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from medprobe.errors import MedprobeError, WeightsError
from medprobe.models.cards import load_card
from medprobe.models.encoder import TorchEncoder
from medprobe.models.ldae.checkpoint import CHECKPOINTS, EXPORT_WEIGHTS, verify_export
from medprobe.models.ldae.config import LDAEConfig, config_from_dict, load_config
from medprobe.models.ldae.data import input_spec
from medprobe.models.ldae.networks import LatentDiffusionAutoencoder
from medprobe.models.ldae.semantic import build_semantic_encoder
from medprobe.models.registry import register_model
from medprobe.models.weights import load_strict, read_checkpoint


class LDAEEncoder(TorchEncoder):
    def __init__(self, name: str, config: LDAEConfig, module: torch.nn.Module, weights_sha256: str | None) -> None:
        super().__init__(module)
        self.name = name
        self.config = config
        self.embed_dim = config.semantic.dim
        self.preprocessing = input_spec(config)
        self.weights_sha256 = weights_sha256
        self.options = {}

    @property
    def architecture(self) -> str:
        semantic = self.config.semantic
        return f"ldae-semantic-{semantic.kind}-{semantic.dim}-config-{self.config.digest()[:16]}"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        want = (1, *self.config.data.size)
        if tuple(x.shape[1:]) != want:
            raise MedprobeError(f"ldae expects input (B, {', '.join(map(str, want))}), got {tuple(x.shape)}; "
                                "preprocess to the encoder's InputSpec")
        return self.module(x.to(self.device, torch.float32)).float()


def resolve_weights(path: Path) -> tuple[Path, Path]:
    """The weights file and its config for a pretraining folder or a file; WeightsError says what is missing."""
    if path.is_dir():
        weights = path / EXPORT_WEIGHTS
        if not weights.is_file():
            hint = ("pretraining has not finished stage 2 here; continue it with `medprobe pretrain ldae "
                    "--resume --out DIR ...`" if (path / CHECKPOINTS).is_dir()
                    else "expected the output folder of `medprobe pretrain ldae`")
            raise WeightsError(f"{path}: no {EXPORT_WEIGHTS} ({hint})")
    else:
        weights = path
        if not weights.is_file():
            raise WeightsError(f"weights not found: {path} (give the output folder of `medprobe pretrain ldae` "
                               f"or its {EXPORT_WEIGHTS})")
        if weights.suffix != ".safetensors":
            raise WeightsError(f"{path}: ldae weights are a .safetensors file written by `medprobe pretrain ldae`")
    config_path = weights.with_suffix(".json")
    if not config_path.is_file():
        raise WeightsError(f"{weights}: its config {config_path.name} is missing beside it; copy both files")
    return weights, config_path


def read_config(config_path: Path) -> LDAEConfig:
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
        if raw.get("format") != "medprobe-ldae-v1":
            raise ValueError("not a medprobe-ldae-v1 config")
        return config_from_dict(raw["config"], str(config_path))
    except (ValueError, KeyError, TypeError, AttributeError, MedprobeError) as exc:
        raise WeightsError(f"{config_path}: not an LDAE config written by `medprobe pretrain ldae` ({exc})") from None


@register_model("ldae")
def build_ldae(name: str, weights: Path | None, config: str = "realistic", **unknown: Any) -> LDAEEncoder:
    """With weights None: a random-init semantic encoder of `config` — a preset name or a YAML config file, as
    `medprobe pretrain ldae --config` takes — the control a pretrained run is compared with, never a result."""
    if unknown:
        raise MedprobeError(f"model '{name}': unknown option(s) {sorted(unknown)}; known: config (random init only)")
    if weights is None:
        try:
            cfg = load_config(config)
        except MedprobeError as exc:
            raise MedprobeError(f"model '{name}': option config: {exc}") from None
        with torch.random.fork_rng(devices=[]):  # the same control every time, global random state untouched
            torch.manual_seed(cfg.train.seed)
            module = build_semantic_encoder(cfg.semantic, cfg.data.size)
        return LDAEEncoder(name, cfg, module, None)
    weights_file, config_path = resolve_weights(weights)
    cfg = read_config(config_path)
    state, sha = read_checkpoint(weights_file, load_card(name))
    verify_export(weights_file, sha, config_path, cfg)
    semantic_state = {k.removeprefix("semantic."): v for k, v in state.items() if k.startswith("semantic.")}
    module = build_semantic_encoder(cfg.semantic, cfg.data.size)
    load_strict(module, semantic_state, weights_file, name)
    return LDAEEncoder(name, cfg, module, sha)


def load_trained_model(weights: Path) -> LatentDiffusionAutoencoder:
    """The whole trained network (autoencoder, semantic encoder, UNet) of a pretraining folder or its weights file,
    for reconstruction and interpolation; the zoo encoder loads only the semantic encoder."""
    weights_file, config_path = resolve_weights(weights)
    config = read_config(config_path)
    model = LatentDiffusionAutoencoder(config)
    state, sha = read_checkpoint(weights_file, load_card("ldae"))
    verify_export(weights_file, sha, config_path, config)
    load_strict(model, state, weights_file, "ldae")
    return model.eval()
