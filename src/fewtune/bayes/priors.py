"""Priors centred on the pretrained weights.

L2-SP (Li et al. 2018) adds λ/2·‖θ−θ₀‖² to the loss: the negative log of a Gaussian prior
N(θ₀, λ⁻¹I) centred on the pretrained weights θ₀, so the trained weights are the MAP estimate
under that prior. Plain weight decay is the same prior centred on zero, which pulls a pretrained
model towards an untrained one — the wrong direction when there are only a few examples.
"""

from __future__ import annotations

import torch


class L2SPPrior:
    """Keeps a copy of θ₀ for the given parameters; `penalty()` is λ/2·‖θ−θ₀‖²."""

    def __init__(self, params: list[torch.nn.Parameter], strength: float):
        self.params = list(params)
        self.strength = float(strength)
        # The anchor is a detached copy: the prior must not move while the weights do.
        self.anchor = [p.detach().clone() for p in self.params]

    def penalty(self) -> torch.Tensor:
        if self.strength == 0:
            return torch.zeros((), device=self.params[0].device)
        total = sum(((p - a) ** 2).sum() for p, a in zip(self.params, self.anchor))
        return 0.5 * self.strength * total

    @torch.no_grad()
    def distance(self) -> float:
        """‖θ−θ₀‖ over the covered parameters: how far training moved from the pretrained model."""
        return float(torch.sqrt(sum(((p - a) ** 2).sum() for p, a in zip(self.params, self.anchor))))

    @torch.no_grad()
    def interpolate(self, share: float) -> None:
        """Move the weights to θ₀ + share·(θ−θ₀): WiSE-FT's weight-space ensemble of the pretrained and
        the trained model (Wortsman et al. 2022), one model at the cost of one."""
        for p, a in zip(self.params, self.anchor):
            p.copy_(a + share * (p - a))
