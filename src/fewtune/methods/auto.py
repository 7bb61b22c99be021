"""`auto`: the method chosen on the shots alone, for a user who cannot know which suits their file.

A small portfolio — linear-probe, setfit and finetune on the encoder; calibrated zero-shot, hybrid and
prompt on the causal LM — is cross-validated on the K shots (stratified folds; every shot predicted
by models that never saw it). The candidate with the lowest out-of-fold log-loss is kept, or a
stack of them when a log-linear pool of their probabilities, itself cross-validated over the
out-of-fold predictions, is lower still. The winner(s) are then trained on all the shots. Nothing
outside the shots is looked at (Perez et al. 2021, "True few-shot learning").

A time budget bounds the search: candidates run cheapest first, and one whose folds project past
the budget (with its final training) is abandoned. Every candidate's score, time, and why any was
skipped go to `train_info_["auto"]`, the model card and the terminal.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time

import numpy as np

from ..backbones import (CAUSAL_LM, DEFAULT_CAUSAL_LM, DEFAULT_ENCODER, ENCODER, ResolvedBackbone, a_kind,
                         resolve_backbone)
from ..bayes.temperature import nll
from ..data.sampling import cv_folds
from ..errors import FewtuneError
from .base import (ENCODER_LIMIT, LM_LIMIT, LM_LIMIT_HELP, LM_TEXT_TOKENS, METHODS, FewShotMethod,
                   MethodParams, get_method, register_method, split_token_limits)
from ..params import param
from ..training.label_words import is_id_name
from ..training.memory import fold_models
from ..training.tracking import record_losses

# Cheapest first: the budget then cuts the costly ones.
PORTFOLIO = ("linear-probe", "zero-shot", "setfit", "hybrid", "finetune", "prompt")
LM_METHODS = ("zero-shot", "hybrid", "prompt")  # need the causal LM (hybrid: both backbones)
# Inside auto the folds already guard against training that hurts: prompt trains a fixed, short
# schedule instead of its own nested early-stopping folds (which would multiply its cost by k), and
# setfit a fixed head (C = 1) instead of choosing it with fold bodies of its own (5× its cost in each fold).
PORTFOLIO_PARAMS = {"prompt": {"early_stopping": False, "epochs": 4}, "setfit": {"head_c": 1.0}}
# Before a costly candidate starts, its folds are estimated from candidates already run on the same
# backbone (hybrid's LM scores come from the shared cache, so it costs about a linear probe more; prompt
# trains, several times zero-shot's scoring); one that would end past the budget is not started.
ESTIMATED_FROM = {"hybrid": {"linear-probe": 1.5, "zero-shot": 0.2}, "finetune": {"setfit": 2.0},
                  "prompt": {"zero-shot": 3.0}}
# Their first fold scores every shot under every template (the folds' held-out shots included) and
# fills the cache; the later folds and the final training read it. The first fold says nothing of the
# rest, so the budget is checked from the second on.
CACHE_FILLERS = ("zero-shot", "hybrid")
MIN_BUDGET = 30.0  # seconds: below this not even the linear probe's folds finish on a CPU
MEMBERS = "candidates"
AUTO_FILE = "auto.json"
logger = logging.getLogger(__name__)


@dataclasses.dataclass
class AutoParams(MethodParams):
    candidates: str = param(",".join(PORTFOLIO), "the methods to cross-validate, comma-separated")
    lm: str = param(DEFAULT_CAUSAL_LM, "the causal LM of zero-shot, hybrid and prompt (when the backbone is an encoder)")
    encoder: str = param(DEFAULT_ENCODER, "the encoder of setfit, linear-probe, finetune and hybrid (when the backbone "
                                          "is a causal LM)")
    folds: int = param(4, "cross-validation folds over the shots (fewer when a class has fewer shots)", minimum=2)
    time_budget: float = param(0.0, "seconds for the search and the final training (0 = no limit)", minimum=0)
    stack: bool = param(True, "also try a log-linear pool of the candidates, kept when its out-of-fold NLL is lower")
    max_tokens: int = param(0, "every candidate's token limit per text, the LM's too unless lm_max_tokens is "
                               f"given (0 = each candidate's own default: the encoder's limit, {LM_TEXT_TOKENS} for "
                               "an LM)", minimum=0,
                            renamed_from=(ENCODER_LIMIT,))
    lm_max_tokens: int = param(0, LM_LIMIT_HELP, minimum=0, renamed_from=(LM_LIMIT,))

    @classmethod
    def from_old_names(cls, name, old, values, method):
        if name in ("max_tokens", "lm_max_tokens"):
            return split_token_limits(name, old, values)
        return super().from_old_names(name, old, values, method)

    def check(self, problems: list[str]) -> None:
        names = [c.strip() for c in self.candidates.split(",") if c.strip()]
        if not names:
            problems.append("candidates must name at least one method")
        for name in names:
            if name == "auto" or name not in METHODS:
                problems.append(f"candidate {name!r} is not a method auto can run "
                                f"(choose from {', '.join(PORTFOLIO)})")
        if 0 < self.time_budget < MIN_BUDGET:
            problems.append(f"time_budget {self.time_budget:g}s is too small for any candidate's cross-validation; give "
                            f"at least {MIN_BUDGET:g}s (or 0 for no limit), or choose a method yourself (setfit is "
                            "the fast one)")

    def names(self) -> list[str]:
        return [c.strip() for c in self.candidates.split(",") if c.strip()]


def _candidate_params(name: str, p: AutoParams, lm: str | None) -> dict:
    method = get_method(name)
    fields = method.params_class.help()
    params = dict(PORTFOLIO_PARAMS.get(name, {}))
    # 0: the candidate's own default. A label-word candidate reads texts with the LM alone; hybrid takes both.
    limit = (p.lm_max_tokens or p.max_tokens) if method.kind == "label-words" else p.max_tokens
    if "max_tokens" in fields and limit:
        params["max_tokens"] = limit
    if "lm_max_tokens" in fields and p.lm_max_tokens:
        params["lm_max_tokens"] = p.lm_max_tokens
    if "lm" in fields and lm:
        params["lm"] = lm
    return params


def _say(progress, line: str) -> None:
    """A candidate's result as it finishes (a search takes minutes): above the bars when they are shown,
    else to this module's logger."""
    if progress is not None and progress.enabled:
        progress.log(line)
    else:
        logger.info(line)


def log_linear_pool(logps: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(n, C) probabilities ∝ exp(Σ_k w_k log p_k): a product of experts; weights ≥ 0 also set its sharpness."""
    z = np.tensordot(weights, logps, axes=1)
    z = z - z.max(1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(1, keepdims=True)


def fit_pool(logps: np.ndarray, y: np.ndarray, prior_sd: float = 2.0) -> np.ndarray:
    """Non-negative weights of the log-linear pool by MAP (a Gaussian prior around 0 keeps them finite)."""
    from scipy.optimize import minimize

    k = logps.shape[0]
    onehot = np.eye(logps.shape[2])[y]

    def objective(w):
        p = log_linear_pool(logps, w)
        loss = -np.log(np.clip(p[np.arange(len(y)), y], 1e-300, None)).sum() + 0.5 * (w ** 2).sum() / prior_sd ** 2
        residual = p - onehot
        grad = np.einsum("nc,knc->k", residual, logps) + w / prior_sd ** 2
        return loss, grad

    start = np.full(k, 1.0 / k)
    result = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=[(0, None)] * k)
    return result.x if np.all(np.isfinite(result.x)) else start


@register_method
class Auto(FewShotMethod):
    name = "auto"
    description = ("cross-validates a small portfolio on the shots (setfit, linear-probe, finetune, calibrated zero-shot, "
                   "hybrid, prompt) and keeps the best, or a stack, by out-of-fold log-loss")
    params_class = AutoParams
    backbone_kinds = (ENCODER, CAUSAL_LM)
    kind = "portfolio"
    length_params = ("max_tokens",)

    def __init__(self, params: AutoParams, backbone, device: str, members=None, weights=None):
        super().__init__(params, backbone, device)
        self.members = members or []  # trained methods, in candidate order
        self.weights = np.asarray(weights if weights is not None else [1.0] * len(self.members))
        self.score_cache: dict | None = None

    # -- the search --------------------------------------------------------------------------
    @staticmethod
    def _uses_lm(name: str) -> bool:
        return name in LM_METHODS or get_method(name).backbone_kinds[0] == CAUSAL_LM

    def _encoder(self) -> ResolvedBackbone:
        return resolve_backbone(self.params.encoder) if self.backbone.kind == CAUSAL_LM else self.backbone

    def _backbones(self) -> tuple[ResolvedBackbone, str | None, str | None]:
        """(the encoder, the causal LM's name, why the causal LM cannot be used or None)."""
        p = self.params
        if self.backbone.kind == CAUSAL_LM:
            return self._encoder(), self.backbone.name, None
        try:
            lm = resolve_backbone(p.lm)
        except FewtuneError as e:
            return self.backbone, None, f"the causal LM is not available: {e}"
        if lm.kind != CAUSAL_LM:
            raise FewtuneError(f"auto's lm must be a causal LM; '{p.lm}' is {a_kind(lm.kind)}")
        return self.backbone, lm.name, None

    def fit(self, texts, y, n_classes, *, seed, progress) -> dict:
        if np.ndim(y) == 2:
            raise FewtuneError("method 'auto' covers single-label data; for multi-label use setfit, finetune or "
                               "linear-probe")
        p = self.params
        y = np.asarray(y)
        started = time.perf_counter()
        budget = p.time_budget or float("inf")
        explicit = p.candidates != AutoParams.candidates
        needs_lm = any(self._uses_lm(name) for name in p.names())
        # The causal LM is resolved only when a candidate needs it (resolving may convert a GGUF file).
        encoder, lm, lm_problem = self._backbones() if needs_lm else (self._encoder(), None, None)
        if any(is_id_name(c) for c in self.class_names):
            lm_problem = lm_problem or ("the class names are ids, not words a language model can score (name the "
                                        "classes, or run zero-shot/prompt with label_words)")
        skipped: dict[str, str] = {}
        runnable = []
        for name in sorted(p.names(), key=lambda n: PORTFOLIO.index(n) if n in PORTFOLIO else len(PORTFOLIO)):
            reason = lm_problem if self._uses_lm(name) else None
            if reason:
                if explicit:
                    raise FewtuneError(f"auto cannot run candidate '{name}': {reason}")
                skipped[name] = reason
            else:
                runnable.append(name)
        if np.bincount(y, minlength=n_classes).min() < 2:
            raise FewtuneError("auto chooses by cross-validation on the shots, which needs at least 2 examples of "
                               "every class; give more shots or choose a method yourself (setfit is the fast one)")
        folds = cv_folds(y, p.folds, seed)
        results: dict[str, dict] = {}
        seconds: dict[str, float] = {}  # each candidate's time for all its folds, projected where abandoned
        oof: dict[str, np.ndarray] = {}
        task = progress.add("Cross-validating candidates", total=len(runnable) * len(folds)) if progress else None
        self.score_cache = {}  # the LM candidates' raw label-word scores, computed once per template and text
        for name in runnable:
            backbone = encoder if ENCODER in get_method(name).backbone_kinds else resolve_backbone(lm)
            params = _candidate_params(name, p, lm)
            probs = np.zeros((len(y), n_classes))
            estimate = sum(seconds[k] * f for k, f in ESTIMATED_FROM.get(name, {}).items() if k in seconds)
            if time.perf_counter() - started + estimate * (1 + 1.5 / len(folds)) > budget:
                basis = [k for k in ESTIMATED_FROM.get(name, {}) if k in seconds]
                skipped[name] = (f"estimated at {estimate:.0f}s for its folds (from {', '.join(basis)}): past the "
                                 f"time budget ({p.time_budget:g}s)" if basis else
                                 f"the time budget ({p.time_budget:g}s) was spent before it could start")
                if progress:
                    progress.advance(task, len(folds))
                _say(progress, f"auto: skipped {name}: {skipped[name]}")
                continue
            t0 = time.perf_counter()
            abandoned = None
            with fold_models() as finished:
                for i, (train_idx, val_idx) in enumerate(folds):
                    with record_losses():  # a fold model's steps: not the returned model's curve, nor its live run
                        model = self._train(name, params, backbone, [texts[j] for j in train_idx], y[train_idx],
                                            n_classes, seed)
                    probs[val_idx] = model.predict_proba([texts[j] for j in val_idx])
                    del model
                    finished()
                    if progress:
                        progress.advance(task)
                    spent = time.perf_counter() - t0
                    if name in CACHE_FILLERS and i == 0 and len(folds) > 1:
                        last_fold = time.perf_counter()
                        continue
                    # What is left of this candidate's folds, and its final training on all the shots (about
                    # one fold's time, scaled to the larger set), must fit in the budget. A cache filler's folds
                    # after the first cost what the latest did.
                    per_fold = time.perf_counter() - last_fold if name in CACHE_FILLERS else spent / (i + 1)
                    last_fold = time.perf_counter()
                    projected = per_fold * (len(folds) - i - 1 + 1.5)
                    if time.perf_counter() - started + projected > budget:
                        abandoned = (f"would end past the time budget ({p.time_budget:g}s): {spent:.0f}s for "
                                     f"{i + 1} fold(s)")
                        seconds[name] = spent / (i + 1) * len(folds)
                        break
            if abandoned:
                skipped[name] = abandoned
                if progress:
                    progress.advance(task, len(folds) - i - 1)
                _say(progress, f"auto: abandoned {name}: {abandoned}")
                continue
            oof[name] = probs
            seconds[name] = time.perf_counter() - t0
            results[name] = {"cv_nll": round(nll(probs, y), 6),
                             "cv_accuracy": round(float((probs.argmax(1) == y).mean()), 6),
                             "seconds": round(time.perf_counter() - t0, 2), "backbone": backbone.name}
            r = results[name]
            _say(progress, f"auto: {name} out-of-fold NLL {r['cv_nll']:.3f}, accuracy {r['cv_accuracy']:.3f} "
                           f"({r['seconds']:.1f} s, {len(folds)} folds)")
        if not oof:
            raise FewtuneError(f"auto: no candidate finished within the time budget ({p.time_budget:g}s); give a larger "
                               f"--time-budget or choose a method yourself (setfit is the fast one). "
                               + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
        best = min(results, key=lambda k: (results[k]["cv_nll"], list(results).index(k)))
        chosen, weights = [best], [1.0]
        stack_info = None
        if p.stack and len(oof) > 1:
            stack_info = self._stack(oof, y, folds, best, results)
            if stack_info["chosen"]:
                chosen = [n for n, w in stack_info["weights"].items() if w > 0]
                weights = [stack_info["weights"][n] for n in chosen]
        # The final models, on all the shots.
        self.members, self.member_specs = [], []
        for name in chosen:
            backbone = encoder if ENCODER in get_method(name).backbone_kinds else resolve_backbone(lm)
            params = _candidate_params(name, p, lm)
            self.members.append(self._train(name, params, backbone, texts, y, n_classes, seed))
            self.member_specs.append({"method": name, "params": params, "backbone": backbone.name,
                                      "kind": backbone.kind})
        self.weights = np.asarray(weights, dtype=np.float64)
        for member in self.members:  # the cache served the search; predictions must not grow it
            for part in (member, *member.parts()):
                if hasattr(part, "score_cache"):
                    part.score_cache = None
        self.score_cache = None
        info = {"chosen": "stack" if len(chosen) > 1 else best, "members": chosen,
                "weights": [round(float(w), 6) for w in self.weights],
                "candidates": results, "skipped": skipped, "folds": len(folds),
                "search_seconds": round(time.perf_counter() - started, 2)}
        if stack_info:
            info["stack"] = stack_info
        return {"auto": info}

    def _train(self, name, params, backbone, texts, y, n_classes, seed) -> FewShotMethod:
        method_cls = get_method(name)
        model = method_cls(method_cls.params_class.from_dict(params, method=name), backbone, self.device)
        model.class_names = self.class_names
        if hasattr(model, "score_cache"):
            model.score_cache = self.score_cache
        model.fit(texts, y, n_classes, seed=seed, progress=None)
        return model

    @staticmethod
    def _stack(oof: dict[str, np.ndarray], y, folds, best: str, results: dict) -> dict:
        """The log-linear pool's own out-of-fold NLL: weights fitted on the other folds' predictions."""
        names = list(oof)
        logps = np.log(np.clip(np.stack([oof[n] for n in names]), 1e-12, None))
        pooled = np.zeros_like(oof[names[0]])
        for train_idx, val_idx in folds:
            w = fit_pool(logps[:, train_idx], y[train_idx])
            pooled[val_idx] = log_linear_pool(logps[:, val_idx], w)
        stacked_nll = nll(pooled, y)
        weights = fit_pool(logps, y)
        weights = np.where(weights > 1e-3, weights, 0.0)
        chosen = bool(stacked_nll < results[best]["cv_nll"] and (weights > 0).sum() > 1)
        return {"cv_nll": round(stacked_nll, 6), "cv_accuracy": round(float((pooled.argmax(1) == y).mean()), 6),
                "weights": {n: round(float(w), 6) for n, w in zip(names, weights)}, "chosen": chosen}

    # -- prediction ----------------------------------------------------------------------------
    def predict_proba(self, texts, *, progress=None) -> np.ndarray:
        if len(self.members) == 1:
            return self.members[0].predict_proba(texts, progress=progress)
        logps = np.log(np.clip(np.stack([m.predict_proba(texts, progress=progress) for m in self.members]), 1e-12, None))
        return log_linear_pool(logps, self.weights)

    # A single winner keeps its head for the Laplace posterior; a stack has no single linear head.
    @property
    def refittable_head(self) -> bool:
        return len(self.members) == 1 and bool(self.members[0].refittable_head)

    def last_layer(self):
        return self.members[0].last_layer() if len(self.members) == 1 else None

    def features(self, texts, *, progress=None) -> np.ndarray:
        return self.members[0].features(texts, progress=progress)

    def set_last_layer(self, weight, bias) -> None:
        self.members[0].set_last_layer(weight, bias)

    def parts(self) -> list[FewShotMethod]:
        return list(getattr(self, "members", []))

    # -- persistence ---------------------------------------------------------------------------
    def save(self, folder) -> None:
        specs = []
        for i, (member, spec) in enumerate(zip(self.members, self.member_specs)):
            sub = folder / MEMBERS / str(i)
            sub.mkdir(parents=True)
            member.save(sub)
            specs.append({**spec, "params": member.params.to_dict()})
        (folder / AUTO_FILE).write_text(json.dumps(
            {"members": specs, "weights": [float(w) for w in self.weights]}, indent=2))

    @classmethod
    def load(cls, folder, params, backbone, device, n_classes) -> Auto:
        saved = json.loads((folder / AUTO_FILE).read_text(encoding="utf-8"))
        members, specs = [], []
        for i, spec in enumerate(saved["members"]):
            method_cls = get_method(spec["method"])
            sub = folder / MEMBERS / str(i)
            ref = ResolvedBackbone(name=spec["backbone"], kind=spec["kind"], path=str(sub), source="local",
                                   trusted=backbone.trusted)
            # A member saved before a setting was renamed loads as it was, without a warning per member.
            member_params = method_cls.params_class.from_dict(spec["params"], method=spec["method"],
                                                              warn_renamed=False)
            members.append(method_cls.load(sub, member_params, ref, device, n_classes))
            specs.append(spec)
        method = cls(params, backbone, device, members=members, weights=saved["weights"])
        method.member_specs = specs
        return method
