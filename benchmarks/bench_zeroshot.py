"""The zero-shot protocol's cost beside the linear probe's, side by side in one process, on the same embeddings.

    python benchmarks/bench_zeroshot.py                 # 2,000 × 1152, 5 classes, 3 prompts × 2 templates each

Zero-shot costs the text tower's forward over every class's prompts (once per model and task) plus scoring (a
matrix product and the subject bootstrap); the linear probe costs its C grid with inner folds plus the same
bootstrap. The text tower is SigLIP so400m's (27 layers, 1152 wide, 64 tokens) with random weights, which cost what
the published ones do; the tokenizer is a small word-level one (tokenising is not what costs).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, SiglipConfig, SiglipModel

from medprobe.cli.formatting import aligned
from medprobe.models.text_tower import TextTower
from medprobe.probes.evaluate import evaluate_inputs
from medprobe.probes.inputs import prepare_inputs
from medprobe.zeroshot.prompts import class_text

SO400M_TEXT = {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16,
               "max_position_embeddings": 64, "vocab_size": 32000}
TINY_VISION = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 2,
               "image_size": 28, "patch_size": 14}


def text_tower() -> TextTower:
    words = [f"w{i}" for i in range(200)]
    vocab = {"<pad>": 0, "<unk>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", unk_token="<unk>", eos_token="</s>")
    model = SiglipModel(SiglipConfig(text_config=SO400M_TEXT, vision_config=TINY_VISION))
    return TextTower("bench", model, fast, 112.0, -16.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=1152)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    y = rng.integers(0, args.classes, args.n)
    centres = rng.normal(size=(args.classes, args.dim))
    X = (centres[y] + 12 * rng.normal(size=(args.n, args.dim))).astype(np.float32)  # AUROC well below 1
    subjects = np.array([f"S{i}" for i in range(args.n)])
    split = rng.choice(["train", "val", "test"], p=[0.6, 0.2, 0.2], size=args.n)
    inputs, _ = prepare_inputs(X, y, subjects, split, "classification")
    tower = text_tower()
    prompts = {str(c): [" ".join(f"w{(c * 7 + j * 3 + k) % 200}" for k in range(6)) for j in range(3)]
               for c in range(args.classes)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.n} × {args.dim}, {args.classes} "
          f"classes, {args.bootstrap} bootstrap resamples")
    started = time.perf_counter()
    texts = class_text(tower, prompts, ["a {}", "{}"])
    encode = time.perf_counter() - started
    texts = dataclasses.replace(texts, embeddings=centres.astype(np.float32) / np.linalg.norm(centres, axis=1,
                                                                                             keepdims=True))
    started = time.perf_counter()
    zeroshot = evaluate_inputs("zeroshot", {"bootstrap": args.bootstrap}, dataclasses.replace(inputs,
                                                                                          class_text=texts))
    scoring = time.perf_counter() - started
    started = time.perf_counter()
    linear = evaluate_inputs("linear", {"bootstrap": args.bootstrap}, inputs)
    fitting = time.perf_counter() - started
    rows = [["zero-shot: text tower (30 texts)", f"{encode:.2f} s", ""],
            ["zero-shot: scoring + bootstrap", f"{scoring:.2f} s", f"auroc {zeroshot.metrics['auroc']:.3f}"],
            ["zero-shot total", f"{encode + scoring:.2f} s", f"{(encode + scoring) / fitting:.2f} × linear"],
            ["linear probe (C grid, inner folds) + bootstrap", f"{fitting:.2f} s",
             f"auroc {linear.metrics['auroc']:.3f}"]]
    print(aligned(["step", "time", "note"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
