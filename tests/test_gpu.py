"""The GPU paths (marked `gpu`: skipped without a CUDA device) and the GPU check script's answer on a machine
without one."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medprobe.embed.device import autocast
from medprobe.models import load_encoder
from medprobe.probes import evaluate_protocol

GPU_CHECK = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _probe_data(n: int = 600, dim: int = 64) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(n // 2), 2).astype(str)
    y = np.repeat(rng.integers(0, 3, n // 2), 2)
    X = (rng.normal(size=(n, dim)) + rng.normal(size=(3, dim))[y]).astype(np.float32)
    return X, y, subjects


@pytest.mark.gpu
def test_linear_probe_on_the_gpu_gives_the_cpu_numbers() -> None:
    X, y, subjects = _probe_data()
    cpu = evaluate_protocol("linear", {"bootstrap": 200}, X, y, "classification", subjects, device="cpu")
    gpu = evaluate_protocol("linear", {"bootstrap": 200}, X, y, "classification", subjects, device="cuda")
    assert gpu.params["C"] == cpu.params["C"]
    for name, value in cpu.metrics.items():
        assert gpu.metrics[name] == pytest.approx(value, abs=1e-3), name


@pytest.mark.gpu
def test_bf16_encoding_on_the_gpu_stays_close_to_fp32() -> None:
    encoder = load_encoder("dinov2_vits14", input_size=224).to(torch.device("cuda"))
    x = torch.randn(8, 3, 224, 224, device="cuda")
    with autocast("fp32", torch.device("cuda")):
        full = encoder.encode(x).float()
    with autocast("bf16", torch.device("cuda")):
        half = encoder.encode(x).float()
    centre = full.mean(0)
    cosine = torch.nn.functional.cosine_similarity(half - centre, full - centre).mean().item()
    assert cosine > 0.99


def test_gpu_check_says_in_one_line_that_there_is_no_cuda_device(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible: the script measures instead")
    monkeypatch.setattr(sys, "argv", [str(GPU_CHECK)])
    monkeypatch.syspath_prepend(str(GPU_CHECK.parent))
    with pytest.raises(SystemExit) as exit_code:
        runpy.run_path(str(GPU_CHECK), run_name="__main__")
    assert exit_code.value.code == 0
    out, err = capsys.readouterr()
    assert err == "" and out.strip().splitlines() == [
        "no CUDA device visible: nothing to measure (python benchmarks/gpu_check.py --device cpu --quick checks "
        "the script)"]


@pytest.mark.gpu
def test_a_spec_runs_its_probes_on_the_gpu(volume_dataset, write_spec) -> None:
    from medprobe.cli.main import main

    spec = write_spec(volume_dataset(n=12), probe_device="cuda")
    assert main(["run", str(spec), "--no-progress"]) == 0
