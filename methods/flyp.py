"""FLYP, "Finetune Like You Pretrain" (Goyal et al., CVPR 2023): fine-tune both CLIP towers with the
pre-training contrastive loss between each image and a prompt of its class, then classify with the
zero-shot head rebuilt from the fine-tuned text tower.

As in the official code (github.com/locuslab/FLYP, src/models/flyp_loss.py): each image is paired with
one of the 80 OpenAI ImageNet prompts of its class, drawn at random (their CSV lists every
(image, template) pair and samples rows); the loss is open_clip's ClipLoss (symmetric cross-entropy over
the batch, other images of the same class count as negatives) with the trained logit scale; every
parameter of both towers trains (the logit scale included, unclamped); evaluation uses the zero-shot
head of the fine-tuned model (`get_zeroshot_classifier`), the task head is not trained.

The loss of a batch is not a sum of per-image terms (each image's text is every other image's negative), so the
loop's way of splitting a step, summing gradients over micro-batches (accum_steps) and processes (torchrun),
would train a different loss. open_clip gathers features across processes for it, which is exact only with one
micro-batch per process of equal size and every process in each step (ours ends epochs with a short step, shared
unevenly); FLYP is refused in both settings instead.
"""
from __future__ import annotations

import torch

from benchmark.engine import distributed
from benchmark.errors import BenchmarkError
from methods import METHODS
from methods.base import Method, is_head

WHOLE_BATCH = "flyp's contrastive loss is over the whole batch; run it with accum_steps=1 in one process"


def clip_loss(image_features, text_features, scale) -> torch.Tensor:
    import open_clip

    return open_clip.ClipLoss()(image_features, text_features, scale)


@METHODS.register("flyp")
class FLYP(Method):
    description = "FLYP: contrastive image-prompt fine-tuning of both CLIP towers; zero-shot head at the end"
    needs_text_tower = True
    tasks = ("classification",)
    # FLYP README, ImageNet: AdamW lr 1e-5, wd 0.1, batch 512, 10 epochs, 500 warm-up steps (args.py
    # default), cosine, no gradient clipping; batch, epochs and warm-up are the imagenet suite's already.
    HPARAMS = {"optimizer": "adamw", "lr": 1e-5, "weight_decay": 0.1, "grad_clip": 0.0}
    DEPARTURES = {
        "optimizer": "FLYP trains both CLIP towers with AdamW on every suite (github.com/locuslab/FLYP README)",
        "grad_clip": "FLYP's recipe does not clip gradients (github.com/locuslab/FLYP README, args.py)",
    }

    @classmethod
    def check(cls, hp):
        if hp.get("accum_steps", 1) > 1:
            raise BenchmarkError(f"{WHOLE_BATCH} (asked: accum_steps={hp['accum_steps']})")

    def setup(self, model, ctx):
        if distributed.world_size() > 1:
            raise BenchmarkError(f"{WHOLE_BATCH} (this run: {distributed.world_size()} processes)")
        super().setup(model, ctx)
        self.text = ctx.extras["text"]
        model.text.requires_grad_(True)  # both towers train
        self.generator = torch.Generator().manual_seed(ctx.seed)

    def param_groups(self, model):
        return [{"params": [p for n, p in model.named_parameters() if p.requires_grad and not is_head(n)]}]

    def prompts(self, labels: torch.Tensor) -> list[str]:
        picks = torch.randint(len(self.text.templates), (len(labels),), generator=self.generator)
        return [self.text.templates[t](self.text.classnames[c]) for c, t in zip(labels.tolist(), picks.tolist())]

    def loss(self, model, batch):
        x, y = batch
        tokens = self.text.tokenizer(self.prompts(y)).to(x.device)
        return {"flyp": clip_loss(model.features(x), model.encode_text(tokens), model.logit_scale)}

    def finalize(self, model):
        model.set_zero_shot_head(self.text)
        return {self.name: model.state_dict()}

    def state_dict(self):
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state):
        self.generator.set_state(state["generator"])
