"""The strength of the pull toward the pretrained weights, from the marginal likelihood.

Fine-tuning with L2-SP is MAP inference under the prior θ ~ N(θ₀, λ⁻¹I) on the encoder's weights.
Which λ the shots support is a question for the evidence p(y | λ), not for a dev set the user does
not have. Its Laplace approximation at the MAP θ* (MacKay 1992; Immer et al. 2021) is

    log p(y | λ) ≈ log p(y | θ*) − λ/2·‖θ* − θ₀‖² − ½ Σⱼ log(1 + hⱼ/λ)

with h the diagonal of the generalised Gauss-Newton matrix Jᵀ Λ J of the negative log-likelihood
(J the Jacobian of the logits, Λᵢ = diag(pᵢ) − pᵢpᵢᵀ for a softmax): the fit, minus the price of
moving from θ₀, minus an Occam factor that grows with every direction the data pins down. The
diagonal is what laplace-torch's DiagLaplace uses at this size (the full P × P matrix of a 22M-weight
encoder is out of reach). By Hadamard's inequality Σⱼ log(hⱼ + λ) ≥ log det(H + λI), so the diagonal
overstates the Occam factor, most for small λ: the chosen λ errs on the strong side, toward the
pretrained model, the safe side with a handful of examples.

hⱼ = Σᵢ Σ_c p_ic (∂f_ic/∂θⱼ)² − (Σ_c p_ic ∂f_ic/∂θⱼ)², one backward pass per example and class:
n·C passes, a few seconds for 40 shots on MiniLM. The head is held at its trained value (its
weights are not under the encoder's prior), so this is the evidence for λ given the head.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

# Strengths tried by select="evidence" for the encoder's L2-SP prior, a decade apart: the evidence is
# flat on a finer scale than a few shots can resolve. Below 1 the Occam factor dominates at a few
# dozen shots (mr, 8 per class: log evidence −288 at 0.1, −34 at 1, −5 at 100); λ = 0 is not there
# at all: a flat prior has no evidence.
L2SP_EVIDENCE_GRID = (1.0, 10.0, 100.0, 1000.0)


def diag_ggn(logits_of: Callable[[int], torch.Tensor], n: int, params: Sequence[torch.Tensor],
             progress=None) -> list[torch.Tensor]:
    """The diagonal of Σᵢ Jᵢᵀ Λᵢ Jᵢ over `params`, for a softmax on the logits of example i.

    logits_of(i) -> the C logits of example i, computed with gradients (dropout off).
    """
    h = [torch.zeros_like(t, dtype=torch.float32) for t in params]
    task = progress.add("Evidence: curvature of the likelihood", total=n) if progress else None
    for i in range(n):
        logits = logits_of(i).reshape(-1)
        probs = torch.softmax(logits.detach().float(), dim=0)
        grads = []
        for c in range(len(logits)):
            g = torch.autograd.grad(logits[c], params, retain_graph=c < len(logits) - 1, allow_unused=True)
            grads.append([torch.zeros_like(t) if gt is None else gt.float() for gt, t in zip(g, params)])
        for j in range(len(params)):
            mean = sum(probs[c] * grads[c][j] for c in range(len(grads)))
            h[j] += sum(probs[c] * grads[c][j] ** 2 for c in range(len(grads))) - mean ** 2
        if progress:
            progress.advance(task)
    return [t.clamp_(min=0.0) for t in h]  # round-off can leave tiny negatives


def log_evidence(log_likelihood: float, squared_distance: float, h: Sequence[torch.Tensor], precision: float) -> dict:
    """The Laplace evidence for the prior N(θ₀, precision⁻¹I) against the summed log-likelihood, and its parts.

    A loss of mean cross-entropy + λ/2‖θ−θ₀‖² over n examples is that MAP with precision n·λ.
    """
    if not precision > 0:
        raise ValueError("the evidence needs a proper prior: the precision must be positive")
    occam = 0.5 * sum(float(torch.log1p(t.double() / precision).sum()) for t in h)
    penalty = 0.5 * precision * squared_distance
    return {
        "prior_precision": precision,
        "log_evidence": round(log_likelihood - penalty - occam, 4),
        "log_likelihood": round(log_likelihood, 4),
        "prior_penalty": round(penalty, 4),
        "occam": round(occam, 4),
        "distance_from_pretrained": round(math.sqrt(squared_distance), 6),
        # MacKay's effective number of parameters: the directions the data determines.
        "effective_parameters": round(sum(float((t.double() / (t.double() + precision)).sum()) for t in h), 2),
    }
