"""The strength of the pull toward the pretrained weights, from the marginal likelihood.

Fine-tuning with L2-SP is MAP inference under the prior θ ~ N(θ₀, τ⁻¹I) on the encoder's weights.
Which τ the shots support is a question for the evidence p(y | τ), not for a dev set the user does
not have. Its Laplace approximation at the MAP θ* (MacKay 1992; Immer et al. 2021) is

    log p(y | τ) ≈ log p(y | θ*) − τ/2·‖θ* − θ₀‖² − ½ log det(I + H/τ)

with H = Σᵢ Jᵢᵀ Λᵢ Jᵢ the generalised Gauss-Newton matrix of the negative log-likelihood (Jᵢ the
Jacobian of example i's logits, Λᵢ = diag(pᵢ) − pᵢpᵢᵀ for a softmax): the fit, minus the price of
moving from θ₀, minus an Occam factor for every direction the data pins down.

H is P × P with P ≈ 11M for MiniLM, far out of reach, but it is a sum of n·(C−1) outer products: with
Λᵢ = Σₖ eₖuₖuₖᵀ (the C−1 non-zero eigenpairs), H = VVᵀ with one column √eₖ·Jᵢᵀuₖ per example and
eigenpair, so H's non-zero eigenvalues are those of the small Gram matrix VᵀV (the empirical neural
tangent kernel, weighted by Λ) and log det(I + H/τ) = Σᵣ log(1 + σᵣ/τ) exactly: the same trick as the
head's posterior (fewtune.bayes.laplace), in weight space. laplace-torch's diagonal or K-FAC
approximations would have to estimate what here can be computed, and the diagonal overstates the
Occam factor (Hadamard's inequality): on mr at 8 shots it counted 61 "effective parameters" for
16 labels, which can determine at most 16.

The columns are gradients, one backward pass each (n·(C−1) passes: 16 for binary 8-shot, 160 for 40
BBC texts); they are held in float32 in groups of parameters small enough for `memory_bytes`, each
group's Gram block added up, so memory stays bounded whatever the number of shots (more groups
cost more passes). The head is held at its trained value (its weights are not under the encoder's
prior), so this is the evidence for τ given the head.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

# Strengths tried by select="evidence" for the encoder's L2-SP prior, a decade apart: the evidence is
# flat on a finer scale than a few shots can resolve. Below 1 the Occam factor dominates at a few
# dozen shots (mr, 8 per class, seed 0: log evidence −27.6 at 0.1, −12.9 at 1, −6.4 at 10, −4.9 at
# 100); λ = 0 is not there at all: a flat prior has no evidence.
L2SP_EVIDENCE_GRID = (1.0, 10.0, 100.0, 1000.0)


def ggn_eigenvalues(logits_of: Callable[[int], torch.Tensor], n: int, params: Sequence[torch.Tensor], *,
                    memory_bytes: float = 1.5 * 2 ** 30, progress=None) -> np.ndarray:
    """The non-zero eigenvalues of H = Σᵢ Jᵢᵀ Λᵢ Jᵢ over `params`, softmax on the logits of n examples.

    logits_of(i) -> the C logits of example i, computed with gradients (dropout off).
    """
    params = list(params)
    with torch.no_grad():
        probs = np.stack([torch.softmax(logits_of(i).reshape(-1).double(), 0).cpu().numpy() for i in range(n)])
    c = probs.shape[1]
    # Λᵢ's eigenpairs; the one for the all-ones direction has eigenvalue 0 (softmax is shift-invariant).
    factors = []
    for p in probs:
        vals, vecs = np.linalg.eigh(np.diag(p) - np.outer(p, p))
        order = np.argsort(vals)[::-1][:c - 1]
        factors.append(torch.from_numpy(vecs[:, order] * np.sqrt(np.clip(vals[order], 0, None))).float())
    rows = n * (c - 1)
    groups = _groups([t.numel() for t in params], max(1, int(memory_bytes // (4 * rows))))
    gram = torch.zeros(rows, rows, dtype=torch.float64)
    task = progress.add("Evidence: curvature of the likelihood", total=len(groups) * n) if progress else None
    for group in groups:
        tensors = [params[j] for j in group]
        block = torch.empty(rows, sum(t.numel() for t in tensors))
        for i in range(n):
            logits = logits_of(i).reshape(-1)
            weights = factors[i].to(logits.device)
            for k in range(c - 1):
                grads = torch.autograd.grad(logits.float() @ weights[:, k], tensors, retain_graph=k < c - 2,
                                            allow_unused=True)
                block[i * (c - 1) + k] = torch.cat([(torch.zeros_like(t) if g is None else g).reshape(-1).float().cpu()
                                                    for g, t in zip(grads, tensors)])
            if progress:
                progress.advance(task)
        gram += (block @ block.T).double()
        del block
    return np.clip(np.linalg.eigvalsh(gram.numpy()), 0.0, None)


def _groups(sizes: list[int], budget: int) -> list[list[int]]:
    """Consecutive parameter tensors in groups of at most `budget` numbers (a larger tensor alone)."""
    groups, current, total = [], [], 0
    for j, size in enumerate(sizes):
        if current and total + size > budget:
            groups.append(current)
            current, total = [], 0
        current.append(j)
        total += size
    return [*groups, current] if current else groups


def log_evidence(log_likelihood: float, squared_distance: float, eigenvalues: np.ndarray, precision: float) -> dict:
    """The Laplace evidence for the prior N(θ₀, precision⁻¹I) against the summed log-likelihood, and its parts.

    eigenvalues: H's non-zero eigenvalues. A loss of mean cross-entropy + λ/2‖θ−θ₀‖² over n examples
    is the MAP with precision n·λ.
    """
    if not precision > 0:
        raise ValueError("the evidence needs a proper prior: the precision must be positive")
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    occam = 0.5 * float(np.log1p(eigenvalues / precision).sum())
    penalty = 0.5 * precision * squared_distance
    return {
        "prior_precision": precision,
        "log_evidence": round(log_likelihood - penalty - occam, 4),
        "log_likelihood": round(log_likelihood, 4),
        "prior_penalty": round(penalty, 4),
        "occam": round(occam, 4),
        "distance_from_pretrained": round(math.sqrt(squared_distance), 6),
        # MacKay's effective number of parameters: the directions the data determines (at most n·(C−1)).
        "effective_parameters": round(float((eigenvalues / (eigenvalues + precision)).sum()), 2),
    }
