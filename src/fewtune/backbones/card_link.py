"""A SentenceTransformer and its model card hold each other; fewtune holds the card's side weakly."""

from __future__ import annotations

import functools
import weakref


def weak_card_link(model):
    """`model`, its `model_card_data.model` made a weak reference to it.

    Each holding the other is a reference cycle, so a dropped model's weights (470 MB for me5-small) waited for
    Python's full collection, which comes only dozens of models later: 8 linear-probe fits in a loop took a
    process to 3.1 GB, against 0.9 GB held weakly (benchmarks/README.md "loop_memory"), the weights going when the
    model's last user drops it. The card still sees its model while the model lives, which is whenever
    sentence-transformers asks (a model card, its trainer); copies and pickles keep the link to their own model.
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

    def get(self):
        ref = vars(self).get("_model_ref")
        return ref() if ref is not None else None

    def put(self, model) -> None:
        vars(self)["_model_ref"] = None if model is None else weakref.ref(model)

    def reduce(self, protocol=None):
        # Rebuilt from card_class by name (this class is made at run time), the model in the state as a strong
        # reference for the copy or pickle to follow, made weak again by __setstate__.
        state = {k: v for k, v in vars(self).items() if k != "_model_ref"}
        return _new_card, (card_class,), {**state, "model": self.model}

    def setstate(self, state: dict) -> None:
        state = dict(state)
        held = state.pop("model", None)
        vars(self).update(state)
        self.model = held

    return type(card_class.__name__, (card_class,), {
        "model": property(get, put), "__reduce_ex__": reduce, "__setstate__": setstate,
        "__module__": card_class.__module__, "__qualname__": card_class.__qualname__})


def _new_card(card_class: type):
    """An empty card of card_class that holds its model weakly, for copy and pickle to fill."""
    return object.__new__(_weakly_holding(card_class))
