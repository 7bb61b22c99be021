"""The Bayesian view of fine-tuning: the pretrained weights are the prior.

- priors: L2-SP, a Gaussian prior centred on the pretrained weights (MAP training).
- laplace: a Laplace posterior over the classification head, its prior precision from the evidence.
- evidence: the Laplace evidence for the L2-SP strength of the whole encoder (select="evidence").
- temperature: temperature scaling fitted on out-of-fold predictions of the shots.
- ensembles: deep ensembles over seeds and MC dropout, the sample-based alternatives.
- acquisition: which unlabeled texts to label next (BALD, entropy, margin).
"""

from .laplace import LaplaceHead
from .priors import L2SPPrior
from .temperature import apply_temperature, fit_temperature

__all__ = ["L2SPPrior", "LaplaceHead", "apply_temperature", "fit_temperature"]
