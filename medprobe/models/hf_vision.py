"""Any Hugging Face transformers vision backbone, read from local disk only: `hf:<folder>` or `hf:<org>/<name>`.

A model is a folder as `save_pretrained` or `snapshot_download` writes it: `config.json`, `model.safetensors` (or
the shards a `model.safetensors.index.json` lists) and, optionally, `preprocessor_config.json`.

Which folder (one rule, checked in this order):

- `weights:` set → that folder, always; the text after `hf:` is then only a label (a folder path there must be the
  same folder, and `revision` is refused: the folder is what it is);
- `hf:/abs/path`, `hf:./rel`, `hf:../rel`, `hf:~/...` → that local folder;
- `hf:<org>/<name>` → the snapshot of that repository in the local Hugging Face cache ($HF_HUB_CACHE, else
  $HF_HOME/hub, else ~/.cache/huggingface/hub) at option `revision` (default "main": the commit refs/main points
  to), looked up with `local_files_only=True`. medprobe never downloads; a missing snapshot is a WeightsError
  that names the repository and revision and how to fetch it on a connected machine.

Dual encoders (a config with a `vision_config` whose model has a `vision_model`: CLIP, SigLIP, ...) are taken
apart: only the vision tower is built and only `vision_model.*` is loaded; the text tower, projections and logit
scale/bias in the checkpoint are dropped by design. Every other key must fit: missing, unexpected or mis-shaped
keys are one WeightsError naming the folder, never a half-random network. The checkpoint's own key layout is
adapted by transformers' conversion mapping (the one adapter per upstream layout, owned by transformers).

Random-init control: option `random_init: true` builds the network from `config.json` alone (a folder may then
hold no weights; any it holds are ignored) with seed `seed`: `weights_sha256` None, runs tagged random-init. Without
that option a folder lacking weights is an error, so a half-fetched snapshot is never evaluated by accident.

Identity: the fingerprint covers the config (`config_sha256` in `options`: canonical JSON of config.json) and the
weights (`weights_sha256`: see `weights_digest`), besides pooling, input size and preprocessing.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from medprobe.errors import MedprobeError, WeightsError
from medprobe.models.cards import ModelCard
from medprobe.models.encoder import TorchEncoder
from medprobe.models.weights import sha256_of
from medprobe.preprocess.input_spec import IMAGENET_MEAN, IMAGENET_STD, InputSpec

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

    from medprobe.models.text_tower import TextTower

PREFIX = "hf:"
#: What each pooling is, exactly; the words go into the architecture string (and so into the fingerprint).
POOLINGS = {
    "cls": "CLS token of last_hidden_state",
    "mean": "mean of the patch tokens of last_hidden_state (CLS, register and other prefix tokens excluded)",
    "pooler": "the model's pooler_output",
}
#: The image embedding a model type defines for itself (SigLIP: the MAP head that `get_image_features` returns;
#: CLIP: post-layernorm CLS before the projection; DINOv2: final-norm CLS). Other types: `cls` when the network
#: has a CLS token, else `pooler`.
DEFAULT_POOLING = {"siglip_vision_model": "pooler", "clip_vision_model": "pooler", "dinov2": "cls",
                   "dinov2_with_registers": "cls"}
#: PIL resample codes in preprocessor_config.json → interpolation names.
RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
CONFIG = "config.json"
PREPROCESSOR = "preprocessor_config.json"
SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
#: config.json fields that record who saved the file, not what the network computes: left out of its hash.
_VOLATILE_CONFIG_KEYS = frozenset({"transformers_version", "_name_or_path"})
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_TOWER = "vision_model"
#: SigLIP's zero-shot template where a card gives none: the one transformers' zero-shot pipeline uses for it.
SIGLIP_TEMPLATES = ("This is a photo of {}.",)


@dataclass(frozen=True)
class InputDefaults:
    """What the model expects when the folder has no preprocessor_config.json; `source` says where it is from."""

    size: tuple[int, int] | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    interpolation: str
    source: str


#: Per model type (of the network built: the vision tower for dual encoders), from the upstream processors.
TYPE_DEFAULTS = {
    "siglip_vision_model": InputDefaults(None, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic", "defaults:siglip"),
    "clip_vision_model": InputDefaults(None, (0.48145466, 0.4578275, 0.40821073),
                                       (0.26862954, 0.26130258, 0.27577711), "bicubic", "defaults:clip"),
    "dinov2": InputDefaults(None, IMAGENET_MEAN, IMAGENET_STD, "bicubic", "defaults:dinov2"),
    "dinov2_with_registers": InputDefaults(None, IMAGENET_MEAN, IMAGENET_STD, "bicubic", "defaults:dinov2"),
}
FALLBACK_DEFAULTS = InputDefaults(None, IMAGENET_MEAN, IMAGENET_STD, "bicubic", "defaults:imagenet")


@dataclass(frozen=True)
class HFSource:
    """A model as found on disk (or, for a zoo model's random-init control, its built-in upstream config)."""

    label: str
    config: dict[str, Any]
    folder: Path | None = None
    weight_files: tuple[Path, ...] = ()
    preprocessor: dict[str, Any] | None = None

    @property
    def config_sha256(self) -> str:
        return config_sha256(self.config)


class HFVisionEncoder(TorchEncoder):
    """A frozen transformers vision model: `pooling` of its forward output (see POOLINGS), patch tokens from
    `last_hidden_state` (ViT-like: the tokens after the CLS/register prefix; CNNs: the last feature map's
    positions). Built for one input size; the position embeddings are interpolated by transformers itself when
    that size is not the config's."""

    def __init__(self, name: str, module: PreTrainedModel, *, pooling: str, spec: InputSpec,
                 weights_sha256: str | None, config_hash: str, preprocessing_source: str, tower_of: str | None,
                 seed: int) -> None:
        super().__init__(module)
        cfg = module.config
        self.name = name
        self.model_class = type(module).__name__
        self.tower_of = tower_of
        self.pooling = pooling
        self.preprocessing = spec
        self.size = tuple(spec.size or ())
        self.weights_sha256 = weights_sha256
        self.patch = _patch_size(cfg)
        width = _width(cfg)
        self.token_dim = width
        self.embed_dim = int(getattr(cfg, "pooler_output_size", None) or width) if pooling == "pooler" else width
        native = getattr(cfg, "image_size", None)
        accepts = "interpolate_pos_encoding" in inspect.signature(module.forward).parameters
        self._forward_kwargs = ({"interpolate_pos_encoding": True}
                                if accepts and native is not None and self.size != _pair(native) else {})
        self.options: dict[str, Any] = {
            "pooling": pooling,
            "input_size": self.size[0] if len(set(self.size)) == 1 else list(self.size),
            "preprocessing": preprocessing_source,
            "config_sha256": config_hash,
        }
        if weights_sha256 is None:
            self.options["init_seed"] = seed
        self.source_folder: Path | None = None  # the folder read, when weights were loaded (the text tower's too)

    @property
    def has_text_tower(self) -> bool:
        return self.tower_of is not None and self.source_folder is not None

    def text_tower(self) -> TextTower:
        from medprobe.models.text_tower import hf_text_tower

        if self.source_folder is None:
            raise self.random_init_has_no_text_tower()
        return hf_text_tower(self.source_folder, self.name)

    @property
    def architecture(self) -> str:
        tower = f" (vision tower of {self.tower_of})" if self.tower_of else ""
        return f"hf:{self.model_class}{tower}/config:{self.options['config_sha256'][:16]}/{POOLINGS[self.pooling]}"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        hidden, pooled = self._forward(x)
        return self._pool(hidden, pooled, x)

    def encode_with_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, pooled = self._forward(x)
        return self._pool(hidden, pooled, x), self._tokens(hidden, x)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if x.ndim != 4 or tuple(x.shape[-2:]) != self.size:
            raise MedprobeError(f"model '{self.name}' was built for (B, C, {self.size[0]}, {self.size[1]}) inputs, "
                                f"got {tuple(x.shape)}; set its option input_size to the size you feed it")
        out = self.module(pixel_values=x, **self._forward_kwargs)
        return out.last_hidden_state, getattr(out, "pooler_output", None)

    def _tokens(self, hidden: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if hidden.ndim == 4:  # (B, C, H, W): a CNN's last feature map
            return hidden.flatten(2).transpose(1, 2)
        return hidden[:, self._num_prefix(hidden.shape[1], x) :]

    def _num_prefix(self, tokens: int, x: torch.Tensor) -> int:
        """CLS/register/distillation tokens before the patch tokens: all tokens beyond the patch grid. Hierarchical
        models (fewer tokens than patches: Swin-like stages) have none."""
        if self.patch is None:
            return 0
        patches = (x.shape[-2] // self.patch[0]) * (x.shape[-1] // self.patch[1])
        return tokens - patches if tokens >= patches else 0

    def _pool(self, hidden: torch.Tensor, pooled: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        if self.pooling == "pooler":
            if pooled is None:
                raise MedprobeError(f"model '{self.name}' ({self.model_class}) returns no pooler_output; "
                                    "set option pooling to cls or mean")
            return pooled.flatten(1)  # CNN poolers keep (B, C, 1, 1)
        if self.pooling == "cls":
            return hidden[:, 0]
        return self._tokens(hidden, x).mean(dim=1)


def build_hf(name: str, weights: Path | None, pooling: str | None = None, input_size: int | None = None,
             seed: int = 0, revision: str | None = None, random_init: bool = False, **unknown: Any) -> HFVisionEncoder:
    """`hf:<folder>` or `hf:<org>/<name>` (see the module docstring for which folder is read)."""
    if unknown:
        raise MedprobeError(f"model '{name}': unknown option(s) {sorted(unknown)}; known: pooling, input_size, seed, "
                            "revision, random_init")
    source = read_folder(resolve_reference(name, weights, revision), name)
    return build_encoder(name, source, pooling=pooling, input_size=input_size, seed=seed,
                         random_init=bool(random_init))


def resolve_reference(name: str, weights: Path | None, revision: str | None) -> Path:
    ref = name.removeprefix(PREFIX)
    if not ref and weights is None:
        raise MedprobeError(f"model '{name}': write hf:<folder> or hf:<org>/<name>, or name the folder in weights:")
    if weights is not None:
        if revision is not None:
            raise MedprobeError(f"model '{name}': option revision picks a cached hub snapshot; with weights: "
                                f"{weights} the folder is fixed, so drop one of them")
        if _is_folder_ref(ref) and Path(ref).expanduser().resolve() != Path(weights).expanduser().resolve():
            raise MedprobeError(f"model '{name}' names folder {ref} but weights: names {weights}; name it once")
        return Path(weights).expanduser()
    if _is_folder_ref(ref):
        if revision is not None:
            raise MedprobeError(f"model '{name}': option revision is for hf:<org>/<name> hub repositories, not folders")
        return Path(ref).expanduser()
    if not _REPO_ID.match(ref):
        raise MedprobeError(f"model '{name}': '{ref}' is neither a folder (start it with /, ./, ../ or ~) nor a "
                            "Hugging Face repository id <org>/<name>")
    return cached_snapshot(ref, revision or "main")


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache as the environment names it now: $HF_HUB_CACHE, else $HF_HOME/hub, else the
    huggingface_hub default."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_snapshot(repo_id: str, revision: str) -> Path:
    """The cached snapshot folder of `repo_id` at `revision`, without any network access (`local_files_only`)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hub_cache_dir()
    try:
        with offline_and_quiet():
            return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise WeightsError(
            f"Hugging Face repository {repo_id} at revision '{revision}' is not in the local hub cache {cache} "
            f"({type(exc).__name__}); medprobe never downloads. On a connected machine either run `medprobe models "
            f"fetch hf:{repo_id} --revision {revision} --to DIR` and carry DIR/{repo_id.replace('/', '--')} here "
            f"(then weights: that folder), or `huggingface-cli download {repo_id} --revision {revision}` and carry "
            "the hub cache here (HF_HOME or HF_HUB_CACHE pointing at it)"
            + (f"; {repo_id} is also a local folder here: write hf:./{repo_id} to read it" if Path(repo_id).is_dir()
               else "")
        ) from None


def read_folder(folder: Path, name: str, hint: str = "") -> HFSource:
    """config.json, the weight files transformers would load (model.safetensors, else the shards of
    model.safetensors.index.json) and preprocessor_config.json when present. No weights is not an error here."""
    where = f" ({hint})" if hint else ""
    if folder.is_file():
        raise WeightsError(f"{folder}: model '{name}' needs the folder holding config.json and the safetensors "
                           f"file, not a file{where}")
    if not (folder / CONFIG).is_file():
        missing = "not found" if not folder.is_dir() else f"has no {CONFIG}"
        raise WeightsError(f"{folder}: {missing}; model '{name}' needs a folder with {CONFIG} and "
                           f"{SAFETENSORS}{where}")
    preprocessor = _read_json(folder / PREPROCESSOR, name) if (folder / PREPROCESSOR).is_file() else None
    return HFSource(str(folder), _read_json(folder / CONFIG, name), folder, weight_files(folder, name), preprocessor)


def weight_files(folder: Path, name: str) -> tuple[Path, ...]:
    if (folder / SAFETENSORS).is_file():
        return (folder / SAFETENSORS,)
    if (folder / SAFETENSORS_INDEX).is_file():
        shards = sorted(set(_read_json(folder / SAFETENSORS_INDEX, name).get("weight_map", {}).values()))
        absent = [s for s in shards if not (folder / s).is_file()]
        if absent or not shards:
            raise WeightsError(f"{folder}: {SAFETENSORS_INDEX} lists shards that are not there: {absent or 'none'}")
        return tuple(folder / s for s in shards)
    others = sorted(p.name for p in folder.glob("*.safetensors"))
    if others:
        raise WeightsError(f"{folder}: no {SAFETENSORS} or {SAFETENSORS_INDEX} (found {', '.join(others)}); "
                           "transformers reads only those names, so rename the backbone's file")
    if any(folder.glob("*.bin")) or any(folder.glob("*.pt*")):
        raise WeightsError(f"{folder}: only PyTorch pickles, no safetensors; medprobe reads safetensors only (convert "
                           "on a trusted machine: model.save_pretrained(folder, safe_serialization=True))")
    return ()


def build_encoder(name: str, source: HFSource, *, pooling: str | None = None, input_size: int | None = None,
                  seed: int = 0, random_init: bool = False, defaults: InputDefaults | None = None,
                  default_pooling: str | None = None, model_types: Sequence[str] = (),
                  card: ModelCard | None = None) -> HFVisionEncoder:
    """The one loader behind `hf:` and the named zoo entries. `defaults`/`default_pooling` override the model
    type's; `model_types` (when given) are the config model types this name accepts."""
    if pooling is not None and pooling not in POOLINGS:
        raise MedprobeError(f"model '{name}': pooling must be one of {tuple(POOLINGS)}, got {pooling!r}")
    config = _load_config(source, name)
    if model_types and config.model_type not in model_types:
        raise WeightsError(f"{source.label}: config model_type '{config.model_type}' is not a '{name}' "
                           f"(expected {' or '.join(model_types)}); is it the right folder?")
    net = _network(config, name)
    if not source.weight_files and not random_init:
        raise WeightsError(f"{source.label}: no {SAFETENSORS} (or {SAFETENSORS_INDEX}) next to {CONFIG} for model "
                           f"'{name}'; to evaluate the architecture with random weights as a control, set option "
                           "random_init: true")
    if random_init:
        module, sha = _random_module(net, seed), None
    else:
        module, sha = _load_module(net, source, name), weights_digest(source.weight_files)
        if card is not None and card.sha256 and sha != card.sha256:
            raise WeightsError(f"{source.label}: weights sha256 {sha[:12]}… does not match the card's "
                               f"{card.sha256[:12]}… for '{name}' (expected {card.checkpoint_file} from {card.source})")
    pooling = pooling or default_pooling or _default_pooling(net.config, module)
    if pooling == "cls" and not has_cls_token(module):
        raise MedprobeError(f"model '{name}': {net.cls.__name__} has no CLS token; use pooling mean or pooler")
    spec, spec_source = _input_spec(net.config, source.preprocessor, defaults, input_size, name)
    encoder = HFVisionEncoder(name, module, pooling=pooling, spec=spec, weights_sha256=sha,
                              config_hash=source.config_sha256, preprocessing_source=spec_source,
                              tower_of=net.tower_of, seed=seed)
    if not random_init:
        encoder.source_folder = source.folder
    if card is not None and card.zero_shot_templates:
        encoder.zero_shot_templates = tuple(card.zero_shot_templates)
    elif config.model_type == "siglip":
        encoder.zero_shot_templates = SIGLIP_TEMPLATES
    return encoder


def weights_digest(files: Sequence[Path]) -> str:
    """One file: its own sha256 (what the hub lists for an LFS file). Shards: sha256 over 'name sha256' lines,
    sorted by name."""
    shas = sorted((f.name, sha256_of(f)) for f in files)
    if len(shas) == 1:
        return shas[0][1]
    return hashlib.sha256("".join(f"{n} {s}\n" for n, s in shas).encode()).hexdigest()


def config_sha256(config: dict[str, Any]) -> str:
    """sha256 of config.json as canonical JSON (sorted keys, no whitespace), without the fields that only record
    who saved it (transformers_version, _name_or_path)."""
    return hashlib.sha256(json.dumps(_strip_volatile(config), sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()).hexdigest()


def has_cls_token(module: torch.nn.Module) -> bool:
    """transformers names it `cls_token` (ViT, DINOv2, BEiT, ...) or `class_embedding` (CLIP)."""
    return any(n.rsplit(".", 1)[-1] in {"cls_token", "class_embedding"} for n, _ in module.named_parameters())


def hf_card(name: str) -> ModelCard:
    ref = name.removeprefix(PREFIX)
    return ModelCard(
        name=name,
        architecture=f"Hugging Face transformers vision backbone {ref} (config.json + safetensors)",
        embed_dim=0,
        checkpoint_file=f"a folder with {CONFIG}, {SAFETENSORS} and (optionally) {PREPROCESSOR}",
        source=(f"https://huggingface.co/{ref}; fetch it on a connected machine (huggingface-cli download {ref})"
                if _REPO_ID.match(ref) else "a local folder written by save_pretrained or snapshot_download"),
        summary="any transformers vision model or the vision tower of a dual encoder (CLIP, SigLIP), from local disk",
    )


def _is_folder_ref(ref: str) -> bool:
    return ref in {".", "..", "~"} or ref.startswith(("/", "./", "../", "~/"))


def _read_json(path: Path, name: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: not readable JSON for model '{name}' ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: expected a JSON object for model '{name}'")
    return data


def _strip_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_volatile(v) for k, v in value.items() if k not in _VOLATILE_CONFIG_KEYS}
    return value


def _load_config(source: HFSource, name: str) -> PretrainedConfig:
    from transformers import AutoConfig

    try:
        with offline_and_quiet():
            if source.folder is not None:
                return AutoConfig.from_pretrained(source.folder, local_files_only=True, trust_remote_code=False)
            raw = dict(source.config)
            return AutoConfig.for_model(raw.pop("model_type"), **raw)
    except (ValueError, KeyError, OSError, TypeError) as exc:
        raise WeightsError(f"{source.label}: {CONFIG} is not a configuration this transformers can build for model "
                           f"'{name}' ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); medprobe never runs "
                           "code from a model folder") from None


@dataclass(frozen=True)
class _Network:
    """The class to build and its config: the model itself, or the vision tower of a dual encoder (`tower_of`
    names the whole model) with the top-level checkpoint names of the rest of it (`siblings`: dropped on load)."""

    cls: type[PreTrainedModel]
    config: PretrainedConfig
    siblings: frozenset[str] = frozenset()
    tower_of: str | None = None


def _network(config: PretrainedConfig, name: str) -> _Network:
    from transformers import AutoModel, PreTrainedModel

    try:
        with torch.device("meta"), offline_and_quiet():
            full = AutoModel.from_config(config)
    except (ValueError, KeyError) as exc:
        raise MedprobeError(f"model '{name}': transformers has no model for config type '{config.model_type}' "
                            f"({str(exc).splitlines()[0][:200]})") from None
    network = _Network(type(full), config)
    if hasattr(config, "vision_config"):
        tower = getattr(full, _TOWER, None)
        if not isinstance(tower, PreTrainedModel):
            raise MedprobeError(f"model '{name}': {type(full).__name__} has a vision_config but no {_TOWER} tower "
                                "that medprobe can take apart (dual encoders such as CLIP and SigLIP have one)")
        siblings = frozenset(k.split(".", 1)[0] for k in full.state_dict() if not k.startswith(f"{_TOWER}."))
        network = _Network(type(tower), tower.config, siblings, type(full).__name__)
    if network.cls.main_input_name != "pixel_values":
        raise MedprobeError(f"model '{name}': {network.cls.__name__} takes {network.cls.main_input_name}, not images")
    required = [p for p, v in inspect.signature(network.cls.forward).parameters.items()
                if p not in {"self", "pixel_values"} and v.default is inspect.Parameter.empty
                and v.kind not in {inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL}]
    if required:
        raise MedprobeError(f"model '{name}': {network.cls.__name__} needs inputs besides pixel values ({required}); "
                            "medprobe feeds fixed-size image batches only")
    return network


def _default_pooling(cfg: PretrainedConfig, module: torch.nn.Module) -> str:
    pooling = DEFAULT_POOLING.get(cfg.model_type) or ("cls" if has_cls_token(module) else "pooler")
    if pooling == "pooler" and getattr(cfg, "vision_use_head", True) is False:  # SigLIP built without its MAP head
        return "mean"
    return pooling


def _random_module(net: _Network, seed: int) -> PreTrainedModel:
    with torch.random.fork_rng(devices=[]), offline_and_quiet():  # seeded, leaving the caller's state alone
        torch.manual_seed(seed)
        return net.cls._from_config(net.config).to(torch.float32)


def _load_module(net: _Network, source: HFSource, name: str) -> PreTrainedModel:
    """transformers' own loader (its conversion mapping adapts older key layouts), in fp32, from safetensors only,
    without network; then medprobe's strictness: every tensor loaded, nothing left over but the other tower."""
    assert source.folder is not None
    try:
        with offline_and_quiet():
            loaded: Any = net.cls.from_pretrained(  # (model, info) with output_loading_info
                source.folder, config=net.config, local_files_only=True, use_safetensors=True, dtype=torch.float32,
                output_loading_info=True, ignore_mismatched_sizes=True,
                key_mapping={rf"^{_TOWER}\.": ""} if net.tower_of else None)
            module: PreTrainedModel = loaded[0]
            info: dict[str, Any] = loaded[1]
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise WeightsError(f"{source.label}: transformers cannot load it as {net.cls.__name__} for model '{name}' "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    problems = loading_problems(info, net.siblings)
    if problems:
        raise WeightsError(f"{source.label}: does not fit '{name}' as {net.cls.__name__} ({problems}); "
                           "is it the right architecture?")
    return module


def loading_problems(info: dict[str, Any], siblings: frozenset[str] = frozenset()) -> str:
    """transformers' `output_loading_info` as one line ('' when every tensor fitted); unexpected keys under a
    top-level name in `siblings` (a dual encoder's other tower) are not problems."""
    missing = sorted(info.get("missing_keys", []))
    unexpected = sorted(k for k in info.get("unexpected_keys", []) if k.split(".", 1)[0] not in siblings)
    mismatched = [_mismatch(m) for m in info.get("mismatched_keys", [])]
    return "; ".join(f"{label}: {_show(keys)}" for label, keys in
                     (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched))
                     if keys)


def _input_spec(cfg: PretrainedConfig, preprocessor: dict[str, Any] | None, defaults: InputDefaults | None,
                input_size: int | None, name: str) -> tuple[InputSpec, str]:
    found = (_from_preprocessor(preprocessor, cfg) if preprocessor is not None
             else defaults or TYPE_DEFAULTS.get(cfg.model_type, FALLBACK_DEFAULTS))
    size = found.size or _pair(getattr(cfg, "image_size", 224))
    if input_size is not None:
        side = int(input_size)
        patch = _patch_size(cfg)
        if side <= 0 or (patch is not None and (side % patch[0] or side % patch[1])):
            raise MedprobeError(f"model '{name}': input_size must be a positive multiple of the patch size "
                                f"{patch[0] if patch else 1}, got {input_size}")
        size = (side, side)
    channels = int(getattr(cfg, "num_channels", 3))
    spec = InputSpec(2, size, channels, _per_channel(found.mean, channels), _per_channel(found.std, channels),
                     found.interpolation)
    return spec, found.source


def _from_preprocessor(raw: dict[str, Any], cfg: PretrainedConfig) -> InputDefaults:
    """size: crop_size when the processor centre-crops, else size (height/width, or shortest_edge as a square);
    mean/std only when it normalises; resample → interpolation name."""
    sized = raw.get("crop_size") if raw.get("do_center_crop") else raw.get("size")
    size = _size_of(sized) if sized is not None else None
    normalise = raw.get("do_normalize", True)
    mean, std = raw.get("image_mean"), raw.get("image_std")
    resample = raw.get("resample", 3)
    return InputDefaults(size, _floats(mean) if normalise else None, _floats(std) if normalise else None,
                         RESAMPLE.get(resample, str(resample)) if isinstance(resample, int) else str(resample),
                         PREPROCESSOR)


def _size_of(value: Any) -> tuple[int, int] | None:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, dict):
        if "height" in value and "width" in value:
            return (int(value["height"]), int(value["width"]))
        if "shortest_edge" in value:
            return (int(value["shortest_edge"]),) * 2
    return None


def _floats(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    return tuple(float(v) for v in value) if isinstance(value, (list, tuple)) else (float(value),)


def _per_channel(values: tuple[float, ...] | None, channels: int) -> tuple[float, ...] | None:
    return values * channels if values is not None and len(values) == 1 else values


def _pair(value: Any) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, (list, tuple)) else (int(value), int(value))


def _patch_size(cfg: PretrainedConfig) -> tuple[int, int] | None:
    patch = getattr(cfg, "patch_size", None)
    return _pair(patch) if patch is not None else None


def _width(cfg: PretrainedConfig) -> int:
    hidden = getattr(cfg, "hidden_size", None)
    return int(hidden if hidden is not None else cfg.hidden_sizes[-1])


def _mismatch(item: Any) -> str:
    if isinstance(item, (list, tuple)) and len(item) == 3:
        key, got, want = item
        return f"{key} {tuple(got)}≠{tuple(want)}"
    return str(item)


def _show(keys: Sequence[str]) -> str:
    head = ", ".join(keys[:8])
    return head + (f", … ({len(keys)} in all)" if len(keys) > 8 else "")


@contextmanager
def offline_and_quiet() -> Iterator[None]:
    """Around every transformers / huggingface_hub call: hub offline mode on (any request that `local_files_only`
    did not already prevent raises OfflineModeIsEnabled instead of reaching out), and no load reports or progress
    bars (medprobe reports problems as its own errors). Both are restored afterwards."""
    from huggingface_hub import constants
    from transformers.utils import logging as hf_logging

    offline, level, bars = constants.HF_HUB_OFFLINE, hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    constants.HF_HUB_OFFLINE = True
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = offline
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
