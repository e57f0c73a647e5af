"""Random weights for parity tests: every float tensor drawn, batch-norm variances kept positive (so eval mode is
not the identity), counters left as they are."""

from __future__ import annotations

import torch


def random_state(module: torch.nn.Module, seed: int, scale: float) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in module.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = value
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=generator)
        else:
            state[key] = scale * torch.randn(value.shape, generator=generator)
    return state
