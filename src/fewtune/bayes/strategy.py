"""What every posterior and calibration is to the classifier, and the registry that names them.

A fitted FewShotClassifier holds its method's model and a chain of strategies: at most one
posterior (which turns the model and the texts into probabilities: a Laplace posterior over the
head, an ensemble's members, dropout masks) and then at most one calibration (which turns
probabilities into probabilities: a temperature). Each strategy is registered once under the name
the user passes (`posterior="laplace"`, `calibrate="temperature"`), in the same kind of Registry as
the methods (`@register_posterior` / `@register_calibration` on a class with a `name`), so the
classifier, the CLI and the model card never branch on which one it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import FewtuneError, SettingError
from ..registry import Registry

# The strategies by the name the user passes, in registration order (the order of the names in messages).
POSTERIOR_STRATEGIES: Registry[type[Posterior]] = Registry("posterior")
CALIBRATION_STRATEGIES: Registry[type[Calibration]] = Registry("calibration")
register_posterior = POSTERIOR_STRATEGIES.register  # class decorator: files the class under its `name`
register_calibration = CALIBRATION_STRATEGIES.register


def posterior_names() -> tuple[str, ...]:
    return tuple(POSTERIOR_STRATEGIES)


def calibration_names() -> tuple[str, ...]:
    return tuple(CALIBRATION_STRATEGIES)


@dataclass
class Fitting:
    """What a strategy's fit sees: the estimator being fitted (its options, and its model_ just
    trained on the shots), the shots, and what trained the model, for strategies that train more."""

    clf: Any  # the FewShotClassifier
    data: Any  # the shots, as fewtune.data.as_labeled gives them
    y_idx: np.ndarray
    texts: list[str]  # the shots as the model reads them (sentence pairs joined)
    method_cls: type
    params: Any
    backbone: Any
    device: str


class Strategy:
    """One link of the chain. `info` is what `fit` reports; it is kept in train_info_[role] and in
    fewtune.json's "training", and `describe` reads it."""

    name: ClassVar[str]  # what the user passes (posterior="laplace"); the registry files the class under it
    role: ClassVar[str]  # "posterior" or "calibration": the key of train_info_ and the link's place

    def __init__(self, info: dict | None = None):
        self.info = info or {}

    @classmethod
    def from_options(cls, clf) -> Strategy:
        """The unfitted strategy the estimator's options ask for."""
        return cls()

    @classmethod
    def check_options(cls, clf) -> None:
        """Refuse option combinations this strategy cannot serve, before any training."""

    def fit(self, fitting: Fitting) -> list[Strategy]:
        """Fit on the shots; returns the links to chain: itself, and any link it chose (calibrate="auto")."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The estimator options that give this strategy again (set on a loaded classifier)."""
        raise NotImplementedError

    # -- the model folder ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Its entries of fewtune.json."""
        return {}

    def write(self, folder: Path) -> None:
        """Its files beside the model's, if any."""

    @classmethod
    def saved_in(cls, config: dict) -> bool:
        """Whether a fewtune.json holds this strategy."""
        return False

    @classmethod
    def from_state(cls, config: dict, folder: Path, clf) -> Strategy:
        """The fitted strategy from a model folder; clf is the classifier loaded so far (model_,
        classes_, train_info_, seed)."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for the CLI and the model card."""
        raise NotImplementedError


class Posterior(Strategy):
    role = "posterior"
    sampled: ClassVar[bool] = False  # the predictive is a mean over samples (`sampled_proba`)

    def predict_proba(self, model, texts: list[str], progress) -> np.ndarray:
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        return {"posterior": self.name}

    @classmethod
    def saved_in(cls, config: dict) -> bool:
        entry = config.get("posterior")
        # "option" names the strategy; folders saved before it existed held a Laplace posterior.
        return entry is not None and entry.get("option", entry.get("kind", "laplace")) == cls.name


class SampledPosterior(Posterior):
    """A posterior whose predictive is the mean of `samples` predictions."""

    sampled = True
    default_samples: ClassVar[int]

    def __init__(self, samples: int, seed: int = 0, info: dict | None = None):
        super().__init__(info)
        self.samples, self.seed = samples, seed

    @classmethod
    def from_options(cls, clf) -> SampledPosterior:
        return cls(clf.posterior_samples or cls.default_samples, clf.seed)

    def sampled_proba(self, model, texts: list[str], progress) -> np.ndarray:
        """The individual predictions, (samples, texts, classes)."""
        raise NotImplementedError

    def predict_proba(self, model, texts: list[str], progress) -> np.ndarray:
        return self.sampled_proba(model, texts, progress).mean(axis=0)

    def options(self) -> dict[str, Any]:
        return {"posterior": self.name, "posterior_samples": self.samples}

    def state(self) -> dict[str, Any]:
        return {"posterior": {"kind": self.name, "option": self.name, "samples": self.samples}}


class Calibration(Strategy):
    role = "calibration"
    temperature: float = 1.0  # the temperature it applies (1.0: none)

    def transform(self, proba: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        return {"calibrate": self.name}


def check_chain(clf) -> tuple[type[Strategy], ...]:
    """The strategy classes clf's options ask for, posterior first: bad options are errors before any data
    (`fewtune.classifier_plan`)."""
    if clf.posterior is not None and clf.posterior not in POSTERIOR_STRATEGIES:
        raise SettingError("posterior", value=clf.posterior, choices=tuple(POSTERIOR_STRATEGIES))
    samples = clf.posterior_samples
    if not isinstance(samples, int) or samples < 0 or samples == 1:
        raise FewtuneError(f"posterior_samples must be 0 (the default) or at least 2, got {samples!r}")
    if clf.calibrate not in (None, *CALIBRATION_STRATEGIES):
        raise SettingError("calibrate", value=clf.calibrate, choices=tuple(CALIBRATION_STRATEGIES))
    kinds = tuple(registry[option] for registry, option in ((POSTERIOR_STRATEGIES, clf.posterior),
                                                            (CALIBRATION_STRATEGIES, clf.calibrate))
                  if option is not None)
    for cls in kinds:
        cls.check_options(clf)
    return kinds


def plan_chain(kinds: tuple[type[Strategy], ...], clf, multi_label: bool) -> list[Strategy]:
    """The unfitted chain of one fit, from check_chain's classes: new links each fit, so no fit refits the
    links an earlier one returned."""
    if multi_label and (clf.posterior or clf.calibrate or clf.class_prior is not None):
        raise FewtuneError("posterior / calibrate / class_prior cover single-label classification; "
                           "this data is multi-label")
    return [cls.from_options(clf) for cls in kinds]


def fit_chain(chain: list[Strategy], fitting: Fitting) -> tuple[list[Strategy], dict[str, dict]]:
    """The fitted links, posterior first, and what each reported (in the order they reported it)."""
    links, info = [], {}
    for strategy in chain:
        for link in strategy.fit(fitting):
            links.append(link)
            info[link.role] = link.info
    return sorted(links, key=lambda link: link.role != "posterior"), info


def load_chain(config: dict, folder: Path, clf) -> list[Strategy]:
    """The fitted chain a model folder holds, posterior first."""
    return [cls.from_state(config, folder, clf)
            for cls in (*POSTERIOR_STRATEGIES.values(), *CALIBRATION_STRATEGIES.values()) if cls.saved_in(config)]


def sampled_names() -> tuple[str, ...]:
    return tuple(name for name, cls in POSTERIOR_STRATEGIES.items() if cls.sampled)
