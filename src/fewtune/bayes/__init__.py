"""The Bayesian view of fine-tuning: the pretrained weights are the prior, and the posteriors and
calibrations a FewShotClassifier chains after its model.

The maths:
- priors: L2-SP, a Gaussian prior centred on the pretrained weights (MAP training).
- laplace: a Laplace posterior over the classification head, its prior precision from the evidence.
- evidence: the Laplace evidence for the L2-SP strength of the whole encoder (select="evidence").
- temperature: temperature scaling fitted on out-of-fold predictions of the shots.
- ensembles: deep ensembles over seeds and MC dropout, the sample-based alternatives.
- acquisition: which unlabeled texts to label next (BALD, entropy, margin).

The strategies, each beside its maths (what `posterior=` and `calibrate=` name):
- strategy: the interface (fit, predict_proba or transform, state / from_state, describe) and the registries.
- laplace_posterior: "laplace", "laplace-cv" (on laplace).
- deep_ensemble: "ensemble"; mc_dropout: "mc-dropout" (on ensembles).
- temperature_scaling: "temperature"; auto_calibration: "auto" (on temperature).
- out_of_fold: the out-of-fold predictions of the shots that the calibrations are fitted on.
"""

from ..registry import import_all
from .laplace import LaplaceHead
from .priors import L2SPPrior
from .strategy import (Calibration, Fitting, Posterior, Strategy, calibration_names, check_chain, fit_chain,
                       load_chain, plan_chain, posterior_names, sampled_names)
from .temperature import apply_temperature, fit_temperature

# Every other module holds strategies; importing it registers them (registry.import_all), in this order,
# which is the order of the names in messages. After the names above are bound: deep_ensemble imports the
# methods, and some of them import L2SPPrior from this package.
MATHS = ("acquisition", "ensembles", "evidence", "laplace", "out_of_fold", "priors", "strategy", "temperature")
STRATEGY_MODULES = ("laplace_posterior", "deep_ensemble", "mc_dropout", "temperature_scaling", "auto_calibration")
import_all(__name__, skip=MATHS, first=STRATEGY_MODULES)

POSTERIORS = posterior_names()
CALIBRATIONS = calibration_names()
SAMPLED_POSTERIORS = sampled_names()

__all__ = ["CALIBRATIONS", "POSTERIORS", "SAMPLED_POSTERIORS", "Calibration", "Fitting", "L2SPPrior", "LaplaceHead",
           "Posterior", "Strategy", "apply_temperature", "calibration_names", "check_chain", "fit_chain",
           "fit_temperature", "load_chain", "plan_chain", "posterior_names"]
