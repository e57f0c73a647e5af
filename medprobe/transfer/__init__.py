"""Cross-site transfer: a site publishes its linear probe head; other sites score it on their own embeddings.

`heads` fits the head a site publishes, `head_files` writes and reads it (safetensors + JSON), `published` finds
other sites' heads in the tracking store, `evaluate` scores one on local rows, `rows` says which rows each side
uses, and `space` names the embedding space a head belongs to.
"""

from medprobe.transfer.evaluate import evaluate_head
from medprobe.transfer.head_files import HEAD_FOLDER, HeadError, read_head, write_head
from medprobe.transfer.heads import ProbeHead, fit_head
from medprobe.transfer.published import PublishedHead, published_heads
from medprobe.transfer.space import FeatureSpace, preprocessing_digest

__all__ = [
    "HEAD_FOLDER",
    "FeatureSpace",
    "HeadError",
    "ProbeHead",
    "PublishedHead",
    "evaluate_head",
    "fit_head",
    "preprocessing_digest",
    "published_heads",
    "read_head",
    "write_head",
]
