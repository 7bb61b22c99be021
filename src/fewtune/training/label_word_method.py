"""Classification as next-token prediction on a causal LM: what `zero-shot`, `icl` and `prompt` share.

A template turns a text into a prompt ("Review: {text}\\nSentiment:") and each class has label
words (" terrible" / " great"). A class's score is the log-probability of its label words' tokens
after the prompt (optionally divided by their number, so long label words are not penalised); the
class probabilities are the softmax of those scores over the classes. LabelWordMethod settles the
template and the words on the shots, calibrates the scores, and saves both to prompt.json; each
method (fewtune.methods.zero_shot, icl, prompt) trains, or not, on top of that.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import torch

from ..backbones import CAUSAL_LM, ResolvedBackbone, load_causal_lm, resolve_base
from ..data.sampling import cv_folds
from ..errors import FewtuneError
from ..methods.base import LM_TEXT_TOKENS, FewShotMethod, MethodParams
from ..params import param
from .heads import probabilities
from .label_words import AUTO, ScoreCalibration, label_words_for, out_of_fold_logp, template_candidates
from .memory import shared_in_fold_loop
from .scorer import LabelScorer, parse_label_words

CALIBRATION_MODES = ("shots", "none")
PROMPT_FILE = "prompt.json"


@dataclasses.dataclass
class ZeroShotParams(MethodParams):
    template: str = param(AUTO, "prompt with a {text} slot; the label word follows it (empty: generic candidates "
                                "scored on the shots, see template_search)")
    label_words: str = param(
        "", "label word per class, e.g. 'neg=terrible,pos=great' (default: the class names themselves)"
    )
    score_calibration: str = param(
        "shots", "'shots': fit a scale and a bias per class on the shots' label-word scores (MAP), so the LM's "
                 "prior over the words cannot put every text in one class; 'none': raw scores",
        renamed_from=("calibration",))
    template_search: str = param(
        "ensemble", "with no template: 'ensemble' averages the calibrated log-probabilities of every generic "
                    "candidate (a product of experts, robust where a few shots cannot tell the templates apart); "
                    "'best' keeps the candidate with the lowest cross-validated NLL on the shots (one pass per text)")
    length_normalize: bool = param(False, "divide a class's log-probability by its label words' token count")
    max_tokens: int = param(LM_TEXT_TOKENS, "truncate each text to this many tokens before filling the template",
                            minimum=1, renamed_from=("max_text_tokens",))
    batch_size: int = param(8, "prompts per forward pass", minimum=1)

    def check(self, problems: list[str]) -> None:
        super().check(problems)
        if self.template != AUTO and "{text}" not in self.template:
            problems.append(f"template must contain {{text}}, got {self.template!r}")
        if self.score_calibration not in CALIBRATION_MODES:
            problems.append(f"score_calibration must be {' or '.join(map(repr, CALIBRATION_MODES))}, "
                            f"got {self.score_calibration!r}")
        if self.template_search not in self.template_searches():
            problems.append(f"template_search must be {' or '.join(map(repr, self.template_searches()))}, "
                            f"got {self.template_search!r}")
        try:
            parse_label_words(self.label_words)  # a malformed mapping fails here, before any model loads
        except FewtuneError as e:
            problems.append(str(e))

    @classmethod
    def template_searches(cls) -> tuple[str, ...]:
        return ("ensemble", "best")


@dataclasses.dataclass
class DemoParams(ZeroShotParams):
    """What shapes labelled demonstrations in the context (prompt with demonstrations=true, icl)."""

    max_demo_tokens: int = param(64, "truncate each demonstration's text to this many tokens", minimum=1)
    template_search: str = param("best", "with no template: the generic candidate with the lowest cross-validated "
                                         "NLL on the shots (training and demonstrations use one template)")
    separator: str = param("\n\n", "between demonstrations, and between the last one and the query")

    @classmethod
    def template_searches(cls) -> tuple[str, ...]:
        return ("best",)


@dataclasses.dataclass
class TemplateChoice:
    """The candidate templates scored on the shots, and the one chosen (LabelWordMethod._choose_template)."""

    candidates: dict[str, str]  # name -> template: the user's ("given"), or the generic ones
    scores: dict[str, np.ndarray]  # name -> the shots' raw label-word scores under it
    oof: dict[str, np.ndarray]  # name -> out-of-fold calibrated log-probabilities (empty without folds)
    results: dict[str, dict]  # name -> cv_nll and cv_accuracy (empty without folds)
    folds: list | None  # None: a class with one shot, no held-out shot to compare on
    chosen: str


class LabelWordMethod(FewShotMethod):
    """A causal LM scoring each class's label words after a template: what zero-shot uses as it is (adding
    its ensemble of templates), and icl and prompt build on (demonstrations in the context, training).
    Each method's fit is its own. prompt.json holds the ensemble for every method, so it is kept here."""

    backbone_kinds = (CAUSAL_LM,)
    kind = "label-words"
    length_params = ("max_tokens",)
    chat_templates = True  # may a candidate template be the backbone's chat template (one turn per prompt)
    # The method never trains its LM (zero-shot, icl): a fold loop's models share one, and the raw scores it gives
    # the shots, as they share a frozen encoder (training.memory.shared_in_fold_loop). prompt trains LoRA in place.
    frozen_lm = True

    def __init__(self, params, backbone: ResolvedBackbone, device: str, model=None, tokenizer=None):
        super().__init__(params, backbone, device)
        self.model, self.tokenizer = model, tokenizer
        # What the model asks the LM, settled at fit (or read back from prompt.json at load): the
        # template (the user's or the chosen candidate), one word per class, and the calibration.
        self.template: str | None = None
        self.words: list[str] | None = None
        self.first_token = False  # words from class names: scored by their first token when those differ
        self.calibration = ScoreCalibration()
        # template_search="ensemble": every candidate with its own calibration, log-probabilities averaged.
        self.ensemble: list[tuple[str, ScoreCalibration]] = []
        self.ensemble_calibration = ScoreCalibration()
        # Raw scores shared by models on the same pretrained LM (method="auto" hands one to its candidates).
        self.score_cache: dict | None = None
        self._pretrained = True  # False once training changes the LM: cached scores no longer apply

    # -- shared ---------------------------------------------------------------------------
    def _load_lm(self) -> None:
        def load():
            return load_causal_lm(self.backbone, device=self.device)

        if not self.frozen_lm:
            self.model, self.tokenizer = load()
            return
        lm = (self.backbone.path, str(self.device))
        self.model, self.tokenizer = shared_in_fold_loop(("causal-lm", *lm), load)
        if self.score_cache is None:  # auto hands its candidates one of its own
            self.score_cache = shared_in_fold_loop(("label-word scores", *lm), dict)

    def _resolve_words(self) -> None:
        p = self.params
        mapping = parse_label_words(p.label_words)
        unknown = sorted(set(mapping) - set(self.class_names))
        if unknown:
            raise FewtuneError(f"label_words names {', '.join(map(repr, unknown))}, not among the classes "
                               f"{', '.join(map(repr, self.class_names))}")
        self.words, self.first_token = label_words_for(self.class_names, mapping)

    def _scorer(self, template: str | None = None) -> LabelScorer:
        if self.words is None:
            self._resolve_words()
        p = self.params
        template = template or self.template or p.template
        return LabelScorer(self.model, self.tokenizer, template, self.words, max_tokens=p.max_tokens,
                           length_normalize=p.length_normalize, first_token=self.first_token)

    def _prompts(self, scorer: LabelScorer, texts: list[str]) -> list[list[int]]:
        return scorer.prompts(texts)

    def _check_single_label(self, y) -> None:
        if np.ndim(y) == 2:
            raise FewtuneError(f"method '{self.name}' scores one label word per text; multi-label data needs an "
                               "encoder method (setfit, finetune, linear-probe)")

    @torch.no_grad()
    def _raw_scores(self, scorer: LabelScorer, texts: list[str], progress=None, description: str = "") -> np.ndarray:
        """(n, C) uncalibrated label-word scores, in batches; from score_cache where the LM is still the
        pretrained one (auto's folds score the same shots under the same templates again and again)."""
        cache = self.score_cache if self._pretrained and not getattr(self.params, "demonstrations", False) else None
        key = (self.backbone.name, scorer.template, tuple(map(tuple, scorer.word_ids)), scorer.max_tokens,
               scorer.length_normalize)
        todo = list(dict.fromkeys(t for t in texts if (key, t) not in cache)) if cache is not None else texts
        size = self.params.batch_size
        task = progress.add(description, total=len(todo)) if progress and description and todo else None
        out = []
        for start in range(0, len(todo), size):
            chunk = todo[start:start + size]
            out.append(scorer.scores(self._prompts(scorer, chunk)).double().cpu().numpy())
            if task is not None:
                progress.advance(task, len(chunk))
        scores = np.concatenate(out) if out else np.zeros((0, len(self.class_names)))
        if cache is None:
            return scores
        cache.update({(key, t): row for t, row in zip(todo, scores)})
        return np.stack([cache[(key, t)] for t in texts]) if texts else scores

    def _choose_template(self, texts, y, *, seed: int, progress) -> TemplateChoice:
        """Score the shots under each candidate template (the user's, or the generic ones) and choose the
        one whose calibrated scores have the lowest cross-validated NLL on the shots."""
        self.model.eval()
        self._resolve_words()
        y = np.asarray(y)
        if self.params.template != AUTO:
            candidates = {"given": self.params.template}
        else:
            candidates = template_candidates(self.tokenizer, self.words, chat=self.chat_templates)
        results, scores = {}, {}
        for name, template in candidates.items():
            scores[name] = self._raw_scores(self._scorer(template), texts, progress,
                                            f"Scoring the shots ({name} template)" if len(candidates) > 1 else "")
        chosen, oof = next(iter(candidates)), {}
        try:
            folds = cv_folds(y, 4, seed)
        except FewtuneError:
            folds = None  # one shot of some class: no held-out shot to compare on; keep the first
        if folds is not None:
            rows = np.arange(len(y))
            for name in candidates:
                oof[name] = out_of_fold_logp(scores[name], y, folds)
                results[name] = {"cv_nll": round(float(-oof[name][rows, y].mean()), 6),
                                 "cv_accuracy": round(float((oof[name].argmax(1) == y).mean()), 6)}
            chosen = min(results, key=lambda k: (results[k]["cv_nll"], list(results).index(k)))
        return TemplateChoice(candidates, scores, oof, results, folds, chosen)

    def _calibrated(self, scores: np.ndarray, y: np.ndarray) -> ScoreCalibration:
        """The calibration of these raw scores: fitted on the shots, or none (score_calibration="none")."""
        return ScoreCalibration.fit(scores, y) if self.params.score_calibration == "shots" else ScoreCalibration()

    def _prompt_info(self, choice: TemplateChoice, *, template: str | None = None, calibration: dict | None = None,
                     **more) -> dict:
        """What was chosen, for train_info: the template, the words, the calibration, then `more`."""
        info = {"template": template or choice.chosen, "label_words": dict(zip(self.class_names, self.words)),
                "calibration": calibration or rounded(self.calibration), **more}
        if len(choice.results) > 1:
            info["template_candidates"] = choice.results
        return info

    def _settle_prompt(self, texts, y, *, seed: int, progress) -> tuple[dict, np.ndarray]:
        """Choose the template (_choose_template) and fit its calibration on the shots.
        Returns (what was chosen, for train_info; the shots' raw scores under the chosen template)."""
        y = np.asarray(y)
        choice = self._choose_template(texts, y, seed=seed, progress=progress)
        self.template = choice.candidates[choice.chosen]
        self.calibration = self._calibrated(choice.scores[choice.chosen], y)
        return self._prompt_info(choice), choice.scores[choice.chosen]

    # -- FewShotMethod (fit is each method's own) -------------------------------------------
    @torch.no_grad()
    def predict_proba(self, texts, *, progress=None) -> np.ndarray:
        self.model.eval()
        scores = self._raw_scores(self._scorer(), texts, progress, "Scoring label words")
        return probabilities(torch.from_numpy(self.calibration.apply(scores)), "softmax")

    # -- the label words as a softmax head, for posteriors (fewtune.bayes.laplace) ----------------
    # With one token per label word, the class scores are the LM's output layer restricted to those
    # tokens' rows (the log-normaliser over the vocabulary cancels in the softmax over classes): a
    # linear softmax head on the hidden state the output layer reads at the prompt's last token.
    def last_layer(self):
        scorer = self._scorer()
        if not scorer.single_token or getattr(self.model.config, "final_logit_softcapping", None) or self.ensemble:
            # Multi-token words, soft-capped logits, or several templates: the scores are not linear in one state.
            return None
        output = self.model.get_output_embeddings()
        ids = [w[0] for w in scorer.word_ids]
        weight = output.weight[ids].detach().double().cpu().numpy()
        bias = output.bias[ids].detach().double().cpu().numpy() if output.bias is not None else np.zeros(len(ids))
        # The calibration is affine in the scores: scale both, then add the per-class bias.
        return weight * self.calibration.scale, self.calibration.apply(bias[None, :])[0]

    @torch.no_grad()
    def features(self, texts, *, progress=None) -> np.ndarray:
        """The output layer's input at each prompt's last token, caught by a hook: whatever wraps the
        LM (LoRA, a final norm), this is exactly what the label-word rows multiply."""
        self.model.eval()
        scorer = self._scorer()
        caught = []
        handle = self.model.get_output_embeddings().register_forward_hook(
            lambda module, args, out: caught.append(args[0]))
        rows = []
        try:
            for start in range(0, len(texts), self.params.batch_size):
                prompts = self._feature_prompts(scorer, texts[start:start + self.params.batch_size])
                caught.clear()
                scorer._forward(prompts)
                last = torch.tensor([len(p) - 1 for p in prompts], device=caught[-1].device)
                rows.append(caught[-1][torch.arange(len(prompts), device=last.device), last].float().cpu().numpy())
        finally:
            handle.remove()
        return np.concatenate(rows) if rows else np.zeros((0, self.model.get_output_embeddings().in_features))

    def _feature_prompts(self, scorer: LabelScorer, texts: list[str]) -> list[list[int]]:
        return self._prompts(scorer, texts)

    def save(self, folder) -> None:
        # No LM weights changed: fewtune.json names the backbone, which is reloaded as it is. prompt.json
        # spells out what the model asks the LM, class by class, and how its scores are calibrated.
        if self.words is None:
            self._resolve_words()
        (folder / PROMPT_FILE).write_text(json.dumps(
            {"template": self.template or self.params.template,
             "label_words": dict(zip(self.class_names, self.words)), "first_token": self.first_token,
             "calibration": self.calibration.to_dict(),
             "ensemble": [{"template": t, "calibration": c.to_dict()} for t, c in self.ensemble],
             "ensemble_calibration": self.ensemble_calibration.to_dict()},
            indent=2, ensure_ascii=False))

    def _read_prompt(self, folder) -> None:
        path = folder / PROMPT_FILE
        if not path.is_file():
            return
        saved = json.loads(path.read_text(encoding="utf-8"))
        self.template = saved["template"]
        self.words = list(saved["label_words"].values())  # saved in class order
        self.first_token = bool(saved.get("first_token", False))
        self.calibration = ScoreCalibration.from_dict(saved.get("calibration"))
        self.ensemble = [(m["template"], ScoreCalibration.from_dict(m["calibration"])) for m in saved.get("ensemble", [])]
        self.ensemble_calibration = ScoreCalibration.from_dict(saved.get("ensemble_calibration"))

    @classmethod
    def load(cls, folder, params, backbone, device, n_classes) -> LabelWordMethod:
        method = cls(params, resolve_base(backbone), device)
        method._load_lm()
        method._read_prompt(folder)
        return method


def rounded(cal: ScoreCalibration) -> dict:
    return {"scale": round(cal.scale, 6), "bias": [round(b, 6) for b in cal.bias]}


def save_demonstrations(folder, demonstrations: list[tuple[str, str]]) -> None:
    (folder / "demonstrations.json").write_text(json.dumps(
        [{"text": t, "label": label} for t, label in demonstrations], indent=2, ensure_ascii=False))


def load_demonstrations(folder) -> list[tuple[str, str]]:
    rows = json.loads((folder / "demonstrations.json").read_text(encoding="utf-8"))
    return [(r["text"], r["label"]) for r in rows]
