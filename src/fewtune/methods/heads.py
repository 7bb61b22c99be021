"""A linear classification head stored as tensors, so a saved model never needs pickle.

scikit-learn fits the logistic regression (it is fast and well tested on tiny data); the result is
copied into a weight matrix and bias so that predict_proba is softmax(x·Wᵀ + b) — exactly
scikit-learn's probabilities — and saves as safetensors.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression


class LinearHead:
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        self.weight = weight.detach().to(torch.float32).cpu()
        self.bias = bias.detach().to(torch.float32).cpu()

    @classmethod
    def fit_logistic(
        cls, x: np.ndarray, y: np.ndarray, n_classes: int, *, c: float = 1.0, class_weight=None, seed: int = 0
    ) -> LinearHead:
        lr = LogisticRegression(C=c, max_iter=2000, class_weight=class_weight, random_state=seed)
        lr.fit(x, y)
        coef = np.asarray(lr.coef_, dtype=np.float64)
        intercept = np.asarray(lr.intercept_, dtype=np.float64)
        if n_classes == 2:
            # Binary logistic regression has one logit z; softmax([0, z]) == [1 - σ(z), σ(z)].
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.concatenate([[0.0], intercept])
        return cls(torch.from_numpy(coef), torch.from_numpy(intercept))

    def logits(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float32).cpu()
        return x @ self.weight.T + self.bias

    def predict_proba(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        # float64 softmax so that rows sum to 1 to within 1e-12, not float32's 1e-7.
        return torch.softmax(self.logits(x).double(), dim=-1).numpy()

    def state_dict(self, prefix: str = "head.") -> dict[str, torch.Tensor]:
        return {prefix + "weight": self.weight.contiguous(), prefix + "bias": self.bias.contiguous()}

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor], prefix: str = "head.") -> LinearHead:
        return cls(tensors[prefix + "weight"], tensors[prefix + "bias"])
