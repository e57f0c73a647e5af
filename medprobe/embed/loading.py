"""Reading and preprocessing samples, in worker processes, turning every failure into a reason."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from medprobe.errors import ReadError
from medprobe.io import read_image
from medprobe.preprocess import PreprocessChain
from medprobe.privacy.skip_reasons import SkipReason


@dataclass
class LoadedSample:
    position: int
    views: torch.Tensor | None
    cause: SkipReason | None = None


class SampleDataset(Dataset[LoadedSample]):
    """One item per pending manifest row. A bad file yields a `SkipReason` instead of raising: a batch over
    10,000 studies must not die on file 7,312. Its category may leave the site; its detail (the library's message,
    which may quote file names or header values) stays in the workdir's local log."""

    def __init__(self, paths: list[str], positions: list[int], modality: str, chain: PreprocessChain,
                 series: Mapping[int, str] | None = None) -> None:
        """`series` maps a row position to the series it selects in a DICOM study folder."""
        self.paths = paths
        self.positions = positions
        self.modality = modality
        self.chain = chain
        self.series = dict(series or {})

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> LoadedSample:
        path = self.paths[index]
        position = self.positions[index]
        try:
            image = read_image(path, self.modality, series_uid=self.series.get(position))
            views = self.chain(image, source=path)
            if not torch.isfinite(views).all():
                raise ReadError(path, "preprocessing produced non-finite values", "not-finite")
            return LoadedSample(position, views)
        except ReadError as exc:
            return LoadedSample(position, None, SkipReason(exc.category, exc.reason))
        except Exception as exc:  # noqa: BLE001 - any failure on one file is quarantined, never fatal
            return LoadedSample(position, None, SkipReason("unexpected-error", f"{type(exc).__name__}: {exc}"))


def collate_samples(items: list[LoadedSample]) -> list[LoadedSample]:
    return items
