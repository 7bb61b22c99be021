"""`prompt`: prompt-based fine-tuning of a causal LM on its label words (LM-BFF / PET style).

It fine-tunes the LM on the few examples with cross-entropy over the class scores of zero-shot
(fewtune.training.label_word_method) — the pretraining objective itself, so training starts from a
classifier that already works (the zero-shot one) instead of a random head. LoRA is the default:
the adapters start at zero, i.e. at the pretrained model, and weight decay pulls them back toward it
(a prior centred on the pretrained weights); full fine-tuning takes the L2-SP prior instead.
Saved folders hold the LoRA adapter alone (small) and reload it onto the cached base backbone, or the
whole fine-tuned LM for full fine-tuning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from ..backbones import CAUSAL_LM, ResolvedBackbone, resolve_base
from ..backbones.quiet_loading import quiet_libraries
from ..data.sampling import cv_folds
from ..errors import FewtuneError
from .base import register_method
from ..params import param
from ..training.label_word_method import DemoParams, LabelWordMethod, load_demonstrations, rounded, save_demonstrations
from ..training.label_words import ScoreCalibration
from ..training.lm_training import LMTrainingParams, prepare_for_training
from ..training.lora import load_adapter, save_adapter
from ..training.optim import make_optimizer, update
from ..training.scorer import LabelScorer
from ..training.tracking import record_losses


@dataclasses.dataclass
class PromptParams(DemoParams, LMTrainingParams):
    demonstrations: bool = param(False, "LM-BFF: one labelled training example per class, drawn at random, before each prompt")
    # On by default: with a handful of shots the failure to guard against is ending below zero-shot.
    early_stopping: bool = param(
        True, "choose the number of epochs by the validation loss of k-fold runs over the shots, counting the "
              "untrained start (epoch 0), so training that never helps returns the calibrated zero-shot model")
    patience: int = param(3, "with early_stopping: epochs without improvement before stopping", minimum=1)
    early_stopping_folds: int = param(
        2, "with early_stopping: the epoch count is chosen by this many folds over the shots (every shot "
           "validated once), then the model is trained on all of them", minimum=2)


@register_method
class Prompt(LabelWordMethod):
    name = "prompt"
    description = "prompt-based fine-tuning of a causal LM on label words (LM-BFF/PET style; LoRA or full + L2-SP)"
    params_class = PromptParams
    frozen_lm = False  # LoRA wraps the LM in place, and full fine-tuning changes it: a model of its own

    def fit(self, texts, y, n_classes, *, seed, progress) -> dict:
        self._check_single_label(y)
        p = self.params
        y = np.asarray(y)
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        self._load_lm()
        if p.demonstrations:
            self.demonstrations = [(t, self.class_names[int(c)]) for t, c in zip(texts, y)]
        prompt_info, shot_scores = self._settle_prompt(texts, y, seed=seed, progress=progress)
        scorer = self._scorer()
        self.model, params, prior = prepare_for_training(self.model, p)
        self._pretrained = False
        scorer.model = self.model
        start_state = [t.detach().clone() for t in params]
        run = _PromptRun(self, scorer, texts, y, params, prior, shot_scores, rng)
        started = time.perf_counter()
        info: dict = {"prompt": prompt_info}
        epochs = p.epochs
        folds = []
        if p.early_stopping and p.epochs > 0:
            try:
                folds = cv_folds(y, p.early_stopping_folds, seed)
            except FewtuneError:  # a class with one shot: no fold can validate it; train the full schedule
                info["early_stopping"] = "skipped: a class has a single shot, which no fold can hold out"
        fold_steps = sum(p.epochs * math.ceil(len(tr) / p.batch_size) for tr, _ in folds)
        task = progress.add("Prompt fine-tuning", total=fold_steps + p.epochs * math.ceil(len(y) / p.batch_size)) \
            if progress else None
        tick = (lambda: progress.advance(task)) if progress else None
        if folds:
            # The number of epochs is chosen on every shot, each validated by a model that never saw it
            # (k-fold): a 20% hold-out is a handful of texts, and one seed's choice on 4 of them ended at
            # 0.63 where another's reached 0.88. Epoch 0, the calibrated zero-shot model, is a candidate.
            curves = []
            for train_idx, val_idx in folds:
                _restore(params, start_state)
                with record_losses():  # a trial's steps: not those of the model returned, nor its live run
                    curves.append(run.train(train_idx, val_idx, p.epochs, tick=tick))
            common = min(len(c) for c in curves)
            total = np.sum([c[:common] for c in curves], axis=0)
            epochs = int(np.argmin(total))  # ties go to the fewer epochs
            info.update(chosen_epochs=epochs, cv_folds=len(folds),
                        cv_loss_by_epoch=[round(float(v) / len(y), 6) for v in total])
        _restore(params, start_state)
        losses = run.train(np.arange(len(y)), None, epochs, schedule_epochs=p.epochs, tick=tick)
        self.calibration = run.calibration()
        self.model.eval()
        info.update({"steps": epochs * math.ceil(len(y) / p.batch_size), "epochs": epochs,
                     "final_loss": round(losses[-1], 6) if losses else None,
                     "trainable_parameters": sum(t.numel() for t in params),
                     "distance_from_pretrained": round(prior.distance(), 6),
                     "body_seconds": round(time.perf_counter() - started, 3)})
        info["prompt"]["calibration"] = rounded(self.calibration)
        return info

    def _context(self, scorer: LabelScorer, rng: np.random.Generator, exclude: int = -1) -> str:
        """One demonstration per class, drawn from the training examples, in random order (LM-BFF)."""
        index = {c: i for i, c in enumerate(self.class_names)}
        picks = []
        for c in self.class_names:
            pool = [i for i, (_, label) in enumerate(self.demonstrations) if label == c and i != exclude]
            if pool:
                picks.append(pool[int(rng.integers(len(pool)))])
        rng.shuffle(picks)
        sep = self.params.separator
        return "".join(scorer.demonstration(self.demonstrations[i][0], index[self.demonstrations[i][1]],
                                            self.params.max_demo_tokens) + sep for i in picks)

    def _prompts(self, scorer: LabelScorer, texts: list[str]) -> list[list[int]]:
        if not self.params.demonstrations:
            return scorer.prompts(texts)
        # Each text's demonstrations are drawn from a generator seeded by the text itself: the same
        # text gets the same context (and probability) whatever else is in the batch.
        seeds = [int.from_bytes(hashlib.sha256(t.encode("utf-8")).digest()[:8], "big") for t in texts]
        return scorer.prompts(texts, [self._context(scorer, np.random.default_rng(s)) for s in seeds])

    def save(self, folder) -> None:
        super().save(folder)
        if self.params.demonstrations:
            save_demonstrations(folder, self.demonstrations)
        if self.params.lora:
            save_adapter(self.model, folder, backbone=self.backbone.name)
        else:
            with quiet_libraries():
                self.model.save_pretrained(str(folder / "lm"), safe_serialization=True)
            self.tokenizer.save_pretrained(str(folder / "lm"))

    @classmethod
    def load(cls, folder, params, backbone, device, n_classes) -> Prompt:
        if params.lora:
            method = cls(params, resolve_base(backbone), device)
            method._load_lm()
            method.model = load_adapter(method.model, folder, r=params.lora_r, alpha=params.lora_alpha,
                                        base_name=backbone.name)
        else:
            lm = ResolvedBackbone(name=backbone.name, kind=CAUSAL_LM, path=str(folder / "lm"), source="local")
            method = cls(params, lm, device)
            method._load_lm()
        if params.demonstrations:
            method.demonstrations = load_demonstrations(folder)
        method._read_prompt(folder)
        method.model.eval()
        return method


def _restore(params, state) -> None:
    with torch.no_grad():
        for t, saved in zip(params, state):
            t.copy_(saved)


class _PromptRun:
    """One prompt fine-tuning run on some of the shots: LoRA (or the weights) and the calibration's scale
    and biases trained together, starting from the calibration fitted on those shots' zero-shot scores."""

    def __init__(self, method: Prompt, scorer: LabelScorer, texts, y, params, prior, shot_scores, rng):
        self.method, self.scorer, self.texts, self.params, self.prior = method, scorer, texts, params, prior
        self.y, self.shot_scores, self.rng = y, shot_scores, rng
        self.labels = torch.as_tensor(y, device=method.device)
        self.prompts = None if method.params.demonstrations else scorer.prompts(texts)
        self.log_scale = self.bias = None

    def calibration(self) -> ScoreCalibration:
        if self.bias is None:
            return ScoreCalibration()
        return ScoreCalibration(float(self.log_scale.detach().exp()), tuple(float(b) for b in self.bias.detach().cpu()))

    def _batch(self, idx, train: bool):
        m = self.method
        if not m.params.demonstrations:
            return [self.prompts[i] for i in idx]
        if train:  # fresh demonstrations every step, never the example itself
            return self.scorer.prompts([self.texts[i] for i in idx],
                                       [m._context(self.scorer, self.rng, exclude=i) for i in idx])
        return m._prompts(self.scorer, [self.texts[i] for i in idx])

    def _logits(self, idx, train: bool) -> torch.Tensor:
        scores = self.scorer.scores(self._batch(idx, train))
        if self.bias is None:
            return scores
        return scores * self.log_scale.exp() + self.bias

    def _validation_loss(self, val_idx) -> float:
        self.method.model.eval()
        with torch.no_grad():
            total = 0.0
            for start in range(0, len(val_idx), self.method.params.batch_size):
                idx = val_idx[start:start + self.method.params.batch_size]
                total += float(F.cross_entropy(self._logits(idx, False), self.labels[idx], reduction="sum"))
            return total

    def train(self, train_idx, val_idx, epochs: int, *, schedule_epochs: int | None = None, tick=None) -> list[float]:
        """Train for up to `epochs` epochs on train_idx. With val_idx: the summed validation loss after each
        epoch (from epoch 0), stopping after `patience` epochs without improvement; else the training losses."""
        from transformers import get_linear_schedule_with_warmup

        p, device = self.method.params, self.method.device
        if p.score_calibration == "shots":
            start = ScoreCalibration.fit(self.shot_scores[train_idx], self.y[train_idx])
            self.log_scale = torch.tensor(math.log(start.scale), device=device, requires_grad=True)
            self.bias = torch.tensor(start.bias, device=device, requires_grad=True)
            trained = [*self.params, self.log_scale, self.bias]
        else:
            trained = list(self.params)
        optimizer = make_optimizer(trained, lr=p.learning_rate, weight_decay=p.weight_decay, device=device)
        steps_per_epoch = math.ceil(len(train_idx) / p.batch_size)
        total = max(1, (schedule_epochs or epochs) * steps_per_epoch)
        scheduler = get_linear_schedule_with_warmup(optimizer, int(p.warmup_ratio * total), total)
        curve, losses, best = [], [], 0
        if val_idx is not None:
            curve.append(self._validation_loss(val_idx))
        for epoch in range(1, epochs + 1):
            self.method.model.train()
            order = self.rng.permutation(train_idx)
            for start in range(0, len(order), p.batch_size):
                idx = order[start:start + p.batch_size]
                loss = F.cross_entropy(self._logits(idx, True), self.labels[idx]) + self.prior.penalty()
                losses.append(update(loss, trained, optimizer, scheduler))
                if tick is not None:
                    tick()
            if val_idx is not None:
                curve.append(self._validation_loss(val_idx))
                best = int(np.argmin(curve))
                if epoch - best >= p.patience:
                    break
        return curve if val_idx is not None else losses
