"""A probe head's two files carry a digest: a flipped bit anywhere is refused naming the file, never scored."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from medprobe.transfer import HeadError, ProbeHead, read_head, write_head


def _head() -> ProbeHead:
    rng = np.random.default_rng(0)
    return ProbeHead(task_type="classification", classes=["a", "b", "c"], mean=rng.normal(size=5),
                     scale=rng.uniform(0.5, 2.0, size=5), weight=rng.normal(size=(3, 5)), bias=rng.normal(size=3),
                     site="site-a", model="handcrafted", task="t", target="label", fingerprint="handcrafted-0123",
                     preprocessing="fedcba9876543210", regularisation={"C": 0.5}, n_train=40)


def _same(head: ProbeHead, other: ProbeHead) -> bool:
    X = np.random.default_rng(1).normal(size=(4, 5))
    return head.classes == other.classes and head.regularisation == other.regularisation \
        and np.array_equal(head.outputs(X), other.outputs(X))


@pytest.mark.parametrize("name", ["head.safetensors", "head.json"])
def test_every_bit_flip_in_a_head_file_is_refused_naming_it(tmp_path: Path, name: str, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="medprobe.transfer")
    original = tmp_path / "made"
    write_head(_head(), original)
    data = (original / name).read_bytes()
    damaged = tmp_path / "damaged"
    refused = 0
    for offset in range(len(data)):
        shutil.copytree(original, damaged)
        flipped = bytearray(data)
        flipped[offset] ^= 1 << (offset % 8)
        (damaged / name).write_bytes(bytes(flipped))
        caplog.clear()
        try:
            head = read_head(damaged)
        except HeadError as exc:
            assert name in str(exc) or str(damaged) in str(exc), (offset, str(exc))
            refused += 1
        else:  # only a flip in the digest's own key name: the head reads as one from before digests, unchanged
            assert _same(head, _head()), f"flip at byte {offset} of {name} was used"
            assert "unverified" in caplog.text, offset
        shutil.rmtree(damaged)
    print(f"{name}: {len(data)} offsets flipped, {refused} refused, {len(data) - refused} identical, 0 different")
    assert len(data) - refused <= (len('"sha256"') if name == "head.json" else 0)


def test_a_changed_weight_is_refused_with_the_file_named(tmp_path: Path) -> None:
    write_head(_head(), tmp_path)
    metadata = json.loads((tmp_path / "head.json").read_text())
    metadata["regularisation"] = {"C": 0.25}
    (tmp_path / "head.json").write_text(json.dumps(metadata, indent=2))
    with pytest.raises(HeadError, match=r"head\.json: does not match the digest"):
        read_head(tmp_path)


def test_a_head_from_before_digests_is_used_with_a_warning(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="medprobe.transfer")
    write_head(_head(), tmp_path)
    metadata = json.loads((tmp_path / "head.json").read_text())
    del metadata["sha256"]
    (tmp_path / "head.json").write_text(json.dumps(metadata, indent=2))
    assert _same(read_head(tmp_path), _head())
    assert any("no digest" in m and "unverified" in m for m in caplog.messages)
