"""Extraction: batching, device and precision, a content-addressed shard cache, the embedding table.

Names load on first use (PEP 562): reading an embedding table (`medprobe.embed.table`) must not import torch,
the model zoo and MONAI, which federated site processes and `medprobe evaluate` would otherwise pay for.
"""

from __future__ import annotations

from medprobe.lazy_exports import lazy_getattr

_WHERE = {
    "ShardCache": "cache",
    "cache_key": "cache",
    "file_digest": "cache",
    "FAITHFUL_COSINE": "device",
    "resolve_device": "device",
    "resolve_precision": "device",
    "launched_ranks": "distributed",
    "SHARD_SAMPLES_ENV": "engine",
    "EmbedResult": "engine",
    "EmbedSettings": "engine",
    "Skipped": "engine",
    "embed_manifest": "engine",
    "pseudonym": "pseudonyms",
    "site_salt": "pseudonyms",
    "read_embeddings": "table",
    "read_table": "table",
    "write_table": "table",
    "write_table_chunks": "table",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_getattr(__name__, _WHERE)
