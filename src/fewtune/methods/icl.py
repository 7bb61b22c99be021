"""`icl`: in-context learning on a causal LM, the shots as demonstrations before each query (a cached
prefix), with contextual calibration instead of weights changed."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .base import register_method
from ..params import param
from ..training.heads import probabilities
from ..training.label_word_method import DemoParams, LabelWordMethod, load_demonstrations, save_demonstrations
from ..training.prefix_cache import logprobs_after_prefix, prefix_cache
from ..training.scorer import LabelScorer


@dataclasses.dataclass
class ICLParams(DemoParams):
    max_demonstrations: int = param(64, "at most this many training examples go into the context, in a seeded order",
                                    minimum=1)
    contextual_calibration: bool = param(True, "divide out the label bias measured on content-free inputs (Zhao et "
                                               "al. 2021)", renamed_from=("calibrate",))
    cache_prefix: bool = param(True, "encode the demonstrations once and reuse their key/value cache for every query")
    score_calibration: str = param("none", "icl calibrates by content-free inputs (contextual_calibration=true), not "
                                           "on the shots, which sit in its context", renamed_from=("calibration",))

    def check(self, problems: list[str]) -> None:
        super().check(problems)
        if self.score_calibration != "none":
            problems.append("icl takes score_calibration='none': its calibration is contextual "
                            "(contextual_calibration=true), since the shots it would fit on are its demonstrations")


CONTENT_FREE = ("N/A", "", "[MASK]")  # Zhao et al. (2021), "Calibrate before use"


@register_method
class ICL(LabelWordMethod):
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
        if self.params.contextual_calibration:
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
        save_demonstrations(folder, self.demonstrations)

    @classmethod
    def load(cls, folder, params, backbone, device, n_classes) -> ICL:
        method = super().load(folder, params, backbone, device, n_classes)
        method.demonstrations = load_demonstrations(folder)
        method._needs_prepare = True
        return method
