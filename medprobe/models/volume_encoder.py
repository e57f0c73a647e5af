"""The plumbing every 3D zoo encoder shares: one channel, a cube of `input_size` voxels, no normalisation of its own
(the chain's intensity step scales the volume: the authors' window from the card's `authors_preprocessing` unless
the spec sets one), and the options its fingerprint records."""

from __future__ import annotations

from typing import Any

import torch

from medprobe.errors import MedprobeError
from medprobe.models.cards import authors_defaults, load_card
from medprobe.models.encoder import TorchEncoder
from medprobe.preprocess.input_spec import InputSpec


class CubeEncoder(TorchEncoder):
    """A frozen 3D network fed (B, 1, S, S, S) volumes, S = `input_size`."""

    def __init__(self, name: str, module: torch.nn.Module, input_size: int, options: dict[str, Any],
                 weights_sha256: str | None, seed: int) -> None:
        super().__init__(module)
        self.name = name
        self.input_size = input_size
        self.preprocessing = InputSpec(3, (input_size,) * 3, 1, None, None, "trilinear",
                                       authors_defaults(load_card(name)))
        self.weights_sha256 = weights_sha256
        self.options = {"input_size": input_size, **options}
        if weights_sha256 is None:
            self.options["init_seed"] = seed

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != 1 or tuple(x.shape[2:]) != (self.input_size,) * 3:
            side = self.input_size
            raise MedprobeError(
                f"model '{self.name}' was built for (B, 1, {side}, {side}, {side}) inputs, got {tuple(x.shape)}; "
                "set its option input_size to the size you feed it"
            )
