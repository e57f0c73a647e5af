"""The embedding diagnostics of a site job: what each model's embedding space looks like at this site, and how
alike the models' spaces are (`medprobe.evaluation.diagnostics`).

Written to `workdir/diagnostics/` (`diagnostics.csv`, `cka.csv`, `cka.png`, `<model>_projection.png`) and logged as
one run per job, `site · diagnostics`, tagged `medprobe.run_kind` = `diagnostics`, with metrics
`<model>/diagnostics/<name>` and `cka/<model>/<other model>`. The projections show only where the site's samples
fall, coloured by label and subgroup: no image, identifier or file name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from medprobe.compare.plots import grid_png
from medprobe.embed import EmbedResult
from medprobe.evaluation.diagnostics import cka_matrix, embedding_diagnostics, projection_colours, projection_figure
from medprobe.evaluation.options import SubgroupOptions
from medprobe.jobs.recording import JobRecorder
from medprobe.pipeline_spec.context import JobContext
from medprobe.pipeline_spec.pipeline import TaskSpec
from medprobe.tracking import naming
from medprobe.tracking.run_kinds import DIAGNOSTICS
from medprobe.transfer import FeatureSpace

#: Linear CKA is estimated on at most this many shared samples: ample for a similarity of two spaces.
CKA_SAMPLES = 5000


def diagnostics_step(context: JobContext, tasks: list[TaskSpec], subgroups: SubgroupOptions | None,
                     tables: list[tuple[FeatureSpace, EmbedResult]], recorder: JobRecorder,
                     say: Callable[[str], None]) -> pd.DataFrame:
    """One row per model: its diagnostics, the projections coloured by the `tasks`' labels and the `subgroups`'
    attributes. Models with no embedded sample are left out."""
    folder = context.paths.diagnostics
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*"):  # a re-run with other models must not leave the last run's figures behind
        if stale.is_file():
            stale.unlink()
    labels = {t.target: t.type for t in tasks}
    rows, files, vectors = [], [], {}
    priority: dict[str, int] = {}
    for space, embedded in tables:
        if len(embedded) == 0:
            continue
        X = embedded.embeddings()
        diagnostics = embedding_diagnostics(X)
        rows.append({"model": space.model, **{k.removeprefix("diagnostics/"): v
                                              for k, v in diagnostics.metrics().items()}})
        say(f"  diagnostics {space.model}: effective rank {diagnostics.effective_rank:.1f} of {diagnostics.dim}, "
            f"first component {diagnostics.variance_top.get(1, np.nan):.0%} of the variance"
            + (" — degenerate" if diagnostics.degenerate else ""))
        figure = projection_figure(X, projection_colours(embedded.frame, labels, subgroups),
                                   f"{context.site} · {space.model}: t-SNE of {len(X)} embeddings", seed=context.seed)
        if figure is not None:
            path = folder / f"{space.model}_projection.png"
            figure.savefig(path, dpi=90, bbox_inches="tight")
            files.append(path)
        sample_ids = embedded.frame["sample_id"].astype(str)
        priority = priority or _cka_priority(sample_ids, context.seed)
        vectors[space.model] = _cka_sample(X, sample_ids, priority)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table.to_csv(folder / "diagnostics.csv", index=False)
    files.insert(0, folder / "diagnostics.csv")
    cka = _cka(vectors, folder, files)
    _log(context, table, cka, files, recorder)
    return table


def _cka_priority(sample_ids: pd.Series, seed: int) -> dict[str, int]:
    """Each sample's rank in a permutation drawn from `seed` of the first model's rows (the manifest's order less
    that model's skips): the CKA subsample depends on the seed and the order of appearance, never on the salted
    sample ids' values, so two fresh workdirs (two salts) keep the same samples."""
    ranks = np.random.default_rng(seed).permutation(len(sample_ids))
    return dict(zip(sample_ids.tolist(), ranks.tolist(), strict=True))


def _cka_sample(X: np.ndarray, sample_ids: pd.Series, priority: dict[str, int]) -> pd.DataFrame:
    """At most `CKA_SAMPLES` rows, those first in `priority` (samples it lacks, which the first model skipped and so
    cannot share, come last), so every model keeps the same samples and the job never holds all models' full
    matrices at once."""
    if len(X) <= CKA_SAMPLES:
        return pd.DataFrame(X, index=sample_ids.to_numpy())
    keys = np.array([priority.get(s, len(priority)) for s in sample_ids])
    chosen = np.sort(np.argsort(keys, kind="stable")[:CKA_SAMPLES])
    return pd.DataFrame(X[chosen], index=sample_ids.to_numpy()[chosen])


def _cka(vectors: dict[str, pd.DataFrame], folder: Path, files: list[Path]) -> pd.DataFrame:
    """Linear CKA on the samples every model embedded (the models may have skipped different files), at most
    `CKA_SAMPLES` of them."""
    if len(vectors) < 2:
        return pd.DataFrame()
    common = set.intersection(*(set(v.index) for v in vectors.values()))
    shared = [s for s in next(iter(vectors.values())).index if s in common]  # in order of appearance
    if len(shared) < 3:
        return pd.DataFrame()
    matrix = cka_matrix({model: v.loc[shared].to_numpy() for model, v in vectors.items()})
    matrix.to_csv(folder / "cka.csv")
    (folder / "cka.png").write_bytes(grid_png(matrix, "linear CKA", f"linear CKA on {len(shared)} samples"))
    files += [folder / "cka.csv", folder / "cka.png"]
    return matrix


def _log(context: JobContext, table: pd.DataFrame, cka: pd.DataFrame, files: list[Path],
         recorder: JobRecorder) -> None:
    metrics = {f"{row['model']}/diagnostics/{name}": float(value) for row in table.to_dict("records")
               for name, value in row.items() if name != "model" and np.isfinite(value)}
    metrics |= {f"cka/{a}/{b}": float(cka.loc[a, b]) for a in cka.index for b in cka.columns
                if a != b and np.isfinite(cka.loc[a, b])}
    tags = {naming.SITE: context.site, naming.PIPELINE: context.pipeline}
    run = recorder.runs.start_run(DIAGNOSTICS, f"{context.site} · diagnostics", tags)
    recorder.runs.log(run, metrics=metrics)
    for path in files:
        recorder.runs.log_file(run, path, "diagnostics")
    recorder.runs.finish(run)
