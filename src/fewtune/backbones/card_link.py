"""A SentenceTransformer and its model card hold each other; fewtune holds the card's side weakly."""

from __future__ import annotations

import functools
import weakref


def weak_card_link(model):
    """`model`, its `model_card_data.model` made a weak reference to it.

    Each holding the other is a reference cycle, so a dropped model's weights (470 MB for me5-small) waited for
    Python's full collection, which comes only dozens of models later: 8 linear-probe fits in a loop grew a
    process from 0.9 to 3.3 GB. Held weakly, the weights go when the model's last user drops it. The card still
    sees its model while the model lives, which is whenever sentence-transformers asks (a model card, its trainer).
    """
    card = getattr(model, "model_card_data", None)
    if card is not None and "model" in vars(card):
        held = vars(card).pop("model")
        card.__class__ = _weakly_holding(type(card))
        card.model = held
    return model


@functools.cache
def _weakly_holding(card_class: type) -> type:
    """card_class with `model` kept as a weak reference (None once the model is gone)."""
    if "_model_ref" in getattr(card_class, "__dict__", {}):
        return card_class

    def get(self):
        ref = vars(self).get("_model_ref")
        return ref() if ref is not None else None

    def put(self, model) -> None:
        vars(self)["_model_ref"] = None if model is None else weakref.ref(model)

    return type(card_class.__name__, (card_class,), {
        "model": property(get, put), "_model_ref": None, "__module__": card_class.__module__,
        "__qualname__": card_class.__qualname__})
