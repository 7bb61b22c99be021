"""The estimator contract every fewtune model keeps: get_params/set_params with a method's
hyper-parameters reachable as `params__KEY` (so GridSearchCV can tune them), and NotFittedError.

A model's `params` is one dict (or a Params dataclass) rather than one constructor argument per
hyper-parameter: each method has its own. scikit-learn's nested `a__b` names expect `a` to be an
estimator, so `set_params(params__lr=...)` is taken apart here instead. save_pretrained/from_pretrained
are the Hugging Face names of save/load.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError as _SklearnNotFitted

from .errors import FewtuneError

NESTED = "params__"


class NotFittedError(FewtuneError, _SklearnNotFitted):
    """A model used before `fit` (or `load`): both fewtune's one-line error and scikit-learn's NotFittedError."""


class ParamsEstimator(BaseEstimator):
    """BaseEstimator whose `params` (the method's hyper-parameters) can be read and set key by key."""

    FITTED: ClassVar[str] = "model_"  # the attribute fit sets (None or missing until then)
    FIT_HINT: ClassVar[str] = "call fit() first"

    def __sklearn_is_fitted__(self) -> bool:
        return getattr(self, self.FITTED, None) is not None

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; {self.FIT_HINT}")

    def _params_dict(self) -> dict[str, Any]:
        params = self.params
        return params.to_dict() if hasattr(params, "to_dict") else dict(params or {})

    def _params_from_dict(self, values: dict[str, Any]):
        """What `params` becomes after set_params(params__KEY=...); a subclass may check it here."""
        return values

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        found = super().get_params(deep=False)
        if deep:
            found.update({NESTED + key: value for key, value in self._params_dict().items()})
        return found

    def set_params(self, **values) -> ParamsEstimator:
        nested = {key.removeprefix(NESTED): values.pop(key) for key in list(values) if key.startswith(NESTED)}
        if values:
            super().set_params(**values)
        if nested:
            self.params = self._params_from_dict({**self._params_dict(), **nested})
        return self

    # Hugging Face's names for the same folder: `save_pretrained(path)` / `from_pretrained(path)`.
    def save_pretrained(self, path, **options):
        return self.save(path, **options)

    @classmethod
    def from_pretrained(cls, path, **options):
        return cls.load(path, **options)
