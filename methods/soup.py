"""Model soups (Wortsman et al., ICML 2022): average the weights of models fine-tuned from one initialisation.

One run trains K = 1 + len(soup_lr_scales) ingredients from the same initial weights (the pretrained
backbone and the run's initial head, taken at setup). Ingredient 0 is the run's own fine-tuning
(the harness loop); ingredients 1..K-1 are trained in ``finalize`` by the same loop
(``benchmark.engine.fit``) with the learning rate scaled by ``soup_lr_scales[i-1]`` and a data order of
their own, each with a checkpoint beside the run's, so an interrupted run resumes there (the ingredient
checkpoints are removed once every variant's weights exist; an interruption during evaluation retrains).
The record's curves are ingredient 0's.

Variants: every ingredient (``soup-ingredient-<i>``), the uniform soup (the mean of all K) and the greedy
soup (the paper's recipe: ingredients sorted by held-out accuracy, best first; each is added when the
held-out accuracy of the average does not drop). Held-out = ``ctx.selection_loader`` only, never a
reported split. "Does not drop" (>=) is the paper's wording; the official code (main.py) adds only on a
strict increase. For BatchNorm networks every average of two or more models gets its running statistics
re-estimated on training images before it is judged or evaluated (``bn_reestimate_images``; our addition,
see methods.base.reestimate_bn).

Cost: K trainings, and K + 2 variants evaluated; not in the CPU default suite's method list for that reason.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import torch

from benchmark.engine import fit
from benchmark.engine.evaluate import top1_counts
from benchmark.engine.metrics import accuracy_from_counts
from methods import METHODS
from methods.base import Method, check_range, reestimate_bn, state_copy

State = dict[str, torch.Tensor]


def average_states(states: list[State]) -> State:
    """Uniform average of state dicts, key by key; integer buffers (BN batch counters) are the first's."""
    return {key: torch.stack([s[key] for s in states]).mean(0) if first.is_floating_point() else first.clone()
            for key, first in states[0].items()}  # fmt: skip


def greedy_soup(states: list[State], score: Callable[[State], float],
                average: Callable[[list[State]], State] = average_states) -> tuple[list[int], list[float]]:  # fmt: skip
    """Indices of the greedy soup's members, best first, and every ingredient's own score."""
    scores = [score(s) for s in states]
    order = sorted(range(len(states)), key=lambda i: -scores[i])
    members, best = order[:1], scores[order[0]]
    for i in order[1:]:
        candidate = score(average([states[j] for j in members + [i]]))
        if candidate >= best:
            members.append(i)
            best = candidate
    return members, scores


def cpu_copy(state: State) -> State:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


@METHODS.register("soup")
class Soup(Method):
    tasks = ("classification",)  # greedy membership is judged by top-1 accuracy
    description = "model soups: K fine-tunings (lr sweep) from one init, uniform and greedy weight averages"
    HPARAMS = {
        # Extra ingredients' lr multipliers (ingredient 0 uses the recipe's lr). Ours: a small sweep, one
        # step down and one up; the paper's soups sweep lr, wd, epochs, augmentation and label smoothing.
        "soup_lr_scales": (0.5, 2.0),
        # Ours (methods.base.reestimate_bn): BatchNorm statistics of every average of two or more models are
        # re-estimated on this many training images, also while judging greedy candidates; 0 = plain averages.
        "bn_reestimate_images": 512,
    }
    RECIPES = {
        # CLIP recipe lr 3e-5 -> 3e-6 and 9e-5: inside the 1e-6 .. 1e-4 lr range of the official sweep
        # (model-soups hparam_info.json, 71 fine-tuned ViT-B/32). The paper averages buffers as they are.
        "imagenet": {"soup_lr_scales": (0.1, 3.0), "bn_reestimate_images": 0},
    }

    @classmethod
    def check(cls, hp):
        for i, scale in enumerate(hp["soup_lr_scales"]):
            check_range(cls.name, f"soup_lr_scales[{i}]", scale, 0, low_open=True)
        check_range(cls.name, "bn_reestimate_images", hp["bn_reestimate_images"], 0)

    def setup(self, model, ctx):
        super().setup(model, ctx)
        self.initial = state_copy(model)

    def finalize(self, model):
        ctx = self.ctx
        states = [cpu_copy(model.state_dict())]
        checkpoints = []
        for i, scale in enumerate(self.hp["soup_lr_scales"], start=1):
            model.load_state_dict(self.initial)
            hp = {**self.hp, "lr": self.hp["lr"] * scale}
            # Own data order per ingredient (the loop shuffles by ctx.seed and epoch).
            ingredient_ctx = dataclasses.replace(ctx, seed=ctx.seed + 1_000_003 * i)
            checkpoints.append(ctx.checkpoint.with_suffix(f".ingredient{i}.pt"))
            fit(model, self, ingredient_ctx, hp, ctx.train_loader.dataset, checkpoints[-1], ctx.progress)
            states.append(cpu_copy(model.state_dict()))
        average = functools.partial(self.average, model)
        members, _ = greedy_soup(states, functools.partial(self.selection_accuracy, model), average)
        variants = {"soup-uniform": average(states), "soup-greedy": average([states[i] for i in members])}
        variants.update({f"soup-ingredient-{i}": s for i, s in enumerate(states)})
        for path in checkpoints:
            path.unlink(missing_ok=True)
        return variants

    def average(self, model, states: list[State]) -> State:
        if len(states) == 1:  # one trained model: its statistics already fit its weights
            return states[0]
        return reestimate_bn(model, average_states(states), self.ctx, self.hp["bn_reestimate_images"])

    def selection_accuracy(self, model, state: State) -> float:
        model.load_state_dict(state)
        loader = self.ctx.selection_loader
        # Counts summed over processes under torchrun: every process judges (and so cooks) the same soup.
        return accuracy_from_counts(*top1_counts(model.eval(), loader.dataset, None, self.ctx.device, loader.batch_size,
                                                 workers=self.ctx.workers))  # fmt: skip
