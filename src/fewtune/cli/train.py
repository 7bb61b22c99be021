"""`fewtune train`: few-shot train a classifier, evaluate it on held-out data, save it (--task generate|lm:
a causal LM instead, in generate.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import FewtuneError
from .generate import train_generator
from .options import (ClassPrior, Encoding, Json, LabelSep, MultiLabel, Quiet, TextCol, Trust,
                      held_out_report, inputs, note, parse_params, print_json, targets)
from .train_output import print_result


def train(
    data: Annotated[Optional[Path], typer.Option(help="Training data: CSV, TSV, JSONL or Parquet.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="A built-in dataset instead (see `fewtune datasets`).")] = None,
    text_col: TextCol = "text",
    text_pair_col: Annotated[Optional[str], typer.Option(help="Second text column, for sentence-pair tasks.")] = None,
    label_col: Annotated[str, typer.Option(help="Column holding the label.")] = "label",
    multi_label: MultiLabel = False,
    label_sep: LabelSep = ",",
    shots: Annotated[Optional[int], typer.Option(help="Examples per class to train on, drawn with --seed; the rest are held out. Default: all rows.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the k-shot draw and training.")] = 0,
    task: Annotated[str, typer.Option(help="classify (labels); generate (dialogue: chat messages or prompt/response pairs); lm (adapt an LM to raw texts).")] = "classify",
    method: Annotated[str, typer.Option(help="Few-shot method (--task classify); 'auto' cross-validates a small portfolio on the shots and keeps the best.")] = "setfit",
    time_budget: Annotated[Optional[float], typer.Option(help="--method auto: seconds for the search and the final training; candidates that would run past it are dropped.")] = None,
    as_user_file: Annotated[bool, typer.Option("--as-user-file", help="With --dataset: withhold the data set's own template and label words, as for a user's file (texts and labels only).")] = False,
    backbone: Annotated[Optional[str], typer.Option(help="Backbone name (`fewtune models`), model folder or hub id. Default: minilm to classify, smollm2-135m to generate.")] = None,
    prompt_col: Annotated[str, typer.Option(help="--task generate: column of the user's message (when there is no 'messages' column).")] = "prompt",
    response_col: Annotated[str, typer.Option(help="--task generate: column of the reply to learn.")] = "response",
    merge: Annotated[bool, typer.Option(help="--task generate/lm: save a standalone model with the LoRA adapter merged in.")] = False,
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="Method parameter KEY=VALUE (repeatable); see `fewtune methods`.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder to save the trained model in.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model folder.")] = False,
    select: Annotated[Optional[str], typer.Option(help="'cv': choose parameters by cross-validation on the training shots only, then train on all of them; 'evidence': choose the L2-SP strength (the pull toward the pretrained weights) by the Laplace marginal likelihood, one training per value (finetune).")] = None,
    grid: Annotated[Optional[list[str]], typer.Option(help="With --select: KEY=A,B,... (repeatable) instead of the method's own grid.")] = None,
    cv_folds: Annotated[int, typer.Option(help="With --select cv or --calibrate: number of folds.")] = 4,
    posterior: Annotated[Optional[str], typer.Option(help="'laplace': a Laplace posterior over the head, prior precision from the evidence; 'laplace-cv': precision by cross-validated NLL on the shots; 'ensemble': models from several seeds, probabilities averaged; 'mc-dropout': predictions averaged over dropout masks.")] = None,
    posterior_samples: Annotated[int, typer.Option(help="With --posterior ensemble / mc-dropout: members / dropout samples (0 = 5 / 20).")] = 0,
    calibrate: Annotated[Optional[str], typer.Option(help="'temperature': temperature scaling fitted on out-of-fold predictions of the shots; 'auto': none, temperature or the laplace-cv posterior, whichever has the lowest out-of-fold NLL on the shots.")] = None,
    class_prior: ClassPrior = None,
    test: Annotated[Optional[Path], typer.Option(help="Held-out data file to evaluate on (same columns).")] = None,
    max_test: Annotated[Optional[int], typer.Option(help="Evaluate on at most this many held-out examples, a fixed subset (default 1000 to classify, 100 for perplexity; 0 = all).")] = None,
    encoding: Encoding = "utf-8",
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, mps (default: best available).")] = None,
    trust: Trust = False,
    resume: Annotated[bool, typer.Option(help="--task generate/lm: continue an interrupted run from its last epoch's checkpoint (kept beside --output).")] = False,
    check_data: Annotated[bool, typer.Option("--check-data", help="Audit the training examples first (`fewtune check-data`); stop on errors.")] = False,
    quiet: Quiet = False,
    json_out: Json = False,
):
    """Few-shot train a classifier (or fine-tune a causal LM: --task generate/lm), evaluate it on held-out data, and save it."""
    if (data is None) == (dataset is None):
        raise FewtuneError("give exactly one of --data FILE or --dataset NAME")
    if shots is not None and shots < 1:
        raise FewtuneError(f"--shots must be at least 1, got {shots}")
    if task not in ("classify", "generate", "lm"):
        raise FewtuneError(f"--task must be classify, generate or lm, got {task!r}")
    if task != "classify":
        train_generator(task=task, data=data, dataset=dataset, text_col=text_col, prompt_col=prompt_col,
                        response_col=response_col, shots=shots, seed=seed, backbone=backbone, param=param,
                        output=output, overwrite=overwrite, merge=merge, test=test, max_test=max_test,
                        encoding=encoding, device=device, quiet=quiet, json_out=json_out, resume=resume,
                        classify_only={"--method": method != "setfit", "--multi-label": multi_label,
                                       "--select": select is not None, "--grid": bool(grid),
                                       "--posterior": posterior is not None, "--calibrate": calibrate is not None,
                                       "--class-prior": class_prior is not None,
                                       "--text-pair-col": text_pair_col is not None, "--trust": trust,
                                       "--time-budget": time_budget is not None, "--as-user-file": as_user_file,
                                       "--check-data": check_data})
        return
    _check_classify_flags(merge=merge, resume=resume, multi_label=multi_label, shots=shots, dataset=dataset,
                          output=output, overwrite=overwrite)
    # Settings are checked before the data is read, so a typo costs no time.
    clf, method_params = _classifier(
        backbone=backbone or "minilm", method=method, param=param, time_budget=time_budget, dataset=dataset,
        as_user_file=as_user_file, select=select, grid=grid, cv_folds=cv_folds, posterior=posterior,
        posterior_samples=posterior_samples, calibrate=calibrate, class_prior=class_prior, seed=seed, device=device,
        trust=trust, quiet=quiet)
    train_set, heldout, what = _examples(
        data=data, dataset=dataset, text_col=text_col, text_pair_col=text_pair_col, label_col=label_col,
        multi_label=multi_label, shots=shots, seed=seed, test=test, encoding=encoding,
        max_test=1000 if max_test is None else max_test)
    check_report = None
    if check_data:
        from ..method import get_method

        check_report = _check_data(train_set, get_method(method), method_params, multi_label=multi_label,
                                   backbone=clf.backbone,
                                   quiet=quiet, trust=trust, device=device, seed=seed)
    kinds = "multi-label" if multi_label else f"{len(train_set.classes)} classes"
    note(quiet, f"training {method} on {clf.backbone}: {len(train_set)} examples, {kinds}")
    description = f"{dataset or data}" + (f", {shots} per class, seed {seed}" if shots else "")
    clf.fit(inputs(train_set), targets(train_set, multi_label, label_sep), data_description=description)

    result = _result(clf, n_train=len(train_set), shots=shots, check_report=check_report)
    if heldout is not None:
        result["evaluation"] = _evaluation(clf, heldout, what, label_sep)
    if output is not None:
        clf.save(output, overwrite=overwrite, evaluation=result.get("evaluation"))
        result["output"] = str(output)
    if json_out:
        print_json(result)
    else:
        print_result(result, clf.train_info_, what, output, clf.strategies_)


def _check_classify_flags(*, merge: bool, resume: bool, multi_label: bool, shots: Optional[int],
                          dataset: Optional[str], output: Optional[Path], overwrite: bool) -> None:
    """The options that --task classify refuses, alone or together."""
    if merge:
        raise FewtuneError("--merge applies to --task generate/lm (LoRA on a causal LM)")
    if resume:
        raise FewtuneError("--resume applies to --task generate/lm, the trainings long enough to checkpoint; a "
                           "few-shot classifier trains in seconds to minutes: run the command again")
    if multi_label and shots is not None:
        raise FewtuneError("--shots draws K examples per class, which multi-label rows do not have; "
                           "give the few labeled rows as --data and held-out rows as --test")
    if multi_label and dataset is not None:
        raise FewtuneError("the built-in datasets are single-label; --multi-label needs --data")
    if output is not None and output.exists() and not overwrite:
        raise FewtuneError(f"{output} already exists; choose another --output or pass --overwrite")


def _classifier(*, backbone: str, method: str, param: Optional[list[str]], time_budget: Optional[float],
                dataset: Optional[str], as_user_file: bool, select: Optional[str], grid: Optional[list[str]],
                cv_folds: int, posterior: Optional[str], posterior_samples: int, calibrate: Optional[str],
                class_prior: Optional[str], seed: int, device: Optional[str], trust: bool, quiet: bool):
    """The classifier to train, its method, parameters, selection and backbone checked (no data read yet);
    with the method's parameters, which --check-data reads its token limit from."""
    from ..classifier import FewShotClassifier

    params = _method_params(method, param, time_budget=time_budget, dataset=dataset, as_user_file=as_user_file)
    if grid and select is None:
        raise FewtuneError("--grid only applies with --select")
    if cv_folds < 2:
        raise FewtuneError(f"--cv-folds must be at least 2, got {cv_folds}")
    clf = FewShotClassifier(backbone=backbone, method=method, params=params, seed=seed, device=device,
                            show_progress=not quiet, select=select, cv_folds=cv_folds, posterior=posterior,
                            calibrate=calibrate, posterior_samples=posterior_samples, class_prior=class_prior,
                            trust=trust)
    _, method_params, _ = clf.check_options(flags=True)
    if grid:
        from ..selection import parse_grid

        clf.grid = parse_grid(grid, type(method_params), method)
    return clf, method_params


def _method_params(method: str, param: Optional[list[str]], *, time_budget: Optional[float],
                   dataset: Optional[str], as_user_file: bool) -> dict[str, Any]:
    """-p KEY=VALUE, plus --time-budget, plus a built-in dataset's template and label words where the
    method takes them (unless given, or withheld by --as-user-file)."""
    from ..method import get_method

    params: dict[str, Any] = parse_params(param)
    known = get_method(method).params_class.help()
    if time_budget is not None:
        if "time_budget" not in known:
            raise FewtuneError(f"--time-budget applies to --method auto, not {method}")
        params["time_budget"] = time_budget
    if as_user_file and dataset is None:
        raise FewtuneError("--as-user-file applies to --dataset (a data file has no template of its own)")
    if dataset is not None and not as_user_file:
        # Label-word methods on a built-in dataset: its own template and words unless given.
        for key, value in get_method(method).defaults_for(dataset).items():
            params.setdefault(key, value)
    return params


def _examples(*, data, dataset, text_col, text_pair_col, label_col, multi_label, shots, seed, test, encoding,
              max_test: int):
    """The training examples (the K-shot draw with --shots), the held-out ones and what they are."""
    from ..data import check_overlap, check_trainable, draw, fixed_subset, load_builtin, load_labeled

    def read(path):
        return load_labeled(path, text_col=text_col, label_col=label_col, text_pair_col=text_pair_col,
                            encoding=encoding)

    if dataset is not None:
        pool, heldout = load_builtin(dataset)
        what = f"the {dataset} test split"
    else:
        pool, heldout, what = read(data), None, None
    if not multi_label:
        check_trainable(pool, shots=shots)
    train_set = pool
    if shots is not None:
        train_set, rest = draw(pool, shots, seed)
        if heldout is None and len(rest):
            heldout, what = rest, f"the {len(rest)} rows of {data} not drawn for training"
    if test is not None:
        heldout, what = read(test), str(test)
    if heldout is not None:
        heldout = fixed_subset(heldout, max_test)
        check_overlap(train_set, heldout)
    return train_set, heldout, what


def _check_data(train_set, method_cls, method_params, *, multi_label: bool, backbone: str, quiet: bool, trust: bool,
                device: Optional[str], seed: int) -> dict:
    from ..check_data import check_before_training, token_limit

    if multi_label:
        raise FewtuneError("--check-data covers single-label data")
    return check_before_training(train_set, backbone=backbone, max_tokens=token_limit(method_cls, method_params), quiet=quiet,
                                 trust=trust, device=device, seed=seed)


def _result(clf, *, n_train: int, shots: Optional[int], check_report: Optional[dict]) -> dict[str, Any]:
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


def _evaluation(clf, heldout, what: str, label_sep: str) -> dict[str, Any]:
    report = held_out_report(clf, heldout, label_sep)
    evaluation = {"held_out": what, "n": report["n"], "accuracy": round(report["accuracy"], 4),
                  "macro_f1": round(report["macro_f1"], 4)}
    if "calibration" in report:
        evaluation.update({k: round(report["calibration"][k], 4) for k in ("ece", "nll", "brier")})
    return evaluation
