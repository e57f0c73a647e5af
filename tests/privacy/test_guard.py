"""The guard: exact in both directions, and it never raises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medprobe.privacy.guard import WITHHELD, PathGuard
from medprobe.privacy.vocabulary import template_words
from medprobe.privacy.words import word_parts


@pytest.mark.parametrize(("name", "parts"), [
    ("SMITH ANN  19600102", ["smith", "ann", "19600102"]),
    ("X.Smith^Ann_1960-01-02", ["x", "smith", "ann", "1960", "01", "02"]),
    ("SmithAnn", ["smith", "ann"]),
    ("HTMLReport", ["html", "report"]),
    ("Mu\u0308ller", ["müller"]),  # NFD in, NFC out
    ("ÉLODIEDurand", ["élodie", "durand"]),
    (".hidden_case", ["hidden", "case"]),
])
def test_word_parts(name: str, parts: list[str]) -> None:
    assert word_parts(name) == parts


def test_a_file_name_and_the_parts_of_a_spaced_folder_are_looked_for() -> None:
    guard = PathGuard.for_paths(["/data/SMITH ANN  19600102/X.Smith^Ann_1960-01-02", "/data/site-a/y.nii.gz"],
                                public=["site-a"])
    for leaking in ("unsupported file type '.smith^ann_1960-01-02'", "TIFF error in ann", "id 19600102",
                    "patient Smith", "born 1960"):
        assert guard.leaks(leaking), leaking
    for clean in ("auroc 0.91 at site-a; 3 rows left out", "unknown-format: the file name has no suffix",
                  "p = 0.19600102", "smp-1960010219600102 sub-0123456789abcdef", "196 samples"):
        assert not guard.leaks(clean), clean


def test_public_words_are_not_hits() -> None:
    """A folder named like a word of a job name, a card, a template or an artefact is not looked for."""
    paths = ["/srv/demo/dcm/audit/lesion/robust/a.nii.gz"]
    guard = PathGuard.for_paths(paths, public=["dcm-ct", "audit-2026"])
    assert "demo" in template_words() and "lesion" in template_words() and "robust" in template_words()
    assert guard.parts == frozenset({"srv"} - template_words())
    assert not guard.leaks("medprobe/demo-brain-mri · dcm-ct · lesion · robustness · audit")


def test_unicode_forms_match() -> None:
    guard = PathGuard.for_paths(["/x/Mu\u0308ller/a.dcm"])  # decomposed on disk
    assert guard.leaks("reader said M\u00fcller")  # composed in a message
    assert guard.leaks("MÜLLER")


def test_a_hit_withholds_the_value_and_counts_it(tmp_path: Path) -> None:
    guard = PathGuard.for_paths(["/data/DOE^JOHN/x.nii.gz"])
    assert guard.text("fine") == "fine" and guard.withheld == 0
    assert guard.text("doe^john is broken") == WITHHELD and guard.withheld == 1
    payload = guard.value({"a": "ok", "b": ["John", 3, 0.5, None], "doe-key": "x"})
    assert payload == {"a": "ok", "b": [WITHHELD, 3, 0.5, None]} and guard.withheld == 3
    assert guard.lines("line one\nJohn Doe\nline three\n") == f"line one\n{WITHHELD}\nline three\n"
    table = tmp_path / "t.csv"
    table.write_text("sample_id,reason,p\nsmp-0123456789abcdef,doe,0.5\n", encoding="utf-8")
    assert guard.file(table) == f"sample_id,reason,p\nsmp-0123456789abcdef,{WITHHELD},0.5\n".encode()
    clean = tmp_path / "c.json"
    clean.write_text(json.dumps({"ok": "fine"}), encoding="utf-8")
    assert guard.file(clean) is None  # nothing leaks: the file is logged as it is
