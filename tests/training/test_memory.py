"""fold_models: each fold model freed as soon as it is done, without walking the objects made before the loop."""

import gc
import weakref

import pytest

from fewtune.training.memory import fold_models, shared_in_fold_loop


class Node:
    """Stands for a trained body: an object only a collection can free, as it refers to itself."""

    def __init__(self):
        self.me = self


def dropped_cycle() -> weakref.ref:
    """A weak reference to a model just dropped: alive until a collection visits it."""
    ref = weakref.ref(Node())
    assert ref() is not None  # a cycle: reference counting alone does not free it
    return ref


def test_a_model_dropped_in_the_loop_is_freed_by_finished_and_the_older_objects_are_frozen(no_automatic_collection):
    with fold_models() as finished:
        assert gc.get_freeze_count() > 0  # what existed before the loop is out of the walk
        ref = dropped_cycle()
        finished()
        assert ref() is None
    assert gc.get_freeze_count() == 0


def test_what_was_older_than_the_loop_and_dropped_in_it_is_freed_when_the_loop_ends(no_automatic_collection):
    older = Node()
    ref = weakref.ref(older)
    with fold_models() as finished:
        del older
        finished()
        assert ref() is not None  # frozen: the per-model collections do not visit it
    assert ref() is None


def test_nested_loops_keep_the_outer_freeze_and_an_error_still_unfreezes(no_automatic_collection):
    with fold_models():
        with fold_models() as inner:
            ref = dropped_cycle()
            inner()
            assert ref() is None
        # The inner loop did not undo the outer's freeze (the count itself falls as frozen objects die).
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), fold_models():
        raise RuntimeError("a fold model failed")
    assert gc.get_freeze_count() == 0


def test_a_freeze_made_by_someone_else_is_left_as_it_was(no_automatic_collection):
    gc.freeze()
    with fold_models() as finished:
        ref = dropped_cycle()
        finished()
        assert ref() is None
    assert gc.get_freeze_count() > 0  # still frozen: an unfreeze would have left none


def test_what_a_fold_loop_shares_is_loaded_once_in_it_and_afresh_outside_it():
    loads = []

    def load():
        loads.append(object())
        return loads[-1]

    assert shared_in_fold_loop("body", load) is not shared_in_fold_loop("body", load)  # outside: each its own
    with fold_models():
        first = shared_in_fold_loop("body", load)
        with fold_models():  # a nested loop shares the outer one's
            assert shared_in_fold_loop("body", load) is first
        assert shared_in_fold_loop("body", load) is first
        assert shared_in_fold_loop("another", load) is not first
    assert len(loads) == 4
    with fold_models():  # the next loop loads its own
        assert shared_in_fold_loop("body", load) is not first
    assert len(loads) == 5


def test_another_threads_loop_shares_nothing_with_this_ones():
    import threading

    seen = []
    with fold_models():
        mine = shared_in_fold_loop("body", object)
        thread = threading.Thread(target=lambda: seen.append(shared_in_fold_loop("body", object)))
        thread.start()
        thread.join()
        assert seen[0] is not mine  # outside any loop of its own: a fresh load
        assert shared_in_fold_loop("body", object) is mine
