"""Fold loops (head_c=0's fold bodies, a calibration's fold models, --select cv's and auto's): giving back the
memory of a model that is done with while the next one trains, and loading what no fold model trains (a frozen
encoder, a frozen causal LM and its label-word scores) once for all of them."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any


class _Loops(threading.local):
    """Per thread, as two threads training at once run loops of their own (the freeze is the process's: a thread
    freezes only where nothing is frozen, so another's loop at worst walks everything, as before)."""
    depth = 0  # fold loops nest (--select cv's members calibrate, head_c=0 trains fold bodies)
    shared: dict[Hashable, Any]  # what the outermost running loop's models share, by shared_in_fold_loop's key

    def __init__(self):
        self.shared = {}


_loops = _Loops()


@contextmanager
def fold_models() -> Iterator[Callable[[], None]]:
    """Around a loop that trains one model after another: gives `finished()`, to call once a model is dropped.

    Each fold model (head_c=0's fold bodies, the fold models of a calibration, of --select cv and of auto) must be
    gone before the next trains (setfit's default at K = 8, 128 tokens: peak 2.34 -> 1.95 GB on mr, 3.46 -> 2.63 GB
    on bbc; benchmarks/README.md "head_c_memory"). A loaded encoder goes with its last reference
    (backbones/card_link.py); `finished()` collects whatever else a model leaves in reference cycles. A full
    collection walks every object torch and transformers made at import, 0.25 s each time, so what was there
    before the loop is frozen out of the walk: `finished()` visits only what the loop made, and one full
    collection at the end frees anything older that was dropped meanwhile ("fold_collection")."""
    # Someone else's freeze would be undone by our unfreeze: then every call is a plain full collection.
    freeze = _loops.depth == 0 and gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    _loops.depth += 1
    try:
        yield gc.collect
    finally:
        _loops.depth -= 1
        if _loops.depth == 0:
            _loops.shared.clear()
        if freeze:
            gc.unfreeze()
            gc.collect()


def shared_in_fold_loop(key: Hashable, load: Callable[[], Any]) -> Any:
    """load(), once per fold loop and key: inside fold_models() every later call with the same key gets the first
    one's result; outside, a fresh load() each time. For what no fold model changes: a frozen body (linear-probe's
    me5-small takes 0.75 s to load and 0.2 s to free, more than its fit on 16 shots), a frozen causal LM and the
    label-word scores it gives the shots (zero-shot's template search scores them again in every fold model)."""
    if _loops.depth == 0:
        return load()
    if key not in _loops.shared:
        _loops.shared[key] = load()
    return _loops.shared[key]
