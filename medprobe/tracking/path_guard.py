"""The last line of defence before anything is logged: no local path, and no folder name of any manifest path,
may reach MLflow, the results bundle or a logged artifact.

Reasons and notes are scrubbed where they are made (`scrub_paths`: every path-like token becomes `<path>`); the
guard then checks every tag, parameter, run name and text artifact for any folder component of the job's manifest
paths (as written, made absolute, and with links resolved), so a patient's name in a folder can never leave the
site through a message nobody thought to scrub. A hit is refused and reported as a bug (`PathLeak`): the text is
not logged, and the message names where it was found but not what.

Components that are also public words of the job (site, pipeline, model and task names, label values, the
modality) and generic folder names are not looked for: they are logged by design and identify no one.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: Path-like tokens: anything with a slash or backslash in it, a home folder, or a file name with a medical-image
#: or data suffix (a reader may name a sibling file, such as the .img of an Analyze pair).
_PATH_TOKEN = re.compile(
    r"""(?:[A-Za-z]:)?(?:[^\s'"`<>|,;()\[\]{}]*[/\\][^\s'"`<>|,;()\[\]{}]*)"""
    r"""|~[^\s'"`]*"""
    r"""|[^\s'"`<>|,;()\[\]{}/\\]+\.(?:nii|nii\.gz|gz|img|hdr|dcm|dicom|mha|mhd|nrrd|nhdr|mgh|mgz|mnc|par|rec|"""
    r"""png|jpe?g|tiff?|bmp|npy|npz|h5|hdf5|csv|tsv|parquet|zip|raw)\b""",
    re.IGNORECASE,
)
_GENERIC = frozenset({
    "home", "data", "mnt", "tmp", "var", "opt", "srv", "media", "users", "user", "root", "work", "scratch",
    "shared", "share", "nfs", "project", "projects", "images", "image", "scans", "scan", "dicom", "nifti", "input",
    "inputs", "raw", "study", "studies", "series", "volumes", "files", "private", "public", "medprobe",
    # medprobe's own words, which its notes, parameters and tags use
    "train", "val", "test", "split", "splits", "rows", "all", "labelled", "none", "true", "false", "site", "sites",
    "model", "models", "task", "tasks", "job", "jobs", "protocol", "linear", "knn", "fewshot", "attentive",
    "transfer", "notes", "metrics", "plots", "predictions", "heads", "embeddings", "cache", "evaluation", "bundles",
    "classification", "regression", "label", "labels", "mri", "xray", "fundus", "photo", "other", "random-init",
})
_TEXT_SUFFIXES = frozenset({".csv", ".json", ".txt", ".html", ".yaml", ".yml", ".tsv", ".md"})
_WORD = "A-Za-z0-9"


def scrub_paths(text: str) -> str:
    """`text` with every path-like token replaced by `<path>`."""
    return _PATH_TOKEN.sub("<path>", text)


class PathLeak(Exception):
    """Text about to be logged holds a folder name of a manifest path; nothing was logged."""


class PathGuard:
    """Refuses text holding any of `components` as a word (not inside a longer name)."""

    def __init__(self, components: Iterable[str]) -> None:
        self.components = sorted({c for c in components if c}, key=len, reverse=True)
        escaped = "|".join(re.escape(c) for c in self.components)
        self._pattern = re.compile(rf"(?<![{_WORD}])(?:{escaped})(?![{_WORD}])", re.IGNORECASE) if escaped else None

    @classmethod
    def for_paths(cls, paths: Iterable[str | os.PathLike[str]], public: Iterable[str] = (),
                  folders: Iterable[str | os.PathLike[str]] = ()) -> PathGuard:
        """The folder components of the files `paths` and of the `folders` themselves (absolute, as the manifest
        reader resolves them, and with links resolved), less public and generic words, numbers, and names shorter
        than three characters."""
        allowed = {word.lower() for word in public} | _GENERIC
        dirs = [Path(path).parent for path in paths] + [Path(os.path.realpath(path)).parent for path in paths]
        dirs += [Path(folder) for folder in folders] + [Path(os.path.realpath(folder)) for folder in folders]
        components = {part for folder in dirs for part in folder.parts}
        return cls(c for c in components
                   if len(c) >= 3 and not c.isdigit() and c.lower() not in allowed and c not in (os.sep, "..", "."))

    def check(self, text: str, where: str) -> None:
        if self._pattern is not None and self._pattern.search(text):
            raise PathLeak(f"{where}: the text to be logged holds a folder name of a manifest path; it was not "
                           "logged. This is a bug in medprobe: please report it (the text stays on this machine)")

    def check_value(self, value: Any, where: str) -> None:
        """Every string value in `value` (a mapping's values and list items, recursively); keys are medprobe's
        own names, which a folder may share."""
        if isinstance(value, str):
            self.check(value, where)
        elif isinstance(value, dict):
            for item in value.values():
                self.check_value(item, where)
        elif isinstance(value, list | tuple | set):
            for item in value:
                self.check_value(item, where)
        elif value is not None and not isinstance(value, int | float | bool):
            self.check(str(value), where)

    def check_file(self, path: Path, where: str) -> None:
        """Text artifacts are read and checked (a table's cells, a JSON file's values); binary ones (figures,
        tensors) hold no text from the manifest."""
        suffix = path.suffix.lower()
        where = f"{where} ({path.name})"
        if suffix == ".json":
            self.check_value(json.loads(path.read_text(encoding="utf-8")), where)
        elif suffix in (".csv", ".tsv"):
            with path.open(newline="", encoding="utf-8", errors="replace") as handle:
                rows = list(csv.reader(handle, delimiter="\t" if suffix == ".tsv" else ","))
            self.check_value(rows[1:], where)
        elif suffix in _TEXT_SUFFIXES:
            self.check(path.read_text(encoding="utf-8", errors="replace"), where)
