"""Zero-shot classification with a model's own text tower, against the upstream libraries' own forward.

A tiny random `SiglipModel` is saved as the hub publishes one (config, safetensors, a tokenizer: here a small
word-level one made with `tokenizers`, no download). medprobe's class embeddings must equal
`get_text_features` on the text `padding="max_length"` tokenises to; its zero-shot probabilities, from medprobe's
own image embeddings, must equal the softmax of `SiglipModel.forward`'s `logits_per_image`; a site job with the
protocol scores every test row (AUROC checked against scikit-learn on its predictions) while a model without a
text tower records why it has none and its other protocols run. BiomedCLIP's text tower (a Hugging Face BERT inside
open_clip) is held against open_clip's `encode_text` and its model's image–text logits the same way.
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


@pytest.fixture(scope="module")
def biomedclip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, Path]:
    """A tiny open_clip model of BiomedCLIP's structure whose text tower is a Hugging Face BERT (CLS of the last
    hidden state, MLP projection), the BERT's config and word-piece tokenizer in a local folder as the hub has them;
    written as a hub snapshot and loaded back by open_clip itself."""
    import open_clip
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from medprobe.models.biomedclip import CONFIG_FILE, HUB_CONFIG

    root = tmp_path_factory.mktemp("biomedclip_text")
    bert = root / "BiomedBERT"
    bert.mkdir()
    (bert / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]), "utf-8")
    wordpiece = BertWordPieceTokenizer(str(bert / "vocab.txt"), lowercase=True)
    BertTokenizerFast(tokenizer_object=wordpiece._tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                      cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]").save_pretrained(bert)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        BertModel(BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=37, max_position_embeddings=32)).save_pretrained(bert)
    folder = root / "biomedclip"
    folder.mkdir()
    text_cfg = {"hf_model_name": str(bert), "hf_tokenizer_name": str(bert), "hf_proj_type": "mlp",
                "hf_pooler_type": "cls_last_hidden_state_pooler", "context_length": 16}
    config = {"model_cfg": {"embed_dim": 24, "vision_cfg": {**HUB_CONFIG["model_cfg"]["vision_cfg"],
                                                            "timm_model_name": "vit_tiny_patch16_224"},
                            "text_cfg": text_cfg},
              "preprocess_cfg": HUB_CONFIG["preprocess_cfg"]}
    (folder / CONFIG_FILE).write_text(json.dumps(config), encoding="utf-8")
    torch.manual_seed(6)
    model = open_clip.create_model(f"local-dir:{folder}")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape))
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    reference = open_clip.create_model(f"local-dir:{folder}").eval()
    return reference, folder, bert


def test_biomedclips_text_tower_is_open_clips_encode_text(biomedclip: tuple[Any, Path, Path]) -> None:
    import open_clip

    reference, folder, bert = biomedclip
    encoder = load_encoder("biomedclip", weights=folder, text_model=str(bert))
    texts = ["a photo of the normal retina", "diabetic retinopathy"]
    tower = encoder.text_tower()
    tokenize = open_clip.tokenizer.HFTokenizer(str(bert), context_length=16)  # what open_clip does for the hub name
    pixels = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = torch.nn.functional.normalize(reference.encode_text(tokenize(texts)), dim=-1)
        image, text, scale = reference(pixels, tokenize(texts))[:3]
        images = encoder.encode(pixels).numpy()
    np.testing.assert_allclose(tower.encode(texts), expected.numpy(), atol=1e-5)
    assert tower.logit_scale == pytest.approx(float(scale))
    assert encoder.zero_shot_templates == ("this is a photo of {}",)
    single = class_text(tower, {"0": texts[0], "1": texts[1]}, ["{}"])
    ours = zeroshot_probabilities(images, single.embeddings, single.logit_scale, single.logit_bias)
    np.testing.assert_allclose(ours, torch.softmax(scale * image @ text.T, dim=1).numpy(), atol=1e-5)
    with pytest.raises(MedprobeError, match=r"text_model .* is not a folder"):
        load_encoder("biomedclip", weights=folder, text_model=str(folder / "absent"))
