"""Numpy dictionaries to and from Flower records, and the message types of a federated job.

Only arrays of model parameters and aggregate statistics go into these records; nothing here takes a row.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, ConfigRecordValues, MetricRecord

#: Message types (Flower's "<category>.<action>"): what a site answers.
MOMENTS = "query.moments"  # row count, sums and sums of squares of the training features; label values
CENTROID_SUMS = "query.centroid"  # per-class sums of centred, L2-normalised training features; counts
RIDGE_STATS = "query.ridge"  # XᵀX, Xᵀy, n, Σx, Σy of the training rows
TRAIN = "train"  # local training of the linear head from the global weights
EVALUATE = "evaluate"  # score a global head on the site's test rows

NUM_EXAMPLES = "num-examples"  # the weight key Flower's FedAvg averages by


def to_record(arrays: Mapping[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({key: Array(np.ascontiguousarray(value)) for key, value in arrays.items()})


def from_record(record: ArrayRecord | MetricRecord | ConfigRecord) -> dict[str, np.ndarray]:
    """The arrays of a message's ArrayRecord (`message.content[key]`, which Flower types as any record)."""
    if not isinstance(record, ArrayRecord):
        raise TypeError(f"expected an ArrayRecord, got a {type(record).__name__}")
    return {key: array.numpy() for key, array in record.items()}


def number(value: Array | ConfigRecordValues) -> int | float:
    """A number read from a metric or config record (a count, a metric, a setting)."""
    if not isinstance(value, int | float):
        raise TypeError(f"expected a number in the record, got a {type(value).__name__}")
    return value


def texts(value: Array | ConfigRecordValues) -> list[str]:
    """A list of strings read from a config record (class labels)."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"expected a list of strings in the record, got a {type(value).__name__}")
    return [str(item) for item in value]
