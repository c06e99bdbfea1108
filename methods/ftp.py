"""FTP: Fast Trainable Projection (Tian et al., NeurIPS 2023), as an after-step hook.

The reference code (github.com/GT-RIPL/FTP, ``util/FTP.py``) wraps SGD/Adam as SGDP/AdamP. Per parameter
tensor, after the optimizer has computed its update ``d_p`` at step t:

    c_t     = (theta_t - d_p) - theta_0              the unconstrained displacement from the pretrained weights
    n_t     = per-row L1 norm of c_t (+1e-8)         "MARS" norm, one per output row (whole vector for 1-D)
    g_t     = sum(grad_t * c_{t-1} / n_{t-1})        d loss / d gamma, since theta_t = theta_0 + gamma c_{t-1}/n_{t-1}
    g_t     = k * g_t if g_t > 0                     k anneals only the gradient that *shrinks* gamma
    gamma_t = Adam(gamma_{t-1}, g_t), lr 1e-2, clipped to [1e-8, max(n_t)]   (gamma_1 = 1e-8)
    theta_{t+1} = theta_0 + clamp(gamma_t / n_t, 0, 1) * c_t

Mapping onto the harness: the loop's ``optimizer.step()`` is SGDP/AdamP's update without the projection
(SGD+momentum and AdamW's decoupled decay are the same arithmetic as SGDP and AdamP), so right after it
``theta - theta_0`` *is* c_t, and ``param.grad`` still holds grad_t (the gradient at theta_t; after the
loop's gradient clipping, which only rescales it and which the reference does not do). theta_0 comes from
``ctx.reference``. The only thing the hook cannot see again is c_{t-1}, so it keeps
``c_{t-1} / n_{t-1}`` per projected tensor: **one parameter-sized float buffer per projected tensor, i.e. one
extra copy of the projected weights** (the reference keeps the same buffer, ``prev_c``), plus three scalars
per tensor (gamma and its Adam moments). All of it is in ``state_dict`` so a resumed run continues exactly;
the checkpoint therefore grows by one model's worth of weights.

Short runs: gamma starts at 1e-8 and Adam moves it by at most ~ftp_lr per step, so in the 126-step CPU
default the backbone stays close to theta_0 (measured on fmnist-c, default sizes, 3 corruptions at
severity 3: clean 0.68 vs FT 0.85), the regime of a strong regulariser rather than the paper's 50 epochs.
"""
from __future__ import annotations

import torch

from methods import METHODS
from methods.base import Method, is_head
from methods.tpgm import distance_norms

FIRST_GAMMA = 1e-8  # util/FTP.py: gamma starts at 1e-8 and is clipped below at 1e-8
ADAM_BETAS = (0.9, 0.999)  # util/FTP.py _adam_util
ADAM_EPS = 1e-8  # util/FTP.py _adam_util
NORM_EPS = 1e-8  # util/FTP.py _mars_norm


def row_norms(t: torch.Tensor) -> torch.Tensor:
    """TPGM's MARS norms (one L1 per output row; one over the whole vector for 1-D tensors) + 1e-8.

    The 1-D case is what the reference's ``sum(dim=())`` did on the torch it was written for.
    """
    return distance_norms(t, "mars") + NORM_EPS


def project(anchor: torch.Tensor, displacement: torch.Tensor, gamma: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """anchor + clamp(gamma / norms, 0, 1) * displacement, row by row."""
    return anchor + (gamma / norms).clamp(0, 1) * displacement


@METHODS.register("ftp")
class FTP(Method):
    name = "ftp"
    description = "fast trainable projection: per-tensor radius towards the pretrained weights, learned online"
    HPARAMS = {
        "ftp_k": 1.0,  # positive-gradient annealing factor; README / main_finetune.py default 1 (strongest)
        "ftp_lr": 1e-2,  # Adam lr on gamma; util/FTP.py `mu`
        # The head has no pretrained value to stay near: README "exclude ... the last linear layer",
        # main_finetune.py exclude_set {head.weight, head.bias}.
        "ftp_exclude_head": True,
    }
    RECIPES = {
        # DomainNet SGDP recipe (main_finetune.py): SGD nesterov momentum 0.9, lr 1e-2, weight decay 0 (decay
        # towards zero would fight the projection towards theta_0); the rest is the suite's recipe.
        "fmnist-c": {"weight_decay": 0.0},
        # CLIP: AdamP = AdamW + FTP; repo README's AdamP example uses weight decay 0. The zero-shot head is
        # a pretrained initialisation, so it is projected too (the README excludes only heads without one).
        "imagenet": {"optimizer": "adamw", "weight_decay": 0.0, "ftp_exclude_head": False},
    }

    def setup(self, model, ctx):
        super().setup(model, ctx)
        anchors = dict(ctx.reference.named_parameters())
        self.anchors = {n: anchors[n] for n, p in model.named_parameters()
                        if p.requires_grad and not (self.hp["ftp_exclude_head"] and is_head(n))}  # fmt: skip
        self.t = 0  # optimizer steps seen (the reference's `t`, also Adam's bias-correction step)
        self.gamma: dict[str, torch.Tensor] = {}
        self.moments: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.direction: dict[str, torch.Tensor] = {}  # c_{t-1} / n_{t-1}

    @torch.no_grad()
    def after_step(self, model, step):
        self.t += 1
        for name, p in model.named_parameters():
            if name not in self.anchors or p.grad is None:  # SGDP/AdamP skip parameters without a gradient
                continue
            anchor = self.anchors[name]
            displacement = p - anchor
            norms = row_norms(displacement)
            if name not in self.gamma:
                gamma = torch.tensor(FIRST_GAMMA, device=p.device)
                self.moments[name] = (torch.zeros((), device=p.device), torch.zeros((), device=p.device))
            else:
                gamma = self.radius_step(name, (p.grad * self.direction[name]).sum())
                gamma = gamma.clamp(FIRST_GAMMA, norms.max())
            p.copy_(project(anchor, displacement, gamma, norms))
            self.gamma[name] = gamma
            self.direction[name] = displacement / norms

    def radius_step(self, name: str, grad: torch.Tensor) -> torch.Tensor:
        """One Adam step on gamma (util/FTP.py `_adam_util`, bias-corrected with the global step t)."""
        if grad > 0:
            grad = grad * self.hp["ftp_k"]
        (b1, b2), (m, v) = ADAM_BETAS, self.moments[name]
        m, v = b1 * m + (1 - b1) * grad, b2 * v + (1 - b2) * grad**2
        self.moments[name] = (m, v)
        m_hat, v_hat = m / (1 - b1**self.t), v / (1 - b2**self.t)
        return self.gamma[name] - self.hp["ftp_lr"] * m_hat / (v_hat.sqrt() + ADAM_EPS)

    def state_dict(self):
        return {"t": self.t, "gamma": self.gamma, "moments": self.moments, "direction": self.direction}

    def load_state_dict(self, state):
        # Copies, so that this method and whoever holds `state` never update each other's dicts.
        self.t = state["t"]
        self.gamma, self.moments, self.direction = (dict(state[k]) for k in ("gamma", "moments", "direction"))
