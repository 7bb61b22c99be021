"""FewShotClassifier: the scikit-learn style entry point to every few-shot method."""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any

import numpy as np

from .bayes import SAMPLED_POSTERIORS, Fitting, fit_chain, plan_chain
from .classifier_folder import load_classifier_folder, save_classifier
from .classifier_plan import ClassifierPlan, check_settings, settings_key
from .data import as_labeled, check_trainable
from .data.ingest import from_table
from .data.language import text_scripts, warn_if_unreadable
from .data.multilabel import binarize, looks_multi_label
from .errors import FewtuneError
from .estimator import ParamsEstimator
from .label_shift import parse_class_prior, prior_ratio, prior_vector, shift_proba
from .labels import ProbabilityLabels, label_indices, plain_label
from .methods.base import get_method
from .model_texts import model_texts
from .seeding import seed_everything
from .progress import Progress, shown
from .training.soft_targets import check_soft_targets
from .training.tracking import curve, record_losses, run_name, tracked_run
from .selection import classifier_selection, refuse_multi_label_evidence, select_by_evidence


# Not ClassifierMixin: scikit-learn is imported only when asked for (estimator.py); ProbabilityLabels.score and
# _estimator_type and the tags below are what the mixin would give.
class FewShotClassifier(ProbabilityLabels, ParamsEstimator):
    """A text classifier trained from a few labeled examples.

    Parameters
    ----------
    backbone: a named backbone (`fewtune models`), a local model folder, or a hub id; None (the default): the
        kind of model the method reads, me5-small for the encoder methods and smollm2-135m for the label-word
        ones, as `fewtune train` without --backbone.
    method: a registered method (`setfit`, ...).
    params: the method's hyper-parameters (see `fewtune train --help-method METHOD`).
    seed: seeds every random choice in training, for reproducible runs.
    device: "cpu", "cuda", "mps" or None for the best available.
    show_progress: progress bars on stderr for steps that take more than a moment; None (the default): when
        someone watches (stderr is a terminal, or a Jupyter notebook), not when it is piped or logged.
    select: None; "cv" to choose hyper-parameters by cross-validation on the training examples
        alone (`fewtune.selection`), then train on all of them with the chosen values; or "evidence"
        to choose the strength of the prior toward the pretrained weights by the Laplace marginal
        likelihood (`fewtune.bayes.evidence`): one training on all the examples per grid point, the
        one with the highest evidence kept (finetune).
    grid: with select, {parameter: [values]}; None for the method's own small grid.
    cv_folds: with select="cv", the number of folds (fewer if the rarest class has fewer examples).
    posterior: None (the MAP head), or "laplace": a Laplace posterior over the softmax head, its
        prior precision chosen by the evidence (`fewtune.bayes.laplace`); probabilities integrate
        over it. "laplace-cv" chooses the precision by cross-validated NLL on the shots instead.
        For heads fitted on frozen features (setfit, linear-probe) the head is refitted at that
        precision. "ensemble": posterior_samples models trained from seeds seed, seed+1, ... on the
        same examples, probabilities averaged (a deep ensemble); "mc-dropout": one model, the
        average of posterior_samples predictions with the backbone's dropout on
        (`fewtune.bayes.ensembles`).
    posterior_samples: ensemble members or dropout samples (0 = 5 members, 20 samples).
    calibrate: None, or "temperature": temperature scaling fitted on out-of-fold predictions of the
        training examples (cv_folds folds; costs that many extra trainings). "auto": the same fold
        models score three ways to turn the head into probabilities by their out-of-fold NLL on the
        shots: as trained, temperature-scaled (T fitted on the other folds), and the laplace-cv
        posterior (where the method has a softmax head on features); the best is used (needs
        posterior=None; `train_info_["calibration"]` holds every candidate's NLL and the choice).
    class_prior: None, or the class mix of the texts the model will meet, {label: weight} (or the text
        'neg=0.7,pos=0.3'), when it differs from the shots' (balanced) mix and is known: probabilities are
        re-weighted by Bayes' rule for label shift (`fewtune.label_shift`), after any posterior and
        temperature. Read at prediction time, so `set_params(class_prior=...)` after fitting works too.
    trust: load a backbone folder's pickle weights and custom code (refused by default: both can run
        arbitrary code). Only for a source you trust.
    log_with: Accelerate trackers ("tensorboard", "wandb", "mlflow", "trackio", or GeneralTracker objects)
        that get the loss of every training step as it is taken, one run per fit, under logging_dir
        (default runs/). Fold and ensemble models log nowhere.

    After `fit`: `classes_` (sorted labels), `backbone_` (what was loaded), `train_info_`
    (with `selection`: the grid, every point's cross-validated score and the chosen values;
    with `posterior`: the chosen prior precision and the evidence curve; with `calibrate`: T),
    `strategies_` (the fitted posterior and calibration, in the order they apply; `fewtune.bayes`),
    `posterior_` (the fitted posterior or None), `calibration_` (the fitted calibration or None) and
    `temperature_` (the temperature applied, 1.0 for none).
    `posterior` is what was asked and `posterior_` what was fitted: they differ only when calibrate="auto"
    chose the laplace-cv posterior, where `posterior` stays None (fit leaves the options as given) and
    `posterior_.name` is "laplace-cv". A loaded classifier's options are those that give its fitted
    chain again: posterior="laplace-cv" there, calibrate="temperature" for an auto that chose T.
    Multi-label targets (lists of labels per text, or a 0/1 matrix) train one-vs-rest; then
    `multi_label_` is True and `predict` returns the 0/1 matrix.
    """

    FIT_HINT = "call fit(texts, labels) first"
    _estimator_type = "classifier"  # scikit-learn before 1.6 reads this; later ones the tags
    # The options a `sibling` shares with the classifier it is made from; the others start at their defaults.
    # cv_folds too: a fold model's own laplace-cv head splits its shots as the user asked, not in 4.
    SIBLING_SHARES = ("backbone", "method", "params", "seed", "device", "cv_folds", "trust")

    def __init__(
        self,
        backbone: str | None = None,
        method: str = "setfit",
        *,
        params: dict[str, Any] | None = None,
        seed: int = 0,
        device: str | None = None,
        show_progress: bool | None = None,
        select: str | None = None,
        grid: dict[str, list[Any]] | None = None,
        cv_folds: int = 4,
        posterior: str | None = None,
        calibrate: str | None = None,
        posterior_samples: int = 0,
        class_prior: dict | str | None = None,
        trust: bool = False,
        log_with: list | None = None,
        logging_dir: str | Path | None = None,
    ):
        self.backbone = backbone
        self.method = method
        self.params = params
        self.seed = seed
        self.device = device
        self.show_progress = show_progress
        self.select = select
        self.grid = grid
        self.cv_folds = cv_folds
        self.posterior = posterior
        self.calibrate = calibrate
        self.posterior_samples = posterior_samples
        self.class_prior = class_prior
        self.trust = trust
        self.log_with = log_with
        self.logging_dir = logging_dir

    def _params_class(self):
        try:
            return get_method(self.method).params_class
        except FewtuneError:  # an unknown method: fit names it
            return None

    # -- training -------------------------------------------------------------------------
    def fit(self, X, y=None, *, text_col: str = "text", label_col: str = "label", text_pair_col: str | None = None,
            data_description: str | None = None, soft_targets=None, classes=None) -> FewShotClassifier:
        """X: texts, (text, text_pair) pairs, or a DataFrame / datasets.Dataset whose `text_col` (and
        `text_pair_col`) hold them and whose `label_col` holds the labels when y is None.
        soft_targets: for distillation (`fewtune.distill`), one row of class probabilities per text
        (columns in the order of `classes`, which is then required) that the method trains on instead
        of y's one-hot labels; y still names each row's class (its argmax) for counts and splits."""
        plan = self.check()  # every setting, before the data is looked at
        method_cls, params, backbone = plan.method_cls, plan.params, plan.backbone
        X, y = from_table(X, y, text_col=text_col, label_col=label_col, text_pair_col=text_pair_col,
                          source="training data")
        if y is None:
            raise FewtuneError("fit needs labels: y, or a table with a label column")
        self.text_columns_ = (text_col, text_pair_col)
        multi_label = looks_multi_label(y)
        if soft_targets is not None:
            check_soft_targets(self, method_cls, soft_targets, classes, multi_label, len(y))
        if multi_label:
            data = as_labeled(X, source="training data")
            classes, y_idx = binarize(y, len(data), source="training data")
        else:
            data = as_labeled(X, y, source="training data")
            check_trainable(data)
        chain = plan_chain(plan.chain, self, multi_label)
        refuse_multi_label_evidence(self.select, multi_label)
        # select="evidence" chooses below, by training on all the shots.
        selection = classifier_selection(self, method_cls, data, y_idx if multi_label else data.labels, plan.grid)
        if selection:
            # From the parsed params: the user's may name a setting by its old name, the grid by the new.
            params = method_cls.params_class.from_dict({**params.to_dict(), **selection["chosen"]},
                                                       method=self.method)
        if method_cls.reads_text:
            warn_if_unreadable(data.texts, backbone.name, backbone.kind)
        if multi_label:
            self.classes_ = np.array(classes, dtype=object)
        else:
            self.classes_, y_idx = label_indices(data.labels, None if soft_targets is None else classes)
            if plan.class_prior is not None:
                prior_vector(plan.class_prior, self.classes_)  # a bad prior fails before training
        self.multi_label_ = multi_label
        self.text_pairs_ = data.text_pairs is not None
        seed_everything(self.seed)
        device = plan.device
        started = time.perf_counter()
        if self.select == "evidence":
            model, info, selection = select_by_evidence(self, method_cls, params, plan.grid, backbone, device, data,
                                                        y_idx)
            params = model.params
        else:
            model = method_cls(params, backbone, device)
            model.class_names = [str(plain_label(c)) for c in self.classes_]
            soft = {} if soft_targets is None else {"soft_targets": np.asarray(soft_targets, dtype=np.float32)}
            with tracked_run(self.log_with, self.logging_dir, run_name(self.method, f"seed{self.seed}"),
                             config={"method": self.method, "backbone": backbone.name, "seed": self.seed}) as run, \
                    Progress(self.show_progress) as progress, record_losses(run) as losses:
                info = model.fit(model_texts(data, model), y_idx, len(self.classes_), seed=self.seed,
                                 progress=progress, **soft)
            if losses:
                info = {**info, "loss_curve": curve(losses)}
        self.model_ = model
        self.backbone_ = backbone
        self.strategies_ = []  # should a strategy fail, no chain of an earlier fit outlives its model
        fitting = Fitting(self, data, y_idx, model_texts(data, model), method_cls, model.fitted_params(), backbone,
                          device)
        self.strategies_, extra = fit_chain(chain, fitting)
        self.train_info_ = {
            "n_examples": len(data),
            "class_counts": {str(c): int(y_idx[:, i].sum() if multi_label else (y_idx == i).sum())
                             for i, c in enumerate(self.classes_)},
            "train_seconds": round(time.perf_counter() - started, 3),
            # The writing systems the model was trained on: what an export keeps of a multilingual vocabulary.
            "scripts": text_scripts(data.texts),
            **info,
        }
        self.train_info_.update(extra)
        if selection:
            self.train_info_["selection"] = selection
        if data_description:
            self.train_info_["data"] = data_description
        return self

    def sibling(self, **options) -> FewShotClassifier:
        """An unfitted classifier with this one's backbone, method, params, seed, device and trust, and every
        other option at its default (no selection, posterior, calibration, class prior or progress bars) unless
        `options` set it: the models cross-validation trains (grid points, fold models)."""
        defaults = {name: p.default for name, p in inspect.signature(type(self)).parameters.items()
                    if name not in self.SIBLING_SHARES}
        defaults["show_progress"] = False  # not auto: its caller's bars are already on the screen
        from sklearn.base import clone  # why: scikit-learn costs 1.5 s to import; predicting needs none of it

        return clone(self).set_params(**{**defaults, **options})

    # -- the fitted chain -----------------------------------------------------------------
    @property
    def posterior_(self):
        """The fitted posterior (`fewtune.bayes`), or None: probabilities are the model's own."""
        return next((s for s in self.strategies_ if s.role == "posterior"), None)

    def check(self, method_cls: type | None = None) -> ClassifierPlan:
        """Check every setting (method, params and their ranges, backbone, select and grid, posterior,
        calibrate, class_prior, device) before any data is read, and return what they resolve to
        (`fewtune.classifier_plan`). fit follows this plan; it is kept until a setting changes (set_params,
        or a dict changed in place), and clone makes a classifier without it. method_cls: the class `method`
        names, where the caller looked it up already (`fewtune train`: its defaults depend on it)."""
        settings = settings_key(self)
        kept = getattr(self, "_plan", None)
        if kept is None or kept[0] != settings:
            self._plan = (settings, check_settings(self, method_cls=method_cls))
        return self._plan[1]

    @property
    def calibration_(self):
        """The fitted calibration, or None."""
        return next((s for s in self.strategies_ if s.role == "calibration"), None)

    @property
    def temperature_(self) -> float:
        return self.calibration_.temperature if self.calibration_ is not None else 1.0

    @property
    def members_(self) -> list:
        """An ensemble's members besides model_ (none for any other posterior)."""
        return getattr(self.posterior_, "members", [])

    # -- prediction -----------------------------------------------------------------------
    def predict_proba(self, X) -> np.ndarray:
        texts = self._texts(X)
        posterior = self.posterior_
        with Progress(shown(self.show_progress) and len(texts) > 256) as progress:
            if posterior is not None:
                proba = posterior.predict_proba(self.model_, texts, progress)
            else:
                proba = self.model_.predict_proba(texts, progress=progress)
        if self.calibration_ is not None:
            proba = self.calibration_.transform(proba)
        return shift_proba(proba, self._prior_ratio(self.class_prior))

    def set_class_prior(self, class_prior: dict | str | None) -> FewShotClassifier:
        """The class mix of the texts to come (None: the shots' own), checked against the classes now."""
        self._check_fitted()
        self._prior_ratio(class_prior)  # checked against the classes now, not at the first prediction
        self.class_prior = class_prior
        return self

    def _prior_ratio(self, class_prior) -> np.ndarray | None:
        return prior_ratio(parse_class_prior(class_prior), self.classes_, self.train_info_.get("class_counts", {}),
                           getattr(self.model_.params, "class_weight", "none"), multi_label=self.multi_label_)

    def sampled_proba(self, X) -> np.ndarray:
        """An ensemble's members' or MC dropout's individual predictions, (samples, texts, classes),
        before temperature scaling and any class prior; `predict_proba` is their mean."""
        self._check_fitted()
        if not getattr(self.posterior_, "sampled", False):
            raise FewtuneError(f"sampled_proba needs posterior={' or '.join(map(repr, SAMPLED_POSTERIORS))}")
        texts = self._texts(X)
        with Progress(shown(self.show_progress) and len(texts) > 256) as progress:
            return self.posterior_.sampled_proba(self.model_, texts, progress)

    def features(self, X) -> np.ndarray:
        """What the classification head reads, one row per text (for posteriors and acquisition)."""
        texts = self._texts(X)
        with Progress(shown(self.show_progress) and len(texts) > 256) as progress:
            return self.model_.features(texts, progress=progress)

    def transform(self, X) -> np.ndarray:
        """scikit-learn's name for `features`: the fitted model's representation of each text (an encoder
        method's embedding), so the classifier can be a step of a Pipeline before another estimator."""
        return self.features(X)

    # -- persistence (classifier_folder.py) ----------------------------------------------
    def save(self, path: str | Path, *, overwrite: bool = False, evaluation: dict | None = None,
             standalone: bool = False, run_spec: str | None = None) -> Path:
        """A model folder: safetensors and JSON, checksummed, written atomically, with a model card.

        standalone: copy every encoder weight; by default those training left as the named backbone has
        them (its word embeddings, mostly) are read from the installed backbone when the model loads.
        run_spec: the settings of the run that trained it, as YAML, kept as spec.yaml (`fewtune train`)."""
        self._check_fitted()
        return save_classifier(self, path, overwrite=overwrite, evaluation=evaluation, standalone=standalone,
                               run_spec=run_spec)

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None, trust: bool = False,
             show_progress: bool = False) -> FewShotClassifier:
        """A saved classifier; trust=True also loads pickle files and custom code (only from a source you trust)."""
        return load_classifier_folder(cls, path, device=device, trust=trust, show_progress=show_progress)

    # -- helpers --------------------------------------------------------------------------
    def _texts(self, X) -> list:
        """What the fitted model reads of X, once X is checked to be the kind of input it was trained on."""
        self._check_fitted()
        text_col, pair_col = getattr(self, "text_columns_", ("text", None))
        X, _ = from_table(X, (), text_col=text_col, text_pair_col=pair_col)  # a table: the columns fit read
        data = as_labeled(X, source="input")
        if (data.text_pairs is not None) != self.text_pairs_:
            want = "(text, text_pair) pairs" if self.text_pairs_ else "single texts"
            raise FewtuneError(f"this model was trained on {want}; give it the same kind of input")
        return model_texts(data, self.model_)

    def __sklearn_tags__(self):
        """Texts in (a list of strings, or of (text, text_pair) pairs), not a numeric matrix; labels one per
        text, or for multi-label a list of labels / a 0/1 matrix."""
        from sklearn.utils import ClassifierTags

        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"  # what ClassifierMixin sets
        tags.classifier_tags = ClassifierTags()
        tags.target_tags.required = True
        tags.input_tags.string = True
        tags.input_tags.one_d_array = True
        tags.input_tags.two_d_array = False
        tags.classifier_tags.multi_label = True
        tags.target_tags.two_d_labels = True
        return tags

