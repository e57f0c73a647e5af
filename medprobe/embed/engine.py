"""The embedding engine: manifest rows → cached vectors → an embedding table, resumable at any point.

Memory stays bounded by design: the DataLoader keeps about one batch of samples in flight, vectors go
to a cache shard every `shard_samples` samples, and the table is assembled from the shards one row group at a
time. What grows with the manifest is one key and one row of plain columns per sample.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from medprobe.embed.cache import ShardCache, cache_key, file_digest
from medprobe.embed.device import FAITHFUL_COSINE, autocast, bf16_cosine, resolve_precision
from medprobe.embed.distributed import Ranks, process_group
from medprobe.embed.duplicates import duplicate_images
from medprobe.embed.files import atomic_write
from medprobe.embed.integrity import ShardUnusable
from medprobe.embed.loading import LoadedSample, SampleDataset, collate_samples
from medprobe.embed.pseudonyms import pseudonym
from medprobe.embed.table import read_embeddings, read_metadata, write_table_chunks
from medprobe.embed.tokens import TOKENS_METADATA_KEY, TokenCache, read_tokens, tokens_path, write_tokens
from medprobe.errors import ManifestError, MedprobeError
from medprobe.interrupts import critical
from medprobe.io.dicom_header import uid_digest
from medprobe.io.regular import NotARegularFile
from medprobe.models import Encoder
from medprobe.preprocess import PreprocessChain
from medprobe.privacy.skip_reasons import SkipReason

log = logging.getLogger("medprobe.embed")

#: Environment variable overriding the samples per cache shard (tests use a few, to see shards appear early).
SHARD_SAMPLES_ENV = "MEDPROBE_SHARD_SAMPLES"
#: Samples per cache shard: small enough that a kill loses little, large enough to keep file counts sane.
SHARD_SAMPLES = 256
#: Fewest samples each DataLoader worker prepares ahead of the model (see `_prefetch_factor`).
PREFETCH = 2
#: Rows per row group of the table, i.e. vectors held in memory while the table is written.
TABLE_ROWS = 4096
#: Samples embedded both ways to decide whether bf16 is faithful on a CPU.
CALIBRATION_SAMPLES = 4
#: Passes over the manifest: the first computes what the cache lacks; a damaged cache shard found while writing
#: the table costs one more pass (every damaged shard is found in the failed pass); a third is only needed when
#: shards written moments ago fail their checksums, and then the job stops.
_ATTEMPTS = 3


def shard_samples_from_env() -> int:
    value = os.environ.get(SHARD_SAMPLES_ENV, "")
    if not value:
        return SHARD_SAMPLES
    if not value.isdigit() or int(value) < 1:
        raise MedprobeError(f"${SHARD_SAMPLES_ENV} must be a positive whole number of samples, got {value!r}")
    return int(value)


@dataclass
class Skipped:
    """An input that could not be used (sample_id is a pseudonym); `cause.detail` stays at the site."""

    position: int
    sample_id: str
    cause: SkipReason

    @property
    def reason(self) -> str:
        """What may leave the site: the category and its fixed explanation."""
        return self.cause.public


@dataclass(frozen=True)
class EmbedSettings:
    """`site` None takes each row's site from the manifest's `site` column. `precision` 'auto' is bf16 on a GPU
    and, on a CPU, bf16 only where a calibration batch shows it faithful (see medprobe.embed.device)."""

    site: str | None
    salt: bytes
    label_columns: tuple[str, ...]
    modality: str
    batch_size: int = 32
    precision: str = "fp32"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    num_workers: int = 1
    progress: bool = True
    shard_samples: int = field(default_factory=shard_samples_from_env)
    tokens: bool = False  # also keep the patch tokens (encoders with `token_dim`), for the attentive probe
    #: Row position → the SeriesInstanceUID a row selects in a DICOM study folder (set by the engine from the
    #: manifest's `series_uid` column; never logged).
    series: Mapping[int, str] = field(default_factory=dict)


@dataclass
class EmbedResult:
    """The table on disk (`table_path`, None on ranks other than 0 of a torchrun job) and its plain columns
    (`frame`, one row per embedded sample, table order); `embeddings()` loads the (n, d) matrix on demand and
    `tokens()` memory-maps the (n, T, D) patch tokens when they were asked for and the encoder has them."""

    frame: pd.DataFrame
    table_path: Path | None
    skipped: list[Skipped]
    computed: int
    cached: int
    precision: str
    calibration_cosine: float | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the input checks noted without refusing (duplicates)

    def __len__(self) -> int:
        return len(self.frame)

    def embeddings(self) -> np.ndarray:
        if self.table_path is None:
            raise RuntimeError("this rank did not write the table; rank 0 did")
        return read_embeddings(self.table_path)

    def tokens(self) -> np.ndarray | None:
        if self.table_path is None:
            raise RuntimeError("this rank did not write the table; rank 0 did")
        return read_tokens(self.table_path, read_metadata(self.table_path))


def embed_manifest(manifest: pd.DataFrame, encoder: Encoder, chain: PreprocessChain, cache_dir: Path,
                   settings: EmbedSettings, table_path: Path) -> EmbedResult:
    """Embed every manifest row not already cached, then write the table of all rows that have an embedding."""
    with process_group(settings.device) as ranks:
        return _embed(manifest, encoder, chain, cache_dir, settings, table_path, ranks)


def _embed(manifest: pd.DataFrame, encoder: Encoder, chain: PreprocessChain, cache_dir: Path,
           settings: EmbedSettings, table_path: Path, ranks: Ranks) -> EmbedResult:
    if settings.site is None and "site" not in manifest.columns:
        raise ManifestError("no site given and the manifest has no 'site' column; name the site")
    seconds: dict[str, float] = defaultdict(float)
    started = time.perf_counter()
    paths = manifest["path"].astype(str).tolist()
    series = series_of(manifest)
    sample_ids = _sample_ids(manifest, settings.salt, series)
    digests = _with_series(_digests(paths, ranks), series)
    settings = replace(settings, series=series)
    skipped = [Skipped(i, sample_ids[i], d.cause) for i, d in enumerate(digests) if isinstance(d, Skipped)]
    duplicates, notes = duplicate_images(manifest, [d if isinstance(d, str) else None for d in digests])
    skipped += [Skipped(i, sample_ids[i], cause) for i, cause in duplicates.items()]
    digests = [Skipped(i, sample_ids[i], duplicates[i]) if i in duplicates else d for i, d in enumerate(digests)]
    seconds["hash"] += time.perf_counter() - started

    precision, cosine = _precision(paths, digests, encoder, chain, cache_dir, settings, ranks, seconds)
    prefix = (encoder.fingerprint, chain.digest_text(), precision)
    keys = [cache_key(*prefix, d) if isinstance(d, str) else None for d in digests]
    stores = _Stores(ShardCache(cache_dir),
                     TokenCache(cache_dir / "tokens") if settings.tokens and encoder.token_dim else None)
    run_settings = replace(settings, precision=precision, tokens=stores.tokens is not None)
    failed: dict[int, SkipReason] = {}
    computed = 0
    for attempt in range(1, _ATTEMPTS + 1):
        # Every pass computes what the cache lacks; a pass that finds a damaged shard while writing the outputs
        # (its shards are moved aside, see medprobe.embed.integrity) makes the next pass recompute its samples.
        pending = ranks.broadcast([i for i, key in enumerate(keys)
                                   if key is not None and i not in failed and not stores.has(key)])
        mine = ranks.share(pending)
        failures = _compute(mine, paths, keys, encoder, chain, stores, run_settings, ranks, seconds) if mine else []
        outcomes = ranks.gather((len(mine) - len(failures), failures))
        computed += sum(n for n, _ in outcomes)
        failed.update((i, reason) for _, fails in outcomes for i, reason in fails)
        stores.refresh()  # shards the other ranks wrote, or moved aside
        keep = [i for i, key in enumerate(keys) if key is not None and i not in failed and stores.has(key)]
        frame = _columns(manifest, sample_ids, keep, settings)
        written: Path | None = None
        if ranks.leader:
            write_started = time.perf_counter()
            kept_keys: list[str] = [keys[i] for i in keep]  # type: ignore[misc]
            metadata = _metadata(encoder, chain, settings, precision, cosine)
            written = table_path if _write_outputs(stores, kept_keys, frame, table_path, metadata) else None
            seconds["table"] += time.perf_counter() - write_started
        if ranks.broadcast(written is not None):
            break
        if attempt == _ATTEMPTS:
            raise MedprobeError(f"{cache_dir}: cache shards written by this job keep failing their checksums; the "
                                "disk or the memory may be failing (damaged shards are in its corrupt/ folders)")
        stores.refresh()
    skipped += [Skipped(i, sample_ids[i], cause) for i, cause in failed.items()]
    ranks.barrier()
    seconds["total"] = time.perf_counter() - started
    cached = max(0, len(keep) - computed)
    return EmbedResult(frame, written, sorted(skipped, key=lambda s: s.position), computed, cached, precision, cosine,
                       dict(seconds), notes)


def _write_outputs(stores: _Stores, keys: list[str], frame: pd.DataFrame, table_path: Path,
                   metadata: dict[str, object]) -> bool:
    """The tokens file (when asked for), then the table; True when written.

    The tokens file is removed first and rewritten before the table that names it: a table never points at tokens
    of other rows. When a cache shard turns out damaged, neither file is written, every damaged shard holding
    these keys is moved aside (so that one more pass recomputes them all) and the answer is False.
    """
    tokens_file = tokens_path(table_path)
    tokens_file.unlink(missing_ok=True)
    try:
        if stores.tokens is not None:
            metadata[TOKENS_METADATA_KEY] = write_tokens(tokens_file, stores.tokens, keys)
        write_table_chunks(table_path, frame, _vector_chunks(stores.vectors, keys), metadata)
    except ShardUnusable:
        stores.verify(keys)
        return False
    return True


@dataclass
class _Stores:
    """Where computed samples go: pooled vectors always, patch tokens when asked for."""

    vectors: ShardCache
    tokens: TokenCache | None

    def has(self, key: str) -> bool:
        return key in self.vectors and (self.tokens is None or key in self.tokens)

    def refresh(self) -> None:
        self.vectors.refresh()
        if self.tokens is not None:
            self.tokens.refresh()

    def verify(self, keys: list[str]) -> None:
        """Load every shard holding these keys; damaged ones are moved aside and leave the index."""
        self.vectors.verify(keys)
        if self.tokens is not None:
            self.tokens.verify(keys)


def series_of(manifest: pd.DataFrame) -> dict[int, str]:
    """Row position → the SeriesInstanceUID the manifest selects in a study folder (rows that name one)."""
    if "series_uid" not in manifest.columns:
        return {}
    return {i: str(uid) for i, uid in enumerate(manifest["series_uid"]) if isinstance(uid, str) and uid.strip()}


def _sample_ids(manifest: pd.DataFrame, salt: bytes, series: Mapping[int, str]) -> list[str]:
    """Pseudonyms of the `sample_id` column, else of the path (and the series a row selects in its folder)."""
    if "sample_id" in manifest.columns:
        return [pseudonym(salt, "smp", str(value)) for value in manifest["sample_id"]]
    return [pseudonym(salt, "smp", f"{path}#{uid_digest(series[i])}" if i in series else str(path))
            for i, path in enumerate(manifest["path"])]


def _with_series(digests: list[str | Skipped], series: Mapping[int, str]) -> list[str | Skipped]:
    """One study folder holds several series: a row's content digest covers the folder and the series it selects,
    so two rows on one folder never share a cache entry."""
    return [sha256(f"{d}\n{uid_digest(series[i])}".encode()).hexdigest()
            if i in series and isinstance(d, str) else d for i, d in enumerate(digests)]


def _digests(paths: list[str], ranks: Ranks) -> list[str | Skipped]:
    """Content digests in a thread pool (hashlib releases the GIL), each rank hashing its share; an unreadable
    path becomes a Skipped (position and sample_id filled in by the caller)."""

    def digest(path: str) -> str | Skipped:
        try:
            return file_digest(path)
        except FileNotFoundError:
            return Skipped(-1, "", SkipReason("file-not-found", "file not found"))
        except NotARegularFile:
            return Skipped(-1, "", SkipReason("not-a-regular-file", "a pipe, device or socket; not opened"))
        except OSError as exc:
            return Skipped(-1, "", SkipReason("unreadable-file", f"cannot read file ({exc.strerror})"))

    pool = ThreadPoolExecutor(max_workers=4)
    try:
        own = list(pool.map(digest, ranks.share(paths)))
    finally:
        # On a stop (SIGTERM, Ctrl-C) the job unwinds at once: a `with` block would first wait for the reads in
        # flight, which on a stalled network share never return.
        pool.shutdown(wait=False, cancel_futures=True)
    parts = ranks.gather(own)
    out: list[str | Skipped] = [""] * len(paths)
    for rank, part in enumerate(parts):
        out[rank :: ranks.world] = part
    return out


def _precision(paths: list[str], digests: list[str | Skipped], encoder: Encoder, chain: PreprocessChain,
               cache_dir: Path, settings: EmbedSettings, ranks: Ranks,
               seconds: dict[str, float]) -> tuple[str, float | None]:
    """The precision to run at, and the calibration cosine when 'auto' was decided on a CPU.

    The decision is kept next to the cache (one small JSON per encoder, preprocessing and device type), so a
    re-run or a resumed run keys its cache the same way without calibrating again.
    """
    resolved = resolve_precision(settings.precision, settings.device)
    if resolved != "auto":
        return resolved, None
    started = time.perf_counter()
    identity = "\n".join([encoder.fingerprint, chain.digest_text(), settings.device.type])
    record = cache_dir / "precision" / f"{sha256(identity.encode()).hexdigest()[:24]}.json"
    decision = None
    if ranks.leader:
        decision = _read_decision(record) if record.is_file() else None
        if decision is None:
            cosine = _calibrate(paths, digests, encoder, chain, settings)
            precision = "bf16" if cosine is not None and cosine >= FAITHFUL_COSINE else "fp32"
            decision = {"precision": precision, "cosine": cosine, "threshold": FAITHFUL_COSINE}
            if cosine is not None:
                with atomic_write(record, 256, "the precision decision") as pending:
                    pending.path.write_text(json.dumps(decision), encoding="utf-8")
    decision = ranks.broadcast(decision)
    seconds["calibrate"] += time.perf_counter() - started
    log.info("precision auto on %s: %s (bf16/fp32 cosine %s)", settings.device.type, decision["precision"],
             decision["cosine"])
    return decision["precision"], decision["cosine"]


def _read_decision(record: Path) -> dict[str, Any] | None:
    """A kept precision decision, or None (calibrate again) when the record is damaged."""
    try:
        decision = json.loads(record.read_text(encoding="utf-8"))
        if decision["precision"] in ("fp32", "bf16"):
            return {"precision": decision["precision"], "cosine": float(decision["cosine"]),
                    "threshold": decision.get("threshold")}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    log.warning("damaged precision record %s: calibrating again", record)
    return None


def _calibrate(paths: list[str], digests: list[str | Skipped], encoder: Encoder, chain: PreprocessChain,
               settings: EmbedSettings) -> float | None:
    """bf16/fp32 cosine on the views of the first few readable samples; None when none could be read."""
    readable = [i for i, d in enumerate(digests) if isinstance(d, str)]
    dataset = SampleDataset([paths[i] for i in readable], readable, settings.modality, chain, settings.series)
    views: list[torch.Tensor] = []
    samples = 0
    for index in range(min(len(dataset), 8 * CALIBRATION_SAMPLES)):
        sample = dataset[index]
        if sample.views is None or (views and sample.views.shape[1:] != views[0].shape[1:]):
            continue
        views += list(sample.views)
        samples += 1
        if samples >= CALIBRATION_SAMPLES or len(views) >= settings.batch_size:
            break
    if not views:
        return None
    encoder.to(settings.device)
    return bf16_cosine(encoder, torch.stack(views[: max(settings.batch_size, 1)]), settings.device)


@dataclass
class _Computed:
    """One sample's pooled vector and, when asked for, its patch tokens (views concatenated along T)."""

    vector: np.ndarray
    tokens: np.ndarray | None


def _compute(mine: list[int], paths: list[str], keys: list[str | None], encoder: Encoder, chain: PreprocessChain,
             stores: _Stores, settings: EmbedSettings, ranks: Ranks,
             seconds: dict[str, float]) -> list[tuple[int, SkipReason]]:
    dataset = SampleDataset([paths[i] for i in mine], mine, settings.modality, chain, settings.series)
    encoder.to(settings.device)
    failures: list[tuple[int, SkipReason]] = []
    buffer: list[LoadedSample] = []
    buffered_views = 0
    unflushed: dict[str, _Computed] = {}
    where = f" rank {ranks.rank}/{ranks.world}" if ranks.world > 1 else ""
    bar = tqdm(total=len(mine), unit="sample", desc=f"embed {encoder.name} {settings.precision}{where}",
               disable=not settings.progress or not ranks.leader, dynamic_ncols=True, leave=False)
    waited = time.perf_counter()
    for sample in _load(dataset, settings, chain):
        seconds["load"] += time.perf_counter() - waited
        if sample.views is None:
            failures.append((sample.position, sample.cause or SkipReason("unexpected-error")))
            bar.update(1)
        else:
            buffer.append(sample)
            buffered_views += len(sample.views)
        if buffered_views >= settings.batch_size:
            _flush_buffer(buffer, keys, encoder, chain.aggregate, settings, unflushed, seconds, bar)
            buffered_views = 0
        _write(stores, unflushed, settings.shard_samples, seconds)
        waited = time.perf_counter()
    _flush_buffer(buffer, keys, encoder, chain.aggregate, settings, unflushed, seconds, bar)
    _write(stores, unflushed, settings.shard_samples, seconds, final=True)
    bar.close()
    return failures


def _load(dataset: SampleDataset, settings: EmbedSettings, chain: PreprocessChain) -> Iterator[LoadedSample]:
    """The dataset's samples in order, surviving a reader that kills its worker process.

    Python-level failures already come back as reasons (SampleDataset); this is for native decoders that abort
    the process on corrupt data. The DataLoader then stops with "worker exited unexpectedly"; the first sample
    not yet received is retried alone in a fresh worker — skipped with a reason if that one dies too — and
    loading resumes after it (a sample the dead worker had queued but could no longer hand over is that first
    sample: alone, it is read again). Without workers (`num_workers` 0) such a crash ends the job, so the default is 1.
    """
    remaining = list(range(len(dataset)))
    while remaining:
        received = 0
        try:
            for (sample,) in _started(_loader(Subset(dataset, remaining), settings, chain)):
                received += 1
                yield sample
            return
        except _LOADER_FAILURES as exc:
            if settings.num_workers == 0 or not _worker_died(exc):
                raise
        suspect, remaining = remaining[received], remaining[received + 1 :]
        yield _load_alone(dataset, suspect, settings, chain)


def _load_alone(dataset: SampleDataset, index: int, settings: EmbedSettings, chain: PreprocessChain) -> LoadedSample:
    try:
        ((sample,),) = list(_started(_loader(Subset(dataset, [index]), replace(settings, num_workers=1), chain)))
        return sample
    except _LOADER_FAILURES as exc:
        if not _worker_died(exc):
            raise
    log.warning("a reader crashed its worker process on sample %d of this job; skipped", index)
    return LoadedSample(dataset.positions[index], None, SkipReason("reader-crashed", "the worker process died"))


def _started(loader: DataLoader[LoadedSample]) -> Iterator[list[LoadedSample]]:
    """The loader's iterator, its worker processes started as one step: a stop (SIGTERM) arriving meanwhile waits
    until they exist, so that the iterator is whole and shuts them down as the job unwinds (`critical`).

    torch installs a SIGCHLD handler that raises "DataLoader worker ... killed" wherever the main thread happens to
    be when a worker dies (in the encoder's forward, in a progress bar, in a later file's retry), where `_load`
    cannot catch it. It is taken out again here: the loader's own status check then reports a dead worker from
    inside its iterator, within its check interval (5 s), always where `_load` handles it."""
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGCHLD) if on_main_thread else None
    with critical():
        iterator = iter(loader)
        if previous is not None:
            signal.signal(signal.SIGCHLD, previous)
    return iterator


#: What the DataLoader's iterator raises when a worker process dies: its own RuntimeError, or, when the dead
#: worker had already queued a sample whose tensors travel as file descriptors, the failed fetch of those.
_LOADER_FAILURES = (RuntimeError, EOFError, ConnectionError)


def _worker_died(error: Exception) -> bool:
    """The DataLoader's error for a worker process that exited without returning its sample (or whose queued
    sample can no longer be fetched from it)."""
    return isinstance(error, EOFError | ConnectionError) or "DataLoader worker" in str(error)


def _loader(dataset: Dataset[LoadedSample], settings: EmbedSettings,
            chain: PreprocessChain) -> DataLoader[LoadedSample]:
    # typed by the dataset's items; each batch it yields is a list of them (`collate_samples`)
    return DataLoader(
        dataset,
        batch_size=1,
        num_workers=settings.num_workers,
        collate_fn=collate_samples,
        prefetch_factor=_prefetch_factor(settings, chain) if settings.num_workers else None,
        persistent_workers=False,
    )


def _prefetch_factor(settings: EmbedSettings, chain: PreprocessChain) -> int:
    """Samples per worker to prepare ahead: together, the workers hold the next full batch ready while the model
    runs the current one (otherwise the model waits for most of every batch), and never more than about one
    batch of views, whatever the manifest's length."""
    samples_per_batch = math.ceil(settings.batch_size / chain.max_views())
    return max(PREFETCH, math.ceil(samples_per_batch / settings.num_workers))


def _flush_buffer(buffer: list[LoadedSample], keys: list[str | None], encoder: Encoder, aggregate: str,
                  settings: EmbedSettings, out: dict[str, _Computed], seconds: dict[str, float], bar: tqdm) -> None:
    """Encode every buffered view, grouped by shape (handcrafted features take native sizes), then pool the
    views of each sample (2D models on 3D volumes) into one vector."""
    if not buffer:
        return
    started = time.perf_counter()
    groups: dict[tuple[int, ...], list[tuple[int, int]]] = defaultdict(list)
    for s_index, sample in enumerate(buffer):
        for v_index in range(len(sample.views)):  # type: ignore[arg-type]
            groups[tuple(sample.views.shape[1:])].append((s_index, v_index))  # type: ignore[union-attr]
    vectors: list[list[torch.Tensor]] = [[] for _ in buffer]
    tokens: list[list[torch.Tensor]] = [[] for _ in buffer]
    with autocast(settings.precision, settings.device):
        for members in groups.values():
            for start in range(0, len(members), settings.batch_size):
                chunk = members[start : start + settings.batch_size]
                batch = torch.stack([buffer[s].views[v] for s, v in chunk])  # type: ignore[index]
                batch = batch.to(settings.device, non_blocking=True)
                if settings.tokens:
                    output, patch_tokens = encoder.encode_with_tokens(batch)
                    for (s, _), view_tokens in zip(chunk, patch_tokens.half().cpu(), strict=True):
                        tokens[s].append(view_tokens)
                else:
                    output = encoder.encode(batch)
                for (s, _), vector in zip(chunk, output.float().cpu(), strict=True):
                    vectors[s].append(vector)
    for index, sample in enumerate(buffer):
        stacked = torch.stack(vectors[index])
        pooled = stacked.mean(dim=0) if aggregate == "mean" else stacked.max(dim=0).values
        sample_tokens = torch.cat(tokens[index]).numpy() if settings.tokens else None
        out[keys[sample.position]] = _Computed(pooled.numpy(), sample_tokens)  # type: ignore[index]
    bar.update(len(buffer))
    buffer.clear()
    seconds["embed"] += time.perf_counter() - started


def _write(stores: _Stores, unflushed: dict[str, _Computed], shard_samples: int, seconds: dict[str, float],
           final: bool = False) -> None:
    """Write every full shard's worth of unflushed samples, and at the end the remainder too. A sample recomputed
    only for its tokens keeps the vector it already has."""
    started = time.perf_counter()
    while len(unflushed) >= shard_samples or (final and unflushed):
        done = {key: unflushed.pop(key) for key in list(unflushed)[:shard_samples]}
        stores.vectors.put({key: c.vector for key, c in done.items() if key not in stores.vectors})
        if stores.tokens is not None:
            stores.tokens.put({key: c.tokens for key, c in done.items() if c.tokens is not None})
    seconds["cache_write"] += time.perf_counter() - started


def _vector_chunks(cache: ShardCache, keys: list[str]) -> Iterator[np.ndarray]:
    for start in range(0, len(keys), TABLE_ROWS):
        yield cache.read_vectors(keys[start : start + TABLE_ROWS])


def _columns(manifest: pd.DataFrame, sample_ids: list[str], keep: list[int],
             settings: EmbedSettings) -> pd.DataFrame:
    """The table's plain columns for the kept rows: pseudonyms, site, split, labels."""
    rows = manifest.iloc[keep]
    sites = settings.site if settings.site is not None else rows["site"].astype(str).to_numpy()
    table = pd.DataFrame(
        {
            "sample_id": [sample_ids[i] for i in keep],
            "subject_id": [pseudonym(settings.salt, "sub", s) for s in rows["subject_id"].astype(str)],
            "site": sites,
        }
    )
    if "split" in rows.columns:
        table["split"] = rows["split"].to_numpy()
    for column in settings.label_columns:
        table[column] = rows[column].to_numpy()
    return table


def _metadata(encoder: Encoder, chain: PreprocessChain, settings: EmbedSettings, precision: str,
              cosine: float | None) -> dict[str, object]:
    return {
        "encoder_fingerprint": encoder.fingerprint,
        "model": encoder.name,
        "weights": encoder.weights_label,
        "pretrained": encoder.pretrained,
        "embed_dim": encoder.embed_dim,
        "precision": precision,
        "precision_requested": settings.precision,
        "precision_calibration_cosine": cosine,
        "modality": settings.modality,
        "preprocessing": chain.describe(),
    }
