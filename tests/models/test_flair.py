"""FLAIR against the authors' structure, written here from `flair/modeling/model.py` (their package downloads its
weights and BERT when built, so it cannot run offline): a random whole-model state dict in the published layout
(`vision_model.*`, `text_model.*`, `logit_scale`) with a tiny BERT for the text side; medprobe's image embedding,
text embedding, zero-shot probabilities and letterbox preprocessing must be the authors'."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from tokenizers import BertWordPieceTokenizer
from transformers import BertConfig, BertModel, BertTokenizerFast

from medprobe.errors import MedprobeError, WeightsError
from medprobe.io import read_image
from medprobe.models import load_encoder
from medprobe.preprocess import PreprocessChain
from medprobe.preprocess.options import PreprocessOptions
from medprobe.probes.zeroshot import zeroshot_probabilities
from medprobe.zeroshot.prompts import class_text
from tests.models.random_states import random_state

WORDS = ["a", "fundus", "photograph", "of", "normal", "diabetic", "retinopathy", "glaucoma", "optic", "disc"]
pytestmark = pytest.mark.slow(seconds=12)


class _Authors(torch.nn.Module):
    """FLAIRModel's modules under their names: vision_model.{model, projection_head_vision.projection},
    text_model.{model, projection_head_text.projection}, logit_scale."""

    def __init__(self, bert: BertModel) -> None:
        super().__init__()
        self.vision_model = torch.nn.Module()
        self.vision_model.model = torchvision.models.resnet50(weights=None)
        self.vision_model.model.fc = torch.nn.Identity()
        self.vision_model.projection_head_vision = torch.nn.Module()
        self.vision_model.projection_head_vision.projection = torch.nn.Linear(2048, 512, bias=False)
        self.text_model = torch.nn.Module()
        self.text_model.model = bert
        self.text_model.projection_head_text = torch.nn.Module()
        self.text_model.projection_head_text.projection = torch.nn.Linear(32, 512, bias=False)
        self.logit_scale = torch.nn.Parameter(torch.tensor(2.5))

    @staticmethod
    def _project(x: torch.Tensor, layer: torch.nn.Module) -> torch.Tensor:
        x = x / x.norm(dim=-1, keepdim=True)
        x = layer(x)
        return x / x.norm(dim=-1, keepdim=True)

    def image(self, x: torch.Tensor) -> torch.Tensor:
        return self._project(self.vision_model.model(x), self.vision_model.projection_head_vision.projection)

    def text(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.text_model.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        hidden = torch.stack([out["hidden_states"][1], out["hidden_states"][2], out["hidden_states"][-1]])
        pooled = hidden.permute(1, 0, 2, 3).mean(2).mean(1)
        return self._project(pooled, self.text_model.projection_head_text.projection)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[_Authors, Path, Path, BertTokenizerFast]:
    root = tmp_path_factory.mktemp("flair")
    bert_dir = root / "Bio_ClinicalBERT"
    bert_dir.mkdir()
    (bert_dir / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]), "utf-8")
    wordpiece = BertWordPieceTokenizer(str(bert_dir / "vocab.txt"), lowercase=True)
    tokenizer = BertTokenizerFast(tokenizer_object=wordpiece._tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                  cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    tokenizer.save_pretrained(bert_dir)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=80)
    config.save_pretrained(bert_dir)
    torch.manual_seed(0)
    authors = _Authors(BertModel(config)).eval()
    authors.load_state_dict(random_state(authors, 1, 0.05))
    with torch.no_grad():
        authors.logit_scale.fill_(4.9)  # above the authors' clamp (4.6052): the clamp must apply
    path = root / "flair_resnet.pth"
    torch.save(authors.state_dict(), path)
    return authors, path, bert_dir, tokenizer


def test_image_text_and_zero_shot_are_the_authors(published: tuple) -> None:
    authors, path, bert_dir, tokenizer = published
    encoder = load_encoder("flair", weights=path, text_model=str(bert_dir))
    pixels = torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(2))
    prompts = ["a fundus photograph of normal", "a fundus photograph of diabetic retinopathy",
               "a fundus photograph of glaucoma optic disc"]
    tokens = tokenizer(prompts, truncation=True, padding=True, return_tensors="pt")
    with torch.no_grad():
        images, theirs_image = encoder.encode(pixels), authors.image(pixels)
        theirs_text = authors.text(tokens["input_ids"], tokens["attention_mask"])
    assert images.shape == (2, 512) and torch.max(torch.abs(images - theirs_image)).item() < 1e-4
    tower = encoder.text_tower()
    np.testing.assert_allclose(tower.encode(prompts), theirs_text.numpy(), atol=1e-5)
    assert tower.logit_scale == pytest.approx(100.0, rel=1e-4)  # exp(clamp(4.9, 0, 4.6052))

    # compute_text_embeddings: each class's prompts tokenised together (padding within the class), their embeddings
    # averaged without renormalising
    ensemble = class_text(tower, {"0": prompts[0], "1": prompts[1:]}, ["{}"])
    with torch.no_grad():
        per_class = [authors.text(t["input_ids"], t["attention_mask"]).mean(0) for t in
                     (tokenizer(group, truncation=True, padding=True, return_tensors="pt")
                      for group in (prompts[:1], prompts[1:]))]
    np.testing.assert_allclose(ensemble.embeddings, torch.stack(per_class).numpy(), atol=1e-5)
    logits = 100.0 * theirs_image @ torch.stack(per_class).T
    np.testing.assert_allclose(zeroshot_probabilities(images.numpy(), ensemble.embeddings, tower.logit_scale, 0.0),
                               logits.softmax(dim=-1).numpy(), atol=1e-4)


def test_images_are_letterboxed_as_the_authors_preprocess_image(published: tuple, tmp_path: Path) -> None:
    encoder = load_encoder("flair")  # random init: the preprocessing is the same
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (300, 410, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "fundus.png")
    chain = PreprocessChain(PreprocessOptions(modality="fundus"), encoder.preprocessing)
    ours = chain(read_image(tmp_path / "fundus.png", "fundus"))[0]
    # preprocess_image: / 255, channel first, Resize((int(h / s), int(w / s)), antialias=True), pad right/bottom
    image = torch.tensor(np.transpose(photo.astype(np.float32) / 255, (2, 0, 1)))[None]
    scale = max(image.shape[-2:]) / 512
    image = torchvision.transforms.Resize((int(image.shape[-2] / scale), int(image.shape[-1] / scale)),
                                          antialias=True)(image)
    theirs = torch.nn.functional.pad(image, (0, 512 - image.shape[-1], 0, 512 - image.shape[-2]))[0]
    assert ours.shape == theirs.shape == (3, 512, 512)
    assert torch.max(torch.abs(ours - theirs)).item() < 1e-5


def test_wrong_checkpoints_and_options_are_refused(published: tuple, tmp_path: Path) -> None:
    _, path, bert_dir, _ = published
    state = torch.load(path, map_location="cpu")
    vision_only = tmp_path / "vision_only.pth"
    torch.save({k: v for k, v in state.items() if k.startswith("vision_model.")}, vision_only)
    with pytest.raises(WeightsError, match=r"missing keys: embeddings\.word_embeddings\.weight"):
        load_encoder("flair", weights=vision_only, text_model=str(bert_dir)).text_tower()  # the BERT is named
    no_scale = tmp_path / "no_scale.pth"
    torch.save({k: v for k, v in state.items() if k != "logit_scale"}, no_scale)
    with pytest.raises(WeightsError, match="logit_scale"):
        load_encoder("flair", weights=no_scale, text_model=str(bert_dir)).text_tower()
    with pytest.raises(MedprobeError, match="pooling: projection"):
        load_encoder("flair", weights=path, pooling="backbone").text_tower()
    with pytest.raises(MedprobeError, match="pooling must be one of"):
        load_encoder("flair", pooling="cls")
