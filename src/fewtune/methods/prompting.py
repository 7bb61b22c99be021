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
from .finetune import VALIDATION_FRACTION, stratified_holdout
from .heads import probabilities
from .lm_training import LMTrainingParams, prepare_for_training
from .lm_training import param as _param
from .lora import load_adapter, save_adapter
from .optim import BestEpoch, make_optimizer, update



@dataclasses.dataclass
class ZeroShotParams(MethodParams):
    template: str = _param("{text}\nAnswer:", "prompt with a {text} slot; the label word follows it")
    label_words: str = _param(
        "", "label word per class, e.g. 'neg=terrible,pos=great' (default: the class names themselves)"
    )
    length_normalize: bool = _param(False, "divide a class's log-probability by its label words' token count")
    max_text_tokens: int = _param(256, "truncate each text to this many tokens before filling the template")
    batch_size: int = _param(8, "prompts per forward pass")

    def check(self, problems: list[str]) -> None:
        super().check(problems)
        if "{text}" not in self.template:
            problems.append(f"template must contain {{text}}, got {self.template!r}")
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
    separator: str = _param("\n\n", "between demonstrations, and between the last one and the query")

    def check(self, problems: list[str]) -> None:
        super().check(problems)
        if self.max_demo_tokens < 1:
            problems.append(f"max_demo_tokens must be at least 1, got {self.max_demo_tokens}")


@dataclasses.dataclass
class PromptParams(DemoParams, LMTrainingParams):
    demonstrations: bool = _param(False, "LM-BFF: one labelled training example per class, drawn at random, before each prompt")
    # On by default: with a handful of shots the failure to guard against is ending below zero-shot.
    early_stopping: bool = _param(
        True, "hold out ~20% of the shots; keep the epoch with the lowest validation loss, counting the untrained "
              "start (epoch 0), so training that never helps returns the zero-shot model")
    patience: int = _param(3, "with early_stopping: epochs without improvement before stopping")

    def check(self, problems: list[str]) -> None:
        super().check(problems)
        if self.patience < 1:
            problems.append(f"patience must be at least 1, got {self.patience}")


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
                 length_normalize: bool):
        self.model, self.tokenizer = model, tokenizer
        self.template, self.max_text_tokens, self.length_normalize = template, max_text_tokens, length_normalize
        self.words = list(words)
        # A label word is a continuation: it takes a leading space where the script writes one
        # ("Sentiment: great"), not after whitespace nor in Chinese/Japanese ("情感：正面").
        self.spaces = [space_between(template, w) for w in words]
        self.word_ids = [tokenizer(space + w, add_special_tokens=False)["input_ids"]
                         for space, w in zip(self.spaces, words)]
        for w, ids in zip(words, self.word_ids):
            if not ids:
                raise FewtuneError(f"label word {w!r} has no tokens in this backbone's vocabulary")
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

    def __init__(self, params, backbone: ResolvedBackbone, device: str, model=None, tokenizer=None):
        super().__init__(params, backbone, device)
        self.model, self.tokenizer = model, tokenizer

    # -- shared ---------------------------------------------------------------------------
    def _load_lm(self) -> None:
        self.model, self.tokenizer = load_causal_lm(self.backbone, device=self.device)

    def _scorer(self) -> LabelScorer:
        p = self.params
        mapping = parse_label_words(p.label_words)
        unknown = sorted(set(mapping) - set(self.class_names))
        if unknown:
            raise FewtuneError(f"label_words names {', '.join(map(repr, unknown))}, not among the classes "
                               f"{', '.join(map(repr, self.class_names))}")
        words = [mapping.get(c, c) for c in self.class_names]
        return LabelScorer(self.model, self.tokenizer, p.template, words, max_text_tokens=p.max_text_tokens,
                           length_normalize=p.length_normalize)

    def _prompts(self, scorer: LabelScorer, texts: list[str]) -> list[list[int]]:
        return scorer.prompts(texts)

    def _check_single_label(self, y) -> None:
        if np.ndim(y) == 2:
            raise FewtuneError(f"method '{self.name}' scores one label word per text; multi-label data needs an "
                               "encoder method (setfit, finetune, linear-probe)")

    # -- FewShotMethod --------------------------------------------------------------------
    def fit(self, texts, y, n_classes, *, seed, progress) -> dict:
        self._check_single_label(y)
        self._load_lm()
        self._scorer()  # label words checked against the vocabulary now, not at the first prediction
        return {"trained": False}

    @torch.no_grad()
    def predict_proba(self, texts, *, progress=None) -> np.ndarray:
        self.model.eval()
        scorer = self._scorer()
        size = self.params.batch_size
        task = progress.add("Scoring label words", total=len(texts)) if progress else None
        out = []
        for start in range(0, len(texts), size):
            chunk = texts[start:start + size]
            out.append(probabilities(scorer.scores(self._prompts(scorer, chunk)), "softmax"))
            if progress:
                progress.advance(task, len(chunk))
        return np.concatenate(out)

    # -- the label words as a softmax head, for posteriors (fewtune.bayes.laplace) ----------------
    # With one token per label word, the class scores are the LM's output layer restricted to those
    # tokens' rows (the log-normaliser over the vocabulary cancels in the softmax over classes): a
    # linear softmax head on the hidden state the output layer reads at the prompt's last token.
    def last_layer(self):
        scorer = self._scorer()
        if not scorer.single_token or getattr(self.model.config, "final_logit_softcapping", None):
            return None  # multi-token words or soft-capped logits: the scores are not linear in one state
        output = self.model.get_output_embeddings()
        ids = [w[0] for w in scorer.word_ids]
        weight = output.weight[ids].detach().double().cpu().numpy()
        bias = output.bias[ids].detach().double().cpu().numpy() if output.bias is not None else np.zeros(len(ids))
        return weight, bias

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
        # Nothing trained: fewtune.json names the backbone, which is reloaded as it is. prompt.json
        # spells out what the model asks the LM, class by class.
        mapping = parse_label_words(self.params.label_words)
        (folder / "prompt.json").write_text(json.dumps(
            {"template": self.params.template, "label_words": {c: mapping.get(c, c) for c in self.class_names}},
            indent=2, ensure_ascii=False))

    @classmethod
    def load(cls, folder, params, backbone, device, n_classes) -> ZeroShot:
        method = cls(params, resolve_base(backbone), device)
        method._load_lm()
        return method


@register_method
class Prompt(ZeroShot):
    name = "prompt"
    description = "prompt-based fine-tuning of a causal LM on label words (LM-BFF/PET style; LoRA or full + L2-SP)"
    params_class = PromptParams

    def fit(self, texts, y, n_classes, *, seed, progress) -> dict:
        from transformers import get_linear_schedule_with_warmup

        self._check_single_label(y)
        p = self.params
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        self._load_lm()
        scorer = self._scorer()
        if p.demonstrations:
            self.demonstrations = [(t, self.class_names[int(c)]) for t, c in zip(texts, y)]
        else:
            prompts = scorer.prompts(texts)
        self.model, params, prior = prepare_for_training(self.model, p)
        scorer.model = self.model
        optimizer = make_optimizer(params, lr=p.lr, weight_decay=p.weight_decay, device=self.device)
        if p.early_stopping:
            train_idx, val_idx = stratified_holdout(y, VALIDATION_FRACTION, rng)
        else:
            train_idx, val_idx = np.arange(len(texts)), np.zeros(0, dtype=int)
        steps_per_epoch = math.ceil(len(train_idx) / p.batch_size)
        total = max(1, p.epochs * steps_per_epoch)
        scheduler = get_linear_schedule_with_warmup(optimizer, int(p.warmup_ratio * total), total)
        labels = torch.as_tensor(np.asarray(y), device=self.device)
        task = progress.add("Prompt fine-tuning", total=total) if progress else None
        started = time.perf_counter()

        def validation_loss() -> float:
            self.model.eval()
            with torch.no_grad():
                scores = scorer.scores(self._prompts(scorer, [texts[i] for i in val_idx]))
                return float(F.cross_entropy(scores, labels[val_idx]))

        # Epoch 0 is the untrained model: the zero-shot classifier is a candidate like any epoch.
        best = BestEpoch(params, p.patience)
        if p.early_stopping:
            best.record(0, validation_loss())
        losses, epochs_run = [], 0
        for epoch in range(1, p.epochs + 1):
            self.model.train()
            order = rng.permutation(train_idx)
            for start in range(0, len(order), p.batch_size):
                idx = order[start:start + p.batch_size]
                if p.demonstrations:  # fresh demonstrations every step, never the example itself
                    chunk = [texts[i] for i in idx]
                    batch = scorer.prompts(chunk, [self._context(scorer, rng, exclude=i) for i in idx])
                else:
                    batch = [prompts[i] for i in idx]
                scores = scorer.scores(batch)
                loss = F.cross_entropy(scores, labels[idx]) + prior.penalty()
                losses.append(update(loss, params, optimizer, scheduler))
                if progress:
                    progress.advance(task)
            epochs_run = epoch
            if p.early_stopping and best.record(epoch, validation_loss()):
                break
        best.restore()
        self.model.eval()
        info = {"steps": epochs_run * steps_per_epoch, "epochs": epochs_run,
                "final_loss": round(losses[-1], 6) if losses else None,
                "trainable_parameters": sum(t.numel() for t in params),
                "distance_from_pretrained": round(prior.distance(), 6),
                "body_seconds": round(time.perf_counter() - started, 3)}
        if p.early_stopping:
            info.update(best_epoch=best.epoch, validation_loss=round(best.loss, 6), n_validation=len(val_idx))
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
        method.model.eval()
        return method


@dataclasses.dataclass
class ICLParams(DemoParams):
    max_demonstrations: int = _param(64, "at most this many training examples go into the context, in a seeded order")
    calibrate: bool = _param(True, "contextual calibration: divide out the label bias measured on content-free inputs")
    cache_prefix: bool = _param(True, "encode the demonstrations once and reuse their key/value cache for every query")

    def check(self, problems: list[str]) -> None:
        super().check(problems)
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

    def fit(self, texts, y, n_classes, *, seed, progress) -> dict:
        self._check_single_label(y)
        p = self.params
        self._load_lm()
        order = np.random.default_rng(seed).permutation(len(texts))[: p.max_demonstrations]
        self.demonstrations = [(texts[i], self.class_names[int(y[i])]) for i in order]
        self._prepare()
        return {"demonstrations": len(self.demonstrations), "context_tokens": len(self._prefix_ids)}

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
