"""BiomedCLIP (microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224): the image tower of an open_clip model.

Upstream is an open_clip `CustomTextCLIP`: a timm ViT-B/16 trunk wrapped in open_clip's `TimmModel` (image) and
PubMedBERT (text), which open_clip builds through `transformers` with a hub download. medprobe needs only the image
tower, so it builds that alone, with open_clip's own `_build_vision_tower`, from the checkpoint's
`open_clip_config.json` (`model_cfg.embed_dim`, `model_cfg.vision_cfg`), and loads the `visual.*` tensors strictly.

Skipped deliberately, never reported: the text tower and the logit scale — `text.*` (a CustomTextCLIP's tower, here
PubMedBERT and its projection MLP), a plain CLIP's `transformer.*`, `token_embedding.*`, `positional_embedding`,
`ln_final.*`, `text_projection`, and `logit_scale` / `logit_bias`. Any other key, and any missing or mis-shaped
`visual.*` key, is a WeightsError that names them.

Embedding: what upstream's `model.encode_image(x)` returns with its default `normalize=False`: the timm trunk's CLS
token after its final norm (`timm_pool: ""` keeps timm's own 'token' pooling) through open_clip's bias-free linear
projection, 768 → 512. It is not L2-normalised; upstream normalises for zero-shot classification and retrieval
(`encode_image(x, normalize=True)`, `CLIP.forward`), which cosine k-NN does implicitly and a linear probe need not.
Patch tokens: the trunk's `forward_features` after the final norm, CLS excluded (196 × 768 at 224 px).

Weights: the hub snapshot folder (`open_clip_config.json` plus `open_clip_model.safetensors` or
`open_clip_pytorch_model.bin`; safetensors first, as open_clip's local-dir loader picks), or one weights file with
`open_clip_config.json` beside it. The config is part of the model: the network is built from it (a folder holding
another timm-tower open_clip model builds that model, and the architecture string says so); without weights the
hub's own config is used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from medprobe.errors import MedprobeError, WeightsError
from medprobe.models.cards import load_card
from medprobe.models.encoder import TorchEncoder
from medprobe.models.registry import register_model
from medprobe.models.weights import load_strict, read_checkpoint
from medprobe.preprocess.input_spec import InputSpec

if TYPE_CHECKING:
    from medprobe.models.text_tower import TextTower

CONFIG_FILE = "open_clip_config.json"
#: The weights files of an open_clip hub snapshot, in the order open_clip's local-dir loader prefers them.
WEIGHTS_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
#: The hub's open_clip_config.json without its text_cfg: what a random-init build uses.
HUB_CONFIG: dict[str, Any] = {
    "model_cfg": {
        "embed_dim": 512,
        "vision_cfg": {"timm_model_name": "vit_base_patch16_224", "timm_model_pretrained": False, "timm_pool": "",
                       "timm_proj": "linear", "image_size": 224},
    },
    "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
}
TEXT_PREFIXES = ("text.", "transformer.", "token_embedding.", "ln_final.")
TEXT_KEYS = frozenset({"positional_embedding", "text_projection", "logit_scale", "logit_bias", "attn_mask"})
EMBEDDING = "encode_image: final-norm CLS of the timm trunk, linear projection, not L2-normalised"


class OpenClipImageEncoder(TorchEncoder):
    """An open_clip `TimmModel` image tower: `encode` is upstream's `encode_image(x)` (unnormalised)."""

    def __init__(self, name: str, visual: torch.nn.Module, vision_cfg: dict[str, Any], embed_dim: int,
                 preprocess: dict[str, Any], weights_sha256: str | None, seed: int) -> None:
        super().__init__(visual)
        self.name = name
        self.vision_cfg = vision_cfg
        self.trunk = cast(Any, visual.trunk)  # a timm VisionTransformer (or any timm model with forward_features)
        self.head = cast(Any, visual.head)  # open_clip's projection
        self.input_size = _square(preprocess["size"])
        self.embed_dim = embed_dim
        self.token_dim = int(self.trunk.embed_dim)
        self.num_prefix_tokens = int(getattr(self.trunk, "num_prefix_tokens", 1))
        self.preprocessing = InputSpec(2, (self.input_size, self.input_size), 3, tuple(preprocess["mean"]),
                                       tuple(preprocess["std"]), str(preprocess["interpolation"]))
        self.weights_sha256 = weights_sha256
        self.options: dict[str, Any] = {}
        if weights_sha256 is None:
            self.options["init_seed"] = seed
        #: What the text tower is built from (zero-shot): the open_clip config, checkpoint and text model folder.
        self.text_source: tuple[dict[str, Any], Path, Path | None] | None = None

    @property
    def has_text_tower(self) -> bool:
        return self.text_source is not None

    def text_tower(self) -> TextTower:
        from medprobe.models.text_tower import open_clip_text_tower

        if self.text_source is None:
            raise self.random_init_has_no_text_tower()
        config, weights_file, text_folder = self.text_source
        return open_clip_text_tower(config, weights_file, self.name, text_folder)

    @property
    def architecture(self) -> str:
        cfg = json.dumps(self.vision_cfg, sort_keys=True, separators=(",", ":"))
        return f"open_clip:TimmModel{cfg}->{self.embed_dim}/{EMBEDDING}"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._pool(self._features(x))

    def encode_with_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self._features(x)
        return self._pool(features), features[:, self.num_prefix_tokens :]

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            raise MedprobeError(f"model '{self.name}' takes (B, 3, {self.input_size}, {self.input_size}) inputs, "
                                f"got {tuple(x.shape)}")
        return self.trunk.forward_features(x)

    def _pool(self, features: torch.Tensor) -> torch.Tensor:
        """`TimmModel.forward` is `head(trunk(x))` and timm's `trunk(x)` is `forward_head(forward_features(x))`."""
        return self.head(self.trunk.forward_head(features))


@register_model("biomedclip")
def build_biomedclip(name: str, weights: Path | None, seed: int = 0, text_model: str | None = None,
                     **unknown: Any) -> OpenClipImageEncoder:
    """`text_model`: a local copy of the text tower's Hugging Face model (config and tokenizer) for zero-shot;
    without it the local hub cache is looked up by the config's `hf_model_name`."""
    if unknown:
        raise MedprobeError(f"model '{name}': unknown option(s) {sorted(unknown)}; known: seed, text_model")
    if text_model is not None and not Path(text_model).is_dir():
        raise MedprobeError(f"model '{name}': option text_model {text_model} is not a folder (it should hold the "
                            "text model's config.json and tokenizer files)")
    if weights is None:
        config, weights_file = HUB_CONFIG, None
    else:
        config, weights_file = read_open_clip_folder(weights, name)
    embed_dim, vision_cfg, preprocess = parse_config(config, weights or Path(CONFIG_FILE), name)
    visual = build_vision_tower(embed_dim, vision_cfg, bool(config["model_cfg"].get("quick_gelu", False)),
                                for_loading=weights_file is not None, seed=seed)
    sha = None
    if weights_file is not None:
        state, sha = read_checkpoint(weights_file, load_card(name))
        load_strict(visual, open_clip_visual_state(state, weights_file), weights_file, name)
    size = getattr(getattr(visual.trunk, "patch_embed", None), "img_size", None)
    if size is not None and tuple(size) != (_square(preprocess["size"]),) * 2:
        raise WeightsError(f"{weights or 'built-in config'}: the config's image_size {preprocess['size']} is not "
                           f"the timm trunk's input size {tuple(size)}; open_clip's model would refuse such inputs")
    encoder = OpenClipImageEncoder(name, visual, vision_cfg, embed_dim, preprocess, sha, seed)
    if weights_file is not None:
        encoder.text_source = (config, weights_file, Path(text_model) if text_model else None)
        encoder.zero_shot_templates = tuple(load_card(name).zero_shot_templates)
    return encoder


def read_open_clip_folder(weights: Path, name: str) -> tuple[dict[str, Any], Path]:
    """(config, weights file) from a hub snapshot folder or from a weights file with the config beside it."""
    folder = weights if weights.is_dir() else weights.parent
    config_path = folder / CONFIG_FILE
    if weights.is_dir():
        found = [weights / f for f in WEIGHTS_FILES if (weights / f).is_file()]
        if not found:
            raise WeightsError(f"{weights}: no {' or '.join(WEIGHTS_FILES)} in this folder; model '{name}' needs the "
                               f"open_clip hub snapshot ({CONFIG_FILE} and its weights)")
        weights = found[0]
    elif not weights.is_file():
        card = load_card(name)
        raise WeightsError(f"weights not found: {weights} (model '{name}' expects {card.checkpoint_file}; get it "
                           f"from {card.source})")
    if not config_path.is_file():
        raise WeightsError(f"{weights}: {CONFIG_FILE} is missing beside it; the open_clip config describes the "
                           f"network, so model '{name}' reads it from the same folder as the weights")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{config_path}: not a readable JSON config ({type(exc).__name__}: {exc})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_cfg"), dict):
        raise WeightsError(f"{config_path}: no 'model_cfg' section; is it an open_clip hub config?")
    return config, weights


def parse_config(config: dict[str, Any], where: Path, name: str) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """(embed_dim, vision_cfg, preprocess settings) as open_clip's factory derives them: `preprocess_cfg` over
    open_clip's `PreprocessCfg` defaults, with the size taken from the image tower's `image_size`."""
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    model_cfg = config["model_cfg"]
    vision_cfg = model_cfg.get("vision_cfg")
    if not isinstance(vision_cfg, dict) or not vision_cfg.get("timm_model_name"):
        raise WeightsError(f"{where}: model '{name}' needs an open_clip config whose vision_cfg names a timm "
                           "trunk (timm_model_name), as BiomedCLIP's does")
    vision_cfg = {**vision_cfg, "timm_model_pretrained": False}  # medprobe never downloads
    preprocess = merge_preprocess_dict(PreprocessCfg(), config.get("preprocess_cfg") or {})
    preprocess["size"] = vision_cfg.get("image_size", 224)
    return int(model_cfg["embed_dim"]), vision_cfg, preprocess


def build_vision_tower(embed_dim: int, vision_cfg: dict[str, Any], quick_gelu: bool, *, for_loading: bool,
                       seed: int) -> torch.nn.Module:
    """open_clip's own builder; as uninitialised memory when a strict load fills it (as `create_vit` does)."""
    from open_clip.model import _build_vision_tower

    try:
        if for_loading:
            with torch.device("meta"):
                visual = _build_vision_tower(embed_dim, vision_cfg, quick_gelu=quick_gelu)
            if all(name in visual.state_dict() for name, _ in visual.named_buffers()):
                return visual.to_empty(device="cpu")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return _build_vision_tower(embed_dim, vision_cfg, quick_gelu=quick_gelu)
    except (TypeError, RuntimeError) as exc:  # unknown vision_cfg fields, unknown timm names
        raise WeightsError(f"open_clip cannot build the image tower from vision_cfg {vision_cfg} "
                           f"({type(exc).__name__}: {exc})") from None


def open_clip_visual_state(state: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """The image tower's tensors, keys without `visual.`; text-tower keys dropped; anything else kept for
    `load_strict` to report."""
    state = open_clip_state(state)
    if not any(k.startswith("visual.") for k in state):
        raise WeightsError(f"{path}: no 'visual.*' tensors, so not an open_clip CLIP checkpoint (its keys begin: "
                           f"{', '.join(list(state)[:8])}); give the open_clip_pytorch_model.bin or "
                           "open_clip_model.safetensors of the hub snapshot")
    return {k.removeprefix("visual."): v for k, v in state.items()
            if k.startswith("visual.") or not (k.startswith(TEXT_PREFIXES) or k in TEXT_KEYS)}


def open_clip_state(state: dict[str, Any]) -> dict[str, Any]:
    """The state dict of an open_clip checkpoint with `state_dict` and DDP's `module.` unwrapped, as open_clip's
    `load_state_dict` does."""
    state = state.get("state_dict", state)
    if state and next(iter(state)).startswith("module."):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _square(size: Any) -> int:
    if isinstance(size, int):
        return size
    side = tuple(int(s) for s in size)
    if len(side) != 2 or side[0] != side[1]:
        raise WeightsError(f"open_clip image_size {size} is not square; medprobe builds square inputs")
    return side[0]
