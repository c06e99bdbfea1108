"""Lipsum-FT (Nam, Heo & Lee, ICLR 2024): fine-tune the image tower with cross-entropy plus a penalty
keeping its image-text energies close to the zero-shot model's, measured on random texts.

    loss = CE + lambda * mean_batch sum_k (s f(x) . g(t_k) - s f0(x) . g(t_k))^2 / (2K)

f / f0: normalised image features of the fine-tuned / frozen zero-shot model; g: the frozen text tower
(normalised); s: the pretrained logit scale; t_1..t_K: K random token sequences ([SOT] + L random
ids below the special tokens + [EOT]), resampled every optimizer step. All as in the official code
(github.com/cs-giung/lipsum-ft, scripts/Lipsum-FT.py: `feat_regularization`, `token_k_ways`,
`token_length`). Only the image tower and head train; the text tower stays frozen.

The loss is a mean of per-image terms given the step's texts, so the loop's split of a step into micro-batches
(accum_steps) and processes (torchrun) trains the whole batch's loss exactly: the texts are drawn once per
optimizer step, by every process from the same generator, and shared by all of the step's micro-batches.

The head is the official one (ScaledHead): a bias-free linear layer, started at the zero-shot
classifier, with the frozen pretrained logit scale applied outside it. finalize folds the scale back
into our CLIP head's layout (s * W, bias 0), so the variant is the same kind of model as the zero-shot
one (loadable into it, interpolable with it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import skip_init

from benchmark.errors import BenchmarkError
from methods import METHODS
from methods.base import Method, check_range

# Official schedule (README commands + scripts/Lipsum-FT.py defaults): batch 256, linear warm-up over the
# first 10% of steps then cosine; ImageNet 50,000 steps (= 10 epochs of 1.28M images), DomainNet 5,000
# steps (~10 epochs of real-train).
SCHEDULE = {"batch_size": 256, "epochs": 10}


def random_tokens(tokenizer, n: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """n random prompts of `length` BPE ids between [SOT] and [EOT], zero-padded to the context length."""
    sot, eot = tokenizer.sot_token_id, tokenizer.eot_token_id
    tokens = torch.zeros(n, tokenizer.context_length, dtype=torch.long)
    tokens[:, 0] = sot
    tokens[:, 1 : length + 1] = torch.randint(0, min(sot, eot), (n, length), generator=generator)
    tokens[:, length + 1] = eot
    return tokens


def energy_gap(features, reference_features, text_features, scale) -> torch.Tensor:
    """mean over images of sum_k (s f.g_k - s f0.g_k)^2 / (2K): the Lipsum-FT regulariser."""
    gap = scale * (features - reference_features) @ text_features.T
    return gap.pow(2).sum(dim=1).mean() / (2 * text_features.shape[0])


class ScaledHead(nn.Module):
    """logits = (s * f) @ W^T with W trained and s = exp(logit_scale) frozen at its pretrained value, as in
    the official code (github.com/cs-giung/lipsum-ft @1331873, scripts/Lipsum-FT.py L186-187 and L256-257:
    W is params['cls'] (L132), no bias; s is pretrained_params['logit_scale'] (L86-87), outside the
    trained params). Our CLIP head folds s into its weights (s * W); trained so, AdamW would move W by
    ~lr / s a step (s = 100 for the OpenAI weights) instead of ~lr."""

    def __init__(self, head: nn.Linear, scale: torch.Tensor):
        super().__init__()
        # Not saved: setup rebuilds it from the frozen reference, also on resume.
        self.register_buffer("scale", scale.detach().clone(), persistent=False)
        # The zero-shot head is s * W with bias 0 (benchmark/models/clip.py), so W = its weights / s: the
        # normalised class text embeddings, the official init (scripts/setup.py L91-93 `zeroshot_cls_weights`).
        self.weight = nn.Parameter(head.weight.detach() / self.scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.linear(self.scale * features, self.weight)

    @torch.no_grad()
    def folded(self) -> nn.Linear:
        """The same classifier in our CLIP head's layout: weights s * W, bias 0."""
        classes, dim = self.weight.shape
        # skip_init: no random init, so the global RNG is left as it was.
        head = skip_init(nn.Linear, dim, classes, device=self.weight.device, dtype=self.weight.dtype)
        head.weight.copy_(self.scale * self.weight)
        head.bias.zero_()
        return head


@METHODS.register("lipsum-ft")
class LipsumFT(Method):
    description = "Lipsum-FT: CE + MSE of image-random-text energies to the zero-shot model (CLIP)"
    needs_reference = True
    needs_text_tower = True
    tasks = ("classification",)
    HPARAMS = {
        # The official optimizer on every suite (a CLIP recipe): AdamW lr 1e-5, no weight decay, no clipping.
        "optimizer": "adamw", "lr": 1e-5, "weight_decay": 0.0, "grad_clip": 0.0,
        "lipsum_lambda": 1.0,  # `feat_regularization`, official default and paper setting
        "lipsum_texts": 80,  # K = `token_k_ways`
        "lipsum_tokens": 8,  # L = `token_length`
    }  # fmt: skip
    RECIPES = {
        "imagenet": {**SCHEDULE, "warmup_steps": 5000},  # 10% of 50,000 steps
        "domainnet": {**SCHEDULE, "warmup_steps": 500},  # 10% of 5,000 steps
    }  # fmt: skip
    DEPARTURES = {
        "optimizer": "Lipsum-FT's official optimizer on every suite: AdamW (github.com/cs-giung/lipsum-ft README)",
        "grad_clip": "Lipsum-FT's official recipe does not clip gradients (scripts/Lipsum-FT.py)",
        **dict.fromkeys(("batch_size", "epochs", "warmup_steps"),
                        "Lipsum-FT's official schedule: batch 256, 10% warm-up then cosine, ImageNet 50,000 / DomainNet "
                        "5,000 steps (README commands, scripts/Lipsum-FT.py)"),
    }  # fmt: skip

    @classmethod
    def check(cls, hp):
        check_range(cls.name, "lipsum_lambda", hp["lipsum_lambda"], 0)
        for key in ("lipsum_texts", "lipsum_tokens"):
            check_range(cls.name, key, hp[key], 1)

    def setup(self, model, ctx):
        super().setup(model, ctx)
        self.tokenizer = ctx.extras["text"].tokenizer
        self.reference = ctx.reference  # the frozen zero-shot model: image features f0 and the text tower
        self.generator = torch.Generator().manual_seed(ctx.seed)
        if not hasattr(self.tokenizer, "sot_token_id"):
            raise BenchmarkError("lipsum-ft needs open_clip's BPE tokenizer (a CLIP model with the OpenAI-style text tower)")
        # [SOT] + L tokens + [EOT] must fit the context; only the tokenizer knows its length.
        check_range(self.name, "lipsum_tokens", self.hp["lipsum_tokens"], 1, self.tokenizer.context_length - 2)
        model.head = ScaledHead(model.head, self.reference.logit_scale)
        self.texts = None  # the text features of the current step's random texts, made at its first micro-batch

    def draw(self) -> torch.Tensor:
        return random_tokens(self.tokenizer, self.hp["lipsum_texts"], self.hp["lipsum_tokens"], self.generator)

    def loss(self, model, batch):
        x, y = batch
        with torch.no_grad():
            if self.texts is None:
                self.texts = self.reference.encode_text(self.draw().to(x.device))
            prior = self.reference.features(x)
        features = model.features(x)
        reg = energy_gap(features, prior, self.texts, self.reference.logit_scale)
        return {"ce": F.cross_entropy(model.head(features), y), "lipsum": self.hp["lipsum_lambda"] * reg}

    def after_step(self, model, step):
        if self.texts is None:  # no images here this step (an empty share): draw as the other processes did
            self.draw()
        self.texts = None

    def finalize(self, model):
        model.head = model.head.folded()
        return {self.name: model.state_dict()}

    def state_dict(self):
        return {"generator": self.generator.get_state()}  # a resumed run draws the same random texts

    def load_state_dict(self, state):
        self.generator.set_state(state["generator"])
