"""Every setting of a FewShotClassifier checked at once, before any data is read or model loaded, and what
they resolve to: the plan that `fit` follows.

The one place these checks live: `FewShotClassifier.check` (which fit calls, and `fewtune train` before
it reads the data) and the benchmark planner (`fewtune.bench.plan.check_variant`, before it loads any data
set) both come here. Errors name each setting as the estimator does (`select`); the command line puts
its flags in their place (`fewtune.cli.options.cli_message`).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from .backbones import ResolvedBackbone, a_kind, default_backbone, pick_device, resolve_backbone
from .bayes import check_chain
from .errors import FewtuneError, SettingError
from .label_shift import check_class_prior
from .methods.base import get_method
from .selection import SELECTIONS, selection_grid
from .training.tracking import check_trackers


@dataclasses.dataclass(frozen=True)
class ClassifierPlan:
    """What a classifier's settings resolve to; only the labels can still refuse them (multi-label data,
    a class prior naming a class the shots lack)."""

    method_cls: type  # the registered method
    params: Any  # its Params, every value in range
    backbone: ResolvedBackbone | None  # of a kind the method reads; None where the caller left it unresolved
    device: str  # where training runs
    grid: dict[str, list[Any]] | None  # what select scores, values typed; None without select
    chain: tuple[type, ...]  # the posterior and calibration classes asked for, posterior first
    class_prior: dict[str, float] | None  # parsed, every weight positive


def check_settings(clf, *, method_cls: type | None = None, with_backbone: bool = True) -> ClassifierPlan:
    """Check every setting of `clf` (a FewShotClassifier, or anything with its options) and return the plan.

    method_cls: the class clf.method names, where the caller looked it up already (a run's defaults depend on
    it), so a run resolves its method once. with_backbone=False leaves the backbone to whoever trains (the
    benchmark's worker resolves it in its own interpreter)."""
    if method_cls is None or getattr(method_cls, "name", None) != clf.method:
        method_cls = get_method(clf.method)
    params = method_cls.params_class.from_dict(clf.params, method=clf.method)
    if clf.select not in (None, *SELECTIONS):
        raise SettingError("select", value=clf.select, choices=SELECTIONS)
    grid = selection_grid(clf.select, clf.grid, method_cls, params, clf.method, params.to_dict())
    chain = check_chain(clf)
    check_trackers(list(getattr(clf, "log_with", None) or []), "log_with")
    class_prior = check_class_prior(clf.class_prior)  # its syntax and weights; the class names wait for the classes
    device = pick_device(clf.device)  # a device this torch does not have fails here, not after the data is read
    backbone = None
    if with_backbone:
        name = clf.backbone or default_backbone(method_cls.backbone_kinds[0])
        backbone = dataclasses.replace(resolve_backbone(name), trusted=clf.trust)
        if backbone.kind not in method_cls.backbone_kinds:
            raise FewtuneError(f"method '{clf.method}' needs a backbone of kind "
                               f"{' or '.join(method_cls.backbone_kinds)}; '{name}' is {a_kind(backbone.kind)}")
    return ClassifierPlan(method_cls, params, backbone, device, grid, chain, class_prior)


def settings_key(clf) -> dict[str, Any]:
    """What a plan was made from, to tell whether it still holds: every option, copied (a dict changed in place
    is a change too); tracker objects by identity, being no settings to copy."""
    options = clf.get_params(deep=False)
    log_with = [item if isinstance(item, str) else id(item) for item in options.pop("log_with", None) or []]
    return {**copy.deepcopy(options), "log_with": log_with}
