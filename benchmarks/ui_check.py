"""Manual check: the MLflow UI shows an experiment's protocol runs grouped by site with the headline metrics as
columns (medprobe's saved view, `medprobe.tracking.ui_view`), and the comparison report's first screen. Not part
of CI (tests/tracking/test_ui.py runs it when chromium is installed).

Serves a tracking store (by default a fresh `medprobe demo` store) with `mlflow server` on 127.0.0.1, saves the
view, opens it in headless chromium, checks that each site's group and each metric column appear in the rendered
page, and saves a screenshot; with `--report PNG` also renders `medprobe compare`'s report.html and saves its
first screen. Prints what it found; exits 1 when a site or a column is missing from the page.

    python benchmarks/ui_check.py --out /tmp/medprobe_ui.png --report /tmp/medprobe_report.png
    python benchmarks/ui_check.py --db DIR/mlflow.db --experiment medprobe/demo-brain-mri --out ui.png
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1600,1000", "--virtual-time-budget=15000"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="SQLite tracking store (default: make a demo store)")
    parser.add_argument("--experiment", default="medprobe/demo-brain-mri")
    parser.add_argument("--sites", nargs="+", default=["site-a", "site-b"])
    parser.add_argument("--subjects", type=int, default=8, help="demo size when --db is not given")
    parser.add_argument("--metrics", nargs="+", default=["test/auroc"], help="metric columns the view must show")
    parser.add_argument("--out", type=Path, default=Path("medprobe_ui.png"), help="screenshot path")
    parser.add_argument("--report", type=Path, help="also screenshot the comparison report's first screen here")
    args = parser.parse_args()

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is not on PATH (Debian: apt-get install -y chromium); nothing checked")
        return 2
    work = Path(tempfile.mkdtemp(prefix="medprobe-ui-"))
    db = args.db or _demo_store(work / "demo", args.subjects)
    view = _save_view(db, args.experiment, [m.removeprefix("test/") for m in args.metrics])
    port = _free_port()
    server = _start_server(db, port, work)
    try:
        page = f"http://127.0.0.1:{port}/{view}"
        dom = _chromium(chromium, work, "--dump-dom", page)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        _chromium(chromium, work, f"--screenshot={args.out.resolve()}", page)
    finally:
        server.terminate()
        server.wait(timeout=20)
    found = {f"Group: {site}": dom.count(f"Group: {site}") for site in args.sites}
    found |= {column: dom.count(column) for column in args.metrics}
    print(f"store: {db}")
    print(f"page: {page}")
    for text, count in found.items():
        print(f"  {text}: {count} mention(s) in the rendered page")
    print(f"screenshot: {args.out.resolve()} ({args.out.stat().st_size if args.out.exists() else 0} bytes)")
    if args.report:
        report = _report(db, args.experiment, work / "comparison")
        _chromium(chromium, work, f"--screenshot={args.report.resolve()}", report.as_uri())
        print(f"report: {report} → first screen {args.report.resolve()}")
    missing = [text for text, count in found.items() if count == 0]
    if missing or not args.out.exists():
        print(f"MISSING from the runs page: {', '.join(missing) or 'the screenshot'}")
        return 1
    print("ok: the protocol runs are grouped by site with the metric columns shown")
    return 0


def _save_view(db: Path, experiment: str, metrics: list[str]) -> str:
    from medprobe.tracking import TrackingStore
    from medprobe.tracking.reading import find_experiment
    from medprobe.tracking.ui_view import save_sites_view

    store = TrackingStore(f"sqlite:///{db.resolve()}")
    return save_sites_view(store, find_experiment(store, experiment), metrics)


def _report(db: Path, experiment: str, out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "medprobe.cli.main", "compare", "--experiment", experiment,
                    "--tracking-uri", f"sqlite:///{db.resolve()}", "--out", str(out), "--no-log"], check=True,
                   stdout=subprocess.DEVNULL)
    return out / "report.html"


def _demo_store(out: Path, subjects: int) -> Path:
    subprocess.run([sys.executable, "-m", "medprobe.cli.main", "demo", "--out", str(out), "--subjects",
                    str(subjects), "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    return out / "mlflow.db"


def _start_server(db: Path, port: int, work: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", f"sqlite:///{db.resolve()}",
               "--artifacts-destination", str(db.resolve().parent / "mlartifacts"), "--workers", "1"]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    log = (work / "server.log").open("ab")
    process = subprocess.Popen(command, stdout=log, stderr=log, env=env)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except requests.RequestException:
            time.sleep(0.5)
    process.terminate()
    raise SystemExit(f"mlflow server did not start: {(work / 'server.log').read_text()[-2000:]}")


def _chromium(chromium: str, work: Path, action: str, page: str) -> str:
    profile = tempfile.mkdtemp(dir=work, prefix="chromium-")
    done = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", action, page],
                          capture_output=True, text=True, timeout=180)
    return done.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
