"""Probe heads published to, and fetched from, a real `mlflow server` (artifacts proxied over HTTP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medprobe.cli.main import main
from tests.transfer.sites import runs_of_kind, site_spec

NO_INTERVALS = {"linear": {"bootstrap": 0}}  # this test counts and names transfer runs; it reads no interval


@pytest.mark.slow
def test_a_site_scores_a_head_fetched_from_the_server(tmp_path: Path, volume_dataset, write_spec, mlflow_server,
                                                      capsys) -> None:
    site_a = site_spec(tmp_path, volume_dataset, write_spec, "site-a", mlflow_server.uri, protocols=NO_INTERVALS)
    site_b = site_spec(tmp_path, volume_dataset, write_spec, "site-b", mlflow_server.uri, protocols=NO_INTERVALS)
    assert main(["run", str(site_a), "--no-progress"]) == 0
    assert main(["run", str(site_b), "--no-progress"]) == 0
    assert main(["transfer", str(site_a)]) == 0
    printed = capsys.readouterr().out
    assert "transfer site-a → site-b handcrafted/lesion" in printed
    assert "transfer site-b → site-a handcrafted/lesion" in printed
    assert len(runs_of_kind(mlflow_server.uri, "transfer")) == 2
