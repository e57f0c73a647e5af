"""Zero-shot classification with a SigLIP model's own text tower, against transformers' own forward.

A tiny random `SiglipModel` is saved as the hub publishes one (config, safetensors, a tokenizer: here a small
word-level one made with `tokenizers`, no download). medprobe's class embeddings must equal
`get_text_features` on the text `padding="max_length"` tokenises to; its zero-shot probabilities, from medprobe's
own image embeddings, must equal the softmax of `SiglipModel.forward`'s `logits_per_image`; a site job with the
protocol scores every test row (AUROC checked against scikit-learn on its predictions) while a model without a
text tower records why it has none and its other protocols run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from PIL import Image
from sklearn.metrics import roc_auc_score
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast, SiglipConfig, SiglipModel

from medprobe.cli.main import main
from medprobe.errors import MedprobeError, ProbeError
from medprobe.exit_codes import EXIT_OK
from medprobe.models import load_encoder
from medprobe.probes import evaluate_protocol
from medprobe.probes.inputs import ClassText
from medprobe.probes.zeroshot import zeroshot_probabilities
from medprobe.tracking import naming
from medprobe.zeroshot.prompts import class_text, expand

WORDS = ["a", "photo", "of", "normal", "retina", "diabetic", "retinopathy", "this", "is", "the", "fundus"]
TEXT = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 2,
        "vocab_size": len(WORDS) + 3, "max_position_embeddings": 16, "pad_token_id": 0, "eos_token_id": 2}
VISION = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 2,
          "image_size": 28, "patch_size": 14}
PREPROCESSOR = {"do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
                "image_processor_type": "SiglipImageProcessor", "image_std": [0.5, 0.5, 0.5], "resample": 3,
                "rescale_factor": 0.00392156862745098, "size": {"height": 28, "width": 28}}
PROMPTS = {"0": "normal retina", "1": ["diabetic retinopathy", "diabetic retina"]}


@pytest.fixture(scope="module")
def siglip(tmp_path_factory: pytest.TempPathFactory) -> tuple[SiglipModel, Path]:
    folder = tmp_path_factory.mktemp("siglip")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = SiglipModel(SiglipConfig(text_config=TEXT, vision_config=VISION)).eval()
    with torch.no_grad():  # the published model's scale and bias are far from init: make them count
        model.logit_scale.fill_(2.3)
        model.logit_bias.fill_(-4.0)
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR))
    vocab = {"<pad>": 0, "<unk>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    words = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<pad>", unk_token="<unk>",
                            eos_token="</s>").save_pretrained(folder)
    return model, folder


def test_class_embeddings_are_transformers_text_features(siglip: tuple[SiglipModel, Path]) -> None:
    model, folder = siglip
    encoder = load_encoder("siglip_so400m_patch14_384", weights=folder, input_size=28)
    tower = encoder.text_tower()
    texts = ["a photo of the normal retina", "diabetic retinopathy", "this is a fundus"]
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    with torch.no_grad():
        batch = tokenizer(texts, padding="max_length", max_length=16, return_tensors="pt")
        expected = torch.nn.functional.normalize(model.get_text_features(**batch).pooler_output, dim=-1)
    np.testing.assert_allclose(tower.encode(texts), expected.numpy(), atol=1e-5)
    assert tower.logit_scale == pytest.approx(float(np.exp(2.3)), rel=1e-6) and tower.logit_bias == -4.0
    assert encoder.zero_shot_templates == ("This is a photo of {}.",)  # the card's

    ensemble = class_text(tower, PROMPTS, ["a photo of {}", "{}"])
    assert ensemble.prompts["1"] == ["a photo of diabetic retinopathy", "diabetic retinopathy",
                                     "a photo of diabetic retina", "diabetic retina"]
    by_hand = tower.encode(ensemble.prompts["1"]).mean(0)
    np.testing.assert_allclose(ensemble.embeddings[1], by_hand / np.linalg.norm(by_hand), atol=1e-6)


def test_probabilities_are_the_softmax_of_siglips_own_logits(siglip: tuple[SiglipModel, Path]) -> None:
    model, folder = siglip
    encoder = load_encoder("siglip_so400m_patch14_384", weights=folder, input_size=28)
    pixels = torch.randn(5, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    texts = ["normal retina", "diabetic retinopathy"]
    single = class_text(encoder.text_tower(), {"0": texts[0], "1": texts[1]}, ["{}"])
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    with torch.no_grad():
        images = encoder.encode(pixels).numpy()
        upstream = model(pixel_values=pixels, **tokenizer(texts, padding="max_length", max_length=16,
                                                          return_tensors="pt"))
    expected = torch.softmax(upstream.logits_per_image, dim=1).numpy()
    ours = zeroshot_probabilities(images, single.embeddings, single.logit_scale, single.logit_bias)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_the_protocol_scores_every_row_and_refuses_classes_without_prompts() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    classes = np.eye(2, 8, dtype=np.float32)
    X = (classes[y] + 0.8 * rng.normal(size=(40, 8))).astype(np.float32)
    text = ClassText(np.array(["0", "1"], dtype=object), classes, 10.0, 0.0, {"0": ["a"], "1": ["b"]})
    subjects = np.array([f"S{i}" for i in range(40)])
    import dataclasses

    from medprobe.probes.evaluate import evaluate_inputs
    from medprobe.probes.inputs import prepare_inputs

    inputs, _ = prepare_inputs(X, y, subjects, None, "classification")
    result = evaluate_inputs("zeroshot", {"bootstrap": 50}, dataclasses.replace(inputs, class_text=text))
    assert result.n_test == 40 and result.n_train == 0  # nothing trained, every row scored
    proba = zeroshot_probabilities(X, classes, 10.0, 0.0)[:, 1]
    assert result.metrics["auroc"] == pytest.approx(roc_auc_score(y, proba))
    with pytest.raises(ProbeError, match="no prompts for class"):
        three = dataclasses.replace(inputs, class_text=dataclasses.replace(
            text, classes=np.array(["0", "2"], dtype=object)))
        evaluate_inputs("zeroshot", {}, three)
    with pytest.raises(ProbeError, match="text tower"):
        evaluate_protocol("zeroshot", {}, X, y, "classification", subjects)


def test_templates_need_one_placeholder_and_models_without_text_say_so() -> None:
    from medprobe.probes.options import ZeroShotOptions

    with pytest.raises(ValueError, match="exactly one"):
        ZeroShotOptions(templates=["a photo"])
    assert expand({"1": "x {y}"}, ["see {}"]) == {"1": ["see x {y}"]}  # a prompt's own braces are kept
    with pytest.raises(MedprobeError, match="no text tower"):
        load_encoder("handcrafted").text_tower()


@pytest.mark.slow(seconds=25)
def test_a_site_job_runs_zero_shot_beside_the_linear_probe(siglip: tuple[SiglipModel, Path], tmp_path: Path,
                                                           write_spec: Any) -> None:
    _, folder = siglip
    rng = np.random.default_rng(1)
    rows = []
    (tmp_path / "img").mkdir()
    for i in range(24):
        image = np.clip(rng.normal(90 + 60 * (i % 2), 30, (40, 40, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(tmp_path / "img" / f"f{i}.png")
        rows.append({"path": str(tmp_path / "img" / f"f{i}.png"), "subject_id": f"S{i}", "dr": i % 2,
                     "split": "test" if i % 3 == 0 else "train"})
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    spec = write_spec(manifest, data={"manifest": str(manifest), "modality": "fundus"},
                      models=[{"name": "siglip_so400m_patch14_384", "weights": str(folder),
                               "options": {"input_size": 28}}, {"name": "handcrafted"}],
                      tasks=[{"name": "dr", "target": "dr", "type": "classification", "prompts": PROMPTS}],
                      protocols={"linear": {"bootstrap": 0}, "zeroshot": {"bootstrap": 0}})
    assert main(["run", str(spec), "--no-progress"]) == EXIT_OK
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    protocol_runs = {(r.data.tags.get(naming.MODEL), r.data.tags.get(naming.PROTOCOL)): r for r in runs
                     if r.data.tags.get(naming.PROTOCOL)}
    zeroshot = protocol_runs[("siglip_so400m_patch14_384", "zeroshot")]
    assert zeroshot.data.metrics["data/n_test"] == 8
    predictions = pd.read_csv(client.download_artifacts(zeroshot.info.run_id, "predictions.csv", str(tmp_path)))
    assert zeroshot.data.metrics["test/auroc"] == pytest.approx(roc_auc_score(predictions["y_true"],
                                                                              predictions["proba_1"]))
    assert ("handcrafted", "zeroshot") not in protocol_runs and ("handcrafted", "linear") in protocol_runs
    assert zeroshot.data.params["prompts_per_class"] == "2"


def test_class_values_match_their_prompts_as_text_and_prompts_need_classes() -> None:
    from medprobe.pipeline_spec.pipeline import TaskSpec
    from medprobe.probes.zeroshot import label_text

    assert [label_text(v) for v in (1, 1.0, np.float64(0.0), "1", " yes ", 2.5)] == ["1", "1", "0", "1", "yes", "2.5"]
    assert TaskSpec(name="dr", target="dr", prompts={0: "no", 1: ["yes", "maybe"]}).prompts == {
        "0": "no", "1": ["yes", "maybe"]}
    with pytest.raises(ValueError, match="regression task has none"):
        TaskSpec(name="age", target="age", type="regression", prompts={0: "young", 1: "old"})
    with pytest.raises(ValueError, match="at least two classes"):
        TaskSpec(name="dr", target="dr", prompts={1: "yes"})
