"""The two students: an encoder fine-tuned on the teacher's probabilities, and a head on a static table.

The encoder student is a plain `finetune` model (encoder + linear head, cross-entropy to the teacher's
soft labels), so `fewtune export --format onnx [--int8]` and `serve` take it as they take any other.
Its defaults are for thousands of texts rather than 8: three passes (more over a small pool, MIN_STEPS), batches of 32, the encoder at
5e-5, texts cut at 128 tokens.

The static student's head is a multinomial logistic regression fitted to the soft labels (each text
once per class, weighted by the teacher's probability: exactly the cross-entropy to the teacher), its
L2 strength chosen by the cross-entropy to the teacher on held-out pool texts — unlabeled texts, so
the choice costs no labeled data.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..classifier import FewShotClassifier
from ..data import DataWarning
from ..numeric import softmax

ENCODER_DEFAULTS = {"epochs": 3, "batch_size": 32, "learning_rate": 5e-5, "max_tokens": 128}
# Three passes are plenty over thousands of texts but a dozen steps over a small pool, too few for the
# head to leave its random start: me5-small's student on 120 bbc texts agreed with its teacher on 42 % of
# held-out pool texts after 3 epochs (12 steps), 83 % after 15 (60 steps). Unless epochs is given, a small
# pool gets as many passes as make this many steps.
MIN_STEPS = 60
# The shots are repeated to make about this share of a training pass: a few hundred pool texts would
# otherwise drown the only labels a person gave.
SHOT_SHARE = 0.1
C_GRID = (1.0, 10.0, 100.0, 1000.0)  # inverse L2 strengths; embeddings are unit vectors, so large C is usual


def shot_repeats(n_pool: int, n_shots: int) -> int:
    return max(1, round(SHOT_SHARE * n_pool / n_shots)) if n_shots else 0


def student_epochs(n_texts: int, params: dict) -> int:
    """ENCODER_DEFAULTS' epochs, or more where that would be fewer than MIN_STEPS optimiser steps."""
    steps_per_epoch = max(1, math.ceil(n_texts / params.get("batch_size", ENCODER_DEFAULTS["batch_size"])))
    return max(ENCODER_DEFAULTS["epochs"], math.ceil(MIN_STEPS / steps_per_epoch))


def train_encoder_student(texts: list[str], soft: np.ndarray, classes: list, *, backbone: str, params: dict,
                          seed: int, device: str | None, trust: bool, show_progress: bool):
    """A FewShotClassifier(method="finetune") trained on (texts, soft)."""
    labels = [classes[i] for i in soft.argmax(1)]
    defaults = dict(ENCODER_DEFAULTS)
    if str(params.get("lora", False)).lower() in {"1", "true", "yes", "on"}:
        del defaults["learning_rate"]  # the default's rate is for every weight; LoRA keeps finetune's own
    params = {**defaults, **params, "epochs": params.get("epochs") or student_epochs(len(texts), params)}
    student = FewShotClassifier(backbone, "finetune", params=params, seed=seed, device=device,
                                show_progress=show_progress, trust=trust)
    with warnings.catch_warnings():
        # The repeated shots are duplicates on purpose, and a pool text may equal a shot the teacher disagrees with.
        warnings.filterwarnings("ignore", message=".*(duplicate examples|different labels|labels differ)",
                                category=DataWarning)
        return student.fit(texts, labels, soft_targets=soft, classes=classes)


def fit_static_head(x: np.ndarray, soft: np.ndarray, x_val: np.ndarray | None, soft_val: np.ndarray | None,
                    *, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """(weight C × D, bias C, facts) of the softmax head closest to the soft labels."""
    n_classes = soft.shape[1]
    results = {}
    grid = C_GRID if x_val is not None and len(x_val) else (100.0,)
    best = None
    for c in grid:
        weight, bias = _soft_logistic(x, soft, c, seed)
        if x_val is not None and len(x_val):
            p = softmax(x_val @ weight.T + bias)
            results[str(c)] = round(float(-(soft_val * np.log(np.clip(p, 1e-12, 1))).sum(1).mean()), 5)
            score = results[str(c)]
        else:
            score = 0.0
        if best is None or score < best[0]:
            best = (score, c, weight, bias)
    _, c, weight, bias = best
    assert weight.shape == (n_classes, x.shape[1])
    return weight, bias, {"C": c, "heldout_cross_entropy": results}


def _soft_logistic(x: np.ndarray, soft: np.ndarray, c: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    n, k = soft.shape
    rows = np.repeat(np.arange(n), k)
    y = np.tile(np.arange(k), n)
    model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    model.fit(x[rows], y, sample_weight=soft.reshape(-1))  # a text's k rows weigh 1 in all
    if k == 2:  # sklearn keeps one logit for two classes: softmax([0, z]) is sigmoid(z)
        weight = np.vstack([np.zeros_like(model.coef_[0]), model.coef_[0]])
        bias = np.array([0.0, model.intercept_[0]])
    else:
        weight, bias = model.coef_, model.intercept_
    return weight.astype(np.float64), bias.astype(np.float64)
