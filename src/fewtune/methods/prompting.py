"""Classification as next-token prediction on a causal LM: `zero-shot` and `prompt` (LM-BFF / PET style).

A template turns a text into a prompt ("Review: {text}\\nSentiment:") and each class has label
words (" terrible" / " great"). A class's score is the log-probability of its label words' tokens
after the prompt (optionally divided by their number, so long label words are not penalised); the
class probabilities are the softmax of those scores over the classes.

`zero-shot` uses the pretrained LM as it is. `prompt` fine-tunes it on the few examples with
cross-entropy over the class scores — the pretraining objective itself, so training starts from a
classifier that already works (the zero-shot one) instead of a random head. LoRA is the default:
the adapters start at zero, i.e. at the pretrained model, and weight decay pulls them back toward it
(a prior centred on the pretrained weights); full fine-tuning takes the L2-SP prior instead.
Saved folders hold the LoRA adapter alone (small) and reload it onto the cached base backbone, or the
whole fine-tuned LM for full fine-tuning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from ..backbones import CAUSAL_LM, ResolvedBackbone, load_causal_lm, resolve_base
from ..backbones.quiet import quiet_libraries
from ..data.language import space_between
from ..errors import FewtuneError
from .base import FewShotMethod, MethodParams, register_method
from .heads import probabilities
from .label_words import (AUTO, ScoreCalibration, check_expressible, first_tokens_if_distinct, label_words_for,
                          log_softmax, out_of_fold_logp, template_candidates)
from .lm_training import LMTrainingParams, prepare_for_training
from .lm_training import param as _param
from .lora import load_adapter, save_adapter
from .optim import make_optimizer, update



CALIBRATION_MODES = ("shots", "none")
PROMPT_FILE = "prompt.json"


@dataclasses.dataclass
class ZeroShotParams(MethodParams):
    template: str = _param(AUTO, "prompt with a {text} slot; the label word follows it (empty: generic candidates "
                                 "scored on the shots, see template_search)")
    label_words: str = _param(
        "", "label word per class, e.g. 'neg=terrible,pos=great' (default: the class names themselves)"
    )
    calibration: str = _param(
        "shots", "'shots': fit a scale and a bias per class on the shots' label-word scores (MAP), so the LM's "
                 "prior over the words cannot put every text in one class; 'none': raw scores")
    template_search: str = _param(
        "ensemble", "with no template: 'ensemble' averages the calibrated log-probabilities of every generic "
                    "candidate (a product of experts, robust where a few shots cannot tell the templates apart); "
                    "'best' keeps the candidate with the lowest cross-validated NLL on the shots (one pass per text)")
    length_normalize: bool = _param(False, "divide a class's log-probability by its label words' token count")
    max_text_tokens: int = _param(256, "truncate each text to this many tokens before filling the template")
    batch_size: int = _param(8, "prompts per forward pass")

    def check(self, problems: list[str]) -> None:
        super().check(problems)
        if self.template != AUTO and "{text}" not in self.template:
            problems.append(f"template must contain {{text}}, got {self.template!r}")
        if self.calibration not in CALIBRATION_MODES:
            problems.append(f"calibration must be {' or '.join(map(repr, CALIBRATION_MODES))}, got {self.calibration!r}")
        if self.template_search not in self.template_searches():
            problems.append(f"template_search must be {' or '.join(map(repr, self.template_searches()))}, "
                            f"got {self.template_search!r}")

    @classmethod
    def template_searches(cls) -> tuple[str, ...]:
        return ("ensemble", "best")
        for name in ("max_text_tokens", "batch_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        try:
            parse_label_words(self.label_words)  # a malformed mapping fails here, before any model loads
        except FewtuneError as e:
            problems.append(str(e))


@dataclasses.dataclass
class DemoParams(ZeroShotParams):
    """What shapes labelled demonstrations in the context (prompt with demonstrations=true, icl)."""

    max_demo_tokens: int = _param(64, "truncate each demonstration's text to this many tokens")
    template_search: str = _param("best", "with no template: the generic candidate with the lowest cross-validated "
                                          "NLL on the shots (training and demonstrations use one template)")
    separator: str = _param("\n\n", "between demonstrations, and between the last one and the query")

    @classmethod
    def template_searches(cls) -> tuple[str, ...]:
        return ("best",)

    def check(self, problems: list[str]) -> None:
        super().check(problems)
        if self.max_demo_tokens < 1:
            problems.append(f"max_demo_tokens must be at least 1, got {self.max_demo_tokens}")


@dataclasses.dataclass
class PromptParams(DemoParams, LMTrainingParams):
    demonstrations: bool = _param(False, "LM-BFF: one labelled training example per class, drawn at random, before each prompt")
    # On by default: with a handful of shots the failure to guard against is ending below zero-shot.
    early_stopping: bool = _param(
        True, "choose the number of epochs by the validation loss of k-fold runs over the shots, counting the "
              "untrained start (epoch 0), so training that never helps returns the calibrated zero-shot model")
    patience: int = _param(3, "with early_stopping: epochs without improvement before stopping")
    early_stopping_folds: int = _param(
        2, "with early_stopping: the epoch count is chosen by this many folds over the shots (every shot "
           "validated once), then the model is trained on all of them")

    def check(self, problems: list[str]) -> None:
        super().check(problems)
        if self.patience < 1:
            problems.append(f"patience must be at least 1, got {self.patience}")
        if self.early_stopping_folds < 2:
            problems.append(f"early_stopping_folds must be at least 2, got {self.early_stopping_folds}")


def parse_label_words(spec: str) -> dict[str, str]:
    """'neg=terrible,pos=great' -> {"neg": "terrible", "pos": "great"}."""
    words: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        label, sep, word = item.partition("=")
        if not sep or not label.strip() or not word.strip():
            raise FewtuneError(f"label_words expects LABEL=WORD pairs separated by commas, got {item!r}")
        words[label.strip()] = word.strip()
    return words


class LabelScorer:
    """Scores every class for a batch of prompts with one causal LM."""

    def __init__(self, model, tokenizer, template: str, words: list[str], *, max_text_tokens: int,
                 length_normalize: bool, first_token: bool = False):
        self.model, self.tokenizer = model, tokenizer
        self.template, self.max_text_tokens, self.length_normalize = template, max_text_tokens, length_normalize
        self.words = list(words)
        # A label word is a continuation: it takes a leading space where the script writes one
        # ("Sentiment: great"), not after whitespace nor in Chinese/Japanese ("情感：正面").
        self.spaces = [space_between(template, w) for w in words]
        self.word_ids = [tokenizer(space + w, add_special_tokens=False)["input_ids"]
                         for space, w in zip(self.spaces, words)]
        check_expressible(tokenizer, self.words, self.word_ids)
        if first_token:
            self.word_ids = first_tokens_if_distinct(self.word_ids)
        self.single_token = all(len(ids) == 1 for ids in self.word_ids)
        self.reuse_prefix = True  # encode a long prefix shared by a batch's prompts once (no_grad only)

    def fill(self, text: str, max_tokens: int | None = None) -> str:
        """The template around `text`, cut to at most max_tokens (default max_text_tokens) tokens."""
        return self.template.replace("{text}", cut_to_tokens(self.tokenizer, text, max_tokens or self.max_text_tokens))

    def demonstration(self, text: str, label: int, max_tokens: int) -> str:
        """A solved example: the filled template followed by the label's word."""
        return self.fill(text, max_tokens) + self.spaces[label] + self.words[label]

    def prompts(self, texts: list[str], contexts: list[str] | None = None) -> list[list[int]]:
        """Token ids of each filled template, after its context (demonstrations) if given."""
        contexts = contexts or [""] * len(texts)
        return [self.tokenizer(context + self.fill(text))["input_ids"] for context, text in zip(contexts, texts)]

    def scores(self, prompt_ids: list[list[int]]) -> torch.Tensor:
        """(n, C) log-probabilities of each class's label words after each prompt (differentiable)."""
        if self.single_token:
            # One pass: the next-token distribution after the prompt holds every single-token label.
            logp = self._next_token_logprobs(prompt_ids)
            return logp[:, [ids[0] for ids in self.word_ids]]
        seqs, spans = [], []
        for p in prompt_ids:
            for ids in self.word_ids:
                seqs.append(p + ids)
                spans.append((len(p), len(ids)))
        logits = self._forward(seqs)
        logp = torch.log_softmax(logits.float(), dim=-1)
        out = []
        for row, (seq, (start, n)) in enumerate(zip(seqs, spans)):
            positions = torch.arange(start - 1, start - 1 + n, device=logp.device)
            targets = torch.tensor(seq[start:start + n], device=logp.device)
            total = logp[row, positions, targets].sum()
            out.append(total / n if self.length_normalize else total)
        return torch.stack(out).view(len(prompt_ids), len(self.word_ids))

    def _next_token_logprobs(self, prompt_ids: list[list[int]]) -> torch.Tensor:
        shared = shared_prefix_length(prompt_ids)
        if self.reuse_prefix and shared >= MIN_SHARED_PREFIX and not torch.is_grad_enabled():
            # Prompts that repeat a long context (a user's history in tallrec, a long instruction)
            # encode it once: each prompt then costs its own tokens only.
            cache = prefix_cache(self.model, prompt_ids[0][:shared])
            return logprobs_after_prefix(self.model, cache, shared, [p[shared:] for p in prompt_ids],
                                         self.tokenizer.pad_token_id)
        last = [len(p) - 1 for p in prompt_ids]
        logits, column = self._forward(prompt_ids, keep=last)
        return torch.log_softmax(logits[torch.arange(len(prompt_ids), device=logits.device), column].float(), dim=-1)

    def _forward(self, seqs: list[list[int]], keep: list[int] | None = None):
        """Logits of the right-padded batch; with `keep` (one position per sequence), (logits, column):
        row i's logits at keep[i] are logits[i, column[i]]."""
        # Right padding: positions of the real tokens are unchanged, so no position ids are needed.
        pad = self.tokenizer.pad_token_id
        width = max(len(s) for s in seqs)
        device = next(self.model.parameters()).device
        input_ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
        if keep is None:
            return self.model(input_ids=input_ids, attention_mask=mask).logits
        return logits_at(self.model, keep, input_ids=input_ids, attention_mask=mask)


def cut_to_tokens(tokenizer, text: str, max_tokens: int) -> str:
    """`text` cut after its first `max_tokens` tokens (a limit in tokens, never in characters or words).

    A fast tokenizer's offsets cut the original string where the first dropped token starts, so
    nothing is re-spelled and a character split over two byte-level tokens (Chinese in a byte-level
    BPE) is dropped whole rather than left as "\ufffd". Otherwise the kept tokens are decoded.
    """
    if getattr(tokenizer, "is_fast", False):
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        if len(offsets) <= max_tokens:
            return text
        # Tokens with no characters of their own (offsets (0, 0)) say nothing about where to cut.
        return text[: next((start for start, end in offsets[max_tokens:] if end > start), len(text))]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
    return tokenizer.decode(ids)


@register_method
class ZeroShot(FewShotMethod):
    name = "zero-shot"
    description = "a causal LM scores each class's label words after a prompt; no training (the baseline)"
    params_class = ZeroShotParams
    backbone_kinds = (CAUSAL_LM,)
    chat_templates = True  # may a candidate template be the backbone's chat template (one turn per prompt)

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
        self.model, self.tokenizer = load_causal_lm(self.backbone, device=self.device)

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
        return LabelScorer(self.model, self.tokenizer, template, self.words, max_text_tokens=p.max_text_tokens,
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
        key = (self.backbone.name, scorer.template, tuple(map(tuple, scorer.word_ids)), scorer.max_text_tokens,
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

    def _settle_prompt(self, texts, y, *, seed: int, progress) -> tuple[dict, np.ndarray]:
        """Choose the template (the user's, or the generic candidate whose calibrated scores have the
        lowest cross-validated NLL on the shots) and fit the calibration on the shots.
        Returns (what was chosen, for train_info; the shots' raw scores under the chosen template)."""
        from ..selection import cv_folds

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

        def calibrate(name: str) -> ScoreCalibration:
            return ScoreCalibration.fit(scores[name], y) if self.params.calibration == "shots" else ScoreCalibration()

        self.template, self.calibration = candidates[chosen], calibrate(chosen)
        self.ensemble, self.ensemble_calibration = [], ScoreCalibration()
        if len(candidates) > 1 and self.params.template_search == "ensemble":
            self.ensemble = [(candidates[name], calibrate(name)) for name in candidates]
            if oof and self.params.calibration == "shots":
                # Averaging log-probabilities dilutes the sharp templates with the vague ones: the mean's own
                # scale and bias are fitted on the out-of-fold means, which no member's calibration saw.
                self.ensemble_calibration = ScoreCalibration.fit(np.mean([oof[n] for n in candidates], axis=0), y)
        # What this model says of each shot when the shot took no part in its calibration (hybrid's head
        # is fitted on these: in-sample calibrated scores would look more reliable than they are).
        if self.params.calibration != "shots" or folds is None:
            self.shot_logp = self._combine(scores, list(candidates) if self.ensemble else [chosen])
        elif self.ensemble:
            self.shot_logp = log_softmax(self.ensemble_calibration.apply(np.mean([oof[n] for n in candidates], axis=0)))
        else:
            self.shot_logp = oof[chosen]
        info = {"template": "ensemble" if self.ensemble else chosen,
                "label_words": dict(zip(self.class_names, self.words)),
                "calibration": _rounded(self.calibration)}
        if self.ensemble:
            info["best_template"] = chosen
            info["calibration"] = {name: _rounded(cal) for name, (_, cal) in zip(candidates, self.ensemble)}
            info["calibration"]["ensemble"] = _rounded(self.ensemble_calibration)
        if len(results) > 1:
            info["template_candidates"] = results
        return info, scores[chosen]

    def _combine(self, scores: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
        """Log-probabilities from raw scores: one template calibrated, or the ensemble's calibrated mean."""
        if not self.ensemble:
            return log_softmax(self.calibration.apply(scores[names[0]]))
        mean = np.mean([log_softmax(cal.apply(scores[n])) for n, (_, cal) in zip(names, self.ensemble)], axis=0)
        return log_softmax(self.ensemble_calibration.apply(mean))

    # -- FewShotMethod --------------------------------------------------------------------
    def fit(self, texts, y, n_classes, *, seed, progress) -> dict:
        self._check_single_label(y)
        self._load_lm()
        info, _ = self._settle_prompt(texts, y, seed=seed, progress=progress)
        return {"trained": False, "prompt": info}

    @torch.no_grad()
    def predict_proba(self, texts, *, progress=None) -> np.ndarray:
        self.model.eval()
        if not self.ensemble:
            scores = self._raw_scores(self._scorer(), texts, progress, "Scoring label words")
            return probabilities(torch.from_numpy(self.calibration.apply(scores)), "softmax")
        # A product of experts: the mean of the templates' calibrated log-probabilities, itself calibrated.
        scores = {str(i): self._raw_scores(self._scorer(template), texts, progress,
                                           f"Scoring label words (template {i + 1} of {len(self.ensemble)})")
                  for i, (template, _) in enumerate(self.ensemble)}
        return probabilities(torch.from_numpy(self._combine(scores, list(scores))), "softmax")

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
    def load(cls, folder, params, backbone, device, n_classes) -> ZeroShot:
        method = cls(params, resolve_base(backbone), device)
        method._load_lm()
        method._read_prompt(folder)
        return method


@register_method
class Prompt(ZeroShot):
    name = "prompt"
    description = "prompt-based fine-tuning of a causal LM on label words (LM-BFF/PET style; LoRA or full + L2-SP)"
    params_class = PromptParams

    def fit(self, texts, y, n_classes, *, seed, progress) -> dict:
        from ..selection import cv_folds

        self._check_single_label(y)
        p = self.params
        y = np.asarray(y)
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        self._load_lm()
        if p.demonstrations:
            self.demonstrations = [(t, self.class_names[int(c)]) for t, c in zip(texts, y)]
        prompt_info, shot_scores = self._settle_prompt(texts, y, seed=seed, progress=progress)
        scorer = self._scorer()
        self.model, params, prior = prepare_for_training(self.model, p)
        self._pretrained = False
        scorer.model = self.model
        start_state = [t.detach().clone() for t in params]
        run = _PromptRun(self, scorer, texts, y, params, prior, shot_scores, rng)
        started = time.perf_counter()
        info: dict = {"prompt": prompt_info}
        epochs = p.epochs
        folds = []
        if p.early_stopping and p.epochs > 0:
            try:
                folds = cv_folds(y, p.early_stopping_folds, seed)
            except FewtuneError:  # a class with one shot: no fold can validate it; train the full schedule
                info["early_stopping"] = "skipped: a class has a single shot, which no fold can hold out"
        fold_steps = sum(p.epochs * math.ceil(len(tr) / p.batch_size) for tr, _ in folds)
        task = progress.add("Prompt fine-tuning", total=fold_steps + p.epochs * math.ceil(len(y) / p.batch_size)) \
            if progress else None
        tick = (lambda: progress.advance(task)) if progress else None
        if folds:
            # The number of epochs is chosen on every shot, each validated by a model that never saw it
            # (k-fold): a 20% hold-out is a handful of texts, and one seed's choice on 4 of them ended at
            # 0.63 where another's reached 0.88. Epoch 0, the calibrated zero-shot model, is a candidate.
            curves = []
            for train_idx, val_idx in folds:
                _restore(params, start_state)
                curves.append(run.train(train_idx, val_idx, p.epochs, tick=tick))
            common = min(len(c) for c in curves)
            total = np.sum([c[:common] for c in curves], axis=0)
            epochs = int(np.argmin(total))  # ties go to the fewer epochs
            info.update(chosen_epochs=epochs, cv_folds=len(folds),
                        cv_loss_by_epoch=[round(float(v) / len(y), 6) for v in total])
        _restore(params, start_state)
        losses = run.train(np.arange(len(y)), None, epochs, schedule_epochs=p.epochs, tick=tick)
        self.calibration = run.calibration()
        self.model.eval()
        info.update({"steps": epochs * math.ceil(len(y) / p.batch_size), "epochs": epochs,
                     "final_loss": round(losses[-1], 6) if losses else None,
                     "trainable_parameters": sum(t.numel() for t in params),
                     "distance_from_pretrained": round(prior.distance(), 6),
                     "body_seconds": round(time.perf_counter() - started, 3)})
        info["prompt"]["calibration"] = _rounded(self.calibration)
        return info

    def _context(self, scorer: LabelScorer, rng: np.random.Generator, exclude: int = -1) -> str:
        """One demonstration per class, drawn from the training examples, in random order (LM-BFF)."""
        index = {c: i for i, c in enumerate(self.class_names)}
        picks = []
        for c in self.class_names:
            pool = [i for i, (_, label) in enumerate(self.demonstrations) if label == c and i != exclude]
            if pool:
                picks.append(pool[int(rng.integers(len(pool)))])
        rng.shuffle(picks)
        sep = self.params.separator
        return "".join(scorer.demonstration(self.demonstrations[i][0], index[self.demonstrations[i][1]],
                                            self.params.max_demo_tokens) + sep for i in picks)

    def _prompts(self, scorer: LabelScorer, texts: list[str]) -> list[list[int]]:
        if not self.params.demonstrations:
            return scorer.prompts(texts)
        # Each text's demonstrations are drawn from a generator seeded by the text itself: the same
        # text gets the same context (and probability) whatever else is in the batch.
        seeds = [int.from_bytes(hashlib.sha256(t.encode("utf-8")).digest()[:8], "big") for t in texts]
        return scorer.prompts(texts, [self._context(scorer, np.random.default_rng(s)) for s in seeds])

    def save(self, folder) -> None:
        super().save(folder)
        if self.params.demonstrations:
            _save_demonstrations(folder, self.demonstrations)
        if self.params.lora:
            save_adapter(self.model, folder)
        else:
            with quiet_libraries():
                self.model.save_pretrained(str(folder / "lm"), safe_serialization=True)
            self.tokenizer.save_pretrained(str(folder / "lm"))

    @classmethod
    def load(cls, folder, params, backbone, device, n_classes) -> Prompt:
        if params.lora:
            method = cls(params, resolve_base(backbone), device)
            method._load_lm()
            method.model = load_adapter(method.model, folder, r=params.lora_r, alpha=params.lora_alpha,
                                        base_name=backbone.name)
        else:
            lm = ResolvedBackbone(name=backbone.name, kind=CAUSAL_LM, path=str(folder / "lm"), source="local")
            method = cls(params, lm, device)
            method._load_lm()
        if params.demonstrations:
            method.demonstrations = _load_demonstrations(folder)
        method._read_prompt(folder)
        method.model.eval()
        return method


def _rounded(cal: ScoreCalibration) -> dict:
    return {"scale": round(cal.scale, 6), "bias": [round(b, 6) for b in cal.bias]}


def _restore(params, state) -> None:
    with torch.no_grad():
        for t, saved in zip(params, state):
            t.copy_(saved)


class _PromptRun:
    """One prompt fine-tuning run on some of the shots: LoRA (or the weights) and the calibration's scale
    and biases trained together, starting from the calibration fitted on those shots' zero-shot scores."""

    def __init__(self, method: Prompt, scorer: LabelScorer, texts, y, params, prior, shot_scores, rng):
        self.method, self.scorer, self.texts, self.params, self.prior = method, scorer, texts, params, prior
        self.y, self.shot_scores, self.rng = y, shot_scores, rng
        self.labels = torch.as_tensor(y, device=method.device)
        self.prompts = None if method.params.demonstrations else scorer.prompts(texts)
        self.log_scale = self.bias = None

    def calibration(self) -> ScoreCalibration:
        if self.bias is None:
            return ScoreCalibration()
        return ScoreCalibration(float(self.log_scale.detach().exp()), tuple(float(b) for b in self.bias.detach().cpu()))

    def _batch(self, idx, train: bool):
        m = self.method
        if not m.params.demonstrations:
            return [self.prompts[i] for i in idx]
        if train:  # fresh demonstrations every step, never the example itself
            return self.scorer.prompts([self.texts[i] for i in idx],
                                       [m._context(self.scorer, self.rng, exclude=i) for i in idx])
        return m._prompts(self.scorer, [self.texts[i] for i in idx])

    def _logits(self, idx, train: bool) -> torch.Tensor:
        scores = self.scorer.scores(self._batch(idx, train))
        if self.bias is None:
            return scores
        return scores * self.log_scale.exp() + self.bias

    def _validation_loss(self, val_idx) -> float:
        self.method.model.eval()
        with torch.no_grad():
            total = 0.0
            for start in range(0, len(val_idx), self.method.params.batch_size):
                idx = val_idx[start:start + self.method.params.batch_size]
                total += float(F.cross_entropy(self._logits(idx, False), self.labels[idx], reduction="sum"))
            return total

    def train(self, train_idx, val_idx, epochs: int, *, schedule_epochs: int | None = None, tick=None) -> list[float]:
        """Train for up to `epochs` epochs on train_idx. With val_idx: the summed validation loss after each
        epoch (from epoch 0), stopping after `patience` epochs without improvement; else the training losses."""
        from transformers import get_linear_schedule_with_warmup

        p, device = self.method.params, self.method.device
        if p.calibration == "shots":
            start = ScoreCalibration.fit(self.shot_scores[train_idx], self.y[train_idx])
            self.log_scale = torch.tensor(math.log(start.scale), device=device, requires_grad=True)
            self.bias = torch.tensor(start.bias, device=device, requires_grad=True)
            trained = [*self.params, self.log_scale, self.bias]
        else:
            trained = list(self.params)
        optimizer = make_optimizer(trained, lr=p.lr, weight_decay=p.weight_decay, device=device)
        steps_per_epoch = math.ceil(len(train_idx) / p.batch_size)
        total = max(1, (schedule_epochs or epochs) * steps_per_epoch)
        scheduler = get_linear_schedule_with_warmup(optimizer, int(p.warmup_ratio * total), total)
        curve, losses, best = [], [], 0
        if val_idx is not None:
            curve.append(self._validation_loss(val_idx))
        for epoch in range(1, epochs + 1):
            self.method.model.train()
            order = self.rng.permutation(train_idx)
            for start in range(0, len(order), p.batch_size):
                idx = order[start:start + p.batch_size]
                loss = F.cross_entropy(self._logits(idx, True), self.labels[idx]) + self.prior.penalty()
                losses.append(update(loss, trained, optimizer, scheduler))
                if tick is not None:
                    tick()
            if val_idx is not None:
                curve.append(self._validation_loss(val_idx))
                best = int(np.argmin(curve))
                if epoch - best >= p.patience:
                    break
        return curve if val_idx is not None else losses


@dataclasses.dataclass
class ICLParams(DemoParams):
    max_demonstrations: int = _param(64, "at most this many training examples go into the context, in a seeded order")
    calibrate: bool = _param(True, "contextual calibration: divide out the label bias measured on content-free inputs")
    cache_prefix: bool = _param(True, "encode the demonstrations once and reuse their key/value cache for every query")
    calibration: str = _param("none", "icl calibrates by content-free inputs (calibrate=true), not on the shots, "
                                      "which sit in its context")

    def check(self, problems: list[str]) -> None:
        super().check(problems)
        if self.calibration != "none":
            problems.append("icl takes calibration='none': its calibration is contextual (calibrate=true), since "
                            "the shots it would fit on are its demonstrations")
        if self.max_demonstrations < 1:
            problems.append(f"max_demonstrations must be at least 1, got {self.max_demonstrations}")


CONTENT_FREE = ("N/A", "", "[MASK]")  # Zhao et al. (2021), "Calibrate before use"


@register_method
class ICL(ZeroShot):
    """In-context learning: the K shots as demonstrations in the prompt, no weights changed.

    The demonstrations' key/value cache is computed once and copied for every batch of queries, so
    a query costs its own tokens only, not the whole context again. Contextual calibration (Zhao et
    al. 2021) divides each class probability by the one the model gives to content-free inputs
    ("N/A", "", "[MASK]") with the same demonstrations, removing the bias toward labels that are
    frequent, recent or simply likely words.
    """

    name = "icl"
    description = "in-context learning: the shots as demonstrations in a causal LM's prompt (cached prefix, calibrated)"
    params_class = ICLParams
    chat_templates = False  # demonstrations repeat the template: a chat turn per demonstration reads badly

    def fit(self, texts, y, n_classes, *, seed, progress) -> dict:
        self._check_single_label(y)
        p = self.params
        self._load_lm()
        prompt_info, _ = self._settle_prompt(texts, y, seed=seed, progress=progress)
        order = np.random.default_rng(seed).permutation(len(texts))[: p.max_demonstrations]
        self.demonstrations = [(texts[i], self.class_names[int(y[i])]) for i in order]
        self._prepare()
        return {"demonstrations": len(self.demonstrations), "context_tokens": len(self._prefix_ids),
                "prompt": prompt_info}

    def _prepare(self) -> None:
        scorer = self._scorer()
        index = {c: i for i, c in enumerate(self.class_names)}
        pieces = [scorer.demonstration(text, index[label], self.params.max_demo_tokens)
                  for text, label in self.demonstrations]
        prefix = self.params.separator.join(pieces) + self.params.separator
        self._prefix_ids = self.tokenizer(prefix)["input_ids"]
        self._cache = None
        self._content_free = None
        if self.params.calibrate:
            with torch.no_grad():
                probs = self._raw_proba(list(CONTENT_FREE))
            self._content_free = probs.mean(0)

    def _query_ids(self, scorer: LabelScorer, texts: list[str]) -> list[list[int]]:
        return [self.tokenizer(scorer.fill(t), add_special_tokens=False)["input_ids"] for t in texts]

    def _raw_proba(self, texts: list[str]) -> np.ndarray:
        scorer = self._scorer()
        queries = self._query_ids(scorer, texts)
        if not (self.params.cache_prefix and scorer.single_token):
            # Multi-token label words score every class's continuation: done on the full sequence.
            scorer.reuse_prefix = self.params.cache_prefix
            return probabilities(scorer.scores([self._prefix_ids + q for q in queries]), "softmax")
        return probabilities(self._cached_scores(scorer, queries), "softmax")

    def _cached_scores(self, scorer: LabelScorer, queries: list[list[int]]) -> torch.Tensor:
        if self._cache is None:
            self._cache = prefix_cache(self.model, self._prefix_ids)
        logp = logprobs_after_prefix(self.model, self._cache, len(self._prefix_ids), queries,
                                     self.tokenizer.pad_token_id)
        return logp[:, [ids[0] for ids in scorer.word_ids]]

    @torch.no_grad()
    def predict_proba(self, texts, *, progress=None) -> np.ndarray:
        self.model.eval()
        self._ensure_prepared()
        size = self.params.batch_size
        task = progress.add("In-context predictions", total=len(texts)) if progress else None
        out = []
        for start in range(0, len(texts), size):
            chunk = texts[start:start + size]
            probs = self._raw_proba(chunk)
            if self._content_free is not None:
                probs = probs / self._content_free
                probs = probs / probs.sum(1, keepdims=True)
            out.append(probs)
            if progress:
                progress.advance(task, len(chunk))
        return np.concatenate(out)

    def _ensure_prepared(self) -> None:
        if getattr(self, "_needs_prepare", False):  # after load: class names are known only now
            self._prepare()
            self._needs_prepare = False

    def last_layer(self):
        # Contextual calibration divides p_c by the content-free q_c: a bias of −log q_c on the logits.
        self._ensure_prepared()
        layer = super().last_layer()
        if layer is None or self._content_free is None:
            return layer
        return layer[0], layer[1] - np.log(np.asarray(self._content_free, dtype=np.float64))

    def _feature_prompts(self, scorer: LabelScorer, texts: list[str]) -> list[list[int]]:
        self._ensure_prepared()
        return [self._prefix_ids + q for q in self._query_ids(scorer, texts)]  # the whole context, uncached

    def save(self, folder) -> None:
        super().save(folder)
        _save_demonstrations(folder, self.demonstrations)

    @classmethod
    def load(cls, folder, params, backbone, device, n_classes) -> ICL:
        method = super().load(folder, params, backbone, device, n_classes)
        method.demonstrations = _load_demonstrations(folder)
        method._needs_prepare = True
        return method


# Below this many shared tokens the cache's copy per batch costs about what it saves.
MIN_SHARED_PREFIX = 32


def shared_prefix_length(seqs: list[list[int]]) -> int:
    """Tokens that every sequence starts with, leaving each at least one token of its own (the
    position whose next-token distribution is read); 0 for a single sequence."""
    if len(seqs) < 2:
        return 0
    first, limit = seqs[0], min(len(s) for s in seqs) - 1
    n = 0
    while n < limit and all(s[n] == first[n] for s in seqs):
        n += 1
    return n


def prefix_cache(model, prefix_ids: list[int]):
    """The key/value cache of one token prefix, to be reused by logprobs_after_prefix."""
    device = next(model.parameters()).device
    out = model(input_ids=torch.tensor([prefix_ids], device=device), use_cache=True)
    return out["cache"] if "cache" in out else out["past_key_values"]


def logprobs_after_prefix(model, cache, prefix_len: int, queries: list[list[int]], pad: int) -> torch.Tensor:
    """(n, V) next-token log-probabilities after prefix + each query, the prefix read from `cache`
    (left untouched: it is copied, then repeated once per query)."""
    import copy

    device = next(model.parameters()).device
    cache = copy.deepcopy(cache)
    if len(queries) > 1:
        cache.batch_repeat_interleave(len(queries))
    width = max(len(q) for q in queries)
    input_ids = torch.tensor([q + [pad] * (width - len(q)) for q in queries], device=device)
    mask = torch.tensor([[1] * (prefix_len + len(q)) + [0] * (width - len(q)) for q in queries], device=device)
    logits, column = logits_at(model, [len(q) - 1 for q in queries], input_ids=input_ids, attention_mask=mask,
                               use_cache=True, **{_cache_argument(model): cache})
    return torch.log_softmax(logits[torch.arange(len(queries), device=device), column].float(), dim=-1)


def logits_at(model, positions: list[int], **inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, column): the output layer applied at `positions` only (one per row), where the model
    takes `logits_to_keep`; row i's logits at positions[i] are logits[i, column[i]].

    Only one position per prompt is read, and the output layer is the costliest matrix of a
    large-vocabulary LM (Gemma 3: 640 × 262k, more multiply-adds per token than all its layers).
    """
    device = inputs["input_ids"].device
    wanted = torch.tensor(positions, device=device)
    if not _takes_logits_to_keep(model):
        return model(**inputs).logits, wanted
    kept, column = torch.unique(wanted, return_inverse=True)  # sorted distinct positions
    return model(**inputs, logits_to_keep=kept).logits, column


def _takes_logits_to_keep(model) -> bool:
    import inspect

    forward = getattr(model, "get_base_model", lambda: model)().forward
    return "logits_to_keep" in inspect.signature(forward).parameters


def _cache_argument(model) -> str:
    """transformers 5.x renamed `past_key_values` to `cache`; models not yet moved keep the old name."""
    import inspect

    forward = getattr(model, "get_base_model", lambda: model)().forward
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def _save_demonstrations(folder, demonstrations: list[tuple[str, str]]) -> None:
    (folder / "demonstrations.json").write_text(json.dumps(
        [{"text": t, "label": label} for t, label in demonstrations], indent=2, ensure_ascii=False))


def _load_demonstrations(folder) -> list[tuple[str, str]]:
    rows = json.loads((folder / "demonstrations.json").read_text(encoding="utf-8"))
    return [(r["text"], r["label"]) for r in rows]
