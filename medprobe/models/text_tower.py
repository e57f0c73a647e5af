"""The text side of a vision-language model, loaded from the same local folder as its image side, offline.

SigLIP family only (MedSigLIP, SigLIP, any `hf:` SigLIP folder): their image embedding in medprobe is the vision
tower's pooled output, exactly what `SiglipModel.get_image_features` returns, so it lies in the space the text
tower embeds into. A CLIP folder is refused: medprobe's CLIP image embedding is taken before CLIP's visual
projection, so it is not in that space. Texts are tokenised by the folder's own tokenizer as the model card says
SigLIP was trained (`padding="max_length"`, what the tokenizer returns passed on), embedded with transformers'
`get_text_features`, and L2-normalised. The logit scale (`exp(logit_scale)`) and bias are the checkpoint's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medprobe.errors import MedprobeError, WeightsError
from medprobe.models.hf_vision import offline_and_quiet

#: The config model types whose image embedding (as medprobe computes it) shares the text tower's space.
TEXT_MODEL_TYPES = ("siglip",)


class TextTower:
    """Texts → unit-norm embeddings (n, d) in the image embedding's space, with the model's logit scale and bias."""

    def __init__(self, label: str, model: Any, tokenizer: Any, logit_scale: float, logit_bias: float) -> None:
        self.label = label
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.logit_scale = logit_scale
        self.logit_bias = logit_bias
        self.max_length = int(model.config.text_config.max_position_embeddings)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(list(texts[start : start + batch_size]), padding="max_length",
                                   max_length=self.max_length, truncation=True, return_tensors="pt")
            with torch.no_grad():
                features = self.model.get_text_features(**batch).pooler_output
            out.append(features.float().numpy())
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
    problems = {kind: sorted(info.get(kind, [])) for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if any(problems.values()):
        listed = "; ".join(f"{kind.replace('_', ' ')}: {', '.join(map(str, keys[:5]))}"
                           for kind, keys in problems.items() if keys)
        raise WeightsError(f"{label}: {folder} does not fit {type(model).__name__} ({listed})")
    bias = getattr(model, "logit_bias", None)
    with torch.no_grad():
        scale, shift = float(model.logit_scale.exp()), float(bias) if bias is not None else 0.0
    return TextTower(label, model, tokenizer, scale, shift)
