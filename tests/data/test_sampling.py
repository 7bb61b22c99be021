"""K-shot sampling is exact, deterministic per seed and varies across seeds."""

from collections import Counter

import numpy as np
import pytest

from fewtune.data import LabeledTexts, as_labeled, draw, fixed_subset, sample_k_shot
from fewtune.data.sampling import fixed_subset_indices, shot_indices
from fewtune.errors import DataError

LABELS = ["pos"] * 30 + ["neg"] * 20 + ["neutral"] * 10
# Pinned: if this changes, every reported k-shot result silently uses other examples.
PINNED_SEED_42 = [2, 20, 31, 45, 53, 54]


@pytest.mark.parametrize("k", [1, 4, 10])
def test_exactly_k_per_class(k):
    idx = sample_k_shot(LABELS, k, seed=0)
    assert idx.dtype == np.int64 and len(set(idx.tolist())) == len(idx)
    assert Counter(LABELS[i] for i in idx) == {"pos": k, "neg": k, "neutral": k}
    assert list(idx) == sorted(idx)


def test_deterministic_per_seed_and_different_across_seeds():
    first = sample_k_shot(LABELS, 4, seed=13)
    assert np.array_equal(first, sample_k_shot(list(LABELS), 4, seed=13))
    draws = {tuple(sample_k_shot(LABELS, 4, seed=s)) for s in range(5)}
    assert len(draws) == 5


def test_independent_of_label_order_of_appearance():
    # Same examples, classes first seen in a different order: sorted class order keeps the draw.
    labels = ["b", "a", "b", "a", "b", "a"]
    assert np.array_equal(sample_k_shot(labels, 2, seed=1), sample_k_shot(np.array(labels), 2, seed=1))


def test_fixed_draw_never_changes():
    assert sample_k_shot(LABELS, 2, seed=42).tolist() == PINNED_SEED_42


def test_int_labels_and_whole_class():
    labels = [0, 1, 1, 0, 2, 2]
    idx = sample_k_shot(labels, 2, seed=3)
    assert idx.tolist() == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "labels, k, expected",
    [
        (LABELS, 11, "class 'neutral' has 10 examples, fewer than the 11 shots asked for"),
        (LABELS, 25, "class 'neutral' has 10 examples, fewer than the 25 shots asked for (1 other class is short too)"),
        (LABELS, 0, "shots must be at least 1, got 0"),
        ([], 1, "no data"),
    ],
)
def test_errors(labels, k, expected):
    with pytest.raises(DataError) as err:
        sample_k_shot(labels, k, seed=0)
    assert expected in str(err.value)



def _labeled(labels) -> LabeledTexts:
    return as_labeled([f"text {i}" for i in range(len(labels))], labels)


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_draw_is_the_k_shot_draw_and_the_rest(seed):
    pool = _labeled(LABELS)
    shots, rest = draw(pool, 3, seed)
    chosen = sample_k_shot(LABELS, 3, seed)
    assert shots.texts == [pool.texts[i] for i in chosen] and shots.labels == [LABELS[i] for i in chosen]
    assert rest.texts == [pool.texts[i] for i in range(len(LABELS)) if i not in set(chosen.tolist())]
    assert len(shots) + len(rest) == len(pool)


@pytest.mark.parametrize("seed", [0, 3])
def test_draw_from_a_list_is_uniform_over_its_items(seed):
    # Texts or chats have no labels: k items of the whole pool (`train --task generate/lm`).
    pool = [f"t{i}" for i in range(20)]
    shots, rest = draw(pool, 5, seed)
    chosen = np.sort(np.random.default_rng(seed).choice(20, 5, replace=False))
    assert shots == [pool[i] for i in chosen]
    assert rest == [x for x in pool if x not in shots]
    assert shot_indices(pool, 5, seed).tolist() == chosen.tolist()


@pytest.mark.parametrize("n, limit", [(50, 10), (50, 0), (50, None), (10, 10), (5, 10)])
def test_fixed_subset_is_the_same_whatever_the_seed(n, limit):
    idx = fixed_subset_indices(n, limit)
    if limit and n > limit:
        assert idx.tolist() == np.sort(np.random.default_rng(0).choice(n, limit, replace=False)).tolist()
    else:
        assert idx.tolist() == list(range(n))
    data = _labeled([i % 3 for i in range(n)])
    kept = fixed_subset(data, limit)
    assert kept is data if not limit or n <= limit else kept.texts == [data.texts[i] for i in idx]
    assert fixed_subset(list(range(n)), limit) == idx.tolist()
