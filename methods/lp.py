"""Linear probing: the backbone stays frozen (BN statistics included); only the head is fit.

As in the WiSE-FT / LP-FT line, the probe is a multinomial logistic regression on frozen features,
fit to convergence with full-batch L-BFGS rather than by SGD epochs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

from benchmark.engine import distributed, loader
from benchmark.engine.evaluate import my_share
from benchmark.errors import BenchmarkError
from methods import METHODS
from methods.base import Method, RunContext, check_range


@torch.no_grad()
def extract_features(model, loader, device, progress=True) -> tuple[torch.Tensor, torch.Tensor]:
    was_training = model.training
    model.eval()
    feats, labels = [], []
    for x, y in tqdm(loader, desc="probe features", unit="batch", leave=False, disable=not progress):
        feats.append(model.features(x.to(device)).float().cpu())
        labels.append(y)
    model.train(was_training)
    return torch.cat(feats), torch.cat(labels)


def my_share_of(train_loader, workers: int):
    """This process's contiguous share of the loader's images (the loader itself on one process)."""
    if distributed.world_size() == 1:
        return train_loader
    return loader(my_share(train_loader.dataset), train_loader.batch_size, workers=workers)


def fit_logistic_regression(feats, labels, num_classes, weight_decay, max_iter=200):
    """argmin_W,b mean CE(feats W^T + b, labels) + weight_decay/2 ||W||^2, by L-BFGS. Returns (W, b)."""
    torch.manual_seed(0)
    w = torch.zeros(num_classes, feats.shape[1], requires_grad=True)
    b = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(feats @ w.T + b, labels) + weight_decay / 2 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def probe_head(model, ctx: RunContext, weight_decay: float, method: str = "lp") -> None:
    """Replace the model's head by the logistic-regression probe fit on frozen train features."""
    if not isinstance(model.head, torch.nn.Linear):  # e.g. a segmentation decoder: no per-image probe exists
        raise BenchmarkError(f"a linear probe needs a linear head; this model's head is a {type(model.head).__name__} "
                             f"(segmentation suites: use methods that fine-tune the head, e.g. ft, l2-sp, tpgm, ftp)")  # fmt: skip
    # Under torchrun each process extracts its share of the features; rank 0 fits the probe on all of them (in
    # the one-process order) and sends it to the others, so every process holds the same head.
    feats, labels = extract_features(model, my_share_of(ctx.train_loader, ctx.workers), ctx.device, ctx.progress)
    feats, labels = distributed.gather_rows(feats), distributed.gather_rows(labels)
    if distributed.is_main():
        w, b = fit_logistic_regression(feats, labels, ctx.num_classes, weight_decay)
    else:
        w, b = torch.empty(ctx.num_classes, model.head.in_features), torch.empty(ctx.num_classes)
    w, b = distributed.broadcast(w), distributed.broadcast(b)
    # No training loop follows for lp, so nothing else would notice a diverged fit before it is evaluated.
    if not (torch.isfinite(w).all() and torch.isfinite(b).all()):
        raise BenchmarkError(f"{method}: the linear probe's fit gave non-finite weights (probe_wd={weight_decay!r}); "
                             f"no record written")  # fmt: skip
    with torch.no_grad():
        model.head.weight.copy_(w.to(model.head.weight))
        model.head.bias.copy_(b.to(model.head.bias))


@METHODS.register("lp")
class LP(Method):
    description = "linear probe: frozen backbone, logistic-regression head (L-BFGS on features)"
    tasks = ("classification",)  # a logistic-regression probe on pooled features has no per-pixel form
    HPARAMS = {"probe_wd": 1e-4}  # L2 on the probe weights; wise-ft sweeps C, we fix a mild value

    @classmethod
    def check(cls, hp):
        check_range(cls.name, "probe_wd", hp["probe_wd"], 0)

    def setup(self, model, ctx):
        super().setup(model, ctx)
        probe_head(model, ctx, self.hp["probe_wd"], self.name)

    def param_groups(self, model):
        return []  # nothing left to train: the harness skips the loop
