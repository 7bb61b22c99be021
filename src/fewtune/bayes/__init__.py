"""The Bayesian view of fine-tuning: the pretrained weights are the prior."""

from .priors import L2SPPrior

__all__ = ["L2SPPrior"]
