"""LDAE: a 3D latent diffusion autoencoder a site pretrains on its own unlabeled scans, then uses as the zoo
encoder `ldae` (after Lozupone et al., "Latent Diffusion Autoencoders", GabrieleLozupone/LDAE).

Importing this package registers `ldae`. Training: `pretrain_ldae` (CLI: `medprobe pretrain ldae`); the whole
trained network for reconstruction and interpolation: `load_trained_model`.
"""

from medprobe.models.ldae.config import LDAEConfig, load_config, realistic_config, small_config, tiny_config
from medprobe.models.ldae.encoder import LDAEEncoder, build_ldae, load_trained_model
from medprobe.models.ldae.interpolation import interpolate
from medprobe.models.ldae.networks import LatentDiffusionAutoencoder
from medprobe.models.ldae.pretrain import PretrainSummary, pretrain_ldae
from medprobe.models.ldae.reconstruction import ReconstructionReport, reconstruct, reconstruction_report

__all__ = [
    "LDAEConfig",
    "LDAEEncoder",
    "LatentDiffusionAutoencoder",
    "PretrainSummary",
    "ReconstructionReport",
    "build_ldae",
    "interpolate",
    "load_config",
    "load_trained_model",
    "pretrain_ldae",
    "realistic_config",
    "reconstruct",
    "reconstruction_report",
    "small_config",
    "tiny_config",
]
