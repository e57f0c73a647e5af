"""The zero-shot protocol's class embeddings for one model in a site job: its text tower (loaded once) embeds each
task's prompts in the spec's templates, else the model's published ones. A task without prompts, or a text tower that
does not load, gets the reason instead, which the protocol records as its failure for that model and task; for a
model without a text tower the protocol does not apply. The other protocols run as always."""

from __future__ import annotations

from collections.abc import Callable

from medprobe.errors import MedprobeError
from medprobe.models import Encoder
from medprobe.pipeline_spec import PipelineSpec
from medprobe.probes.inputs import ClassText
from medprobe.zeroshot.prompts import class_text

#: Where a model publishes no templates and the spec gives none: the prompt as it is written.
PLAIN_TEMPLATE = ("{}",)


def class_texts(spec: PipelineSpec, encoder: Encoder, key: str, say: Callable[[str], None]
                ) -> dict[str, ClassText | str]:
    """Per task name: the class embeddings, or why there are none (a task without prompts, a text tower that does
    not load); empty when the spec does not run zero-shot or the model has no text tower (then it does not apply)."""
    options = spec.protocols.zeroshot
    if options is None or not encoder.has_text_tower:
        return {}
    tasks = [task for task in spec.tasks if task.type == "classification"]
    out: dict[str, ClassText | str] = {
        task.name: f"task '{task.name}' has no prompts (tasks[].prompts: class value → text)"
        for task in tasks if not task.prompts}
    prompted = [task for task in tasks if task.prompts]
    if not prompted:  # the text tower is not loaded for nothing
        return out
    try:
        tower = encoder.text_tower()
    except MedprobeError as error:
        return out | dict.fromkeys((task.name for task in prompted), str(error))
    templates, source = ((options.templates, "the spec") if options.templates else
                         (list(encoder.zero_shot_templates), "the model card") if encoder.zero_shot_templates else
                         (list(PLAIN_TEMPLATE), "none: the prompts as written"))
    for task in prompted:
        assert task.prompts is not None
        out[task.name] = class_text(tower, task.prompts, templates)
    say(f"  {key}: zero-shot with {len(templates)} template(s) from {source}")
    return out
