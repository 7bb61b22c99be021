"""The estimator contract every fewtune model keeps: get_params/set_params with a method's
hyper-parameters reachable as `params__KEY` (so GridSearchCV can tune them), and NotFittedError.

A model's `params` is one dict (or a Params dataclass) rather than one constructor argument per
hyper-parameter: each method has its own. scikit-learn's nested `a__b` names expect `a` to be an
estimator, so `set_params(params__learning_rate=...)` is taken apart here instead. save_pretrained/from_pretrained
are the Hugging Face names of save/load.

The contract is kept without inheriting scikit-learn's BaseEstimator: importing any part of scikit-learn
imports all of it and SciPy (1.5 s here), which a `fewtune predict` of ten texts should not pay (issue 35).
scikit-learn finds what it needs by protocol, not by type: get_params/set_params (clone, GridSearchCV),
`__sklearn_tags__` (built by scikit-learn's own Tags, imported when asked, which only scikit-learn does),
`__sklearn_is_fitted__` (check_is_fitted). NotFittedError subclasses scikit-learn's, made on first raise.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, ClassVar

from .errors import FewtuneError

NESTED = "params__"


@functools.cache
def not_fitted_error() -> type:
    """NotFittedError: a model used before `fit` (or `load`), both fewtune's one-line error and
    scikit-learn's NotFittedError. Made on first use: the raise is rare, the import of scikit-learn is not free."""
    from sklearn.exceptions import NotFittedError as sklearn_not_fitted

    return type("NotFittedError", (FewtuneError, sklearn_not_fitted), {"__module__": __name__, "__doc__": (
        "A model used before `fit` (or `load`): both fewtune's one-line error and scikit-learn's NotFittedError.")})


def __getattr__(name: str):
    if name == "NotFittedError":  # `from fewtune.estimator import NotFittedError` still works, made then
        return not_fitted_error()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ParamsEstimator:
    """A scikit-learn estimator (by protocol, see the module's docstring) whose `params` (the method's
    hyper-parameters) can be read and set key by key."""

    FITTED: ClassVar[str] = "model_"  # the attribute fit sets (None or missing until then)
    FIT_HINT: ClassVar[str] = "call fit() first"

    def __sklearn_is_fitted__(self) -> bool:
        return getattr(self, self.FITTED, None) is not None

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise not_fitted_error()(f"this {type(self).__name__} is not fitted yet; {self.FIT_HINT}")

    def _params_dict(self) -> dict[str, Any]:
        params = self.params
        return params.to_dict() if hasattr(params, "to_dict") else dict(params or {})

    def _params_from_dict(self, values: dict[str, Any]):
        """What `params` becomes after set_params(params__KEY=...); a subclass may check it here."""
        return values

    def _params_class(self):
        """The Params class `params` is read as, so that set_params knows a setting's old names (None: keys
        are taken as given)."""
        return None

    @classmethod
    def _get_param_names(cls) -> list[str]:
        """The constructor's arguments, sorted: the estimator's parameters (as BaseEstimator reads them)."""
        return sorted(p.name for p in inspect.signature(cls.__init__).parameters.values()
                      if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL))

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        found = {name: getattr(self, name) for name in self._get_param_names()}
        if deep:
            found.update({NESTED + key: value for key, value in self._params_dict().items()})
        return found

    def set_params(self, **values) -> ParamsEstimator:
        nested = {key.removeprefix(NESTED): values.pop(key) for key in list(values) if key.startswith(NESTED)}
        for key, value in values.items():  # scikit-learn's message for a name the constructor does not take
            if key not in self._get_param_names():
                raise ValueError(f"Invalid parameter {key!r} for estimator {self}. "
                                 f"Valid parameters are: {self._get_param_names()!r}.")
            setattr(self, key, value)
        if nested:
            current, params_class = self._params_dict(), self._params_class()
            if params_class is not None:  # a setting given now replaces it under either name, old or new
                current = params_class.with_new_names(current, warn=False)
                nested = params_class.with_new_names(nested)
            self.params = self._params_from_dict({**current, **nested})
        return self

    def __sklearn_tags__(self):
        """BaseEstimator's tags; a subclass adds its own to them."""
        from sklearn.utils import Tags, TargetTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False), transformer_tags=None,
                    regressor_tags=None, classifier_tags=None)

    def __repr__(self) -> str:
        """`Name(option=value, ...)` with the options that differ from the defaults, as scikit-learn prints."""
        defaults = {name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()}
        changed = [f"{name}={value!r}" for name, value in self.get_params(deep=False).items()
                   if not (name in defaults and _same(defaults[name], value))]
        return f"{type(self).__name__}({', '.join(changed)})"

    # Hugging Face's names for the same folder: `save_pretrained(path)` / `from_pretrained(path)`.
    def save_pretrained(self, path, **options):
        return self.save(path, **options)

    @classmethod
    def from_pretrained(cls, path, **options):
        return cls.load(path, **options)


def _same(default, value) -> bool:
    try:
        return bool(default == value) and type(default) is type(value)
    except Exception:  # an array-like option compares element-wise: printed, as changed
        return False
