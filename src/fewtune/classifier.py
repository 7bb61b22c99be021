"""FewShotClassifier: the scikit-learn style entry point to every few-shot method."""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from sklearn.base import BaseEstimator, ClassifierMixin

from . import methods as _methods  # noqa: F401  (importing registers every method)
from .backbones import ResolvedBackbone, pick_device, resolve_backbone
from .bayes.ensembles import SAMPLED_POSTERIORS
from .data import as_labeled, check_trainable
from .data.language import warn_if_unreadable
from .data.multilabel import binarize, looks_multi_label, to_indicator
from .errors import FewtuneError
from .label_shift import parse_class_prior, prior_ratio, prior_vector, shift_proba
from .labels import ProbabilityLabels, plain_label
from .methods.base import get_method
from .model_card import render_card
from .model_folder import read_model_folder, write_model_folder
from .progress import Progress
from .selection import SELECTIONS, select_by_cv

POSTERIOR_FILE = "posterior.safetensors"
MEMBERS_FOLDER = "members"  # an ensemble's extra members, one model folder each (the first is the main one)
LAPLACE = ("laplace", "laplace-cv")
CALIBRATIONS = ("temperature", "auto")
POSTERIORS = (*LAPLACE, *SAMPLED_POSTERIORS)


class FewShotClassifier(ProbabilityLabels, ClassifierMixin, BaseEstimator):
    """A text classifier trained from a few labeled examples.

    Parameters
    ----------
    backbone: a named backbone (`fewtune models`), a local model folder, or a hub id.
    method: a registered method (`setfit`, ...).
    params: the method's hyper-parameters (see `fewtune train --help-method METHOD`).
    seed: seeds every random choice in training, for reproducible runs.
    device: "cpu", "cuda", "mps" or None for the best available.
    show_progress: progress bars on stderr for steps that take more than a moment.
    select: None; "cv" to choose hyper-parameters by cross-validation on the training examples
        alone (`fewtune.selection`), then train on all of them with the chosen values; or "evidence"
        to choose the strength of the prior toward the pretrained weights by the Laplace marginal
        likelihood (`fewtune.bayes.evidence`): one training on all the examples per grid point, the
        one with the highest evidence kept (finetune).
    grid: with select, {parameter: [values]}; None for the method's own small grid.
    cv_folds: with select="cv", the number of folds (fewer if the rarest class has fewer examples).
    posterior: None (the MAP head), or "laplace": a Laplace posterior over the softmax head, its
        prior precision chosen by the evidence (`fewtune.bayes.laplace`); probabilities integrate
        over it. "laplace-cv" chooses the precision by cross-validated NLL on the shots instead.
        For heads fitted on frozen features (setfit, linear-probe) the head is refitted at that
        precision. "ensemble": posterior_samples models trained from seeds seed, seed+1, ... on the
        same examples, probabilities averaged (a deep ensemble); "mc-dropout": one model, the
        average of posterior_samples predictions with the backbone's dropout on
        (`fewtune.bayes.ensembles`).
    posterior_samples: ensemble members or dropout samples (0 = 5 members, 20 samples).
    calibrate: None, or "temperature": temperature scaling fitted on out-of-fold predictions of the
        training examples (cv_folds folds; costs that many extra trainings). "auto": the same fold
        models score three ways to turn the head into probabilities by their out-of-fold NLL on the
        shots: as trained, temperature-scaled (T fitted on the other folds), and the laplace-cv
        posterior (where the method has a softmax head on features); the best is used (needs
        posterior=None; `train_info_["calibration"]` holds every candidate's NLL and the choice).
    class_prior: None, or the class mix of the texts the model will meet, {label: weight} (or the text
        'neg=0.7,pos=0.3'), when it differs from the shots' (balanced) mix and is known: probabilities are
        re-weighted by Bayes' rule for label shift (`fewtune.label_shift`), after any posterior and
        temperature. Read at prediction time, so `set_params(class_prior=...)` after fitting works too.
    trust: load a backbone folder's pickle weights and custom code (refused by default: both can run
        arbitrary code). Only for a source you trust.

    After `fit`: `classes_` (sorted labels), `backbone_` (what was loaded), `train_info_`
    (with `selection`: the grid, every point's cross-validated score and the chosen values;
    with `posterior`: the chosen prior precision and the evidence curve; with `calibrate`: T).
    Multi-label targets (lists of labels per text, or a 0/1 matrix) train one-vs-rest; then
    `multi_label_` is True and `predict` returns the 0/1 matrix.
    """

    def __init__(
        self,
        backbone: str = "minilm",
        method: str = "setfit",
        *,
        params: dict[str, Any] | None = None,
        seed: int = 0,
        device: str | None = None,
        show_progress: bool = False,
        select: str | None = None,
        grid: dict[str, list[Any]] | None = None,
        cv_folds: int = 4,
        posterior: str | None = None,
        calibrate: str | None = None,
        posterior_samples: int = 0,
        class_prior: dict | str | None = None,
        trust: bool = False,
    ):
        self.backbone = backbone
        self.method = method
        self.params = params
        self.seed = seed
        self.device = device
        self.show_progress = show_progress
        self.select = select
        self.grid = grid
        self.cv_folds = cv_folds
        self.posterior = posterior
        self.calibrate = calibrate
        self.posterior_samples = posterior_samples
        self.class_prior = class_prior
        self.trust = trust

    # -- training -------------------------------------------------------------------------
    def fit(self, X, y, *, data_description: str | None = None, soft_targets=None,
            classes=None) -> FewShotClassifier:
        """soft_targets: for distillation (`fewtune.distill`), one row of class probabilities per text
        (columns in the order of `classes`, which is then required) that the method trains on instead
        of y's one-hot labels; y still names each row's class (its argmax) for counts and splits."""
        multi_label = looks_multi_label(y)
        if soft_targets is not None:
            self._check_soft_targets(soft_targets, classes, multi_label, len(y))
        if multi_label:
            data = as_labeled(X, source="training data")
            classes, y_idx = binarize(y, len(data), source="training data")
        else:
            data = as_labeled(X, y, source="training data")
            check_trainable(data)
        method_cls, params, backbone = self.check_options()
        self._check_calibration_options(multi_label)
        if self.select == "evidence":
            self._check_evidence(method_cls, params, multi_label)
            selection = None  # chosen below, by training on all the shots
        else:
            selection = self._select(data, y_idx if multi_label else data.labels, method_cls)
        if selection:
            params = method_cls.params_class.from_dict({**(self.params or {}), **selection["chosen"]},
                                                       method=self.method)
        backbone = dataclasses.replace(backbone, trusted=self.trust)
        if backbone.kind not in method_cls.backbone_kinds:
            raise FewtuneError(
                f"method '{self.method}' needs a backbone of kind {' or '.join(method_cls.backbone_kinds)}; "
                f"'{self.backbone}' is a {backbone.kind}"
            )
        if method_cls.reads_text:
            warn_if_unreadable(data.texts, backbone.name)
        if multi_label:
            self.classes_ = np.array(classes, dtype=object)
        else:
            self.classes_ = np.array(sorted(set(data.labels)) if soft_targets is None else list(classes), dtype=object)
            index = {c: i for i, c in enumerate(self.classes_)}
            unknown = sorted({str(label) for label in data.labels} - {str(c) for c in self.classes_})
            if unknown:
                raise FewtuneError(f"labels {unknown} are not among the classes {list(self.classes_)}")
            y_idx = np.array([index[label] for label in data.labels])
            if self.class_prior is not None:
                prior_vector(parse_class_prior(self.class_prior), self.classes_)  # a bad prior fails before training
        self.multi_label_ = multi_label
        self.text_pairs_ = data.text_pairs is not None
        _seed_everything(self.seed)
        device = self.device or pick_device()
        started = time.perf_counter()
        if self.select == "evidence":
            model, info, selection = self._select_by_evidence(method_cls, params, backbone, device, data, y_idx)
            params = model.params
        else:
            model = method_cls(params, backbone, device)
            model.class_names = [str(plain_label(c)) for c in self.classes_]
            soft = {} if soft_targets is None else {"soft_targets": np.asarray(soft_targets, dtype=np.float32)}
            with Progress(self.show_progress) as progress:
                info = model.fit(self._texts(data, model), y_idx, len(self.classes_), seed=self.seed,
                                 progress=progress, **soft)
        self.model_ = model
        self.backbone_ = backbone
        self.posterior_, self.temperature_, self.members_ = None, 1.0, []
        extra = {}
        if self.posterior in LAPLACE:
            self.posterior_ = self._fit_laplace(model, self._texts(data, model), y_idx)
            extra["posterior"] = {"kind": "laplace", **self.posterior_.evidence}
        elif self.posterior == "ensemble":
            self.members_ = self._fit_members(method_cls, params, backbone, device, self._texts(data, model), y_idx)
            extra["posterior"] = {"kind": "ensemble", "members": 1 + len(self.members_),
                                  "seeds": [self.seed + i for i in range(1 + len(self.members_))]}
        elif self.posterior == "mc-dropout":
            from .bayes.ensembles import sampled_dropout_layers

            sampled_dropout_layers(model)  # fails now, at training, rather than at the first prediction
            extra["posterior"] = {"kind": "mc-dropout", "samples": self._samples()}
        if self.calibrate == "temperature":
            extra["calibration"] = self._fit_temperature(data, y_idx, params)
            self.temperature_ = extra["calibration"]["temperature"]
        elif self.calibrate == "auto":
            extra["calibration"] = self._choose_calibration(data, y_idx, params)
            choice = extra["calibration"]["chosen"]
            if choice == "temperature":
                self.temperature_ = extra["calibration"]["temperature"]
            elif choice == "laplace-cv":
                self.posterior_ = self._fit_laplace(model, self._texts(data, model), y_idx, prior="cv")
                extra["posterior"] = {"kind": "laplace", **self.posterior_.evidence}
        self.train_info_ = {
            "n_examples": len(data),
            "class_counts": {str(c): int(y_idx[:, i].sum() if multi_label else (y_idx == i).sum())
                             for i, c in enumerate(self.classes_)},
            "train_seconds": round(time.perf_counter() - started, 3),
            **info,
        }
        self.train_info_.update(extra)
        if selection:
            self.train_info_["selection"] = selection
        if data_description:
            self.train_info_["data"] = data_description
        return self

    def _check_soft_targets(self, soft_targets, classes, multi_label: bool, n: int) -> None:
        method_cls = get_method(self.method)
        if not method_cls.soft_targets:
            learners = sorted(name for name, m in _methods.METHODS.items() if m.soft_targets)
            raise FewtuneError(f"method '{self.method}' trains on hard labels only; soft targets need one of "
                               f"{', '.join(learners)}")
        if multi_label or classes is None:
            raise FewtuneError("soft targets cover single-label classification and need the list of classes")
        if self.select or self.posterior or self.calibrate:
            raise FewtuneError("soft targets come with their own probabilities: leave select, posterior and "
                               "calibrate unset")
        soft = np.asarray(soft_targets, dtype=np.float64)
        if soft.shape != (n, len(classes)):
            raise FewtuneError(f"soft targets of shape {soft.shape}; expected one row per text and one column per "
                               f"class, ({n}, {len(classes)})")
        if not np.isfinite(soft).all() or (soft < 0).any() or not np.allclose(soft.sum(1), 1.0, atol=1e-4):
            raise FewtuneError("soft targets must be probabilities: non-negative rows that sum to 1")

    def check_options(self, *, flags: bool = False) -> tuple[type, Any, ResolvedBackbone]:
        """Check method, params, select and backbone, the settings known before any data, and return the
        method's class, its params and the backbone. `fewtune train` calls it before reading the data
        (flags=True: select is named --select, as the user typed it); fit calls it again."""
        method_cls = get_method(self.method)
        params = method_cls.params_class.from_dict(self.params, method=self.method)
        if self.select not in (None, *SELECTIONS):
            if flags:
                raise FewtuneError(f"--select must be one of {', '.join(SELECTIONS)}, got {self.select!r}")
            raise FewtuneError(f"select must be None or one of {', '.join(map(repr, SELECTIONS))}, got {self.select!r}")
        return method_cls, params, resolve_backbone(self.backbone)

    def _select(self, data, y, method_cls) -> dict | None:
        if self.select is None:
            return None
        grid = self.grid if self.grid is not None else method_cls.selection_grid
        X = data.texts if data.text_pairs is None else list(zip(data.texts, data.text_pairs))

        def make(point):
            return FewShotClassifier(self.backbone, self.method, params={**(self.params or {}), **point},
                                     seed=self.seed, device=self.device, trust=self.trust)

        with Progress(self.show_progress) as progress:
            return select_by_cv(make, X, y, grid, folds=self.cv_folds, seed=self.seed, progress=progress)

    def _check_evidence(self, method_cls, params, multi_label: bool) -> None:
        if not method_cls.evidence_grid:
            raise FewtuneError(
                f"select='evidence' needs a method trained as a MAP estimate under a prior toward the pretrained "
                f"weights (finetune); '{self.method}' is not. Use select='cv', or posterior='laplace' for the "
                "head's prior")
        if multi_label:
            raise FewtuneError("select='evidence' covers single-label classification; this data is multi-label")
        problem = method_cls.evidence_problem(params)
        if problem:
            raise FewtuneError(problem)
        grid = self._evidence_grid(method_cls)
        for key, values in grid.items():
            if key not in method_cls.evidence_grid:
                raise FewtuneError(f"with select='evidence' the grid may only hold "
                                   f"{', '.join(method_cls.evidence_grid)}; got {key!r}")
            if not values or any(not isinstance(v, (int, float)) or not v > 0 for v in values):
                raise FewtuneError(f"the evidence needs a proper prior: every {key} in the grid must be positive, "
                                   f"got {values}")

    def _evidence_grid(self, method_cls) -> dict[str, list[Any]]:
        return self.grid if self.grid is not None else method_cls.evidence_grid

    def _select_by_evidence(self, method_cls, params, backbone, device, data, y_idx: np.ndarray):
        """Train once per grid point on all the shots, keep the model whose prior has the highest evidence."""
        from .selection import grid_points

        points = grid_points(self._evidence_grid(method_cls))
        results, best = [], None
        with Progress(self.show_progress) as progress:
            task = progress.add("Prior strength by the evidence", total=len(points))
            for point in points:
                point_params = method_cls.params_class.from_dict({**params.to_dict(), **point}, method=self.method)
                _seed_everything(self.seed)
                model = method_cls(point_params, backbone, device)
                model.class_names = [str(plain_label(c)) for c in self.classes_]
                texts = self._texts(data, model)
                info = model.fit(texts, y_idx, len(self.classes_), seed=self.seed, progress=None)
                evidence = model.log_evidence(texts, y_idx)
                results.append({"params": point, **evidence})
                if best is None or evidence["log_evidence"] > best[2]:
                    best = (model, info, evidence["log_evidence"], point)
                else:
                    del model  # keep one encoder in memory besides the best
                progress.advance(task)
        model, info, _, chosen = best
        return model, info, {"method": "evidence", "grid": self._evidence_grid(method_cls),
                             "results": results, "chosen": chosen}

    def _check_calibration_options(self, multi_label: bool) -> None:
        if self.posterior is not None and self.posterior not in POSTERIORS:
            raise FewtuneError(f"posterior must be None or one of {', '.join(map(repr, POSTERIORS))}, "
                               f"got {self.posterior!r}")
        samples = self.posterior_samples
        if not isinstance(samples, int) or samples < 0 or samples == 1:
            raise FewtuneError(f"posterior_samples must be 0 (the default) or at least 2, got {samples!r}")
        if self.calibrate not in (None, *CALIBRATIONS):
            raise FewtuneError(f"calibrate must be None or one of {', '.join(map(repr, CALIBRATIONS))}, "
                               f"got {self.calibrate!r}")
        if self.calibrate == "auto" and self.posterior is not None:
            raise FewtuneError(f"calibrate='auto' chooses between no calibration, temperature scaling and the "
                               f"laplace-cv posterior itself; leave posterior unset (got {self.posterior!r})")
        if multi_label and (self.posterior or self.calibrate or self.class_prior is not None):
            raise FewtuneError("posterior / calibrate / class_prior cover single-label classification; "
                               "this data is multi-label")

    def _samples(self) -> int:
        from .bayes.ensembles import DEFAULT_DROPOUT_SAMPLES, DEFAULT_MEMBERS

        default = DEFAULT_MEMBERS if self.posterior == "ensemble" else DEFAULT_DROPOUT_SAMPLES
        return self.posterior_samples or default

    def _fit_members(self, method_cls, params, backbone, device, texts: list[str], y_idx: np.ndarray) -> list:
        """The ensemble's other members: the same method and examples, seeds seed+1, seed+2, ..."""
        members = []
        with Progress(self.show_progress) as progress:
            task = progress.add("Training ensemble members", total=self._samples() - 1)
            for i in range(1, self._samples()):
                _seed_everything(self.seed + i)
                member = method_cls(params, backbone, device)
                member.class_names = self.model_.class_names
                member.fit(texts, y_idx, len(self.classes_), seed=self.seed + i, progress=None)
                members.append(member)
                progress.advance(task)
        return members

    def _fit_laplace(self, model, texts: list[str], y_idx: np.ndarray, prior: str | None = None):
        """prior: "cv" or "evidence" for τ; None for what `posterior` says."""
        from .bayes import LaplaceHead

        prior = prior or ("cv" if self.posterior == "laplace-cv" else "evidence")
        layer = model.last_layer()
        if layer is None:
            raise FewtuneError(f"method '{self.method}' has no softmax head on features to put a Laplace posterior on "
                               "(it covers setfit, linear-probe, finetune, hybrid, and the label-word methods with one "
                               "template, given or template_search='best', and single-token label words)")
        with Progress(self.show_progress and len(texts) > 256) as progress:
            features = model.features(texts, progress=progress)
        refit = bool(model.refittable_head)
        # The prior precision: by the evidence, or (laplace-cv) by cross-validated NLL on the shots.
        posterior = LaplaceHead.fit(features, y_idx, *layer, refit=refit, prior=prior, folds=self.cv_folds,
                                    seed=self.seed)
        if refit:
            model.set_last_layer(posterior.weight, posterior.bias)  # the MAP head at the chosen prior
        return posterior

    def _fit_temperature(self, data, y_idx: np.ndarray, params) -> dict:
        """T from out-of-fold predictions (each fold's model never saw the shots it predicts), MAP under a
        log-normal prior centred on T = 1 (fewtune.bayes.temperature)."""
        from .bayes import fit_temperature
        from .bayes.temperature import PRIOR_SD, apply_temperature, nll

        oof, _, folds = self._out_of_fold(data, y_idx, params, posterior=self.posterior, laplace=False)
        temperature = fit_temperature(oof, y_idx)
        return {"kind": "temperature", "temperature": round(temperature, 6), "folds": len(folds), "prior_sd": PRIOR_SD,
                "oof_nll_before": round(nll(oof, y_idx), 6),
                "oof_nll_after": round(nll(apply_temperature(oof, temperature), y_idx), 6)}

    def _choose_calibration(self, data, y_idx: np.ndarray, params) -> dict:
        """calibrate="auto": the candidate with the lowest out-of-fold NLL on the shots.

        Every candidate is scored on predictions its own choices never saw: the fold models' as
        trained; temperature-scaled with T fitted on the other folds' predictions; laplace-cv with τ
        chosen inside each fold's training part. Ties go to the simpler candidate (listed first)."""
        from .bayes import fit_temperature
        from .bayes.temperature import apply_temperature, nll

        layer_ok = self.model_.last_layer() is not None
        oof, oof_laplace, folds = self._out_of_fold(data, y_idx, params, posterior=None, laplace=layer_ok)
        held_t = np.zeros_like(oof)
        for i, (_, val_idx) in enumerate(folds):
            others = np.concatenate([v for j, (_, v) in enumerate(folds) if j != i])
            held_t[val_idx] = apply_temperature(oof[val_idx], fit_temperature(oof[others], y_idx[others]))
        scores = {"none": nll(oof, y_idx), "temperature": nll(held_t, y_idx)}
        if oof_laplace is not None:
            scores["laplace-cv"] = nll(oof_laplace, y_idx)
        # A gain under a micro-nat is no gain: the simpler candidate keeps it.
        chosen = min(scores, key=lambda k: (round(scores[k], 6), list(scores).index(k)))
        return {"kind": "auto", "chosen": chosen, "oof_nll": {k: round(v, 6) for k, v in scores.items()},
                "folds": len(folds), "temperature": round(fit_temperature(oof, y_idx), 6)}

    def _out_of_fold(self, data, y_idx: np.ndarray, params, *, posterior, laplace: bool):
        """Probabilities for every shot from a model trained on the other folds: (as the fold models
        give them, from a laplace-cv posterior fitted on each fold's training part or None, folds)."""
        from .selection import cv_folds

        X = data.texts if data.text_pairs is None else list(zip(data.texts, data.text_pairs))
        oof = np.zeros((len(y_idx), len(self.classes_)))
        oof_laplace = np.zeros_like(oof) if laplace else None
        folds = cv_folds(y_idx, self.cv_folds, self.seed)
        for train_idx, val_idx in folds:
            member = FewShotClassifier(self.backbone, self.method, params=params.to_dict(), seed=self.seed,
                                       device=self.device, posterior=posterior,
                                       posterior_samples=self.posterior_samples, trust=self.trust)
            member.fit([X[i] for i in train_idx], [self.classes_[y_idx[i]] for i in train_idx])
            held = [X[i] for i in val_idx]
            oof[val_idx] = member.predict_proba(held)
            if laplace:  # after the MAP predictions: a refittable head is replaced by the posterior's MAP
                fold_texts = member._texts(as_labeled([X[i] for i in train_idx], source="fold"), member.model_)
                head = member._fit_laplace(member.model_, fold_texts, y_idx[train_idx], prior="cv")
                held_texts = member._texts(as_labeled(held, source="fold"), member.model_)
                oof_laplace[val_idx] = head.predict_proba(member.model_.features(held_texts))
        return oof, oof_laplace, folds

    # -- prediction -----------------------------------------------------------------------
    def predict_proba(self, X) -> np.ndarray:
        self._check_fitted()
        data = as_labeled(X, source="input")
        self._check_pairs(data)
        texts = self._texts(data, self.model_)
        with Progress(self.show_progress and len(data) > 256) as progress:
            if getattr(self, "posterior_", None) is not None:
                proba = self.posterior_.predict_proba(self.model_.features(texts, progress=progress))
            elif self.posterior in SAMPLED_POSTERIORS:
                proba = self._sampled_proba(texts, progress).mean(axis=0)
            else:
                proba = self.model_.predict_proba(texts, progress=progress)
        if getattr(self, "temperature_", 1.0) != 1.0:
            from .bayes import apply_temperature

            proba = apply_temperature(proba, self.temperature_)
        return shift_proba(proba, self._prior_ratio(self.class_prior))

    def set_class_prior(self, class_prior: dict | str | None) -> FewShotClassifier:
        """The class mix of the texts to come (None: the shots' own), checked against the classes now."""
        self._check_fitted()
        self._prior_ratio(class_prior)  # checked against the classes now, not at the first prediction
        self.class_prior = class_prior
        return self

    def _prior_ratio(self, class_prior) -> np.ndarray | None:
        return prior_ratio(parse_class_prior(class_prior), self.classes_, self.train_info_.get("class_counts", {}),
                           getattr(self.model_.params, "class_weight", "none"), multi_label=self.multi_label_)

    def sampled_proba(self, X) -> np.ndarray:
        """An ensemble's members' or MC dropout's individual predictions, (samples, texts, classes),
        before temperature scaling and any class prior; `predict_proba` is their mean."""
        self._check_fitted()
        if self.posterior not in SAMPLED_POSTERIORS:
            raise FewtuneError("sampled_proba needs posterior='ensemble' or 'mc-dropout'")
        data = as_labeled(X, source="input")
        self._check_pairs(data)
        with Progress(self.show_progress and len(data) > 256) as progress:
            return self._sampled_proba(self._texts(data, self.model_), progress)

    def _sampled_proba(self, texts: list[str], progress) -> np.ndarray:
        from .bayes.ensembles import member_samples, mc_dropout_samples

        if self.posterior == "ensemble":
            return member_samples([self.model_, *self.members_], texts, progress=progress)
        return mc_dropout_samples(self.model_, texts, samples=self._samples(), seed=self.seed, progress=progress)

    def features(self, X) -> np.ndarray:
        """What the classification head reads, one row per text (for posteriors and acquisition)."""
        self._check_fitted()
        data = as_labeled(X, source="input")
        self._check_pairs(data)
        with Progress(self.show_progress and len(data) > 256) as progress:
            return self.model_.features(self._texts(data, self.model_), progress=progress)

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy; for multi-label models subset accuracy (every label of a text right), as scikit-learn."""
        if getattr(self, "multi_label_", False):
            from sklearn.metrics import accuracy_score

            target = to_indicator(y, list(self.classes_), source="scoring labels")
            return float(accuracy_score(target, self.predict(X), sample_weight=sample_weight))
        return super().score(X, y, sample_weight=sample_weight)

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path, *, overwrite: bool = False, evaluation: dict | None = None) -> Path:
        self._check_fitted()
        config = {
            "method": self.method,
            "params": self.model_.params.to_dict(),
            "classes": [plain_label(c) for c in self.classes_],
            "text_pairs": self.text_pairs_,
            "multi_label": self.multi_label_,
            "seed": self.seed,
            "backbone": {"name": self.backbone_.name, "kind": self.backbone_.kind, "source": self.backbone_.source},
            "training": self.train_info_,
        }
        if evaluation:
            config["evaluation"] = evaluation
        posterior = getattr(self, "posterior_", None)
        if posterior is not None:
            # posterior None with a Laplace head: calibrate="auto" chose laplace-cv.
            config["posterior"] = {"kind": "laplace", "option": self.posterior or "laplace-cv",
                                   "predictive": posterior.predictive,
                                   "tau": posterior.tau}
        elif self.posterior in SAMPLED_POSTERIORS:
            config["posterior"] = {"kind": self.posterior, "option": self.posterior, "samples": self._samples()}
        members = getattr(self, "members_", [])
        if getattr(self, "temperature_", 1.0) != 1.0:
            config["temperature"] = self.temperature_
        class_prior = parse_class_prior(self.class_prior)
        if class_prior is not None:
            weights = prior_vector(class_prior, self.classes_)
            config["class_prior"] = {str(plain_label(c)): float(w) for c, w in zip(self.classes_, weights)}

        def write(folder: Path) -> None:
            self.model_.save(folder)
            if posterior is not None:
                from safetensors.torch import save_file

                save_file(posterior.state(), str(folder / POSTERIOR_FILE))
            for i, member in enumerate(members, start=1):
                (folder / MEMBERS_FOLDER / str(i)).mkdir(parents=True)
                member.save(folder / MEMBERS_FOLDER / str(i))

        return write_model_folder(path, config, write, render_card, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None, trust: bool = False,
             show_progress: bool = False) -> FewShotClassifier:
        """A saved classifier; trust=True also loads pickle files and custom code (only from a source you trust)."""
        path = Path(path)
        config = read_model_folder(path, allow_pickle=trust)
        if "task" in config:
            raise FewtuneError(f"{path} holds a '{config['task']}' model (a fine-tuned causal LM), not a classifier; "
                               "load it with FewShotGenerator.load / `fewtune generate`")
        try:
            method_cls = get_method(config["method"])
            params = method_cls.params_class.from_dict(config["params"], method=config["method"])
            b = config["backbone"]
            backbone = ResolvedBackbone(name=b["name"], kind=b["kind"], path=str(path), source=b["source"],
                                        trusted=trust)
            clf = cls(backbone=b["name"], method=config["method"], params=config["params"],
                      seed=config.get("seed", 0), device=device, show_progress=show_progress, trust=trust)
            clf.classes_ = np.array(config["classes"], dtype=object)
            clf.text_pairs_ = bool(config.get("text_pairs", False))
            clf.multi_label_ = bool(config.get("multi_label", False))
            clf.backbone_ = backbone
            clf.train_info_ = config.get("training", {})
            clf.model_ = method_cls.load(path, params, backbone, device or pick_device(), len(clf.classes_))
            clf.model_.class_names = [str(plain_label(c)) for c in clf.classes_]
            clf.posterior_, clf.temperature_, clf.members_ = None, float(config.get("temperature", 1.0)), []
            kind = config.get("posterior", {}).get("kind")
            if kind in SAMPLED_POSTERIORS:
                clf.posterior, clf.posterior_samples = kind, int(config["posterior"]["samples"])
                if kind == "ensemble":
                    clf.members_ = [method_cls.load(path / MEMBERS_FOLDER / str(i), params, backbone, clf.model_.device,
                                                    len(clf.classes_)) for i in range(1, clf.posterior_samples)]
                    for member in clf.members_:
                        member.class_names = clf.model_.class_names
            elif "posterior" in config:
                from safetensors.torch import load_file

                from .bayes import LaplaceHead

                clf.posterior = config["posterior"].get("option", "laplace")
                clf.posterior_ = LaplaceHead.from_state(load_file(str(path / POSTERIOR_FILE)),
                                                        predictive=config["posterior"].get("predictive", "probit"),
                                                        evidence=clf.train_info_.get("posterior"))
            if "temperature" in config:
                clf.calibrate = "temperature"
            clf.class_prior = config.get("class_prior")
        except (KeyError, TypeError, OSError, ValueError, SafetensorError) as e:
            raise FewtuneError(f"{path}: cannot load model ({type(e).__name__}: {e})") from None
        return clf

    # -- helpers --------------------------------------------------------------------------
    def _texts(self, data, model) -> list[str]:
        if data.text_pairs is None:
            return data.texts
        # Sentence-pair tasks: one input, the two texts joined by the tokenizer's separator.
        sep = getattr(getattr(getattr(model, "body", None), "tokenizer", None), "sep_token", None) or "\n"
        return [f"{a} {sep} {b}" for a, b in zip(data.texts, data.text_pairs)]

    def _check_pairs(self, data) -> None:
        if (data.text_pairs is not None) != self.text_pairs_:
            want = "(text, text_pair) pairs" if self.text_pairs_ else "single texts"
            raise FewtuneError(f"this model was trained on {want}; give it the same kind of input")

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise FewtuneError("this FewShotClassifier is not fitted yet; call fit(texts, labels) first")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
