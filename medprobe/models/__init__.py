"""Model zoo: frozen encoders behind one protocol, built by name from a registry, described by cards."""

from medprobe.models import (  # noqa: F401 - importing registers the builders
    biomedclip,
    brainiac,
    ctfm,
    dinobloom,
    dinov2,
    dinov3,
    flair,
    handcrafted,
    hf_zoo,
    ldae,
    medicalnet,
    merlin,
    monai3d,
    retfound,
)
from medprobe.models.cards import ModelCard
from medprobe.models.encoder import Encoder
from medprobe.models.registry import available_models, load_encoder, model_card, register_model

__all__ = ["Encoder", "ModelCard", "available_models", "load_encoder", "model_card", "register_model"]
