"""One training run from a `RunSpec`: the classifier built and checked, trained, scored on the held-out
examples, saved; or, for --task generate/lm, a causal LM fine-tuned the same way.

`run` returns what `fewtune train --json` prints; the CLI only parses options into the spec and
prints. The benchmark worker and the server's teach page build their classifier with
`build_classifier` and fit it on data they drew themselves.

This is the part of fewtune.experiment that imports torch (the classifier, the methods, the
generator): the package imports it on first use of `run`, `Run` or `build_classifier`.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..backbones import resolve_backbone
from ..classifier import FewShotClassifier
from ..data.audit_backbone import check_before_training, token_limit
from ..data.builtin import get_dataset
from ..errors import FewtuneError
from ..generation.generator import FewShotGenerator, GenerationParams
from ..methods import get_method  # the package: importing it registers every method
from ..methods.base import LABEL_WORD_KINDS
from ..selection import split_grid
from ..training.tracking import run_name, tracked_run
from .prepare import Prepared, prepare
from .scores import evaluation, inputs, targets
from .spec import RunSpec


@dataclass
class Run:
    model: Any  # the fitted FewShotClassifier or FewShotGenerator
    result: dict[str, Any]  # what `fewtune train --json` prints
    prepared: Prepared


def build_classifier(spec: RunSpec):
    """The classifier a spec asks for and its plan (`FewShotClassifier.check`, which its fit follows): every
    setting checked before any data is read. A built-in data set lends its own template and label words to
    the methods that read them, unless given or withheld (as_user_file)."""
    method_cls = get_method(spec.method)  # the run's one lookup: the defaults below depend on it, the plan reuses it
    params: dict[str, Any] = dict(spec.params)
    if spec.time_budget is not None:
        if "time_budget" not in method_cls.params_class.help():
            raise FewtuneError(f"--time-budget applies to --method auto, not {spec.method}")
        params["time_budget"] = spec.time_budget
    if spec.dataset is not None and not spec.as_user_file and method_cls.kind in LABEL_WORD_KINDS:
        # The built-in's own template and label words, unless the user set them.
        for key, value in get_dataset(spec.dataset).prompt_params().items():
            params.setdefault(key, value)
    clf = FewShotClassifier(backbone=spec.default_backbone(method_cls), method=spec.method, params=params,
                            seed=spec.seed, device=spec.device, show_progress=not spec.quiet, select=spec.select,
                            grid=split_grid(spec.grid) or None, cv_folds=spec.cv_folds, posterior=spec.posterior,
                            calibrate=spec.calibrate, posterior_samples=spec.posterior_samples,
                            class_prior=spec.class_prior, trust=spec.trust, log_with=spec.log_with,
                            logging_dir=spec.logging_dir)
    return clf, clf.check(method_cls)


def run(spec: RunSpec, prepared: Optional[Prepared] = None, *,
        note: Callable[[str], None] = lambda message: None) -> Run:
    """Check the spec, read its data (unless the caller brings it as `prepared`), train, evaluate, save."""
    spec.check(data_given=prepared is not None)
    if spec.task != "classify":
        return _run_generator(spec, prepared, note)
    # Settings are checked before the data is read, so a typo costs no time.
    clf, plan = build_classifier(spec)
    prepared = prepared or prepare(spec)
    train = prepared.train
    check_report = _check_data(spec, prepared, plan, clf.backbone) if spec.check_data else None
    kinds = "multi-label" if spec.multi_label else f"{len(train.classes)} classes"
    note(f"training {spec.method} on {clf.backbone}: {len(train)} examples, {kinds}")
    with _tracked(spec) as tracked:  # every step as it is taken, then the held-out scores, in one run
        clf.fit(inputs(train), targets(train, spec.multi_label, spec.label_sep),
                data_description=prepared.description(spec))
        result = _classifier_result(clf, n_train=len(train), shots=spec.shots, check_report=check_report)
        if prepared.heldout is not None:
            result["evaluation"] = evaluation(clf, prepared.heldout, prepared.what, spec.label_sep)
        if tracked is not None:
            tracked.log_scores(result.get("evaluation"))
            result["logged"] = tracked.describe(spec.log_with)
    if spec.output is not None:
        # spec.yaml names every setting by its new name, whichever the user typed (params.param's renamed_from).
        named = dataclasses.replace(spec, params=clf._params_class().with_new_names(spec.params, warn=False))
        clf.save(spec.output, overwrite=spec.overwrite, evaluation=result.get("evaluation"), standalone=spec.standalone,
                 run_spec=named.to_yaml())
        result["output"] = str(spec.output)
    return Run(clf, result, prepared)


def _tracked(spec: RunSpec):
    """The --log-with run, opened before training so that the model's steps (logged live by its fit, which
    joins this run) and the held-out scores after it land in one run; None without --log-with."""
    what = spec.method if spec.task == "classify" else spec.task
    name = run_name(what, spec.dataset or Path(spec.data or "data").stem, f"seed{spec.seed}")
    return tracked_run(spec.log_with, spec.logging_dir, name, config=spec.to_dict())


def _check_data(spec: RunSpec, prepared: Prepared, plan, backbone: str) -> dict:
    """The audit of `fewtune check-data` on the user's whole file (a suspect row outside the shots would
    otherwise be scored as held-out truth); on a built-in set's pool, thousands of rows, the shots."""
    rows = prepared.pool if spec.data is not None and prepared.pool is not None else prepared.train
    return check_before_training(rows, backbone=backbone, max_tokens=token_limit(plan.method_cls, plan.params),
                                 quiet=spec.quiet, trust=spec.trust, device=spec.device, seed=spec.seed)


def _classifier_result(clf, *, n_train: int, shots: Optional[int], check_report: Optional[dict]) -> dict[str, Any]:
    """What --json prints: the run, and what training chose (selection, posterior, calibration)."""
    info = clf.train_info_
    result: dict[str, Any] = {"method": clf.method, "backbone": clf.backbone_.name, "n_train": n_train,
                              "shots": shots, "seed": clf.seed, "train_seconds": info["train_seconds"]}
    for key in ("auto", "prompt"):
        if key in info:
            result[key] = info[key]
    if check_report is not None:
        result["check_data"] = check_report
    if "distance_from_pretrained" in info:
        result["distance_from_pretrained"] = info["distance_from_pretrained"]
    if info.get("selection"):
        result["selection"] = info["selection"]
    for key in ("posterior", "calibration"):
        if key in info:
            result[key] = {k: v for k, v in info[key].items() if k not in ("log_evidence", "grid")}
    return result


def _run_generator(spec: RunSpec, prepared: Optional[Prepared], note: Callable[[str], None]) -> Run:
    backbone = spec.default_backbone()
    GenerationParams.from_dict(spec.params, method="generation")  # settings checked before any data or model
    resolve_backbone(backbone)
    prepared = prepared or prepare(spec, note=note)
    kind = "conversations" if spec.task == "generate" else "texts"
    note(f"fine-tuning {backbone} ({spec.task}) on {len(prepared.train)} {kind}")
    gen = FewShotGenerator(backbone, task=spec.task, params=spec.params, seed=spec.seed, device=spec.device,
                           show_progress=not spec.quiet, log_with=spec.log_with, logging_dir=spec.logging_dir)
    # Beside the output, hidden: an interrupted run leaves it there for --resume, a finished one removes it.
    output = spec.output
    checkpoint = output.parent / f".{output.name}.checkpoint" if output is not None else None
    if spec.resume:
        if checkpoint is None:
            raise FewtuneError("--resume needs --output: the checkpoint lives beside the model folder")
        if not checkpoint.is_dir():
            note(f"no checkpoint at {checkpoint}; starting from the beginning")
    elif checkpoint is not None and checkpoint.is_dir():
        note(f"an earlier run's checkpoint is at {checkpoint}; starting over (--resume continues it instead)")
    with _tracked(spec) as tracked:  # the generator's fit logs its steps and held-out perplexities to it
        gen.fit(prepared.train, eval_examples=prepared.heldout, checkpoint=checkpoint, resume=spec.resume)
    gen.train_info_["data"] = prepared.description(spec)
    result: dict[str, Any] = {"task": spec.task, "backbone": gen.backbone_.name, "n_train": len(prepared.train),
                              "seed": spec.seed, "train_seconds": gen.train_info_["train_seconds"],
                              "distance_from_pretrained": gen.train_info_["distance_from_pretrained"]}
    if gen.evaluation_:
        result["evaluation"] = {"held_out": prepared.what, **gen.evaluation_}
    if tracked is not None:
        result["logged"] = tracked.describe(spec.log_with)
    if output is not None:
        gen.save(output, merge=spec.merge, overwrite=spec.overwrite)
        shutil.rmtree(checkpoint, ignore_errors=True)
        result["output"] = str(output)
    return Run(gen, result, prepared)
