"""Importing medprobe changes nothing global; a spec error answers without importing torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

#: The libraries themselves set a few variables when imported (sklearn's KMP_*, mlflow's telemetry session, timm's
#: inductor cache); they are imported first, so that only what medprobe's own modules do is measured.
CHECK_IMPORT = """
import os, sys, torch, matplotlib, mlflow, sklearn, timm, monai
seed, environment, backend = torch.initial_seed(), dict(os.environ), matplotlib.get_backend()
import medprobe
assert dict(os.environ) == environment, "import medprobe changed the environment"
import medprobe.api, medprobe.evaluation.report, medprobe.compare, medprobe.tracking.recorder, medprobe.models
assert torch.initial_seed() == seed, "torch seed changed"
changed = {k for k in set(os.environ) | set(environment) if os.environ.get(k) != environment.get(k)}
assert not changed, f"environment changed: {sorted(changed)}"
assert matplotlib.get_backend() == backend, "matplotlib backend switched"
"""


@pytest.mark.slow
def test_importing_medprobe_changes_no_global_state() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK_IMPORT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_plain_import_loads_no_heavy_library() -> None:
    code = "import sys, medprobe; print(sorted(m for m in ('torch', 'mlflow', 'matplotlib') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr[-2000:]


def test_a_spec_error_answers_without_torch(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\nsite: a\ndata: {manifest: m.csv, modality: mri}\nmodels: [{name: handcrafted}]\n"
                    "tasks: [{name: t, target: y}]\nprotocols: {linear: {folds: 1}}\ntypo: 1\n")
    code = ("import sys\nfrom medprobe.cli.main import main\n"
            f"code = main(['run', {str(spec)!r}, '--dry-run'])\n"
            "print(code, 'torch' in sys.modules, 'mlflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["2", "False", "False"], done.stderr[-2000:]
    assert "unknown key 'typo'" in done.stderr and "'protocols.linear.folds'" in done.stderr


def test_every_lazy_export_resolves() -> None:
    """Each package's `__all__` names something its lazy `__getattr__` can load."""
    import importlib

    for package in ("medprobe", "medprobe.embed", "medprobe.evaluation", "medprobe.federated", "medprobe.io",
                    "medprobe.jobs", "medprobe.preprocess", "medprobe.probes", "medprobe.tracking"):
        module = importlib.import_module(package)
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{package}.{name}"
