"""TALLRec's protocol: time-ordered samples, the sample budget, the AUC and its bootstrap interval."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fewtune.errors import DataError, FewtuneError
from fewtune.recommend import from_triples
from fewtune.recommend.methods import build_recommender
from fewtune.recommend.metrics import rank_auc
from fewtune.recommend.tallrec_protocol import auc_interval, budget_train_set, draw_budget, time_ordered_samples
from tests.helpers.ratings import synthetic


def _timed():
    # User a rated i0..i4 at times 5,1,4,2,3 (file order is not time order); b rated two items.
    return from_triples(["a"] * 5 + ["b", "b"], ["i0", "i1", "i2", "i3", "i4", "i0", "i1"], [5, 1, 4, 2, 3, 4, 4],
                        ["i0", "i1", "i2", "i3", "i4"], ["t0", "t1", "t2", "t3", "t4"],
                        timestamps=[5, 1, 4, 2, 3, 9, 8])


def test_samples_follow_time_order_and_label_ratings_above_three():
    data = _timed()
    a = int(np.flatnonzero(data.user_ids == "a")[0])
    samples = time_ordered_samples(data, np.array([a]), history=2)
    # In time: i1(1) i3(2) i4(3) i2(4) i0(5): three targets, each after the two ratings before it.
    assert [data.item_ids[s.target] for s in samples] == ["i4", "i2", "i0"]
    assert [list(data.item_ids[s.history]) for s in samples] == [["i1", "i3"], ["i3", "i4"], ["i4", "i2"]]
    assert [s.label for s in samples] == [-1, 1, 1]  # 3 is not above 3; 4 and 5 are
    assert [s.history_labels.tolist() for s in samples] == [[-1, -1], [-1, -1], [-1, 1]]


def test_samples_need_timestamps_and_bad_timestamps_name_the_row():
    data = from_triples(["a", "a"], ["i0", "i1"], [5, 1])
    with pytest.raises(FewtuneError, match="no timestamps"):
        time_ordered_samples(data, np.array([0]))
    with pytest.raises(DataError, match="rating 2: timestamp 'soon' is not a number"):
        from_triples(["a", "a"], ["i0", "i1"], [5, 1], timestamps=[1, "soon"], source="r.csv")


def test_the_budget_holds_only_the_samples_ratings_and_draws_are_nested():
    data = _timed()
    pool = time_ordered_samples(data, np.arange(data.n_users), history=2)
    budget = draw_budget(pool, 2, seed=3)
    train = budget_train_set(budget, data.n_items, data.item_texts)
    held = {(s.user, int(i), int(lab)) for s in budget
            for i, lab in zip(list(s.history) + [s.target], list(s.history_labels) + [s.label])}
    assert train.labels.nnz == len({(u, i) for u, i, _ in held}) <= 2 * 3
    assert train.samples == budget
    assert draw_budget(pool, 3, seed=3)[:2] == budget  # the seed's first 2 are among its first 3
    with pytest.raises(FewtuneError, match="only 3 samples"):
        draw_budget(pool, 4, seed=0)


def test_rank_auc_matches_sklearn_and_the_interval_holds_it():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.55
    scores = y * 0.8 + rng.standard_normal(300)
    scores[:40] = np.round(scores[:40])  # ties are counted half, as sklearn does
    auc = float(rank_auc(y, scores)[0])
    assert auc == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    lo, hi = auc_interval(y, scores, resamples=300)
    assert lo < auc < hi and hi - lo < 0.2
    # Two seeds' scores: the interval is of their mean AUC, each resample the same for both rows.
    assert auc_interval(y, np.vstack([scores, scores]), resamples=300) == pytest.approx((lo, hi))
    lo2, hi2 = auc_interval(y, np.vstack([scores, rng.standard_normal(300)]), resamples=300)
    assert lo2 < (auc + 0.5) / 2 < hi2 < hi


def test_the_bayes_method_learns_from_a_budget_of_samples():
    data, features = synthetic(0)
    data.timestamp = np.arange(data.n_ratings, dtype=np.float64)[::-1].copy()  # any order in time will do
    users = np.arange(data.n_users)
    pool = time_ordered_samples(data, users[:120], history=10, like_above=3)
    test = time_ordered_samples(data, users[120:], history=10, like_above=3)
    y = np.array([s.label > 0 for s in test])
    budget = draw_budget(pool, 64, seed=0)
    aucs = {}
    train = budget_train_set(budget, data.n_items, data.item_texts)
    noise = np.random.default_rng(1).standard_normal((len(features), 4))
    for name, params, options in (("popularity", {}, {}),
                                  ("bayes", {"components": 8}, {"embeddings": np.hstack([features, noise])})):
        model = build_recommender(name, params)
        model.fit(train, seed=0, **options)
        aucs[name] = float(rank_auc(y, model.score_samples(test))[0])
    # Tastes follow the item texts: the per-user posterior on them beats item popularity from 64 samples.
    assert aucs["bayes"] > 0.7 and aucs["bayes"] > aucs["popularity"] + 0.1


@pytest.mark.skipif(importlib.util.find_spec("recbole") is None, reason="recbole (MovieLens-100k) is not installed")
def test_movielens_keeps_timestamps_for_tallrecs_samples():
    from fewtune.recommend.data import load_movielens

    data = load_movielens("ml-100k")
    assert data.timestamp is not None and len(data.timestamp) == data.n_ratings
    samples = time_ordered_samples(data, np.arange(data.n_users))
    assert len(samples) == data.n_ratings - 10 * data.n_users  # every user has at least 20 ratings
    first = samples[0]
    items, _ = data.ratings_of(first.user)
    times = {int(i): t for i, t in zip(data.item[data.user == first.user], data.timestamp[data.user == first.user])}
    assert all(times[int(a)] <= times[int(b)] for a, b in zip(first.history[:-1], first.history[1:]))
    assert times[int(first.history[-1])] <= times[first.target]


def test_bayes_chooses_its_components_by_cross_validation_over_users():
    data, features = synthetic(0)
    data.timestamp = np.arange(data.n_ratings, dtype=np.float64)
    pool = time_ordered_samples(data, np.arange(120), history=10, like_above=3)
    train = budget_train_set(draw_budget(pool, 64, seed=0), data.n_items, data.item_texts)
    noise = np.random.default_rng(1).standard_normal((len(features), 28))
    model = build_recommender("bayes", {"components": 0})
    info = model.fit(train, seed=0, embeddings=np.hstack([features, noise]))
    table = info["components_cv"]
    assert set(table) == {"2", "4", "8", "16", "32"}
    assert info["components_chosen"] == min((2, 4, 8, 16, 32), key=lambda r: table[str(r)])
    assert model.item_z_.shape[1] == info["components_chosen"]
    # 64 users' ratings cannot pin down a prior over 32 directions, 28 of them noise: fewer are chosen.
    assert info["components_chosen"] < 32
