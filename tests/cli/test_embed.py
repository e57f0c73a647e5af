from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medprobe.cli.main import main
from medprobe.embed import read_table


def _args(manifest: Path, out: Path, *extra: str) -> list[str]:
    return ["embed", "--model", "handcrafted", "--manifest", str(manifest), "--out", str(out), "--modality", "mri",
            "--workers", "0", "--no-progress", *extra]


def test_embed_writes_the_table_the_evaluator_reads(volume_dataset, tmp_path: Path, capsys) -> None:
    manifest = volume_dataset(n=6)
    out = tmp_path / "out"
    assert main(_args(manifest, out, "--site", "north", "--precision", "fp32", "--option", "bins=16")) == 0
    printed = capsys.readouterr().out
    assert "6 computed, 0 cached, 0 skipped" in printed and "precision: fp32" in printed
    columns, embeddings, metadata = read_table(out / "embeddings.parquet")
    assert list(columns.columns) == ["sample_id", "subject_id", "site", "split", "label", "age"]
    assert columns["subject_id"].str.startswith("sub-").all() and columns["site"].eq("north").all()
    assert embeddings.dtype == np.float32 and embeddings.shape[0] == 6
    assert metadata["model"] == "handcrafted" and metadata["precision"] == "fp32" and metadata["preprocessing"]
    assert (out / "cache").is_dir() and not (out / "quarantine.csv").exists()

    assert main(_args(manifest, out, "--site", "north", "--precision", "fp32", "--option", "bins=16")) == 0
    assert "0 computed, 6 cached" in capsys.readouterr().out


def test_auto_precision_reports_the_calibration(volume_dataset, tmp_path: Path, capsys) -> None:
    assert main(_args(volume_dataset(n=2), tmp_path / "out", "--site", "s", "--device", "cpu")) == 0
    printed = capsys.readouterr().out
    assert "auto: bf16/fp32 mean cosine" in printed
    metadata = read_table(tmp_path / "out/embeddings.parquet")[2]
    assert metadata["precision_requested"] == "auto" and metadata["precision_calibration_cosine"] is not None


def test_skipped_inputs_exit_3_with_a_quarantine_report(volume_dataset, tmp_path: Path, capsys) -> None:
    manifest = volume_dataset(n=4)
    (manifest.parent / "vol002.nii.gz").write_text("not a volume")
    assert main(_args(manifest, tmp_path / "out", "--site", "s", "--precision", "fp32")) == 3
    assert "1 skipped" in capsys.readouterr().out
    report = pd.read_csv(tmp_path / "out/quarantine.csv")
    assert list(report["category"]) == ["corrupt-data"] and "path" not in report.columns
    local = pd.read_csv(tmp_path / "out/local-only/skipped-files.csv")
    assert local["path"].str.endswith("vol002.nii.gz").all() and len(local) == 1
    assert len(read_table(tmp_path / "out/embeddings.parquet")[0]) == 3


def test_site_column_selects_rows(volume_dataset, tmp_path: Path, capsys) -> None:
    manifest = volume_dataset(n=4)
    frame = pd.read_csv(manifest)
    frame["site"] = ["a", "b", "a", "b"]
    frame.to_csv(manifest, index=False)
    assert main(_args(manifest, tmp_path / "one", "--site", "a", "--precision", "fp32")) == 0
    assert read_table(tmp_path / "one/embeddings.parquet")[0]["site"].tolist() == ["a", "a"]
    assert main(_args(manifest, tmp_path / "all", "--precision", "fp32")) == 0
    assert read_table(tmp_path / "all/embeddings.parquet")[0]["site"].tolist() == ["a", "b", "a", "b"]
    capsys.readouterr()


@pytest.mark.parametrize("extra, message", [
    (("--option", "bins"), "KEY=VALUE"),
    (("--option", "colour=red", "--site", "s"), "unknown option"),
    ((), "--site"),
    (("--site", "nowhere", "--manifest", "missing.csv"), "not found"),
])
def test_user_errors_exit_2(volume_dataset, tmp_path: Path, capsys, extra, message) -> None:
    assert main(_args(volume_dataset(n=2), tmp_path / "out", *extra)) == 2
    assert message in capsys.readouterr().err


def test_bad_numbers_are_usage_errors(volume_dataset, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(_args(volume_dataset(n=2), tmp_path / "out", "--batch-size", "0"))
    assert stop.value.code == 2
    assert "at least 1" in capsys.readouterr().err


def test_embed_takes_the_preprocessing_of_a_job_spec(volume_dataset, write_spec, tmp_path: Path) -> None:
    """`--spec` gives `medprobe embed` the chain `medprobe run` uses; `--preprocessing` a block of its own."""
    manifest = volume_dataset(n=4)
    preprocessing = {"spacing": [2.0, 2.0, 2.0], "intensity": {"mode": "zscore"}, "size": [8, 8, 8]}
    spec = write_spec(manifest, data={"manifest": str(manifest), "modality": "ct", "preprocessing": preprocessing},
                      protocols={"linear": {"bootstrap": 0}})
    assert main(["run", str(spec), "--no-progress"]) in (0, 3)
    from_run = read_table(tmp_path / "work" / "embeddings" / "handcrafted.parquet")
    args = ["embed", "--model", "handcrafted", "--manifest", str(manifest), "--out", str(tmp_path / "out"),
            "--workers", "0", "--no-progress", "--site", "site-x", "--precision", "auto"]
    assert main([*args, "--spec", str(spec)]) == 0
    from_embed = read_table(tmp_path / "out" / "embeddings.parquet")
    assert from_embed[2]["preprocessing"] == from_run[2]["preprocessing"]
    assert from_embed[2]["modality"] == "ct"
    np.testing.assert_allclose(from_embed[1], from_run[1], rtol=1e-6)

    block = tmp_path / "prep.yaml"
    block.write_text("intensity: {mode: scale01}\nsize: [8, 8, 8]\n")
    assert main([*args, "--spec", str(spec), "--preprocessing", str(block), "--out", str(tmp_path / "out2")]) == 0
    steps = read_table(tmp_path / "out2" / "embeddings.parquet")[2]["preprocessing"]
    assert any(step.get("mode") == "scale01" for step in steps) and not any("spacing" in str(s) for s in steps)

    block.write_text("intensity: {mode: nonsense}\n")
    assert main([*args, "--preprocessing", str(block)]) == 2
