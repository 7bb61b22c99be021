"""`zero-shot`: the pretrained causal LM's label-word scores after a prompt, calibrated on the shots; no
training. What it shares with icl and prompt (the template chosen on the shots, the scores, prompt.json)
is fewtune.training.label_word_method's; what is its own is here: fitting without training, and, with no
template given (template_search="ensemble"), the ensemble of every generic template."""

from __future__ import annotations

import numpy as np
import torch

from .base import register_method
from ..training.heads import probabilities
from ..training.label_word_method import LabelWordMethod, TemplateChoice, ZeroShotParams, rounded
from ..training.label_words import ScoreCalibration, log_softmax


@register_method
class ZeroShot(LabelWordMethod):
    name = "zero-shot"
    description = "a causal LM scores each class's label words after a prompt; no training (the baseline)"
    params_class = ZeroShotParams

    def fit(self, texts, y, n_classes, *, seed, progress) -> dict:
        self._check_single_label(y)
        self._load_lm()
        info, _ = self._settle_prompt(texts, y, seed=seed, progress=progress)
        return {"trained": False, "prompt": info}

    def _settle_prompt(self, texts, y, *, seed: int, progress) -> tuple[dict, np.ndarray]:
        """The template and its calibration (LabelWordMethod's), then, with template_search="ensemble" and
        several candidates, every candidate with its own calibration; and shot_logp, what this model says
        of each shot when the shot took no part in its calibration (hybrid's head is fitted on these:
        in-sample calibrated scores would look more reliable than they are)."""
        y = np.asarray(y)
        choice = self._choose_template(texts, y, seed=seed, progress=progress)
        names = list(choice.candidates)
        self.template = choice.candidates[choice.chosen]
        self.calibration = self._calibrated(choice.scores[choice.chosen], y)
        self.ensemble, self.ensemble_calibration = [], ScoreCalibration()
        if len(names) > 1 and self.params.template_search == "ensemble":
            self.ensemble = [(choice.candidates[name], self._calibrated(choice.scores[name], y)) for name in names]
            if choice.oof and self.params.score_calibration == "shots":
                # Averaging log-probabilities dilutes the sharp templates with the vague ones: the mean's own
                # scale and bias are fitted on the out-of-fold means, which no member's calibration saw.
                self.ensemble_calibration = ScoreCalibration.fit(np.mean([choice.oof[n] for n in names], axis=0), y)
        self.shot_logp = self._shot_logp(choice)
        if not self.ensemble:
            return self._prompt_info(choice), choice.scores[choice.chosen]
        calibration = {name: rounded(cal) for name, (_, cal) in zip(names, self.ensemble)}
        calibration["ensemble"] = rounded(self.ensemble_calibration)
        info = self._prompt_info(choice, template="ensemble", calibration=calibration, best_template=choice.chosen)
        return info, choice.scores[choice.chosen]

    def _shot_logp(self, choice: TemplateChoice) -> np.ndarray:
        """The shots' log-probabilities, out of fold where the calibration was fitted on them."""
        names = list(choice.candidates)
        if self.params.score_calibration != "shots" or choice.folds is None:
            return self._combine(choice.scores, names if self.ensemble else [choice.chosen])
        if self.ensemble:
            return log_softmax(self.ensemble_calibration.apply(np.mean([choice.oof[n] for n in names], axis=0)))
        return choice.oof[choice.chosen]

    def _combine(self, scores: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
        """Log-probabilities from raw scores: one template calibrated, or the ensemble's calibrated mean."""
        if not self.ensemble:
            return log_softmax(self.calibration.apply(scores[names[0]]))
        mean = np.mean([log_softmax(cal.apply(scores[n])) for n, (_, cal) in zip(names, self.ensemble)], axis=0)
        return log_softmax(self.ensemble_calibration.apply(mean))

    @torch.no_grad()
    def predict_proba(self, texts, *, progress=None) -> np.ndarray:
        if not self.ensemble:
            return super().predict_proba(texts, progress=progress)
        self.model.eval()
        # A product of experts: the mean of the templates' calibrated log-probabilities, itself calibrated.
        scores = {str(i): self._raw_scores(self._scorer(template), texts, progress,
                                           f"Scoring label words (template {i + 1} of {len(self.ensemble)})")
                  for i, (template, _) in enumerate(self.ensemble)}
        return probabilities(torch.from_numpy(self._combine(scores, list(scores))), "softmax")
