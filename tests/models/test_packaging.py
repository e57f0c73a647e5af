"""The model cards ship in the wheel: build it (through an sdist, as `python -m build` does), install it outside
the checkout, and read a card from there. Also the editable install, the missing-card error, and the compose file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from medprobe.errors import MedprobeError
from medprobe.models import cards

ROOT = Path(__file__).resolve().parents[2]
#: What a build reads; copied so that the test never writes build/ or *.egg-info into the checkout.
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "medprobe", "model_zoo")

# medprobe/models/__init__.py imports every encoder (torch, timm, MONAI: ~10 s); the cards module needs none.
PROBE = r"""
import json, sys, types
from pathlib import Path
import medprobe
models = types.ModuleType("medprobe.models")
models.__path__ = [str(Path(medprobe.__file__).parent / "models")]
sys.modules["medprobe.models"] = models
from medprobe.models import cards
card = cards.load_card("dinov2_vits14")
print(json.dumps({"medprobe": medprobe.__file__, "cards": cards.__file__, "zoo": [str(d) for d in cards.zoo_dirs()],
                  "embed_dim": card.embed_dim, "checkpoint_file": card.checkpoint_file}))
"""


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", cards.ZOO_ENV)}
    return {**env, **extra}


def source_copy(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    return src


def build_hook(hook: str, out: Path, src: Path) -> Path:
    """Call a PEP 517/660 hook of setuptools' backend in `src`, as a frontend without isolation does."""
    code = f"from setuptools import build_meta as b; print(b.{hook}({str(out)!r}))"
    return out / run([sys.executable, "-c", code], cwd=src).strip().splitlines()[-1]


def pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-cache-dir", *args]


def can_build_offline() -> bool:
    """pyproject's build requirement: setuptools with bdist_wheel built in (70.1+), here, as nothing is fetched."""
    try:
        from setuptools.command import bdist_wheel  # noqa: F401 - only whether it exists
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """sdist → wheel → `pip install --target site`, all offline and without build isolation."""
    if not can_build_offline():
        pytest.skip("needs setuptools>=70.1 in this environment (the build runs offline, without isolation)")
    tmp = tmp_path_factory.mktemp("packaging")
    src, dist = source_copy(tmp), tmp / "dist"
    sdist = build_hook("build_sdist", dist, src)
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp / "unpacked", filter="data")
    unpacked = tmp / "unpacked" / sdist.name.removesuffix(".tar.gz")
    run(pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(unpacked)), cwd=tmp)
    (wheel,) = dist.glob("medprobe-*.whl")
    site = tmp / "site"
    run(pip("install", "--no-deps", "--no-index", "--target", str(site), str(wheel)), cwd=tmp)
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return {"wheel": wheel, "site": site, "cwd": elsewhere, "src": src, "tmp": tmp}


def test_wheel_ships_every_card(installed: dict[str, Path]) -> None:
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    zoo = ROOT / "model_zoo"
    expected = {f"medprobe/{cards.PACKAGED_ZOO}/{p.parent.name}/card.yaml" for p in zoo.glob("*/card.yaml")}
    assert expected and expected <= set(names)
    assert "medprobe/py.typed" in names


def test_installed_wheel_reads_its_own_cards(installed: dict[str, Path]) -> None:
    site = installed["site"]
    out = run([sys.executable, "-c", PROBE], cwd=installed["cwd"], env=clean_env(PYTHONPATH=str(site)))
    got = json.loads(out)
    assert Path(got["medprobe"]).is_relative_to(site) and Path(got["cards"]).is_relative_to(site)
    assert got["zoo"] == [str(site / "medprobe" / cards.PACKAGED_ZOO)]  # not the checkout's model_zoo/
    assert got["embed_dim"] == 384
    assert got["checkpoint_file"] == "dinov2_vits14_pretrain.pth"


def test_editable_install_reads_the_checkout(installed: dict[str, Path]) -> None:
    """PEP 660 (`pip install -e .`): nothing is copied; cards come from the checkout's model_zoo/."""
    src, tmp = installed["src"], installed["tmp"]
    wheel = build_hook("build_editable", tmp / "editable", src)
    assert not any(cards.PACKAGED_ZOO in n for n in zipfile.ZipFile(wheel).namelist())
    site = tmp / "editable-site"
    run(pip("install", "--no-deps", "--no-index", "--target", str(site), str(wheel)), cwd=tmp)
    # -S: leave out the venv's own .pth files (its editable finder for this checkout); keep its packages (yaml).
    venv_site = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    # The editable site first: its finder module has the same name as the venv's.
    prelude = f"import site, sys; site.addsitedir({str(site)!r}); sys.path.append({venv_site!r})\n"
    got = json.loads(run([sys.executable, "-S", "-c", prelude + PROBE], cwd=installed["cwd"], env=clean_env()))
    assert Path(got["medprobe"]).is_relative_to(src)
    assert got["zoo"] == [str(src / "model_zoo")]
    assert got["embed_dim"] == 384


@pytest.mark.slow
def test_models_command_from_the_wheel(installed: dict[str, Path]) -> None:
    """What a user of a non-editable install sees: real dimensions, not 'dim 0'."""
    site = installed["site"]
    out = run([sys.executable, "-c", "import sys; from medprobe.cli.main import main; sys.exit(main(['models']))"],
              cwd=installed["cwd"], env=clean_env(PYTHONPATH=str(site)))
    lines: dict[str, str] = {}
    for line in out.splitlines():  # a model's row of every block of the table, in one line
        if line.strip():
            lines[line.split()[0]] = f"{lines.get(line.split()[0], '')} {line}"
    assert lines["dinov2_vits14"].split()[1] == "384"
    assert "dinov2_vits14_pretrain.pth" in lines["dinov2_vits14"]
    assert " dim 0 " not in out


def test_missing_card_is_an_error_not_a_blank_card(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cards, "zoo_dirs", lambda: [tmp_path])
    cards.load_card.cache_clear()
    try:
        with pytest.raises(MedprobeError, match=r"no model card for 'dinov2_vits14'.*MEDPROBE_MODEL_ZOO"):
            cards.load_card("dinov2_vits14")
    finally:
        cards.load_card.cache_clear()


def test_zoo_override_comes_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    own = tmp_path / "dinov2_vits14"
    own.mkdir()
    card = yaml.safe_load((ROOT / "model_zoo" / "dinov2_vits14" / "card.yaml").read_text(encoding="utf-8"))
    (own / "card.yaml").write_text(yaml.safe_dump({**card, "sha256": "ab" * 32}), encoding="utf-8")
    monkeypatch.setenv(cards.ZOO_ENV, str(tmp_path))
    cards.load_card.cache_clear()
    try:
        assert cards.load_card("dinov2_vits14").sha256 == "ab" * 32
        assert cards.load_card("handcrafted").embed_dim > 0  # not in the override: the shipped card
        monkeypatch.setenv(cards.ZOO_ENV, str(tmp_path / "nowhere"))
        with pytest.raises(MedprobeError, match="is not a folder"):
            cards.zoo_dirs()
    finally:
        cards.load_card.cache_clear()


def test_compose_file_needs_no_health_gates_and_keeps_secrets_in_files() -> None:
    """podman-compose ignores health-gated `depends_on`: the server waits for its database and the site job for
    the server, each with a deadline; the health check covers the database; no secret is written in the file or
    passed as a value (files under /run/secrets, or a variable taken from the environment compose runs in)."""
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert not any("depends_on" in service for service in services.values())
    mlflow, job = services["mlflow"]["environment"], services["site-job"]["environment"]
    assert float(mlflow["MLFLOW_DB_WAIT_S"]) > 0 and float(job["MEDPROBE_TRACKING_WAIT_S"]) > 0
    assert services["mlflow"]["healthcheck"]["test"][-2:] == ["/opt/tracking/serve_tracking.py", "--check"]
    assert job["MLFLOW_TRACKING_URI"].startswith("https://") and mlflow["MLFLOW_AUTH_APP"] == "medprobe-sites"
    for name, service in services.items():
        for key, value in service.get("environment", {}).items():
            if any(word in key for word in ("PASSWORD", "SECRET", "KEY")):
                assert value is None or str(value).startswith("/run/secrets/"), (name, key)
        assert not any("password" in str(argument).lower() for argument in service.get("command", [])), name
    shared = set(services["mlflow"]["networks"]) & set(services["site-job"]["networks"])
    assert shared and all(n in compose["networks"] for n in shared)
    assert not set(services["postgres"].get("networks", ["default"])) & shared  # the jobs never reach the database
