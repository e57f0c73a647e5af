"""The air-gapped install of README "Install at an air-gapped site", run end to end on this machine (as root):

connected side   `pip wheel` of medprobe and every dependency into a wheelhouse; a model's files fetched with
                 `medprobe models fetch` (from a loopback stand-in for the Hugging Face hub, tests/loopback_hub.py);
far side         a network namespace with no interface but loopback, this machine's package indexes hidden and pip's
                 configuration off: a fresh venv, `pip install --no-index --find-links WHEELHOUSE medprobe`,
                 `medprobe models verify` on the carried weights (and again after one byte of them is flipped: it
                 must refuse), and `medprobe demo --subjects 8`.

Prints each step's time and the sizes (wheelhouse, venv, weights); exit 0 only when every step did what it must.
    python docker/airgap_check.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from tests.loopback_hub import LoopbackHub  # noqa: E402 - the repository's own test helper

#: This machine's on-disk package indexes and pip settings: hidden on the far side, so that only the wheelhouse
#: can satisfy the install.
HIDDEN = ("/opt/pypi", "/opt/pypi-more", "/opt/wheels", "/etc/xdg/pip", "/root/.cache/pip")
REPO = "medprobe-airgap/tiny-model"


def size(path: Path) -> str:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return f"{total / 1e9:.2f} GB" if total > 1e8 else f"{total / 1e3:.1f} kB"


def run(command: list[str], env: dict[str, str] | None = None, expect: int = 0) -> str:
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != expect:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"airgap: {' '.join(command[:4])} ... exited {done.returncode}, expected {expect}")
    return done.stdout


def weights_files() -> dict[str, bytes]:
    import numpy as np
    from safetensors.numpy import save

    rng = np.random.default_rng(0)
    return {"config.json": json.dumps({"model_type": "tiny", "hidden_size": 8}).encode(),
            "model.safetensors": save({"weight": rng.standard_normal((8, 8)).astype(np.float32)})}


def fetch_weights(to: Path) -> Path:
    medprobe = str(Path(sys.executable).with_name("medprobe"))
    with LoopbackHub() as hub:
        hub.add_commit(REPO, weights_files(), lfs={"model.safetensors"})
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(to / ".hf-home"),
               "NO_PROXY": "127.0.0.1,localhost", "HF_HUB_DISABLE_TELEMETRY": "1"}
        run([medprobe, "models", "fetch", f"hf:{REPO}", "--to", str(to)], env)
    shutil.rmtree(to / ".hf-home", ignore_errors=True)
    return to / REPO.replace("/", "--")


def far_side(script: str, folder: Path) -> str:
    """`script` (sh) in a new network and mount namespace: loopback only, the package indexes hidden."""
    hide = "".join(f"[ -e {p} ] && mount -t tmpfs none {p}; " for p in HIDDEN)  # fixed paths, no quoting needed
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(folder), "PIP_CONFIG_FILE": os.devnull,
           "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "LANG": "C.UTF-8"}
    return run(["unshare", "--net", "--mount", "--fork", "sh", "-ec", f"ip link set lo up 2>/dev/null || true; "
                f"{hide}{script}"], env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("airgap: run as root (the far side is a network namespace made with unshare)")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="medprobe-airgap-", dir="/var/tmp"))
    folder.mkdir(parents=True, exist_ok=True)
    times: list[tuple[str, float]] = []
    started = time.monotonic()

    def lap(name: str) -> None:
        nonlocal started
        now = time.monotonic()
        times.append((name, now - started))
        started = now
        print(f"== {name}: {times[-1][1]:.0f} s", flush=True)

    try:
        wheelhouse, weights = folder / "wheelhouse", folder / "weights"
        run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheelhouse), str(REPOSITORY)])
        lap("connected: pip wheel (medprobe and its dependencies)")
        model = fetch_weights(weights)
        lap("connected: medprobe models fetch")

        venv, demo = folder / "venv", folder / "demo"
        python = Path(sys.executable).resolve()  # the interpreter behind this venv
        q = shlex.quote
        far_side(f"! {q(str(python))} -c \"import socket; socket.create_connection(('pypi.org', 443), timeout=5)\" "
                 "2>/dev/null", folder)
        far_side(f"{q(str(python))} -m venv {q(str(venv))} && {q(str(venv / 'bin' / 'pip'))} install --quiet "
                 f"--no-index --find-links {q(str(wheelhouse))} medprobe", folder)
        lap("far side: pip install --no-index (no network)")
        medprobe = q(str(venv / "bin" / "medprobe"))
        far_side(f"{medprobe} models verify {q(str(model))}", folder)
        damaged = model / "model.safetensors"
        data = bytearray(damaged.read_bytes())
        data[-1] ^= 0xFF
        damaged.write_bytes(bytes(data))
        errors = q(str(folder / "verify.err"))
        far_side(f"! {medprobe} models verify {q(str(model))} 2>{errors}; grep -q model.safetensors {errors}", folder)
        lap("far side: medprobe models verify (and a flipped byte refused)")
        far_side(f"{medprobe} demo --subjects 8 --no-progress --out {q(str(demo))}", folder)
        lap("far side: medprobe demo --subjects 8 (no network)")
        print("\nstep times")
        for name, seconds in times:
            print(f"  {name:<62} {seconds:6.0f} s")
        print("sizes")
        wheels = len(list(wheelhouse.glob("*.whl")))
        print(f"  wheelhouse ({wheels} wheels)   {size(wheelhouse)}\n  venv on the far side   {size(venv)}\n"
              f"  fetched weights         {size(model)}")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
