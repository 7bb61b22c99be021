"""One seed for every random generator a training run draws from (Python, NumPy, torch)."""

from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int) -> None:
    import torch  # here: light modules (selection, the CLI's checks) import this one before any command runs

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
