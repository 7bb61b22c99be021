"""What every few-shot method provides, and the one registry of methods.

A method is a class that registers itself with `@register_method`; `FewShotClassifier` and the
CLI find methods only through `METHODS`, so adding a method means adding one module to
fewtune.methods (whose __init__ imports every module but this one). fewtune.training, which the
methods are built from, builds on this module.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import FewtuneError
from ..params import Params
from ..registry import Registry


KINDS = ("encoder", "label-words", "hybrid", "baseline", "portfolio")
LABEL_WORD_KINDS = ("label-words", "hybrid")  # a hybrid's LM part reads label words too


# What a causal LM reads of each text unless told otherwise: label-word methods' max_tokens default, and
# what max_tokens=0 gives the LM parts of hybrid and auto.
LM_TEXT_TOKENS = 256
# The two limits hybrid and auto had, the encoder's and the LM's: now max_tokens (both parts) and
# lm_max_tokens (the LM's, where it differs).
ENCODER_LIMIT, LM_LIMIT = "max_seq_length", "max_text_tokens"  # their old names
LM_LIMIT_HELP = ("the causal LM's token limit per text, where it should differ from max_tokens (0 = max_tokens, "
                 f"or {LM_TEXT_TOKENS} when that is 0 too)")


def lm_token_limit(max_tokens: int, lm_max_tokens: int) -> int:
    """What the LM part of hybrid or auto reads of each text."""
    return lm_max_tokens or max_tokens or LM_TEXT_TOKENS


def _number(value: Any) -> Any:
    try:
        return int(value)  # "128" from the command line is 128
    except (TypeError, ValueError):  # not a number: the field's own check names it
        return value


def split_token_limits(name: str, old: dict[str, Any], values: dict[str, Any]) -> Any:
    """hybrid's and auto's max_tokens or lm_max_tokens from their old limits (for Params.from_old_names),
    such that each part reads what it read: the old encoder limit alone left the LM at its 256, and an
    LM limit that max_tokens already gives is left at 0, as a new model saves it."""
    value = next(iter(old.values()))
    if name == "max_tokens":
        encoder = _number(value)
        if LM_LIMIT not in values and "lm_max_tokens" not in values and isinstance(encoder, int) \
                and lm_token_limit(encoder, 0) != LM_TEXT_TOKENS:
            values["lm_max_tokens"] = LM_TEXT_TOKENS
        return value
    lm, encoder = _number(value), _number(values.get("max_tokens", 0))
    return 0 if isinstance(lm, int) and isinstance(encoder, int) and lm == lm_token_limit(encoder, 0) else value


@dataclasses.dataclass
class MethodParams(Params):
    """Hyper-parameters of a classification method: fields declared with param(...), whose help `fewtune
    methods` shows and whose limits (minimum=, maximum=, above=, choices=) are each field's range, checked
    by params.check_ranges; `check` names what one field's limits cannot say. Problems are listed in the
    order the fields are declared in."""

    problems_in_field_order: ClassVar[bool] = True

    @classmethod
    def _registry(cls) -> Registry:
        return METHODS


class FewShotMethod(ABC):
    """A trainable text classifier on top of a backbone.

    Labels reach a method as integer indices 0..n_classes-1; the classifier keeps the mapping.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    params_class: ClassVar[type[MethodParams]]
    backbone_kinds: ClassVar[tuple[str, ...]] = ("encoder",)
    reads_text: ClassVar[bool] = True  # False for a baseline that ignores the texts (no language check)
    # Whether fit takes soft_targets= (rows of class probabilities to learn instead of one-hot labels):
    # what a student needs to learn from a teacher's probabilities (fewtune.distill).
    soft_targets: ClassVar[bool] = False
    # What `--select cv` searches when the user gives no grid: few points, the default first.
    selection_grid: ClassVar[dict[str, list[Any]]] = {}
    # What the method is, for callers that treat kinds differently (KINDS); "label-words" and "hybrid"
    # methods read a template and label words, which a built-in data set supplies (experiment.run
    # passes its prompt_params to these kinds unless the data set is read as a user's file).
    kind: ClassVar[str] = "encoder"
    # The parameters that cap how many tokens of each text are read (max_tokens, for every method that
    # reads text); a benchmark's --max-tokens sets them, and check-data counts against the first one set.
    length_params: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def default_grid(cls, params: MethodParams) -> dict[str, list[Any]]:
        """What `--select cv` searches for these settings when the user gives no grid."""
        return cls.selection_grid

    def __init__(self, params: MethodParams, backbone, device: str):
        self.params = params
        self.backbone = backbone
        self.device = device
        # The classes as text, in index order; set by FewShotClassifier before fit and after load, for
        # methods that read the label names themselves (label words of prompt methods).
        self.class_names: list[str] = []

    def parts(self) -> list[FewShotMethod]:
        """The methods this one is made of (auto's members, hybrid's LM); they read the class names too."""
        return []

    @property
    def class_names(self) -> list[str]:
        return self._class_names

    @class_names.setter
    def class_names(self, names: list[str]) -> None:
        self._class_names = list(names)
        for part in self.parts():
            part.class_names = names

    @classmethod
    def cv_member_params(cls, params: dict, grid_keys: set[str]) -> dict:
        """The parameters of the models --select cv trains on each fold for a grid point (`params`, whose
        keys in `grid_keys` are the point's): the point's own unless something fit would choose on the
        shots can be fixed without changing how the points rank."""
        return params

    def fitted_params(self) -> MethodParams:
        """The parameters that train this model again without choosing on the shots what fit chose (the
        fold models of a calibration); fit's own unless the method chooses something."""
        return self.params

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


# The baselines and the encoder methods first, then the causal-LM ones, then those combining others.
LISTED_FIRST = ("linear_probe", "setfit", "finetune", "majority", "zero_shot", "prompt", "icl", "auto", "hybrid")
METHODS: Registry[type[FewShotMethod]] = Registry("method", found_in="fewtune.methods", skip=("base",),
                                                  first=LISTED_FIRST)
register_method = METHODS.register
get_method = METHODS.get
