"""The calls a notebook needs, each a thin layer over what the commands use (no second implementation):

- `load_encoder(name, weights=None, **options)`: a zoo model, as `medprobe run` builds it;
- `embed_images(images, encoder, modality=...)`: vectors for files (any format the readers take) or arrays,
  through the same preprocessing chain as a site job;
- `read_table(path)`: an embedding table written by `medprobe run` or `medprobe embed`;
- `evaluate(table, target, ...)`: `medprobe.evaluation.evaluate_task`, the one evaluation function, with the
  spec's `analysis` (subgroups, label efficiency);
- `compare_models(evaluations, baselines)`: the paired model comparisons a site job writes to paired.csv;
- `compare(experiment, tracking_uri)`: the sites-side-by-side table of `medprobe compare`.

Nothing here changes global state: no torch seed, no environment variable, no matplotlib backend.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medprobe.errors import MedprobeError
from medprobe.evaluation.options import AnalysisOptions
from medprobe.evaluation.suite import EvaluationResult, ProtocolOptionsIn, evaluate_task
from medprobe.preprocess.options import Modality, Preprocessing, PreprocessOptions

if TYPE_CHECKING:  # torch loads on first use
    from medprobe.compare import ExperimentComparison
    from medprobe.io.image import MedicalImage
    from medprobe.models.encoder import Encoder

ImageInput = str | os.PathLike[str] | np.ndarray


def load_encoder(name: str, weights: str | os.PathLike[str] | None = None, **options: Any) -> Encoder:
    """A frozen zoo encoder (`medprobe models` lists the names; `timm:<name>` for any timm model). Without
    `weights` the network is random-init, a control, and `encoder.pretrained` says so."""
    from medprobe.models import load_encoder as build

    return build(name, None if weights is None else Path(weights), **options)


def embed_images(images: Sequence[ImageInput], encoder: Encoder | str, modality: Modality = "other",
                 preprocessing: Preprocessing | Mapping[str, Any] | None = None) -> np.ndarray:
    """(len(images), embed_dim) float32 vectors. An image is a file path, or a channel-first array — (X, Y) or
    (C, X, Y) for 2D, (C, X, Y, Z) for a volume — in physical units with 1 mm voxels. `encoder` is an encoder or
    a zoo name (random-init). Views of a volume seen by a 2D model are pooled as the preprocessing says."""
    import torch

    from medprobe.preprocess.chain import PreprocessChain

    if isinstance(encoder, str):
        encoder = load_encoder(encoder)
    steps = preprocessing if isinstance(preprocessing, Preprocessing) else Preprocessing(**(preprocessing or {}))
    chain = PreprocessChain(PreprocessOptions(modality=modality, preprocessing=steps), encoder.preprocessing)
    vectors = []
    with torch.inference_mode():
        for index, image in enumerate(images):
            views = chain(_medical_image(image, index), source=_name(image, index)).to(encoder.device)
            output = encoder.encode(views).float()
            pooled = output.mean(dim=0) if chain.aggregate == "mean" else output.max(dim=0).values
            vectors.append(pooled.cpu().numpy())
    return np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, encoder.embed_dim), np.float32)


def read_table(path: str | os.PathLike[str]) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """(columns without the embedding, (n, d) float32 embeddings, the table's metadata)."""
    from medprobe.embed.table import read_table as read

    return read(Path(path))


def evaluate(table: pd.DataFrame | str | os.PathLike[str], target: str, task_type: str = "classification",
             protocols: ProtocolOptionsIn | None = None, embeddings: np.ndarray | None = None, seed: int = 0,
             out_dir: str | os.PathLike[str] | None = None,
             analysis: AnalysisOptions | Mapping[str, Any] | None = None) -> EvaluationResult:
    """Every protocol on an embedding table for the label column `target`: a table file, or a frame with its
    `embeddings` (rows matching). `protocols`: names or name → options of registered protocols
    (`medprobe.probes.registry`); None runs its defaults, those on the pooled embeddings.
    With `out_dir`, the report (metrics.json, predictions, plots) is written there.
    `result.summary()` is one row per protocol and metric with its 95 % interval. `analysis` (the spec's
    `analysis:` section, e.g. `{"subgroups": {"columns": ["sex"]}, "label_efficiency": {}}`) adds
    `result.subgroups` and `result.label_efficiency`; `compare_models` compares two evaluations pairwise."""
    if isinstance(table, pd.DataFrame):
        if embeddings is None:
            raise MedprobeError("evaluate: give `embeddings` (one row per table row) with a DataFrame")
        frame, X = table, np.asarray(embeddings)
    else:
        frame, X, _ = read_table(table)
    options = analysis if isinstance(analysis, AnalysisOptions | None) else AnalysisOptions.model_validate(analysis)
    result = evaluate_task(frame, X, target, task_type, protocols, seed, analysis=options)
    if out_dir is not None:
        from medprobe.evaluation.report import write_report

        write_report(result, Path(out_dir))
    return result


def compare_models(evaluations: Mapping[str, EvaluationResult], baselines: Sequence[str] = (),
                   every_pair: bool = False, n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Paired comparisons of models evaluated on the same table rows (model → `evaluate(...)` result, one task):
    each model against each of `baselines`, or every pair; the columns of `paired.csv`, as a site job writes it."""
    from medprobe.evaluation.paired import compare_evaluations, comparison_pairs

    tasks = {result.target for result in evaluations.values()}
    if len(tasks) > 1:
        raise MedprobeError(f"compare_models: the evaluations are of different targets {sorted(tasks)}")
    pairs = comparison_pairs(list(evaluations), list(baselines), every_pair)
    if not pairs:
        raise MedprobeError("compare_models: name a baseline among the models, or pass every_pair=True")
    return compare_evaluations({tasks.pop(): dict(evaluations)}, pairs, n_resamples, seed).table


def compare_sites(experiment: str, tracking_uri: str) -> pd.DataFrame:
    """One row per site × model × task × protocol with its `test/*` metrics: the rows `medprobe compare` reads
    (`compare_experiment` gives every view it prints). Not called `compare`: that name is the `medprobe.compare`
    package, which replaces a function of that name as soon as it is imported."""
    return compare_experiment(experiment, tracking_uri).runs


def compare_experiment(experiment: str, tracking_uri: str) -> ExperimentComparison:
    """Every view `medprobe compare` prints (sites side by side, pooled, paired, robustness, transfer matrix), from
    the one function the CLI and the demo call."""
    from medprobe.compare import compare_experiment as compare_in_store
    from medprobe.tracking.reading import open_for_reading

    return compare_in_store(open_for_reading(tracking_uri), experiment)


def _medical_image(image: ImageInput, index: int) -> MedicalImage:
    from medprobe.io.image import MedicalImage
    from medprobe.io.readers import read_image

    if not isinstance(image, np.ndarray):
        return read_image(Path(image))
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        array = array[None]
    if array.ndim not in (3, 4):
        raise MedprobeError(f"image {index}: an array must be (X, Y), (C, X, Y) or (C, X, Y, Z); got {array.shape}")
    return MedicalImage(array=array, affine=np.eye(4), nominal_range=None)


def _name(image: ImageInput, index: int) -> str:
    return f"image {index}" if isinstance(image, np.ndarray) else str(image)
