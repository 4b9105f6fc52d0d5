"""Exponential moving average of model weights (the weights used for inference)."""
from __future__ import annotations

import torch
from torch import nn


class ExponentialMovingAverage:
    """``shadow <- d * shadow + (1 - d) * param`` after each optimiser step.

    The effective decay is ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so the
    average is not dominated by the random initialisation early in training.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.num_updates = 0
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
        self.device = next(iter(self.shadow.values())).device

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                self.shadow[k].mul_(d).add_(v.detach().float(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """A copy of the averaged weights (on the model's device)."""
        return {k: v.clone() for k, v in self.shadow.items()}

    def load_state_dict(self, shadow: dict[str, torch.Tensor], num_updates: int) -> None:
        self.shadow = {k: v.clone().float().to(self.device) for k, v in shadow.items()}
        self.num_updates = num_updates
