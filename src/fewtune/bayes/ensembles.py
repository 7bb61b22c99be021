"""Two sample-based approximations of the posterior predictive, the alternatives to Laplace.

- Deep ensembles over seeds (Lakshminarayanan et al. 2017): M models trained on the same shots
  from different seeds (different contrastive batches, head initialisations, dropout masks); the
  predictive is the average of their probabilities — a Bayesian model average over M modes of the
  posterior (Wilson & Izmailov 2020). Costs M trainings and M forward passes.
- MC dropout (Gal & Ghahramani 2016): one trained model, dropout left on at prediction time; the
  average over T masked forward passes approximates the predictive of a variational posterior.
  Costs T forward passes, no extra training.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from ..errors import FewtuneError

DEFAULT_MEMBERS = 5
DEFAULT_DROPOUT_SAMPLES = 20


def member_samples(members, texts: list[str], *, progress=None) -> np.ndarray:
    """Each member's probabilities, stacked (members, texts, classes); their mean is the predictive."""
    return np.stack([m.predict_proba(texts, progress=progress) for m in members])


def dropout_layers(method) -> list[torch.nn.Dropout]:
    """The dropout layers of every torch module the method holds (its body and its head)."""
    # `body` by name too: a loaded encoder method holds a plain encoder until its body is read (that read loads
    # the real one, whose dropout is sampled); each module once, however many names it has.
    held = [*vars(method).values(), getattr(method, "body", None)]
    modules = {id(v): v for v in held if isinstance(v, torch.nn.Module)}.values()
    return [m for module in modules for m in module.modules() if isinstance(m, torch.nn.Dropout)]


@contextlib.contextmanager
def dropout_on(layers: list[torch.nn.Dropout]):
    """Dropout applied by these layers even in eval mode.

    A forward hook drops units from the layer's output (in eval mode the layer passes its input
    through unchanged), so code that calls `model.eval()` before encoding, as sentence encoders'
    batch encoders do, cannot switch the sampling off, and nothing else goes to training mode.
    """
    def drop(module, args, out):
        return out if module.training else torch.nn.functional.dropout(out, module.p, True)

    handles = [m.register_forward_hook(drop) for m in layers]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def sampled_dropout_layers(method) -> list[torch.nn.Dropout]:
    """The dropout layers MC dropout samples (rate above 0); a clear error when there are none."""
    layers = [m for m in dropout_layers(method) if m.p > 0]
    if not layers:
        raise FewtuneError(f"method '{method.name}' on this backbone has no dropout to sample; "
                           "posterior='mc-dropout' needs a backbone built with dropout")
    return layers


def mc_dropout_samples(method, texts: list[str], *, samples: int, seed: int, progress=None) -> np.ndarray:
    """`samples` predictions with dropout on, stacked (samples, texts, classes); the masks come from
    `seed`, so the same texts in the same order give the same probabilities every time."""
    layers = sampled_dropout_layers(method)
    with torch.random.fork_rng(), dropout_on(layers):
        torch.manual_seed(seed)
        return np.stack([method.predict_proba(texts, progress=progress) for _ in range(samples)])
