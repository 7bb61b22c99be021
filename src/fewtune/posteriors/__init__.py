"""Posteriors and calibrations: the strategies a FewShotClassifier chains after its model.

- strategy: the interface (fit, predict_proba or transform, state / from_state, describe) and the registry.
- laplace_posterior: "laplace", "laplace-cv" (the math in fewtune.bayes.laplace).
- deep_ensemble: "ensemble"; mc_dropout: "mc-dropout" (the math in fewtune.bayes.ensembles).
- temperature_scaling: "temperature"; auto_calibration: "auto" (the math in fewtune.bayes.temperature).
- out_of_fold: the out-of-fold predictions of the shots that the calibrations are fitted on.
"""

# Importing a strategy's module registers it; the order is the order of the names in messages.
from . import laplace_posterior, deep_ensemble, mc_dropout  # noqa: F401  isort: skip
from . import temperature_scaling, auto_calibration  # noqa: F401  isort: skip
from .strategy import (Calibration, Fitting, Posterior, Strategy, calibration_names, fit_chain, load_chain,
                       plan_chain, posterior_names, sampled_names)

POSTERIORS = posterior_names()
CALIBRATIONS = calibration_names()
SAMPLED_POSTERIORS = sampled_names()

__all__ = ["CALIBRATIONS", "POSTERIORS", "SAMPLED_POSTERIORS", "Calibration", "Fitting", "Posterior", "Strategy",
           "fit_chain", "load_chain", "plan_chain"]
