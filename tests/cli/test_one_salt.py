"""One salt per site, found the same way by every command: `run SPEC`, `embed --spec SPEC` and `validate --spec SPEC`
give the same pseudonyms with no $MEDPROBE_SUBJECT_SALT (the salt is the spec workdir's subject-salt.txt)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from medprobe.cli.main import main
from medprobe.embed.pseudonyms import SALT_ENV, SALT_FILE, command_salt
from medprobe.embed.table import read_table


def _leaking_copy(manifest: Path) -> Path:
    """The manifest with one subject in both train and test, so `validate` shows its pseudonym (a job refuses it)."""
    frame = pd.read_csv(manifest)
    frame.loc[0, "split"], frame.loc[1, "split"] = "train", "test"  # rows 0 and 1 are subject S0000
    copy = manifest.with_name("leaking.csv")
    frame.to_csv(copy, index=False)
    return copy


def test_run_embed_spec_and_validate_give_the_same_pseudonyms_without_the_environment_salt(
        volume_dataset, write_spec, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv(SALT_ENV, raising=False)
    manifest = volume_dataset(n=12)
    spec = write_spec(manifest, protocols={"linear": {"bootstrap": 0}})

    assert main(["validate", str(_leaking_copy(manifest)), "--spec", str(spec), "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    leaking = [d for leak in report["leakage"] for d in leak["details"]]
    assert [d["subject_id"] for d in leaking] == ["S0000"]

    assert main(["run", str(spec), "--no-progress", "--offline"]) == 0  # offline: the runs go to the bundle only
    ran, _, _ = read_table(tmp_path / "work" / "embeddings" / "handcrafted.parquet")

    out = tmp_path / "embedded"  # another folder: the salt is still the spec's, not OUT's
    assert main(["embed", "--spec", str(spec), "--manifest", str(manifest), "--model", "handcrafted",
                 "--out", str(out), "--no-progress"]) == 0
    embedded, _, _ = read_table(out / "embeddings.parquet")

    assert len(ran) == 12 and ran["sample_id"].str.startswith("smp-").all()
    assert ran["sample_id"].tolist() == embedded["sample_id"].tolist()
    assert ran["subject_id"].tolist() == embedded["subject_id"].tolist()
    assert set(embedded["site"]) == {"site-x"}  # embed --spec takes the site from the spec
    assert leaking[0]["pseudonym"] == ran["subject_id"].iloc[0]  # validate's hash is the job's pseudonym
    assert not (out / SALT_FILE).exists() and (tmp_path / "work" / SALT_FILE).exists()


def test_embed_without_a_spec_keeps_the_salt_in_its_output_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(SALT_ENV, raising=False)
    assert command_salt(None, tmp_path / "out") == (tmp_path / "out" / SALT_FILE).read_text().encode()
    assert command_salt(tmp_path / "work", tmp_path / "out") == (tmp_path / "work" / SALT_FILE).read_bytes()
    assert command_salt() is None  # no workdir (validate without --spec): the caller uses a one-off salt
    monkeypatch.setenv(SALT_ENV, "an-environment-salt")
    assert command_salt(tmp_path / "work", tmp_path / "out") == b"an-environment-salt"


def test_embed_refuses_a_site_other_than_the_specs(volume_dataset, write_spec, tmp_path: Path, capsys) -> None:
    spec = write_spec(volume_dataset(n=4))
    assert main(["embed", "--spec", str(spec), "--model", "handcrafted", "--out", str(tmp_path / "o"),
                 "--site", "elsewhere"]) == 2
    assert "differs from the --spec's site 'site-x'" in capsys.readouterr().err
