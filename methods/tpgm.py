"""TPGM (Tian et al., CVPR 2023): fine-tuning under learned per-tensor distance constraints.

Every projected parameter tensor theta has ONE learnable radius gamma. The projection pulls theta back
towards the pretrained theta0:

    theta <- theta0 + clamp(gamma / ||theta - theta0||, 0, 1) * (theta - theta0)

with ||.|| either "mars" (the L1 norm over every dim but the first: one norm, hence one ratio, per output
row; a 1-D tensor has a single whole-vector L1 norm) or "l2" (the whole tensor's L2 norm). The radii are
trained bi-level: the projected parameters are a differentiable function of gamma, the model is run with
them (torch.func.functional_call, eval mode) on a held-out batch, and Adam steps gamma on that
cross-entropy. As in the official code (github.com/PotatoTian/TPGM, utils/tpgm.py), gamma starts at
norms.min()/2 on the first call and is clipped to [1e-8, norms.max()] before every use.

Two recipes, both here:
- per-step (the DomainNet / CNN recipe): after every optimizer step, a radius update every `proj_freq`
  steps (`max_iters` Adam iterations), then the projection in place; the head is excluded. Variant "tpgm".
- post-hoc (the ImageNet ViT recipe): plain fine-tuning, then once `posthoc_iters` radius iterations and
  one projection (L2 norm, head included). Variant "tpgm-posthoc" (skipped when posthoc_iters = 0).

The radius steps read held-out batches of `proj_batch_size` images (official: 64 on both recipes, not
the training batch). Departure from the official code: it tunes the radii on the validation split it
also reports; here the held-out batches come from the selection split (ctx.selection_loader's data),
which is disjoint from every reported split. The official code also deep-copies the model for each
radius step; functional_call avoids any copy beyond ctx.reference (only the projected tensors of the
current step exist transiently, for autograd).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.utils.data import DataLoader

from benchmark.errors import BenchmarkError
from benchmark.engine import autocast, loader
from benchmark.engine.distributed import all_sum, shard_batch
from methods import METHODS
from methods.base import Method, check_range, is_head

NORM_MODES = ("mars", "l2")


def row_sums(t: torch.Tensor) -> torch.Tensor:
    """Sums per output row (keepdim); biases and norm scales (1-D) are one row: the whole vector."""
    return t.sum(dim=tuple(range(1, t.dim())), keepdim=True) if t.dim() > 1 else t.sum()


def distance_norms(d: torch.Tensor, mode: str) -> torch.Tensor:
    """Norm(s) of a displacement d = theta - theta0: per output row (MARS, keepdim) or whole-tensor (L2)."""
    if mode == "l2":
        return torch.linalg.vector_norm(d)
    return row_sums(d.abs())


def projection_ratio(gamma: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    # hardtanh(0, 1), as the official code: no gradient to gamma from rows already inside the radius.
    return F.hardtanh(gamma / (norms + 1e-8), 0.0, 1.0)


def radius_loader(selection, batch_size: int, seed: int, workers: int):
    """The selection split, shuffled, in batches of `batch_size` for the radius steps, loaded by `workers`
    processes kept from one pass to the next (the stream re-iterates it all run long). The official code
    builds this loader apart from the training one, with batch_size = the per-GPU --batch_size, 64
    (github.com/PotatoTian/TPGM @8d18db0): DomainNet_ResNet_Exp/main_finetune.py L113-120 (training,
    L35-40: 64 x 4 GPUs in the README commands); ImageNet_ViT_Exp/main_finetune.py L119-125 (default 64,
    L58-63; the README's post-hoc command sets none)."""
    if not isinstance(selection, DataLoader):
        return selection  # fixed batches (unit tests, `benchmark bench`): used as they are
    return loader(selection.dataset, batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed),
                  workers=workers, persistent=True)  # fmt: skip


class HeldOutStream:
    """Batches of a loader, re-iterated (and so reshuffled) whenever it runs out, whose position survives a
    checkpoint: the loader's generator state when the current pass began and the batches drawn since. A
    resumed run replays the pass up to there (at most one pass over the selection split), so its radius steps
    see exactly the batches an uninterrupted run would have."""

    def __init__(self, loader):
        self.loader = loader
        self.generator = getattr(loader, "generator", None)  # None: a fixed order (e.g. a list of batches)
        self.batches, self.pass_start, self.drawn = None, None, 0

    def __next__(self):
        while True:
            if self.batches is None:
                self.pass_start = self.generator.get_state() if self.generator is not None else None
                self.batches, self.drawn = iter(self.loader), 0
            try:
                batch = next(self.batches)
            except StopIteration:
                self.batches = None
                continue
            self.drawn += 1
            return batch

    def state_dict(self) -> dict:
        return {"pass_start": self.pass_start, "drawn": self.drawn} if self.batches is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        if state["pass_start"] is not None:
            self.generator.set_state(state["pass_start"])
        self.pass_start, self.batches = state["pass_start"], iter(self.loader)
        for _ in range(state["drawn"]):
            next(self.batches)
        self.drawn = state["drawn"]


class RadiusProjection:
    """One learnable radius per named parameter tensor, its Adam optimizer, and the projection."""

    def __init__(self, names: list[str], norm_mode: str, lr: float, device):
        if not names:
            raise BenchmarkError("tpgm: no parameter tensor left to project")
        self.names, self.norm_mode = names, norm_mode
        self.gamma = torch.zeros(len(names), device=device, requires_grad=True)
        # Adam is element-wise, so one vector of radii equals one scalar parameter per tensor (official).
        self.optimizer = torch.optim.Adam([self.gamma], lr=lr)
        self.initialized = False

    def projected(self, params: dict, anchors: dict) -> dict[str, torch.Tensor]:
        """theta0 + ratio(gamma) * (theta - theta0) per tensor; differentiable in gamma (only)."""
        diffs = {n: (params[n] - anchors[n]).detach() for n in self.names}
        norms = [distance_norms(diffs[n], self.norm_mode) for n in self.names]
        with torch.no_grad():  # init / clip every radius before any of them enters the graph
            if not self.initialized:
                self.gamma.copy_(torch.stack([m.min() / 2 for m in norms]))
                self.initialized = True
            self.gamma.copy_(self.gamma.clamp(min=1e-8).minimum(torch.stack([m.max() for m in norms])))
        return {n: anchors[n].detach() + projection_ratio(self.gamma[i], norms[i]) * diffs[n]
                for i, n in enumerate(self.names)}  # fmt: skip

    def radius_step(self, model, reference, batch) -> None:
        """One Adam step on the radii: CE of the projected model (eval mode) on a held-out batch. Under torchrun
        each process takes its share of the batch (every process draws the same batches) and the radius
        gradients are summed over processes, so the radii stay identical everywhere, and equal one process's."""
        x, y, weight = shard_batch(batch)
        was_training = model.training
        model.eval()
        params = dict(model.named_parameters())
        tensors = {n: p.detach() for n, p in params.items()}
        tensors.update(self.projected(params, dict(reference.named_parameters())))
        self.optimizer.zero_grad(set_to_none=True)
        if len(y):  # a share can be empty when a batch has fewer images than there are processes
            with autocast(x.device):
                logits = functional_call(model, tensors, (x,))
            (F.cross_entropy(logits.float(), y) * weight).backward()
        self.gamma.grad = all_sum(self.gamma.grad if self.gamma.grad is not None else torch.zeros_like(self.gamma))
        self.optimizer.step()
        model.train(was_training)

    @torch.no_grad()
    def apply(self, model, reference) -> None:
        params = dict(model.named_parameters())
        for name, value in self.projected(params, dict(reference.named_parameters())).items():
            params[name].copy_(value)

    def state_dict(self) -> dict:
        return {"gamma": self.gamma.detach().clone(), "optimizer": self.optimizer.state_dict(),
                "initialized": self.initialized}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.gamma.copy_(state["gamma"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.initialized = state["initialized"]


@METHODS.register("tpgm")
class TPGM(Method):
    description = "TPGM: projection onto learned per-tensor radii around the pretrained weights (per-step and post-hoc)"
    needs_reference = True
    HPARAMS = {
        # Per-step recipe: official DomainNet defaults (main_finetune.py: --proj_freq 1 in the README's
        # TPGM commands, --max_iters 1, --proj_lr 1e-2, --norm_mode mars; exclude_list = the head).
        "proj_freq": 1,
        "max_iters": 1,
        "radius_lr": 1e-2,
        "norm_mode": "mars",
        "exclude_head": True,
        # Held-out images per radius step, on both recipes: the official radius loader's batch_size is the
        # per-GPU --batch_size, 64 (see radius_loader), not our suites' training batch (DomainNet 256,
        # ImageNet 512).
        "proj_batch_size": 64,
        # Post-hoc recipe: official ImageNet defaults (--max_iters 200, --norm_mode l2, exclude_list []).
        # 0 = no post-hoc variant.
        "posthoc_iters": 0,
        "posthoc_norm_mode": "l2",
        "posthoc_exclude_head": False,
    }
    RECIPES = {
        # ImageNet ViT recipe (official ImageNet_ViT_Exp): fine-tune without TPGM, then 200 post-hoc
        # iterations with the L2 norm, head included. The fine-tuning recipe itself is the suite's
        # (benchmark/data/imagenet.py: WiSE-FT's CLIP recipe).
        "imagenet": {"proj_freq": 0, "posthoc_iters": 200},
        # Embedded CPU default (lite0 is a CNN, so the per-step DomainNet recipe), three departures:
        # - proj_freq 2: a radius step costs about one extra forward+backward; updating the radii every
        #   2nd step (projecting every step, as the official code does between updates) keeps TPGM's
        #   share of the 10-minute default run small.
        # - radius_lr 0.1: Adam moves a radius by about radius_lr per update, so its travel over a run is
        #   ~radius_lr x updates: ~230 for DomainNet's ~23k updates, 0.6 for this run's 63, too little
        #   to leave the init (norms.min()/2). Measured here (2000 train images, 2 epochs, seed 0),
        #   selection-split accuracy: FT 0.832; TPGM radius_lr 0.01 0.758, 0.1 0.830, 1.0 0.840. We take
        #   the smallest that matches FT on the selection split (0.1 and 1.0 differ by 5 of 500 images).
        # - proj_batch_size 32: the suite's training batch, with which radius_lr was measured above.
        "fmnist-c": {"proj_freq": 2, "radius_lr": 0.1, "proj_batch_size": 32},
    }  # fmt: skip

    @classmethod
    def check(cls, hp):
        for key, low in (("proj_freq", 0), ("max_iters", 1), ("posthoc_iters", 0), ("proj_batch_size", 1)):
            check_range(cls.name, key, hp[key], low)
        check_range(cls.name, "radius_lr", hp["radius_lr"], 0, low_open=True)
        if hp["proj_freq"] == 0 and hp["posthoc_iters"] == 0:
            raise BenchmarkError("tpgm: proj_freq=0 and posthoc_iters=0 is plain fine-tuning; set one of them")
        for key in ("norm_mode", "posthoc_norm_mode"):
            if hp[key] not in NORM_MODES:
                raise BenchmarkError(f"tpgm: unknown {key} {hp[key]!r}; valid: {', '.join(NORM_MODES)}")

    def setup(self, model, ctx):
        super().setup(model, ctx)
        hp = self.hp
        self.reference = ctx.reference
        self.batches = HeldOutStream(radius_loader(ctx.selection_loader, hp["proj_batch_size"], ctx.seed, ctx.workers))
        self.per_step = None
        if hp["proj_freq"]:
            self.per_step = RadiusProjection(self.projected_names(model, hp["exclude_head"]), hp["norm_mode"],
                                             hp["radius_lr"], ctx.device)  # fmt: skip

    @staticmethod
    def projected_names(model, exclude_head: bool) -> list[str]:
        return [n for n, p in model.named_parameters() if p.requires_grad and not (exclude_head and is_head(n))]

    def held_out_batch(self):
        x, y = next(self.batches)
        return x.to(self.ctx.device, non_blocking=True), y.to(self.ctx.device, non_blocking=True)

    def after_step(self, model, step):
        if self.per_step is None:
            return
        if step % self.hp["proj_freq"] == 0:
            for _ in range(self.hp["max_iters"]):
                self.per_step.radius_step(model, self.reference, self.held_out_batch())
        self.per_step.apply(model, self.reference)

    def posthoc(self, model) -> None:
        """The ImageNet recipe: learn fresh radii on the fine-tuned model, then project it once."""
        hp = self.hp
        proj = RadiusProjection(self.projected_names(model, hp["posthoc_exclude_head"]), hp["posthoc_norm_mode"],
                                hp["radius_lr"], self.ctx.device)  # fmt: skip
        for _ in range(hp["posthoc_iters"]):
            proj.radius_step(model, self.reference, self.held_out_batch())
        proj.apply(model, self.reference)

    def finalize(self, model):
        variants = {}
        if self.per_step is not None:
            # A copy only when the post-hoc projection is about to change the model in place.
            state = model.state_dict()
            variants["tpgm"] = {k: v.clone() for k, v in state.items()} if self.hp["posthoc_iters"] else state
        if self.hp["posthoc_iters"]:
            self.posthoc(model)
            variants["tpgm-posthoc"] = model.state_dict()
        return variants

    def state_dict(self):
        state = {"held_out": self.batches.state_dict()}
        return {**state, "radii": self.per_step.state_dict()} if self.per_step is not None else state

    def load_state_dict(self, state):
        self.batches.load_state_dict(state.get("held_out", {}))
        if self.per_step is not None and "radii" in state:
            self.per_step.load_state_dict(state["radii"])
