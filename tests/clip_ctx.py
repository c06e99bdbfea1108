"""A tiny random-init CLIP classifier with the RunContext a CLIP method sees (for method unit tests)."""
import torch

from benchmark.models import create_backbone
from benchmark.engine import RunContext, frozen_copy
from tests import tiny_cls

TINY_CLIP = "clip:oodbench-tiny-clip/random"


def tiny_clip_context(hp_method, hp: dict):
    torch.manual_seed(0)
    built = create_backbone(TINY_CLIP, tiny_cls.CLASSNAMES, 32)
    ctx = RunContext(reference=frozen_copy(built.model), train_loader=None, selection_loader=None, device=torch.device("cpu"),
                     num_classes=3, suite=tiny_cls.NAME, seed=0, extras=built.extras, head_is_pretrained=True)  # fmt: skip
    method = hp_method({**hp_method.HPARAMS, **hp})
    method.setup(built.model, ctx)
    x, y = torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2])
    return built.model, method, (x, y)


def step(model, method, batch, lr=1e-3):
    groups = method.param_groups(model)
    opt = torch.optim.AdamW(groups, lr=lr)
    loss = sum(method.loss(model, batch).values())
    opt.zero_grad()
    loss.backward()
    method.before_step(model)
    opt.step()
