"""What a method's model is given: the texts as it reads them, and the random state it trains from.

Shared by the classifier, the selection of hyper-parameters and the posteriors, which all train or
run models on the same shots and must feed them alike.
"""

from __future__ import annotations

import random

import numpy as np


def model_texts(data, model) -> list[str]:
    if data.text_pairs is None:
        return data.texts
    # Sentence-pair tasks: one input, the two texts joined by the tokenizer's separator.
    sep = getattr(getattr(getattr(model, "body", None), "tokenizer", None), "sep_token", None) or "\n"
    return [f"{a} {sep} {b}" for a, b in zip(data.texts, data.text_pairs)]


def seed_everything(seed: int) -> None:
    import torch  # here: the CLI imports fewtune.selection, and with it this module, before any command runs

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
