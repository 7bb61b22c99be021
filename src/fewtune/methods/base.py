"""What every few-shot method provides, and the one registry of methods.

A method is a class that registers itself with `@register_method`; `FewShotClassifier` and the
CLI find methods only through `METHODS`, so adding a method means adding one module.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import FewtuneError


@dataclasses.dataclass
class MethodParams:
    """Hyper-parameters of a method. Subclasses add fields with `metadata={"help": ...}` and override
    `check` to name every invalid value, so one error lists all of them before any model loads."""

    def __post_init__(self):
        problems: list[str] = []
        self.check(problems)
        if problems:
            raise FewtuneError(f"{self.method_name()}: " + "; ".join(problems))

    def check(self, problems: list[str]) -> None:
        """Append one sentence per invalid value (subclasses extend this, calling super)."""

    @classmethod
    def method_name(cls) -> str:
        """The registered method these parameters belong to, for messages."""
        return next((name for name, m in METHODS.items() if m.params_class is cls), cls.__name__)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None, *, method: str = "") -> MethodParams:
        values = dict(values or {})
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise FewtuneError(
                f"unknown parameter(s) {', '.join(unknown)} for method '{method}'; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**{k: _coerce(known[k], v, method) for k, v in values.items()})

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def _coerce(field: dataclasses.Field, value: Any, method: str) -> Any:
    """Turn CLI strings ("2e-5", "true") into the field's type; leave typed values alone."""
    default = field.default
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    try:
        if isinstance(default, bool):
            if value.lower() in {"1", "true", "yes", "on"}:
                return True
            if value.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        return type(default)(value)
    except ValueError:
        raise FewtuneError(
            f"parameter '{field.name}' of method '{method}' must be {type(default).__name__}, got {value!r}"
        ) from None


class FewShotMethod(ABC):
    """A trainable text classifier on top of a backbone.

    Labels reach a method as integer indices 0..n_classes-1; the classifier keeps the mapping.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    params_class: ClassVar[type[MethodParams]]
    backbone_kinds: ClassVar[tuple[str, ...]] = ("encoder",)
    # What `--select cv` searches when the user gives no grid: few points, the default first.
    selection_grid: ClassVar[dict[str, list[Any]]] = {}

    def __init__(self, params: MethodParams, backbone, device: str):
        self.params = params
        self.backbone = backbone
        self.device = device
        # The classes as text, in index order; set by FewShotClassifier before fit and after load, for
        # methods that read the label names themselves (label words of prompt methods).
        self.class_names: list[str] = []

    @abstractmethod
    def fit(self, texts: list[str], y: np.ndarray, n_classes: int, *, seed: int, progress) -> dict:
        """Train on the examples; return facts about training worth saving (steps, seconds, ...)."""

    @abstractmethod
    def predict_proba(self, texts: list[str], *, progress=None) -> np.ndarray:
        """Rows of class probabilities, each summing to 1."""

    # -- the last layer, for posteriors over the head (fewtune.bayes.laplace) -------------------
    # A method whose logits are a linear map of features it can compute exposes both; a method
    # whose head is a logistic fit on frozen features may have the head refitted (refittable_head).
    refittable_head: ClassVar[bool] = False

    def last_layer(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(weight C × D, bias C) of a softmax head on `features`, or None when there is none."""
        return None

    def features(self, texts: list[str], *, progress=None) -> np.ndarray:
        """What the last layer reads: one row of D numbers per text."""
        raise NotImplementedError(f"{self.name} has no last-layer features")

    def set_last_layer(self, weight: np.ndarray, bias: np.ndarray) -> None:
        raise NotImplementedError(f"{self.name} cannot replace its head")

    # -- the evidence for a prior's strength, for select="evidence" (fewtune.bayes.evidence) ----------
    # What `--select evidence` searches: the strengths of a prior the method trains under, which must
    # be MAP training of a likelihood, so that the Laplace evidence applies. Empty: not supported.
    evidence_grid: ClassVar[dict[str, list[Any]]] = {}

    @classmethod
    def evidence_problem(cls, params: MethodParams) -> str | None:
        """Why these parameters rule out the evidence (checked before any training), or None."""
        return None

    def log_evidence(self, texts: list[str], y: np.ndarray, *, progress=None) -> dict:
        """The Laplace evidence of the training labels under the prior the method was just trained with."""
        raise NotImplementedError(f"{self.name} has no marginal likelihood")

    @abstractmethod
    def save(self, folder: Path) -> None:
        """Write weights (safetensors only) and any extra JSON into `folder`."""

    @classmethod
    @abstractmethod
    def load(cls, folder: Path, params: MethodParams, backbone, device: str, n_classes: int) -> FewShotMethod:
        """Rebuild a trained method from what `save` wrote."""


METHODS: dict[str, type[FewShotMethod]] = {}


def register_method(cls: type[FewShotMethod]) -> type[FewShotMethod]:
    if cls.name in METHODS:
        raise RuntimeError(f"method '{cls.name}' registered twice")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[FewShotMethod]:
    try:
        return METHODS[name]
    except KeyError:
        raise FewtuneError(f"unknown method '{name}'; available: {', '.join(sorted(METHODS))}") from None
