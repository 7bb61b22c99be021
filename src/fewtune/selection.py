"""Choosing hyper-parameters the "true few-shot" way: cross-validation on the K shots only.

Perez et al. (2021, "True Few-Shot Learning with Language Models") showed that picking
hyper-parameters on a large validation set overstates few-shot accuracy; with only K examples per
class the honest choice uses those K examples and nothing else. `select_by_cv` scores every point
of a small grid by stratified k-fold cross-validation on the training shots, keeps the best mean
accuracy (ties, common with a handful of validation texts, go to macro-F1, then to the lower
log-loss, then to the earlier point, so put the default first) and reports the whole table, which
is saved with the model.

Each method names its own grid (`selection_grid` on the method class), small on purpose: every
point costs `folds` trainings. The other way, select="evidence", needs no held-out shots at all: the
prior's strength by the marginal likelihood (`fewtune.bayes.evidence`): one training on all the
shots per grid point (`select_by_evidence`).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .data.sampling import cv_folds
from .errors import FewtuneError
from .labels import plain_label
from .model_texts import model_texts
from .seeding import seed_everything
from .training.memory import fold_models
from .progress import Progress

SELECTIONS = ("cv", "evidence")


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    if not grid:
        raise FewtuneError("--select cv needs a grid: the method has none and none was given (--grid KEY=A,B)")
    for key, values in grid.items():
        if not values:
            raise FewtuneError(f"grid for '{key}' is empty")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def select_by_cv(make_classifier, X: list, y, grid: dict[str, list[Any]], *, folds: int = 4, seed: int = 0,
                 progress=None) -> dict:
    """Score every grid point by cross-validated accuracy (then macro-F1, then log-loss) on (X, y).

    make_classifier(point) -> an unfitted FewShotClassifier with the point's parameters.
    Returns {"method": "cv", "folds", "grid", "results": [...], "chosen": {...}}.
    """
    points = grid_points(grid)
    y_arr = np.asarray(y) if np.ndim(y) == 2 else np.asarray(list(y), dtype=object)
    splits = cv_folds(_stratify_keys(y_arr), folds, seed)
    task = progress.add("Cross-validating the grid", total=len(points) * len(splits)) if progress else None
    results = []
    with fold_models() as finished:
        for point in points:
            scores = []  # (accuracy, macro-F1, log-loss) per fold
            for train_idx, val_idx in splits:
                clf = make_classifier(point)
                clf.fit([X[i] for i in train_idx], _take(y_arr, train_idx))
                scores.append(_held_out_scores(clf, [X[i] for i in val_idx], _take(y_arr, val_idx), y_arr.ndim == 2))
                del clf
                finished()
                if progress:
                    progress.advance(task)
            accs, f1s, losses = (np.array(column) for column in zip(*scores))
            results.append({"params": point, "accuracy": round(float(accs.mean()), 4),
                            "accuracy_std": round(float(accs.std()), 4), "macro_f1": round(float(f1s.mean()), 4),
                            "log_loss": round(float(losses.mean()), 4)})
    best = max(range(len(results)),
               key=lambda i: (results[i]["accuracy"], results[i]["macro_f1"], -results[i]["log_loss"], -i))
    return {"method": "cv", "folds": len(splits), "grid": grid, "results": results, "chosen": points[best]}


def _held_out_scores(clf, texts: list, truth, multi_label: bool) -> tuple[float, float, float]:
    """A fold model's accuracy, macro-F1 and log-loss on its held-out texts."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    proba = clf.predict_proba(texts)
    if multi_label:
        truth = np.asarray(truth)
        pred = (proba >= 0.5).astype(np.int64)
        p = np.clip(proba, 1e-7, 1 - 1e-7)
        loss = float(-(truth * np.log(p) + (1 - truth) * np.log(1 - p)).mean())
    else:
        pred = clf.classes_[proba.argmax(1)]
        loss = float(log_loss(truth, proba, labels=list(clf.classes_)))
    return (float(accuracy_score(truth, pred)), float(f1_score(truth, pred, average="macro", zero_division=0)), loss)


def _stratify_keys(y: np.ndarray) -> np.ndarray:
    if y.ndim == 2:
        return y
    _, keys = np.unique(y.astype(str), return_inverse=True)
    return keys


def _take(y: np.ndarray, idx: np.ndarray):
    return y[idx] if y.ndim == 2 else [y[i] for i in idx]


def parse_grid(items: list[str], params_class, method: str, base: dict | None = None) -> dict[str, list[Any]]:
    """--grid KEY=A,B,C options -> {KEY: [A, B, C]}, values typed and checked as typed_grid does."""
    return typed_grid(split_grid(items), params_class, method, base)


def split_grid(items: list[str]) -> dict[str, list[str]]:
    """--grid KEY=A,B,C options -> {KEY: ["A", "B", "C"]}, the values as typed (typed_grid types them)."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise FewtuneError(f"--grid expects KEY=VALUE,VALUE,..., got {item!r}")
        grid[key.strip()] = [v.strip() for v in values.split(",")]
    return grid


def typed_grid(grid: dict[str, list[Any]], params_class, method: str, base: dict | None = None) -> dict[str, list[Any]]:
    """The grid's values converted to each parameter's type ("1e-4" from the command line), each checked beside
    the run's other parameters (`base`) as the grid point will run. Keys are the settings' new names, which
    either side may give by an old one (params.param's renamed_from)."""
    base = params_class.with_new_names(base, method=method, warn=False)
    typed = {}
    for key, values in grid.items():
        key = params_class.new_name(key)
        typed[key] = [getattr(params_class.from_dict({**base, key: v}, method=method), key) for v in values]
    return typed


def selection_grid(select: str | None, grid: dict | None, method_cls, params, method: str, base: dict | None
                   ) -> dict[str, list[Any]] | None:
    """The grid `select` scores (the given one, typed, or the method's own), checked before any data; None
    without select. Callers check `select` is one of SELECTIONS."""
    if select is None:
        return None
    if select == "evidence":
        _check_evidence(method_cls, params, grid, method)
    own = method_cls.default_grid(params) if select == "cv" else method_cls.evidence_grid
    chosen = own if grid is None else typed_grid(grid, method_cls.params_class, method, base)
    if select == "evidence":
        for key, values in chosen.items():
            if not values or any(not isinstance(v, (int, float)) or not v > 0 for v in values):
                raise FewtuneError(f"the evidence needs a proper prior: every {key} in the grid must be positive, "
                                   f"got {values}")
    grid_points(chosen)  # an empty grid is refused now, not after the data is read
    return chosen


def _check_evidence(method_cls, params, grid: dict | None, method: str) -> None:
    """select="evidence" is refused where the method cannot apply it (the grid's keys before their values)."""
    if not method_cls.evidence_grid:
        raise FewtuneError(
            f"select='evidence' needs a method trained as a MAP estimate under a prior toward the pretrained "
            f"weights (finetune); '{method}' is not. Use select='cv', or posterior='laplace' for the "
            "head's prior")
    problem = method_cls.evidence_problem(params)
    if problem:
        raise FewtuneError(problem)
    for key in grid or {}:
        if key not in method_cls.evidence_grid:
            raise FewtuneError(f"with select='evidence' the grid may only hold "
                               f"{', '.join(method_cls.evidence_grid)}; got {key!r}")


def classifier_selection(clf, method_cls, data, y, grid: dict[str, list[Any]]) -> dict | None:
    """clf.select="cv": the grid (the plan's, `fewtune.classifier_plan`) scored by cross-validating clf's siblings
    on the shots; None otherwise (select="evidence" chooses while training, select_by_evidence)."""
    if clf.select != "cv":
        return None
    X = data.texts if data.text_pairs is None else list(zip(data.texts, data.text_pairs))

    # The grid's keys are new names (typed_grid); clf's own may be old ones, read as the new.
    base = clf._params_class().with_new_names(clf.params, method=clf.method, warn=False)

    def make(point):  # every grid point is a sibling of clf, cross-validated, as the method trains its members
        return clf.sibling(params=method_cls.cv_member_params({**base, **point}, set(grid)))

    with Progress(clf.show_progress) as progress:
        return select_by_cv(make, X, y, grid, folds=clf.cv_folds, seed=clf.seed, progress=progress)


def refuse_multi_label_evidence(select: str | None, multi_label: bool) -> None:
    """What only the labels tell: the evidence is worked out for a softmax over single labels."""
    if select == "evidence" and multi_label:
        raise FewtuneError("select='evidence' covers single-label classification; this data is multi-label")


def select_by_evidence(clf, method_cls, params, grid, backbone, device, data, y_idx: np.ndarray):
    """Train once per point of the grid (the plan's) on all the shots, keep the model whose prior has the
    highest evidence: (model, its training info, the selection's report)."""
    points = grid_points(grid)
    results, best = [], None
    with Progress(clf.show_progress) as progress:
        task = progress.add("Prior strength by the evidence", total=len(points))
        for point in points:
            point_params = method_cls.params_class.from_dict({**params.to_dict(), **point}, method=clf.method)
            seed_everything(clf.seed)
            model = method_cls(point_params, backbone, device)
            model.class_names = [str(plain_label(c)) for c in clf.classes_]
            texts = model_texts(data, model)
            info = model.fit(texts, y_idx, len(clf.classes_), seed=clf.seed, progress=None)
            evidence = model.log_evidence(texts, y_idx)
            results.append({"params": point, **evidence})
            if best is None or evidence["log_evidence"] > best[2]:
                best = (model, info, evidence["log_evidence"], point)
            else:
                del model  # keep one encoder in memory besides the best
            progress.advance(task)
    model, info, _, chosen = best
    return model, info, {"method": "evidence", "grid": grid,
                         "results": results, "chosen": chosen}
