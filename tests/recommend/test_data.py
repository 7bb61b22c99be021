"""Recommendation data, the cold-start protocol and the metrics, checked against hand-computed values."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from fewtune.errors import DataError, FewtuneError
from fewtune.numeric import mean_std
from fewtune.recommend.data import (LikeScale, choose_known, cold_start_users, from_triples, item_text, read_atomic,
                                    split_users, user_history)
from fewtune.recommend.metrics import ndcg_at_k, recall_at_k, user_auc


def small():
    # u1 rates 8 items (5 likes, 2 dislikes, 1 neutral); u2 rates 3; u3 rates 6.
    rows = [("u1", f"i{i}", r) for i, r in enumerate([5, 4, 4, 5, 5, 1, 2, 3])]
    rows += [("u2", "i0", 5), ("u2", "i1", 1), ("u2", "i2", 4)]
    rows += [("u3", f"i{i}", r) for i, r in enumerate([1, 2, 5, 4, 1, 5])]
    users, items, ratings = zip(*rows)
    return from_triples(users, items, ratings, [f"i{i}" for i in range(10)], [f"item {i}" for i in range(10)])


def test_metrics_match_hand_computed_values():
    # Likes scored 0.9, 0.4; dislikes 0.5, 0.1: of the 4 (like, dislike) pairs 3 are ordered right.
    assert user_auc(np.array([1, 1, -1, -1, 0]), np.array([0.9, 0.4, 0.5, 0.1, 0.99])) == pytest.approx(0.75)
    assert user_auc(np.array([1, 1]), np.array([0.2, 0.3])) is None
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    relevant = np.array([False, True, False, True])
    # Hits at ranks 2 and 4: DCG = 1/log2(3) + 1/log2(5); ideal = 1 + 1/log2(3).
    expected = (1 / np.log2(3) + 1 / np.log2(5)) / (1 + 1 / np.log2(3))
    assert ndcg_at_k(scores, relevant, k=10) == pytest.approx(expected)
    assert ndcg_at_k(scores, relevant, k=1) == 0.0
    assert recall_at_k(scores, relevant, k=2) == pytest.approx(0.5)  # 1 hit of min(2, 2)
    assert recall_at_k(scores, relevant, k=10) == 1.0
    assert recall_at_k(scores, np.zeros(4, bool)) is None
    # The summary's mean ± std over seeds: a run without a value (None) is left out.
    assert mean_std([0.5, 0.7, None]) == (pytest.approx(0.6), pytest.approx(np.std([0.5, 0.7], ddof=1)))


def test_like_scale_labels_and_validation():
    np.testing.assert_array_equal(LikeScale().labels(np.array([1, 2, 3, 4, 5])), [-1, -1, 0, 1, 1])
    np.testing.assert_array_equal(LikeScale(like=5, dislike=3).labels(np.array([3, 4, 5])), [-1, 0, 1])
    with pytest.raises(FewtuneError, match="must be below"):
        LikeScale(like=3, dislike=3)


def test_bad_ratings_name_the_row_and_item():
    with pytest.raises(DataError, match=r"rating 2: item 'x9' is not in the item table"):
        from_triples(["a", "a"], ["i0", "x9"], [5, 4], ["i0", "i1"], ["t0", "t1"], source="r.csv")
    with pytest.raises(DataError, match=r"r.csv, rating 2: rating 'five' is not a number"):
        from_triples(["a", "a"], ["i0", "i1"], [5, "five"], source="r.csv")
    with pytest.raises(DataError, match="item id 'i0' appears twice"):
        from_triples(["a"], ["i0"], [5], ["i0", "i0"], ["t", "t"])


def test_duplicate_ratings_keep_the_last():
    data = from_triples(["a", "a", "b"], ["i0", "i0", "i0"], [1, 5, 2])
    assert data.n_ratings == 2
    assert sorted(data.rating.tolist()) == [2.0, 5.0]


def test_user_split_is_disjoint_complete_and_seeded():
    data = small()
    train, test = split_users(data, 0.34, seed=0)
    assert len(test) == 1 and len(train) == 2
    assert sorted(np.concatenate([train, test]).tolist()) == [0, 1, 2]
    assert [split_users(data, 0.34, seed=s)[1].tolist() for s in range(6)] != [test.tolist()] * 6


def test_cold_start_users_reveal_k_labels_and_hold_out_the_rest():
    data = small()
    tasks, skipped = cold_start_users(data, np.arange(3), k=2, seed=0, min_heldout=4)
    assert skipped == 1  # u2 has only 3 liked/disliked ratings
    for t in tasks:
        items, ratings = data.ratings_of(t.user)
        assert len(t.known_items) == 2 and set(t.known_labels.tolist()) <= {-1, 1}
        assert not set(t.known_items) & set(t.heldout_items)
        assert set(t.known_items) | set(t.heldout_items) == set(items)
    # Without balancing, the K=2 history is the start of the K=3 one (same draw per seed and user).
    more, _ = cold_start_users(data, np.arange(3), k=3, seed=0, min_heldout=1)
    assert more[0].known_items[:2].tolist() == tasks[0].known_items.tolist()
    with pytest.raises(FewtuneError, match="no test user has K \\+ 4 = 12"):
        cold_start_users(data, np.arange(3), k=8, seed=0)


def test_balanced_draw_takes_both_classes_and_fills_a_shortfall():
    rng = np.random.default_rng(0)
    labels = np.array([1, 1, 1, 1, 1, -1])
    picked = labels[choose_known(labels, 4, rng, balanced=True)]
    assert sorted(picked.tolist()) == [-1, 1, 1, 1]  # one dislike exists; the rest are likes


def test_user_history_errors_when_the_user_has_fewer_than_k():
    data = small()
    items, labels = user_history(data, "u1", 4, seed=1)
    assert len(items) == 4
    with pytest.raises(DataError, match=r"user 'u2' has 3 liked or disliked ratings, fewer than K=4"):
        user_history(data, "u2", 4)
    with pytest.raises(DataError, match="no user 'nobody'"):
        user_history(data, "nobody", 1)


def test_item_text_and_atomic_file_errors(tmp_path):
    assert item_text("Toy Story", "1995", "Animation Children's Comedy") == "Toy Story (1995) — Animation, Children's, Comedy"
    assert item_text("unkonwn", "unkonwn", "unknown") == "unkonwn"
    assert item_text("Heat", "1995.0", "Action") == "Heat (1995) — Action"
    bad = tmp_path / "x.item"
    bad.write_text("item_id:token\tname:token\n1\tA\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"x.item: missing field\(s\) movie_title"):
        read_atomic(bad, ["item_id", "movie_title"])
    with pytest.raises(DataError, match="no such file"):
        read_atomic(tmp_path / "missing.inter", ["user_id"])


@pytest.mark.skipif(importlib.util.find_spec("recbole") is None, reason="recbole (MovieLens-100k) is not installed")
def test_movielens_100k_loads_and_popularity_is_scored():
    from fewtune.recommend.data import train_set
    from fewtune.recommend.methods import build_recommender
    from fewtune.recommend.data import load_movielens
    from fewtune.recommend.evaluate import evaluate

    data = load_movielens("ml-100k")
    assert (data.n_users, data.n_items, data.n_ratings) == (943, 1682, 100000)
    assert data.item_texts[0] == "Toy Story (1995) — Animation, Children's, Comedy"
    train, test = split_users(data, 0.2, seed=0)
    scale = LikeScale()
    model = build_recommender("popularity")
    model.fit(train_set(data, train, scale), seed=0)
    tasks, _ = cold_start_users(data, test, 4, seed=0)
    result = evaluate(model, tasks[:60], scale, data.n_items, n_unrated=50)
    # Popular films are liked more often: popularity orders a user's likes above dislikes well beyond chance.
    assert 0.6 < result["auc"] < 0.9
    assert 0 < result["ndcg@10"] <= 1
