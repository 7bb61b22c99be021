"""A known class mix at prediction time: Bayes' rule for label shift (torch-free: ONNX exports use it too).

Few-shot training sees K examples per class, so a classifier learns p(y|x) under a balanced class
mix, while the texts it will meet may be 80 % one class. When only the class mix changes (p(x|y)
stays), Bayes' rule gives the posterior under the new mix exactly (Saerens et al. 2002):

    p_new(y|x) ∝ p_train(y|x) · π_new(y) / π_train(y)

π_train is what training saw: the shots' class frequencies, or uniform for a method trained with
class_weight=balanced (which reweights the loss as if the classes were equally frequent).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np

from .errors import FewtuneError


def parse_class_prior(spec: str | Mapping | None) -> dict[str, float] | None:
    """`--class-prior` text ('neg=0.7,pos=0.3', or a JSON object for labels holding ',' or '=') as a dict."""
    if spec is None or isinstance(spec, Mapping):
        return None if spec is None else dict(spec)
    text = spec.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as e:
            raise FewtuneError(f"class prior: not valid JSON ({e.msg} at character {e.pos}): {text!r}") from None
        if not isinstance(parsed, dict):
            raise FewtuneError(f"class prior: a JSON object of label: weight is needed, got {text!r}")
        return parsed
    prior = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        label, sep, value = part.rpartition("=")
        if not sep or not label.strip():
            raise FewtuneError(f"class prior: {part!r} is not LABEL=WEIGHT (e.g. 'neg=0.7,pos=0.3')")
        prior[label.strip()] = value.strip()
    if not prior:
        raise FewtuneError("class prior: empty; give LABEL=WEIGHT for every class, e.g. 'neg=0.7,pos=0.3'")
    return prior


def check_class_prior(spec: str | Mapping | None) -> dict[str, float] | None:
    """The class prior parsed, every weight a positive number: what can be checked before the classes are known."""
    prior = parse_class_prior(spec)
    return None if prior is None else {label: _weight(label, value) for label, value in prior.items()}


def _weight(label, value) -> float:
    try:
        weight = float(value)
    except (TypeError, ValueError):
        raise FewtuneError(f"class prior: the weight of {label!r} must be a number, got {value!r}") from None
    if not np.isfinite(weight) or weight <= 0:
        raise FewtuneError(f"class prior: the weight of {label!r} must be positive (a class the texts never "
                           f"hold is one to leave out of training), got {value!r}")
    return weight


def prior_vector(prior: Mapping, classes: Sequence) -> np.ndarray:
    """The prior over `classes` (in their order), normalised; every class named once, every weight > 0."""
    names = {str(c): i for i, c in enumerate(classes)}
    weights = np.full(len(classes), np.nan)
    for label, value in prior.items():
        if str(label) not in names:
            raise FewtuneError(f"class prior: {label!r} is not one of the model's classes "
                               f"({', '.join(map(repr, names))})")
        weights[names[str(label)]] = _weight(label, value)
    missing = [c for c, i in names.items() if np.isnan(weights[i])]
    if missing:
        raise FewtuneError(f"class prior: no weight for {', '.join(map(repr, missing))}; give one for every class")
    return weights / weights.sum()


def prior_ratio(class_prior: Mapping | None, classes: Sequence, class_counts: Mapping[str, int],
                class_weight: str = "none", *, multi_label: bool = False) -> np.ndarray | None:
    """π_new / π_train over `classes`, or None without a class prior.

    class_counts: the shots per class as training recorded them (train_info_["class_counts"]);
    class_weight: the method's, since "balanced" trains as if the mix were uniform.
    """
    if class_prior is None:
        return None
    if multi_label:  # one-vs-rest labels are not a mix: they need not sum to one
        raise FewtuneError("class_prior covers single-label classification; this model is multi-label")
    new = prior_vector(class_prior, classes)
    if class_weight == "balanced":
        trained = np.full(len(classes), 1.0 / len(classes))
    else:
        counts = np.array([float(class_counts[str(c)]) for c in classes])
        trained = counts / counts.sum()
    return new / trained


def shift_proba(proba: np.ndarray, ratio: np.ndarray | None) -> np.ndarray:
    """p(y|x) re-weighted by π_new / π_train, rows renormalised (unchanged when ratio is None)."""
    if ratio is None:
        return proba
    shifted = np.asarray(proba, dtype=float) * ratio
    return shifted / shifted.sum(axis=1, keepdims=True)
