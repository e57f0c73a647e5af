"""Named zoo entries for upstream Hugging Face checkpoints: RAD-DINO, MedSigLIP-448 and SigLIP so400m/14-384.

Each is `hf_vision.build_encoder` with upstream's facts pinned: the config model types the folder must have, the
embedding upstream defines, the input upstream's preprocessor_config.json describes (used when the folder lacks
that file) and upstream's architecture config (the random-init control's network when no `weights:` folder is
given). `weights:` is the local folder (config.json + model.safetensors [+ preprocessor_config.json]); the cards
in model_zoo/<name>/ cite the upstream files and say how `medprobe models fetch` gets them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medprobe.errors import MedprobeError
from medprobe.models.cards import load_card
from medprobe.models.hf_vision import HFSource, HFVisionEncoder, InputDefaults, build_encoder, read_folder
from medprobe.models.registry import register_model

SIGLIP_TYPES = ("siglip", "siglip_vision_model")


@dataclass(frozen=True)
class HFZooEntry:
    model_types: tuple[str, ...]
    pooling: str
    input: InputDefaults
    #: Upstream config.json, architecture fields only: what the random-init control builds.
    config: dict[str, Any]


def _so400m(image_size: int) -> dict[str, Any]:
    """SigLIP so400m/14 vision tower (upstream config.json vision_config); the text tower is not built."""
    return {"model_type": "siglip", "vision_config": {
        "model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4304,
        "num_hidden_layers": 27, "num_attention_heads": 16, "patch_size": 14, "image_size": image_size,
        "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6, "num_channels": 3}}


ENTRIES: dict[str, HFZooEntry] = {
    # microsoft/rad-dino: Dinov2Model; README: CLS token (= pooler_output) and patch tokens of last_hidden_state.
    # preprocessor_config.json: BitImageProcessor, shortest_edge 518 + centre crop 518, bicubic, mean/std 0.5307/0.2583.
    "rad_dino": HFZooEntry(
        ("dinov2",), "cls",
        InputDefaults((518, 518), (0.5307, 0.5307, 0.5307), (0.2583, 0.2583, 0.2583), "bicubic",
                      "defaults:rad_dino (upstream preprocessor_config.json)"),
        {"model_type": "dinov2", "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
         "mlp_ratio": 4, "patch_size": 14, "image_size": 518, "layerscale_value": 1.0, "layer_norm_eps": 1e-6,
         "hidden_act": "gelu", "qkv_bias": True, "num_channels": 3, "use_swiglu_ffn": False}),
    # google/medsiglip-448: SiglipModel; image embedding = vision tower pooler_output (MAP head), what
    # get_image_features returns (SiglipModel's image_embeds are that, L2-normalised). 448 px, mean/std 0.5.
    "medsiglip_448": HFZooEntry(
        SIGLIP_TYPES, "pooler",
        InputDefaults((448, 448), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic",
                      "defaults:medsiglip_448 (upstream preprocessor_config.json)"),
        _so400m(448)),
    # google/siglip-so400m-patch14-384: same rule at 384 px.
    "siglip_so400m_patch14_384": HFZooEntry(
        SIGLIP_TYPES, "pooler",
        InputDefaults((384, 384), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic",
                      "defaults:siglip_so400m_patch14_384 (upstream preprocessor_config.json)"),
        _so400m(384)),
}


@register_model(*ENTRIES)
def build_hf_zoo(name: str, weights: Path | None, pooling: str | None = None, input_size: int | None = None,
                 seed: int = 0, **unknown: Any) -> HFVisionEncoder:
    """`weights` is the upstream folder; without it, upstream's architecture with random weights (the control)."""
    if unknown:
        raise MedprobeError(f"model '{name}': unknown option(s) {sorted(unknown)}; known: pooling, input_size, seed")
    entry = ENTRIES[name]
    card = load_card(name)
    if weights is None:
        source = HFSource(f"built-in upstream config of '{name}' (random-init control)", entry.config)
    else:
        upstream = card.fetch.get("hub", card.source)
        source = read_folder(weights, name, hint=f"upstream: {upstream}; on a connected machine `medprobe models "
                                                 f"fetch {name} --to DIR` writes DIR/{name}")
    return build_encoder(name, source, pooling=pooling, input_size=input_size, seed=seed,
                         random_init=weights is None, defaults=entry.input, default_pooling=entry.pooling,
                         model_types=entry.model_types, card=card)
