"""The text side of a vision-language model, for zero-shot classification, built offline from local files.

Only where medprobe's image embedding lies in the space the text tower embeds into:
- the SigLIP family (MedSigLIP, SigLIP, any `hf:` SigLIP folder): the image embedding is the vision tower's pooled
  output, exactly `SiglipModel.get_image_features`; the text side is the same folder's `SiglipModel`, tokenised as
  SigLIP was trained (`padding="max_length"`) and embedded by `get_text_features`;
- BiomedCLIP: the image embedding is open_clip's `encode_image` (projected); the text side is open_clip's own
  `HFTextEncoder` over PubMedBERT, whose config and tokenizer come from a local copy (option `text_model`, else
  the local hub cache), its tensors from the open_clip checkpoint.
A CLIP folder is refused: medprobe's CLIP image embedding is taken before CLIP's visual projection. Embeddings are
L2-normalised; the logit scale (`exp(logit_scale)`) and bias are the checkpoint's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medprobe.errors import MedprobeError, WeightsError
from medprobe.models.cards import load_card
from medprobe.models.hf_vision import cached_snapshot, loading_problems, offline_and_quiet
from medprobe.models.weights import load_strict, read_checkpoint

#: The config model types whose image embedding (as medprobe computes it) shares the text tower's space.
TEXT_MODEL_TYPES = ("siglip",)


class TextTower:
    """Texts → unit-norm embeddings (n, d) in the image embedding's space, with the model's logit scale and bias.
    `embed` is the upstream text forward on a batch of texts (tokenising included), returning (n, d)."""

    def __init__(self, label: str, embed: Callable[[list[str]], torch.Tensor], logit_scale: float,
                 logit_bias: float, *, renormalise_ensemble: bool = True) -> None:
        self.label = label
        self.embed = embed
        self.logit_scale = logit_scale
        self.logit_bias = logit_bias
        #: Whether a class's mean prompt embedding is renormalised (CLIP's prompt ensembling) or kept as the mean
        #: (FLAIR's own `compute_text_embeddings`).
        self.renormalise_ensemble = renormalise_ensemble

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            with torch.no_grad():
                out.append(self.embed(list(texts[start : start + batch_size])).float().numpy())
        vectors = np.concatenate(out)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def hf_text_tower(folder: Path, label: str) -> TextTower:
    """The whole dual encoder from `folder` (transformers' loader, safetensors, fp32, no network), strictly: every
    tensor of both towers and the logit scale/bias must be there, nothing else."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    with offline_and_quiet():
        config = AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        if config.model_type not in TEXT_MODEL_TYPES:
            raise MedprobeError(f"{label}: zero-shot needs a SigLIP-type model (config model_type one of "
                                f"{TEXT_MODEL_TYPES}), found '{config.model_type}'; medprobe's CLIP image embedding "
                                "is taken before CLIP's projection, so it does not share the text tower's space")
        try:
            loaded: Any = AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True,
                                                    dtype=torch.float32, output_loading_info=True)
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, RuntimeError, KeyError, ImportError) as exc:
            raise WeightsError(f"{label}: cannot load the text tower and tokenizer from {folder} "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); the folder needs the whole "
                               "model's safetensors and its tokenizer files, as the hub publishes them") from None
    model, info = loaded
    problems = loading_problems(info)
    if problems:
        raise WeightsError(f"{label}: {folder} does not fit {type(model).__name__} ({problems})")
    bias = getattr(model, "logit_bias", None)
    with torch.no_grad():
        scale, shift = float(model.logit_scale.exp()), float(bias) if bias is not None else 0.0
    model.eval().requires_grad_(False)
    length = int(model.config.text_config.max_position_embeddings)

    def embed(texts: list[str]) -> torch.Tensor:
        batch = tokenizer(texts, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
        return model.get_text_features(**batch).pooler_output

    return TextTower(label, embed, scale, shift)


def open_clip_text_tower(config: dict[str, Any], weights_file: Path, label: str, text_folder: Path | None
                         ) -> TextTower:
    """The text tower of an open_clip model whose text side is a Hugging Face model (BiomedCLIP: PubMedBERT, CLS of
    the last hidden state, an MLP projection), built by open_clip's own `HFTextEncoder` from a local copy of that
    model's config and tokenizer (`text_folder`, else the snapshot in the local hub cache), its tensors loaded
    strictly from the open_clip checkpoint's `text.*`; tokenised as open_clip's `HFTokenizer` does (padding to
    the context length, truncation)."""
    from open_clip.hf_model import HFTextEncoder
    from transformers import AutoTokenizer

    text_cfg = config["model_cfg"].get("text_cfg") or {}
    model_name, tokenizer_name = text_cfg.get("hf_model_name"), text_cfg.get("hf_tokenizer_name")
    if not model_name:
        raise MedprobeError(f"{label}: its open_clip text tower is not a Hugging Face model (no text_cfg."
                            "hf_model_name); medprobe builds only those offline")
    model_folder = text_folder or local_snapshot(model_name, label)
    if text_folder is None and (weights_file.parent / "tokenizer_config.json").is_file():
        tokenizer_folder = weights_file.parent  # open_clip's local-dir loader reads a snapshot's own tokenizer
    else:
        tokenizer_folder = text_folder or local_snapshot(tokenizer_name or model_name, label)
    from medprobe.models.biomedclip import open_clip_state

    state = open_clip_state(read_checkpoint(weights_file, load_card(label))[0])
    with offline_and_quiet():
        try:
            text = HFTextEncoder(str(model_folder), output_dim=int(config["model_cfg"]["embed_dim"]),
                                 pooler_type=text_cfg.get("hf_pooler_type"), proj_type=text_cfg.get("hf_proj_type"),
                                 pretrained=False)
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise WeightsError(f"{label}: cannot build the text tower from {model_folder} "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    load_strict(text, {k.removeprefix("text."): v for k, v in state.items() if k.startswith("text.")}, weights_file,
                label)
    text.eval().requires_grad_(False)
    length = int(text_cfg.get("context_length", 77))

    def embed(texts: list[str]) -> torch.Tensor:
        ids = tokenizer(texts, return_tensors="pt", max_length=length, padding="max_length", truncation=True)
        return text(ids.input_ids)

    if "logit_scale" not in state:
        raise WeightsError(f"{weights_file}: no logit_scale, so not an open_clip CLIP checkpoint; zero-shot needs it")
    bias = state.get("logit_bias")
    return TextTower(label, embed, float(state["logit_scale"].exp()), float(bias) if bias is not None else 0.0)


#: The text model FLAIR's authors build (`TextModel(bert_type=...)`) and its token limit (`model_max_length`).
FLAIR_BERT = "emilyalsentzer/Bio_ClinicalBERT"
FLAIR_MAX_TOKENS = 77
#: The largest logit scale FLAIR allows (`compute_logits` clamps log scale to [0, 4.6052], i.e. 100).
FLAIR_MAX_LOG_SCALE = 4.6052


def flair_text_tower(weights_file: Path, label: str, text_folder: Path | None) -> TextTower:
    """FLAIR's `TextModel`: Bio_ClinicalBERT (config and tokenizer from a local copy, its tensors from the FLAIR
    checkpoint's `text_model.model.*`), the mean over all token positions of hidden states 1, 2 and the last,
    averaged over the three, then the projection layer (normalise, linear, normalise). Tokenised as the authors do:
    `padding=True`, truncation at 77 tokens. Prompt embeddings are averaged per class without renormalising, as the
    authors' `compute_text_embeddings` does."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from medprobe.models.flair import Projection, project_normalised

    folder = text_folder or local_snapshot(FLAIR_BERT, label)
    state, _ = read_checkpoint(weights_file, load_card(label))
    state = state.get("state_dict", state)
    with offline_and_quiet():
        try:
            config = AutoConfig.from_pretrained(folder, local_files_only=True)
            bert = AutoModel.from_config(config, add_pooling_layer=True)
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise WeightsError(f"{label}: cannot build Bio_ClinicalBERT from {folder} "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    load_strict(bert, {k.removeprefix("text_model.model."): v for k, v in state.items()
                       if k.startswith("text_model.model.")}, weights_file, label)
    projection = Projection(int(config.hidden_size))
    text_projection = "text_model.projection_head_text.projection.weight"
    load_strict(projection, {"projection.weight": state[text_projection]} if text_projection in state else {},
                weights_file, label)
    if "logit_scale" not in state:
        raise WeightsError(f"{weights_file}: no logit_scale, so not FLAIR's whole-model checkpoint; zero-shot needs it")
    bert.eval().requires_grad_(False)
    projection.eval().requires_grad_(False)

    def embed(texts: list[str]) -> torch.Tensor:
        tokens = tokenizer(texts, truncation=True, max_length=FLAIR_MAX_TOKENS, padding=True, return_tensors="pt")
        hidden = bert(**tokens, output_hidden_states=True).hidden_states
        pooled = torch.stack([hidden[1], hidden[2], hidden[-1]]).permute(1, 0, 2, 3).mean(2).mean(1)
        return project_normalised(pooled, projection.projection)

    scale = math.exp(float(state["logit_scale"].clamp(0, FLAIR_MAX_LOG_SCALE)))
    return TextTower(label, embed, scale, 0.0, renormalise_ensemble=False)


def local_snapshot(reference: str, label: str) -> Path:
    """A text model named in a config: a local folder as it is, a hub name from the local hub cache (never
    downloaded)."""
    if Path(reference).is_dir():
        return Path(reference)
    try:
        return cached_snapshot(reference, "main")
    except WeightsError as exc:
        raise WeightsError(f"{label}: the text tower needs {reference} (its config and tokenizer) on local disk: "
                           f"{exc}") from None
