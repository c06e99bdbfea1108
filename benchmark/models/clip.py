"""CLIP backbones from open_clip: ``clip:<model>/<weights>``.

``<weights>`` is an open_clip pretrained tag (``clip:ViT-B-32/openai``, ``clip:ViT-B-16/laion2b_s34b_b88k``;
loaded from the local Hugging Face cache, offline), a checkpoint file (``clip:ViT-B-32//data/clip.pt``),
or ``random`` (random init, for tests). ``oodbench-tiny-clip`` is a ~3M-parameter config (64-d, 2 layers,
32 px) shipped in benchmark/models/assets/open_clip so tests run in seconds: ``clip:oodbench-tiny-clip/random``.

The model is a :class:`CLIPClassifier`:

- ``backbone``: the image tower; ``features(x)`` are L2-normalised image embeddings;
- ``head``: ``nn.Linear`` initialised as the zero-shot head (WiSE-FT's convention): row c is
  ``logit_scale * normalize(mean_t normalize(text(template_t(class_c))))``, bias 0, so the logits are
  ``logit_scale * cos(image, class)``. ``Built.head_is_pretrained`` is True;
- ``text``: the open_clip model with its image tower removed (token embedding, text transformer,
  projection, ``logit_scale``). Frozen (``requires_grad=False``) unless a method unfreezes it (FLYP).

Because the text tower is a submodule, it moves with ``.to(device)``, is saved in every state_dict and
checkpoint, and ``RunContext.reference`` (the one frozen deep copy) holds the frozen zero-shot text tower:
CLIP methods need no copy of their own. ``Built.extras["text"]`` is a :class:`ClipText` (tokenizer, prompt
templates, class names): the non-module things text-side methods need; the harness's "has a text tower"
check looks for that key.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import BenchmarkError
from benchmark.models import BACKBONES
from benchmark.models.base import BackboneRequest, Built, Classifier, load_or_fail
from benchmark.resources import cache_root, shipped_dir

RANDOM_TAGS = ("random", "none")


def open_clip():
    import open_clip as oc

    if "oodbench-tiny-clip" not in oc.list_models():
        oc.add_model_config(shipped_dir("assets") / "open_clip")
    return oc


@dataclass
class ClipText:
    tokenizer: Callable
    # Functions of a class name. The suite's own when it gives them (a suite card's `templates`), else the 80
    # OpenAI ImageNet prompts (open_clip ships them); WiSE-FT, FLYP and Lipsum-FT use those for ImageNet, and
    # Lipsum-FT for DomainNet too.
    templates: tuple
    classnames: tuple


def prompt(template: str) -> Callable[[str], str]:
    """A template string ('{}' marks the class name) as open_clip's templates are: a function of the name."""
    return functools.partial(str.replace, template, "{}")


class ImageTower(nn.Module):
    def __init__(self, visual: nn.Module):
        super().__init__()
        self.visual = visual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.visual(x), dim=-1)  # = open_clip's encode_image(normalize=True)


class CLIPClassifier(Classifier):
    def __init__(self, backbone: ImageTower, head: nn.Linear, text: nn.Module):
        super().__init__(backbone, head)
        self.text = text

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text.encode_text(tokens, normalize=True)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.text.logit_scale.exp()

    def set_zero_shot_head(self, text: "ClipText") -> None:
        """Rebuild the head from this model's own text tower (FLYP evaluates its fine-tuned towers so)."""
        set_zero_shot_head(self, text)


@torch.no_grad()
def set_zero_shot_head(model: CLIPClassifier, text: ClipText) -> None:
    """Set the head to the zero-shot classifier of the model's own text tower (normalised mean over templates)."""
    was_training = model.text.training
    model.text.eval()
    weights = open_clip().build_zero_shot_classifier(model.text, text.tokenizer, list(text.classnames),
                                                     list(text.templates), device=model.head.weight.device)  # fmt: skip
    model.text.train(was_training)
    model.head.weight.copy_((model.logit_scale * weights.T).to(model.head.weight))
    model.head.bias.zero_()


def head_cache_path(model_name: str, weights: str, text: ClipText) -> Path:
    """Where the zero-shot head of pretrained weights is cached, keyed on all it depends on (weights, class
    names, prompt templates), so every run on a suite after the first skips the classes x templates text
    forward passes."""
    source = weights
    if os.path.isfile(weights):
        stat = os.stat(weights)
        source = [os.path.abspath(weights), stat.st_size, stat.st_mtime_ns]
    key = [model_name, source, list(text.classnames), [t("{}") for t in text.templates]]
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    return cache_root() / "zeroshot-heads" / f"{model_name}-{digest}.pt"


def parse(req: BackboneRequest) -> tuple[str, str]:
    oc = open_clip()
    model, _, weights = req.arg.partition("/")
    if model not in oc.list_models():
        raise BenchmarkError(f"unknown open_clip model {model!r}; list them with open_clip.list_models() "
                             f"(e.g. ViT-B-32, ViT-B-16, ViT-L-14)")  # fmt: skip
    tags = oc.list_pretrained_tags_by_model(model)
    if not weights:
        raise BenchmarkError(f"clip:{model} needs weights: clip:{model}/<tag> (tags: {', '.join(tags) or 'none'}), "
                             f"clip:{model}/<checkpoint file>, or clip:{model}/random")  # fmt: skip
    if weights not in tags and weights not in RANDOM_TAGS and not os.path.isfile(weights):
        raise BenchmarkError(f"clip:{model}/{weights}: not a pretrained tag ({', '.join(tags) or 'none'}), "
                             f"'random', or an existing checkpoint file")  # fmt: skip
    return model, weights


@BACKBONES.register("clip", "clip:<model>/<tag|checkpoint|random> via open_clip; zero-shot head, text tower kept")
class Clip:
    @staticmethod
    def transforms(req: BackboneRequest):
        oc = open_clip()
        model, weights = parse(req)
        # open_clip's own preprocessing at the model's native size (as create_model_and_transforms builds
        # it, without loading weights); --image-size does not apply to CLIP.
        size = oc.get_model_config(model)["vision_cfg"]["image_size"]
        cfg = oc.get_pretrained_cfg(model, weights) if weights in oc.list_pretrained_tags_by_model(model) else {}
        kw = dict(mean=cfg.get("mean", oc.OPENAI_DATASET_MEAN), std=cfg.get("std", oc.OPENAI_DATASET_STD),
                  interpolation=cfg.get("interpolation", "bicubic"), resize_mode=cfg.get("resize_mode", "shortest"))  # fmt: skip
        return oc.image_transform(size, is_train=True, **kw), oc.image_transform(size, is_train=False, **kw)

    @staticmethod
    def build(req: BackboneRequest) -> Built:
        oc = open_clip()
        model_name, weights = parse(req)
        if weights in RANDOM_TAGS or not req.pretrained:
            clip = oc.create_model(model_name, pretrained=None)
        elif os.path.isfile(weights):
            clip = load_or_fail(f"CLIP checkpoint {weights} into {model_name}",
                                lambda: oc.create_model(model_name, pretrained=weights))  # fmt: skip
        else:
            hint = (f"weights are not available locally; run once online: python -c \"import open_clip; "
                    f"open_clip.create_model('{model_name}', pretrained='{weights}')\" (fills the Hugging Face cache), "
                    f"or pass a checkpoint file: clip:{model_name}/<path>")  # fmt: skip
            clip = load_or_fail(f"clip:{model_name}/{weights} ({hint})",
                                lambda: oc.create_model(model_name, pretrained=weights))  # fmt: skip
        visual = clip.visual
        del clip.visual  # the rest is the text tower; the image tower lives once, in the classifier
        clip.requires_grad_(False)  # frozen unless a method trains it (FLYP)
        templates = tuple(map(prompt, req.templates)) or tuple(oc.OPENAI_IMAGENET_TEMPLATES)
        text = ClipText(oc.get_tokenizer(model_name), templates, tuple(req.classnames))
        head = nn.Linear(oc.get_model_config(model_name)["embed_dim"], len(req.classnames))
        model = CLIPClassifier(ImageTower(visual), head, clip)
        cached = head_cache_path(model_name, weights, text) if req.pretrained and weights not in RANDOM_TAGS else None
        if cached is not None and cached.is_file():
            with torch.no_grad():
                model.head.weight.copy_(torch.load(cached, map_location="cpu", weights_only=True))
                model.head.bias.zero_()
        else:
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            model.text.to(device)  # ImageNet's 1000 classes x 80 prompts: seconds on a GPU, far longer on CPU
            model.head.to(device)
            set_zero_shot_head(model, text)
            model.cpu()
            if cached is not None:
                from benchmark.files import atomic_write_bytes

                buffer = io.BytesIO()
                torch.save(model.head.weight.detach().clone(), buffer)
                atomic_write_bytes(cached, buffer.getvalue())
        return Built(model, *Clip.transforms(req), head_is_pretrained=True, extras={"text": text})
