"""RunSpec: every setting of one training run, typed, with the help text the CLI shows.

`fewtune train` builds one from its options (which are generated from these fields), the benchmark
worker and the server's teach page build theirs in code; `fewtune.experiment.prepare` and `run` take
it. `check` refuses what no run can do before any data or model is read. Torch-free, so
`fewtune --help` stays instant.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Optional

from ..backbones import DEFAULT_CAUSAL_LM, default_backbone
from ..backbones.loading import check_device
from ..errors import FewtuneError
from ..params import param
from ..training.tracking import check_trackers

TASKS = ("classify", "generate", "lm")


@dataclasses.dataclass
class RunSpec:
    # -- the data --------------------------------------------------------------------------------
    data: Optional[Path] = param(None, "Training data: CSV, TSV, JSONL or Parquet.")
    dataset: Optional[str] = param(None, "A built-in dataset instead (see `fewtune datasets`).")
    text_col: str = param("text", "Column holding the text.")
    text_pair_col: Optional[str] = param(None, "Second text column, for sentence-pair tasks.")
    label_col: str = param("label", "Column holding the label.")
    multi_label: bool = param(False, "Each row has several labels in the label column, split at --label-sep "
                                     "(one-vs-rest).")
    label_sep: str = param(",", "With --multi-label: what separates the labels in a cell.")
    encoding: str = param("utf-8", "Text encoding of the data file, e.g. latin-1.")
    shots: Optional[int] = param(None, "Examples per class to train on, drawn with --seed; the rest are held "
                                       "out. Default: all rows.")
    seed: int = param(0, "Seed for the k-shot draw and training.")
    test: Optional[Path] = param(None, "Held-out data file to evaluate on (same columns).")
    max_test: Optional[int] = param(None, "Evaluate on at most this many held-out examples, a fixed subset "
                                          "(default 1000 to classify, 100 for perplexity; 0 = all).")
    allow_unknown_labels: bool = param(False, "Score held-out rows whose label the model does not know as wrong "
                                              "(by default they are an error that names them).")
    as_user_file: bool = param(False, "With --dataset: withhold the data set's own template and label words, as "
                                      "for a user's file (texts and labels only).")
    # -- what to train ---------------------------------------------------------------------------
    task: str = param("classify", "classify (labels); generate (dialogue: chat messages or prompt/response "
                                  "pairs); lm (adapt an LM to raw texts).")
    method: str = param("setfit", "Few-shot method (--task classify); 'auto' cross-validates a small portfolio "
                                  "on the shots and keeps the best.")
    backbone: Optional[str] = param(None, "Backbone name (`fewtune models`), model folder or hub id. Default: "
                                          "the method's kind of model, me5-small for encoder methods, smollm2-135m "
                                          "for label-word methods and --task generate/lm.")
    params: dict = param({}, "Method parameter KEY=VALUE (see `fewtune methods`).")
    time_budget: Optional[float] = param(None, "--method auto: seconds for the search and the final training; "
                                               "candidates that would run past it are dropped.")
    select: Optional[str] = param(None, "'cv': choose parameters by cross-validation on the training shots only, "
                                        "then train on all of them; 'evidence': choose the L2-SP strength (the "
                                        "pull toward the pretrained weights) by the Laplace marginal likelihood, "
                                        "one training per value (finetune).")
    grid: list = param([], "With --select: KEY=A,B,... (repeatable) instead of the method's own grid.")
    cv_folds: int = param(4, "With --select cv or --calibrate: number of folds.")
    posterior: Optional[str] = param(None, "'laplace': a Laplace posterior over the head, prior precision from "
                                           "the evidence; 'laplace-cv': precision by cross-validated NLL on the "
                                           "shots; 'ensemble': models from several seeds, probabilities averaged; "
                                           "'mc-dropout': predictions averaged over dropout masks.")
    posterior_samples: int = param(0, "With --posterior ensemble / mc-dropout: members / dropout samples "
                                      "(0 = 5 / 20).")
    calibrate: Optional[str] = param(None, "'temperature': temperature scaling fitted on out-of-fold predictions "
                                           "of the shots; 'auto': none, temperature or the laplace-cv posterior, "
                                           "whichever has the lowest out-of-fold NLL on the shots.")
    class_prior: Optional[str] = param(None, "The class mix of the texts to label, LABEL=WEIGHT,... (or a JSON "
                                             "object), when known and unlike the shots' mix: probabilities are "
                                             "re-weighted by Bayes' rule for label shift.")
    # -- --task generate / lm --------------------------------------------------------------------
    prompt_col: str = param("prompt", "--task generate: column of the user's message (when there is no "
                                      "'messages' column).")
    response_col: str = param("response", "--task generate: column of the reply to learn.")
    merge: bool = param(False, "--task generate/lm: save a standalone model with the LoRA adapter merged in.")
    resume: bool = param(False, "--task generate/lm: continue an interrupted run from its last epoch's "
                                "checkpoint (kept beside --output).")
    # -- where it runs and what it keeps -----------------------------------------------------------
    device: Optional[str] = param(None, "cpu, cuda, mps (default: best available).")
    trust: bool = param(False, "Load pickle weights and a model folder's own code (both can run anything: only "
                               "from a source you trust).")
    output: Optional[Path] = param(None, "Folder to save the trained model in.")
    log_with: list = param([], "Send the loss of every training step, as it is taken, and the held-out scores to "
                               "this Accelerate tracker: tensorboard, wandb, mlflow or trackio (repeatable; tensorboard "
                               "and wandb come with pip install 'fewtune[track]'; WANDB_MODE=offline keeps wandb's "
                               "run on disk).")
    logging_dir: Optional[Path] = param(None, "Where --log-with trackers write (default: runs/ in the current "
                                              "folder; `tensorboard --logdir runs` shows it).")
    overwrite: bool = param(False, "Replace an existing model folder.")
    standalone: bool = param(False, "Copy every encoder weight into the model folder; by default the weights training "
                                    "left unchanged (the word embeddings: 367 MB of me5-small) are read from the "
                                    "installed backbone instead.")
    check_data: bool = param(False, "Audit the training examples first (`fewtune check-data`); stop on errors.")
    quiet: bool = param(False, "No progress bars or notes on stderr.")

    # Options that only classification reads, by their flag: --task generate/lm refuses them when set.
    CLASSIFY_ONLY = ("method", "multi_label", "select", "grid", "posterior", "calibrate", "class_prior",
                     "text_pair_col", "trust", "time_budget", "as_user_file", "check_data", "allow_unknown_labels",
                     "standalone")

    PATHS = ("data", "test", "output", "logging_dir")

    def __post_init__(self):
        for name in self.PATHS:  # "reviews.csv" from Python or JSON, a Path from the CLI
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                setattr(self, name, Path(value))
        self.params, self.grid, self.log_with = dict(self.params or {}), list(self.grid or []), list(self.log_with or [])

    @classmethod
    def help(cls, name: str) -> str:
        """The help text of a field: what `fewtune train --help` shows for its option."""
        return next(f.metadata["help"] for f in dataclasses.fields(cls) if f.name == name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: paths as strings."""
        return {f.name: (str(v) if isinstance(v, Path) else v)
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    def to_yaml(self) -> str:
        """Every setting as YAML, in field order: what `train --print-config` prints and a model folder's
        spec.yaml holds; `train --config` reads it back to the same run."""
        return settings_yaml(self.to_dict())

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunSpec:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise FewtuneError(f"unknown run setting(s) {', '.join(unknown)}; known: {', '.join(fields)}")
        return cls(**values)

    def flag(self, name: str) -> str:
        return "--" + name.replace("_", "-")

    def default_backbone(self, method_cls: type | None = None) -> str:
        """The backbone when none is given: the kind of model the method (or the generation task) needs.
        method_cls: the method's class, where the caller looked it up already (a run does so once)."""
        if self.backbone:
            return self.backbone
        if self.task != "classify":
            return DEFAULT_CAUSAL_LM
        if method_cls is None:
            # why: torch; `fewtune --help` reads RunSpec. The package, not methods.base: importing it registers every method.
            from ..methods import get_method

            method_cls = get_method(self.method)
        return default_backbone(method_cls.backbone_kinds[0])

    def check(self, *, data_given: bool = False) -> None:
        """What no run can do, refused before any data or model is read (the classifier's own settings, the
        method's parameters among them, by `fewtune.experiment.build_classifier`). data_given: the
        caller brings the examples (a benchmark's draw, a page's rows), so neither data nor dataset is read."""
        if not data_given and (self.data is None) == (self.dataset is None):
            raise FewtuneError("give exactly one of --data FILE or --dataset NAME")
        if self.shots is not None and self.shots < 1:
            raise FewtuneError(f"--shots must be at least 1, got {self.shots}")
        if self.task not in TASKS:
            raise FewtuneError(f"--task must be {', '.join(TASKS[:-1])} or {TASKS[-1]}, got {self.task!r}")
        if self.max_test is not None and self.max_test < 0:
            raise FewtuneError(f"--max-test must be 0 (all) or more, got {self.max_test}")
        if self.device:
            check_device(self.device)
        if self.output is not None:
            check_output_folder(self.output, overwrite=self.overwrite)
        if self.log_with:
            check_trackers(self.log_with)
        if self.task == "classify":
            self._check_classify()
            return
        if self.resume and self.output is None:
            raise FewtuneError("--resume needs --output: the checkpoint lives beside the model folder")
        defaults = RunSpec()
        given = [name for name in self.CLASSIFY_ONLY if getattr(self, name) != getattr(defaults, name)]
        if given:
            raise FewtuneError(f"{self.flag(given[0])} applies to --task classify only; fine-tuning options go in "
                               "-p KEY=VALUE (see `fewtune methods`)")

    def _check_classify(self) -> None:
        if self.merge:
            raise FewtuneError("--merge applies to --task generate/lm (LoRA on a causal LM)")
        if self.resume:
            raise FewtuneError("--resume applies to --task generate/lm, the trainings long enough to checkpoint; a "
                               "few-shot classifier trains in seconds to minutes: run the command again")
        if self.multi_label and self.shots is not None:
            raise FewtuneError("--shots draws K examples per class, which multi-label rows do not have; "
                               "give the few labeled rows as --data and held-out rows as --test")
        if self.multi_label and self.dataset is not None:
            raise FewtuneError("the built-in datasets are single-label; --multi-label needs --data")
        if self.multi_label and self.check_data:
            raise FewtuneError("--check-data covers single-label data")
        if self.grid and self.select is None:
            raise FewtuneError("--grid only applies with --select")
        if self.cv_folds < 2:
            raise FewtuneError(f"--cv-folds must be at least 2, got {self.cv_folds}")
        if self.as_user_file and self.dataset is None:
            raise FewtuneError("--as-user-file applies to --dataset (a data file has no template of its own)")


def settings_yaml(settings: dict[str, Any]) -> str:
    """Settings as YAML in their order, paths as strings and tuples as lists, which `--config` reads back to
    the same values: a RunSpec's (to_yaml) and `fewtune bench --print-config`'s."""
    import yaml  # only saving or printing settings needs it

    plain = {key: str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value
             for key, value in settings.items()}
    return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, default_flow_style=False)


def check_output_folder(path: Path, *, overwrite: bool, flag: str = "--output") -> None:
    """A model folder can be written at `path`: its parent is a folder this process may write in, and
    nothing is there unless `overwrite` (then it must be a folder). Checked before any training."""
    if path.exists() and not overwrite:
        raise FewtuneError(f"{path} already exists; choose another {flag} or pass --overwrite")
    if path.exists() and not path.is_dir():
        raise FewtuneError(f"{path} is a file, not a model folder; choose another {flag}")
    if path.is_dir() and any(path.iterdir()) and not (path / "fewtune.json").is_file():
        # --overwrite replaces a model folder, never a folder of the user's own files (saving refuses it too,
        # but only after the training)
        raise FewtuneError(f"{path} exists and is not a fewtune model folder; refusing to replace it: choose "
                           f"another {flag}")
    parent = path.absolute().parent
    while not parent.exists():  # a missing parent is made at save time; the nearest existing one decides
        parent = parent.parent
    if not parent.is_dir():
        raise FewtuneError(f"{flag} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FewtuneError(f"{flag} {path}: no permission to write in {parent}")
