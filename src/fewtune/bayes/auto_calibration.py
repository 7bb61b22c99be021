"""calibrate="auto": no calibration, temperature scaling or the laplace-cv posterior, whichever has
the lowest out-of-fold NLL on the shots.

Auto stays in the chain as the temperature it chose (1.0 unless it chose temperature scaling), so
the CLI and the card report the choice; a laplace-cv choice adds that posterior to the chain. Saved,
it is what it chose: a folder holds a temperature or a laplace-cv posterior, never "auto".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import FewtuneError
from . import out_of_fold as folds
from .laplace_posterior import LaplaceCVPosterior
from .strategy import Fitting, Strategy, register_calibration
from .temperature import apply_temperature, fit_temperature, nll
from .temperature_scaling import TemperatureScaling


@register_calibration
class AutoCalibration(TemperatureScaling):
    name = "auto"

    @classmethod
    def check_options(cls, clf) -> None:
        if clf.posterior is not None:
            raise FewtuneError(f"calibrate='auto' chooses between no calibration, temperature scaling and the "
                               f"laplace-cv posterior itself; leave posterior unset (got {clf.posterior!r})")

    def fit(self, fitting: Fitting) -> list[Strategy]:
        self.info = choose(fitting)
        if self.info["chosen"] == "temperature":
            self.temperature = self.info["temperature"]
        elif self.info["chosen"] == "laplace-cv":
            return [self, *LaplaceCVPosterior().fit(fitting)]
        return [self]

    @classmethod
    def saved_in(cls, config: dict) -> bool:
        return False  # saved as the temperature it chose (TemperatureScaling loads it)

    @classmethod
    def from_state(cls, config: dict, folder: Path, clf) -> AutoCalibration:
        raise NotImplementedError("a saved calibrate='auto' loads as what it chose")

    def describe(self) -> str:
        c = self.info
        scores = ", ".join(f"{k} {v:.3f}" for k, v in c["oof_nll"].items())
        return f"calibration chosen by out-of-fold NLL on the shots ({c['folds']} folds): {c['chosen']} ({scores})"


def choose(fitting: Fitting) -> dict:
    """The candidate with the lowest out-of-fold NLL on the shots.

    Every candidate is scored on predictions its own choices never saw: the fold models' as
    trained; temperature-scaled with T fitted on the other folds' predictions; laplace-cv with τ
    chosen inside each fold's training part. Ties go to the simpler candidate (listed first)."""
    y_idx = fitting.y_idx
    layer_ok = fitting.clf.model_.last_layer() is not None
    oof, oof_laplace, splits = folds.out_of_fold(fitting.clf, fitting.data, y_idx, fitting.params, posterior=None,
                                                 laplace=layer_ok)
    held_t = np.zeros_like(oof)
    for i, (_, val_idx) in enumerate(splits):
        others = np.concatenate([v for j, (_, v) in enumerate(splits) if j != i])
        held_t[val_idx] = apply_temperature(oof[val_idx], fit_temperature(oof[others], y_idx[others]))
    scores = {"none": nll(oof, y_idx), "temperature": nll(held_t, y_idx)}
    if oof_laplace is not None:
        scores["laplace-cv"] = nll(oof_laplace, y_idx)
    # A gain under a micro-nat is no gain: the simpler candidate keeps it.
    chosen = min(scores, key=lambda k: (round(scores[k], 6), list(scores).index(k)))
    return {"kind": "auto", "chosen": chosen, "oof_nll": {k: round(v, 6) for k, v in scores.items()},
            "folds": len(splits), "temperature": round(fit_temperature(oof, y_idx), 6)}
