"""Hyper-parameters as a dataclass: the one contract of classification and recommendation methods.

A method's parameters subclass `Params`, add fields with `metadata={"help": ...}` and extend `check`
to name every invalid value, so one error lists them all before any model loads. The registry a
class belongs to (`_registry`) only names the method in messages. Torch-free on purpose:
`fewtune recommend MODEL` reads recommender parameters without loading the encoder methods.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from .errors import FewtuneError


# Ranges that hold for a parameter of this name in every method (a method's own check adds the rest):
# the values that would otherwise fail deep inside a library, after training has begun.
AT_LEAST_ONE = ("batch_size", "encode_batch_size", "max_demonstrations", "early_stopping_folds", "folds", "lora_r",
                "patience")
POSITIVE = ("head_c", "lr", "head_lr", "body_lr", "lora_lr", "lora_alpha", "temperature")
NOT_NEGATIVE = ("max_seq_length", "max_text_tokens", "max_demo_tokens", "l2sp", "weight_decay", "lm_feature_scale",
                "reinit_layers", "time_budget", "epochs", "head_epochs")  # setfit's epochs=0: no contrastive stage


def check_ranges(params: Params, problems: list[str]) -> None:
    """Append the AT_LEAST_ONE / POSITIVE / NOT_NEGATIVE violations the method's own check did not name."""
    for field in dataclasses.fields(params):
        value = getattr(params, field.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if any(problem.startswith(f"{field.name} ") for problem in problems):
            continue
        if field.name in AT_LEAST_ONE and value < 1:
            problems.append(f"{field.name} must be at least 1, got {value}")
        elif field.name in POSITIVE and not value > 0:
            problems.append(f"{field.name} must be positive, got {value}")
        elif field.name in NOT_NEGATIVE and value < 0:
            problems.append(f"{field.name} must not be negative, got {value}")


@dataclasses.dataclass
class Params:
    # Whether the name-based ranges above apply (classification methods); other settings, where 0 may mean
    # "the default" (adapt's lr), check their own.
    ranges_apply: ClassVar[bool] = False

    def __post_init__(self):
        problems: list[str] = []
        self.check(problems)
        if self.ranges_apply:
            check_ranges(self, problems)
            # One order whichever check found a problem: the order the fields are declared in.
            order = {f.name: i for i, f in enumerate(dataclasses.fields(self))}
            problems.sort(key=lambda problem: order.get(problem.split(" ", 1)[0], len(order)))
        if problems:
            raise FewtuneError(f"{self.method_name()}: " + "; ".join(problems))

    def check(self, problems: list[str]) -> None:
        """Append one sentence per invalid value (subclasses extend this, calling super)."""

    @classmethod
    def _registry(cls) -> dict[str, Any]:
        """name -> method class, for messages."""
        return {}

    @classmethod
    def method_name(cls) -> str:
        """The registered method these parameters belong to, for messages."""
        return next((name for name, m in cls._registry().items() if m.params_class is cls), cls.__name__)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None, *, method: str = "") -> Params:
        values = dict(values or {})
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise FewtuneError(f"unknown parameter(s) {', '.join(unknown)} for method '{method}'; "
                               f"known: {', '.join(sorted(known)) or '(none)'}")
        return cls(**{k: cls._coerce(known[k], v, method) for k, v in values.items()})

    @staticmethod
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

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}
