"""Out-of-fold predictions of the shots, which the calibrations are fitted and scored on."""

from __future__ import annotations

import numpy as np

from ..data import as_labeled
from ..data.sampling import cv_folds
from ..model_texts import model_texts
from ..training.memory import fold_models
from .laplace_posterior import fit_head


def out_of_fold(clf, data, y_idx: np.ndarray, params, *, posterior, laplace: bool):
    """Probabilities for every shot from a model trained on the other folds: (as the fold models
    give them, from a laplace-cv posterior fitted on each fold's training part or None, folds).

    The fold models are clf's siblings (same backbone, method, seed) trained with `params` and
    `posterior`."""
    X = data.texts if data.text_pairs is None else list(zip(data.texts, data.text_pairs))
    oof = np.zeros((len(y_idx), len(clf.classes_)))
    oof_laplace = np.zeros_like(oof) if laplace else None
    folds = cv_folds(y_idx, clf.cv_folds, clf.seed)
    with fold_models() as finished:
        for train_idx, val_idx in folds:
            member = clf.sibling(params=params.to_dict(), posterior=posterior,
                                 posterior_samples=clf.posterior_samples)
            member.fit([X[i] for i in train_idx], [clf.classes_[y_idx[i]] for i in train_idx])
            held = [X[i] for i in val_idx]
            oof[val_idx] = member.predict_proba(held)
            if laplace:  # after the MAP predictions: a refittable head is replaced by the posterior's MAP
                fold_texts = model_texts(as_labeled([X[i] for i in train_idx], source="fold"), member.model_)
                head = fit_head(member.model_, fold_texts, y_idx[train_idx], prior="cv", folds=member.cv_folds,
                                seed=member.seed, show_progress=member.show_progress, method=member.method)
                held_texts = model_texts(as_labeled(held, source="fold"), member.model_)
                oof_laplace[val_idx] = head.predict_proba(member.model_.features(held_texts))
            del member
            finished()
    return oof, oof_laplace, folds
