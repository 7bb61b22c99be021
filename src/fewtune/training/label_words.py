"""What the label-word methods ask a causal LM when the user gives no prompt: words for the classes,
generic templates chosen on the shots, and class scores calibrated on the shots.

A user's file carries texts and labels, nothing else. The label words then come from the class names
("very_negative" -> "very negative"); a name that is only an id ("0", "3") says nothing an LM can
score, and is refused with a message asking for `label_words`. The template is one of a few generic
candidates that hint at no task: a plain "Answer:" slot, a question that names the classes, and,
where the backbone has a chat template, an instruction that names them (LM-BFF's automatic prompt
search, kept small). Each candidate scores the shots once; the one whose calibrated scores have the
lowest cross-validated log-loss on the shots is kept — a choice made on the K examples alone.

Raw label-word scores carry the LM's prior over the words (" positive" may simply be likelier than
" negative" after any text), which is why an uncalibrated zero-shot model can put every text in one
class. `ScoreCalibration` fits, by MAP on the shots, one scale and one bias per class on the scores —
contextual calibration (Zhao et al. 2021) with the bias learned from labelled shots rather than a
content-free input, plus a temperature.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from ..errors import FewtuneError

# A class name that is a number or a single letter/character code names no meaning an LM could score.
_ID_NAME = re.compile(r"[-+]?\d+([.,]\d+)?|[A-Za-z]")
AUTO = ""  # template: choose among TEMPLATE_CANDIDATES on the shots


def is_id_name(name: str) -> bool:
    return bool(_ID_NAME.fullmatch(name.strip()))


def word_for_class(name: str) -> str:
    """The label word a class name gives: separators read as spaces ("very_negative" -> "very negative")."""
    return re.sub(r"[_\s]+", " ", name).strip()


def label_words_for(class_names: list[str], mapping: dict[str, str]) -> tuple[list[str], bool]:
    """(one word per class, whether any came from a class name rather than the user's mapping)."""
    derived = [c for c in class_names if c not in mapping]
    ids = [c for c in derived if is_id_name(c)]
    if ids:
        example = ",".join(f"{c}=WORD" for c in class_names[:3])
        raise FewtuneError(
            f"the class name(s) {', '.join(map(repr, ids))} are ids, not words a language model can score; "
            f"give a word per class, e.g. -p label_words='{example}' (or use an encoder method: setfit, finetune)")
    return [mapping[c] if c in mapping else word_for_class(c) for c in class_names], bool(derived)


def check_expressible(tokenizer, words: list[str], word_ids: list[list[int]]) -> None:
    """A word the tokenizer can only spell as its unknown token would score as every other such word."""
    unk = getattr(tokenizer, "unk_token_id", None)
    for w, ids in zip(words, word_ids):
        if not ids:
            raise FewtuneError(f"label word {w!r} has no tokens in this backbone's vocabulary; give another in "
                               "label_words")
        if unk is not None and unk in ids:
            raise FewtuneError(f"label word {w!r} is outside this backbone's vocabulary (it becomes the unknown "
                               f"token); give a word it can spell in label_words, e.g. label_words='CLASS=WORD'")


def first_tokens_if_distinct(word_ids: list[list[int]]) -> list[list[int]]:
    """Words derived from class names are scored by their first token when the classes' first tokens
    differ (one forward pass per text, and the label-word rows form a linear head for the Laplace
    posterior); otherwise by all their tokens."""
    firsts = [ids[:1] for ids in word_ids]
    return firsts if len({tuple(f) for f in firsts}) == len(firsts) else word_ids


# -- templates ----------------------------------------------------------------------------------
def _or_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def template_candidates(tokenizer, words: list[str], *, chat: bool = True) -> dict[str, str]:
    """Generic templates (name -> template with a {text} slot): none is written for a data set; two name a
    kind of label (sentiment, topic), the others only the classes."""
    options = _or_list(words)
    candidates = {
        "answer": "{text}\nAnswer:",
        "question": "{text}\nQuestion: " + options + "?\nAnswer:",
        # The two kinds of label most files carry: the shots tell which (if either) their classes are.
        "sentiment": "{text}\nSentiment:",
        "topic": "{text}\nTopic:",
    }
    if chat and getattr(tokenizer, "chat_template", None):
        # An instruction model answers in its own turn: the label word starts the assistant's reply.
        try:
            rendered = tokenizer.apply_chat_template(
                [{"role": "user", "content": f"Classify this text as {options}.\n\nText: {{text}}"}],
                tokenize=False, add_generation_prompt=True)
        except Exception:  # a template that needs other roles or fields: skip the candidate, keep the rest
            rendered = None
        if isinstance(rendered, str) and rendered.count("{text}") == 1:
            candidates["instruction"] = rendered
    return candidates


# -- calibration ----------------------------------------------------------------------------------
SCALE_PRIOR_SD = 1.0  # on log(scale): a factor e^±1 is plausible, e^±3 is not
BIAS_PRIOR_SD = 5.0  # in nats: label words' prior log-odds can differ by several nats; weak


@dataclasses.dataclass
class ScoreCalibration:
    """p(class | text) = softmax(scale · scores + bias), fitted by MAP on the shots' label-word scores."""

    scale: float = 1.0
    bias: tuple[float, ...] = ()

    def apply(self, scores):
        """Works on numpy arrays and torch tensors alike."""
        if not self.bias:
            return scores * self.scale
        bias = np.asarray(self.bias)
        if not isinstance(scores, np.ndarray):
            import torch

            bias = torch.as_tensor(bias, dtype=scores.dtype, device=scores.device)
        return scores * self.scale + bias

    def to_dict(self) -> dict:
        return {"scale": self.scale, "bias": list(self.bias)}

    @classmethod
    def from_dict(cls, d: dict | None) -> ScoreCalibration:
        return cls(float(d["scale"]), tuple(float(b) for b in d["bias"])) if d else cls()

    @classmethod
    def fit(cls, scores: np.ndarray, y: np.ndarray) -> ScoreCalibration:
        from scipy.optimize import minimize

        scores, y = np.asarray(scores, dtype=np.float64), np.asarray(y)
        n, c = scores.shape
        onehot = np.eye(c)[y]

        def objective(theta):
            log_a, b = theta[0], theta[1:]
            a = np.exp(log_a)
            z = a * scores + b
            z = z - z.max(1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(1, keepdims=True))
            p = np.exp(logp)
            loss = -(onehot * logp).sum() + 0.5 * (log_a / SCALE_PRIOR_SD) ** 2 + 0.5 * (b ** 2).sum() / BIAS_PRIOR_SD ** 2
            residual = p - onehot  # d loss / d z
            grad_a = (residual * scores).sum() * a + log_a / SCALE_PRIOR_SD ** 2
            grad_b = residual.sum(0) + b / BIAS_PRIOR_SD ** 2
            return loss, np.concatenate([[grad_a], grad_b])

        # Start from the bias that centres every class's mean score: the batch-calibration estimate.
        start = np.concatenate([[0.0], -(scores.mean(0) - scores.mean())])
        result = minimize(objective, start, jac=True, method="L-BFGS-B")
        theta = result.x if np.all(np.isfinite(result.x)) else start
        return cls(float(np.exp(theta[0])), tuple(float(v) for v in theta[1:]))


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def out_of_fold_logp(scores: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Calibrated log-probabilities of every shot, each from a calibration fitted on the other folds."""
    logp = np.zeros_like(scores, dtype=np.float64)
    for train_idx, val_idx in folds:
        cal = ScoreCalibration.fit(scores[train_idx], y[train_idx])
        logp[val_idx] = log_softmax(cal.apply(scores[val_idx]))
    return logp


def cv_calibrated_nll(scores: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """(mean NLL, accuracy) of calibrated scores on every shot, each calibration fitted on the other folds."""
    logp = out_of_fold_logp(scores, y, folds)
    return float(-logp[np.arange(len(y)), y].mean()), float((logp.argmax(1) == y).mean())
