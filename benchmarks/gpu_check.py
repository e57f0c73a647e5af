"""The GPU check: the figures that only a CUDA machine can give, in one command of a few minutes.

    python benchmarks/gpu_check.py [--device cuda] [--preset realistic] [--steps 10]

Section 1 (LDAE pretraining): time per optimiser step and peak GPU memory of both stages of an LDAE preset
(realistic: 1×128×160×128 volumes, bf16 autocast as `medprobe pretrain ldae` runs it) at batch sizes 1 and 2, on
random volumes; the first two steps warm up and are not timed. `--device cpu --preset tiny` runs the same code
path on a CPU (a check of the script, not a figure). Prints a table; exits 0 without a GPU after saying so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from medprobe.cli.formatting import aligned
from medprobe.models.ldae import LatentDiffusionAutoencoder, load_config
from medprobe.models.ldae.training import stage1_loss, stage2_loss, training_autocast

WARMUP = 2


def ldae_step_figures(preset: str, device: torch.device, batch_sizes: list[int], steps: int) -> list[list[str]]:
    config = load_config(preset)
    config = config.model_copy(update={"train": config.train.model_copy(update={"bf16": True})})
    rows = []
    for batch in batch_sizes:
        model = LatentDiffusionAutoencoder(config).to(device)
        x = torch.rand(batch, 1, *config.data.size, device=device)
        for stage, loss_fn, params in (
            (1, stage1_loss(model, config.train.kl_weight), list(model.autoencoder.parameters())),
            (2, stage2_loss(model, config), [*model.semantic.parameters(), *model.unet.parameters()]),
        ):
            optimizer = torch.optim.Adam(params, lr=1e-5)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            times = []
            for step in range(WARMUP + steps):
                start = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                with training_autocast(config, device):
                    loss, _ = loss_fn(x)
                loss.backward()
                optimizer.step()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if step >= WARMUP:
                    times.append(time.perf_counter() - start)
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
            rows.append([f"ldae {preset} stage {stage}", str(batch), f"{statistics.median(times):.3f}",
                         f"{peak:.1f}"])
            del optimizer
        del model, x
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--preset", default="realistic")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU visible: nothing to measure (use --device cpu --preset tiny to check the script)")
        return 0
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}; torch {torch.__version__}")
    rows = ldae_step_figures(args.preset, device, args.batch_sizes, args.steps)
    print(aligned(["what", "batch", "s/step (median)", "peak GiB"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
