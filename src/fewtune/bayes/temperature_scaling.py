"""calibrate="temperature": one T fitted on out-of-fold predictions of the shots (the maths: temperature.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import out_of_fold as folds
from .strategy import Calibration, Fitting, register_calibration
from .temperature import PRIOR_SD, apply_temperature, fit_temperature, nll


@register_calibration
class TemperatureScaling(Calibration):
    name = "temperature"

    def __init__(self, temperature: float = 1.0, info: dict | None = None):
        super().__init__(info)
        self.temperature = temperature

    def fit(self, fitting: Fitting) -> list[TemperatureScaling]:
        """T from predictions of fold models that never saw the shots they predict (trained with the
        same posterior), MAP under a log-normal prior centred on T = 1."""
        clf, y_idx = fitting.clf, fitting.y_idx
        oof, _, splits = folds.out_of_fold(clf, fitting.data, y_idx, fitting.params, posterior=clf.posterior,
                                           laplace=False)
        temperature = fit_temperature(oof, y_idx)
        self.info = {"kind": "temperature", "temperature": round(temperature, 6), "folds": len(splits),
                     "prior_sd": PRIOR_SD, "oof_nll_before": round(nll(oof, y_idx), 6),
                     "oof_nll_after": round(nll(apply_temperature(oof, temperature), y_idx), 6)}
        self.temperature = self.info["temperature"]
        return [self]

    def transform(self, proba: np.ndarray) -> np.ndarray:
        return apply_temperature(proba, self.temperature)

    def state(self) -> dict:
        return {"temperature": self.temperature} if self.temperature != 1.0 else {}

    @classmethod
    def saved_in(cls, config: dict) -> bool:
        return "temperature" in config

    @classmethod
    def from_state(cls, config: dict, folder: Path, clf) -> TemperatureScaling:
        return cls(float(config["temperature"]), clf.train_info_.get("calibration"))

    def describe(self) -> str:
        c = self.info
        if "oof_nll_before" not in c:  # saved by calibrate="auto", which reports its own way
            return f"temperature T = {self.temperature:.3g}"
        return (f"temperature T = {c['temperature']:.3g} from {c['folds']} folds "
                f"(out-of-fold NLL {c['oof_nll_before']:.3f} → {c['oof_nll_after']:.3f})")
