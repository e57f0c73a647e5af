"""A task's class prompts, put into templates and embedded by a text tower: one embedding per class (the mean of
its unit-norm prompt embeddings, renormalised as CLIP's prompt ensembling does, or as the mean where the model's
authors keep it so: FLAIR)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from medprobe.probes.inputs import ClassText

if TYPE_CHECKING:
    from medprobe.models.text_tower import TextTower


def expand(prompts: Mapping[str, str | Sequence[str]], templates: Sequence[str]) -> dict[str, list[str]]:
    """Every class's prompts in every template (`{}` is the prompt; other braces are left as they are)."""
    return {label: [template.replace("{}", prompt) for prompt in ([given] if isinstance(given, str) else given)
                    for template in templates]
            for label, given in prompts.items()}


def class_text(tower: TextTower, prompts: Mapping[str, str | Sequence[str]], templates: Sequence[str]) -> ClassText:
    texts = expand(prompts, templates)
    rows = []
    for label in texts:
        mean = tower.encode(texts[label]).mean(axis=0)
        rows.append(mean / np.linalg.norm(mean) if tower.renormalise_ensemble else mean)
    return ClassText(np.array(list(texts), dtype=object), np.stack(rows).astype(np.float32), tower.logit_scale,
                     tower.logit_bias, texts)
