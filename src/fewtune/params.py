"""Hyper-parameters as a dataclass: the one contract of classification and recommendation methods.

A method's parameters subclass `Params`, declare each field with `param(default, help, ...)` — the help
text `fewtune methods` and --help show, and the values it may take (minimum=, maximum=, above=,
choices=), which every Params checks on creation — and extend `check` for what one field's metadata
cannot say, so one error lists every invalid value before any model loads. A field that had another
name declares it (`renamed_from=`): `from_dict` still reads the old name, with a one-line
RenamedParamWarning (silent for a saved model's own parameters). The registry a class belongs to
(`_registry`) only names the method in messages. Torch-free on purpose: `fewtune recommend
MODEL` reads recommender parameters without loading the encoder methods.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, ClassVar

from .errors import FewtuneError

# The metadata keys of the values a field may take (see param).
LIMITS = ("minimum", "maximum", "above", "choices")


class RenamedParamWarning(FutureWarning):
    """A parameter given by a name it no longer has; the CLI shows it as one line on stderr."""


def param(default: Any, help: str, *, minimum: float | None = None, maximum: float | None = None,
          above: float | None = None, choices: tuple | None = None, renamed_from: tuple[str, ...] = ()) -> Any:
    """A dataclass field with its help text and, optionally, the values it may take, checked by
    `check_ranges` when the Params is created: minimum and maximum inclusive, above exclusive (above=0:
    positive), choices the allowed values. `renamed_from`: the field's former names, which `from_dict`
    still reads (a subclass redeclaring the field repeats them). A list or dict default is copied for
    each instance."""
    metadata: dict[str, Any] = {"help": help}
    for key, value in zip(LIMITS, (minimum, maximum, above, choices)):
        if value is not None:
            metadata[key] = value
    if renamed_from:
        metadata["renamed_from"] = tuple(renamed_from)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_limits(field: dataclasses.Field) -> dict[str, Any]:
    """The values `field` may take, as its param(...) declared them (minimum=, ...; empty: any)."""
    return {key: field.metadata[key] for key in LIMITS if key in field.metadata}


def limit_problem(name: str, value: Any, limits: dict[str, Any]) -> str | None:
    """The sentence naming why `value` is outside `limits` (field_limits), or None."""
    if "choices" in limits:
        if value in limits["choices"]:
            return None
        return f"{name} must be {' or '.join(map(repr, limits['choices']))}, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    low, high, above = limits.get("minimum"), limits.get("maximum"), limits.get("above")
    if low is not None and high is not None:
        if not low <= value <= high:
            return f"{name} must be between {low:g} and {high:g}, got {value}"
    elif low is not None and value < low:
        if low == 0:
            return f"{name} must not be negative, got {value}"
        return f"{name} must be at least {low:g}, got {value}"
    elif high is not None and value > high:
        return f"{name} must be at most {high:g}, got {value}"
    if above is not None and not value > above:
        return f"{name} must be positive, got {value}" if above == 0 else f"{name} must be above {above:g}, got {value}"
    return None


def check_ranges(params: Params, problems: list[str]) -> None:
    """Append the violations of each field's limits (field_limits) that the class's own check did not name."""
    for field in dataclasses.fields(params):
        if any(problem.startswith(f"{field.name} ") for problem in problems):
            continue
        limits = field_limits(field)
        problem = limit_problem(field.name, getattr(params, field.name), limits) if limits else None
        if problem:
            problems.append(problem)


@dataclasses.dataclass
class Params:
    # Whether problems are listed in the order the fields are declared in (classification methods), rather
    # than check's own order followed by the limits'.
    problems_in_field_order: ClassVar[bool] = False

    def __post_init__(self):
        problems: list[str] = []
        self.check(problems)
        check_ranges(self, problems)
        if self.problems_in_field_order:
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
    def from_dict(cls, values: dict[str, Any] | None, *, method: str = "", warn_renamed: bool = True) -> Params:
        """The parameters in `values` (CLI strings are converted); old names are read as their new ones,
        with a RenamedParamWarning unless warn_renamed is false (a saved model's own parameters)."""
        values = cls.with_new_names(values, method=method, warn=warn_renamed)
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise FewtuneError(f"unknown parameter(s) {', '.join(unknown)} for method '{method}'; "
                               f"known: {', '.join(sorted(known)) or '(none)'}")
        return cls(**{k: cls._coerce(known[k], v, method) for k, v in values.items()})

    @classmethod
    def with_new_names(cls, values: dict[str, Any] | None, *, method: str = "", warn: bool = True) -> dict[str, Any]:
        """`values` with every former name (param's renamed_from) replaced by the field's name. Giving both
        names is an error: which one was meant cannot be known."""
        values = dict(values or {})
        for field in dataclasses.fields(cls):
            old = {name: values.pop(name) for name in field.metadata.get("renamed_from", ()) if name in values}
            if not old:
                continue
            if field.name in values:
                raise FewtuneError(f"give {field.name} only: {' and '.join(old)} "
                                   f"{'is its old name' if len(old) == 1 else 'are its old names'} "
                                   f"(method '{method or cls.method_name()}')")
            if warn:
                # Issued from here (stacklevel 1), not from each caller: the default filter then shows each
                # message once, however many times the settings are read (checks, fit, clones, grid points).
                warnings.warn(f"{' and '.join(old)} {'is' if len(old) == 1 else 'are'} now {field.name}; the old "
                              f"name{'' if len(old) == 1 else 's'} will be removed", RenamedParamWarning)
            value = cls.from_old_names(field.name, old, values, method)
            if value is not dataclasses.MISSING:
                values[field.name] = value
        return values

    @classmethod
    def new_name(cls, name: str, *, warn: bool = True) -> str:
        """The field's name for `name`, which may be a former one (with a RenamedParamWarning)."""
        for field in dataclasses.fields(cls):
            if name in field.metadata.get("renamed_from", ()):
                if warn:
                    warnings.warn(f"{name} is now {field.name}; the old name will be removed", RenamedParamWarning)
                return field.name
        return name

    @classmethod
    def from_old_names(cls, name: str, old: dict[str, Any], values: dict[str, Any], method: str) -> Any:
        """The value of field `name` given by its former names `old` (name -> value; the other `values`
        as given), or dataclasses.MISSING to keep the default. One old name: its value; several (two
        settings merged into one) must agree, unless a subclass knows how to merge them."""
        distinct = {repr(v) for v in old.values()}
        if len(distinct) > 1:
            given = " and ".join(f"{k}={v}" for k, v in old.items())
            raise FewtuneError(f"{given} are one setting now, {name}; give {name} "
                               f"(method '{method or cls.method_name()}')")
        return next(iter(old.values()))

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
