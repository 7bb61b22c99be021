"""TALLRec on a tiny random causal LM: prompts, balanced training draws, scoring, save/load, errors.

The LM is random, so these tests check the plumbing (what the prompts say, which examples are drawn,
that probabilities come back per item and survive a save), not that it recommends well.
"""

from __future__ import annotations

import numpy as np
import pytest

from fewtune.errors import FewtuneError
from fewtune.recommend import FewShotRecommender, LikeScale, cold_start_users, from_triples, split_users
from fewtune.recommend.methods import build_recommender
from fewtune.recommend.protocol import Protocol
from fewtune.recommend.data import cap_heldout, train_set
from fewtune.recommend.evaluate import evaluate
from fewtune.recommend.tallrec import build_prompt, draw_samples, item_title

N_ITEMS, N_USERS, PER_USER = 14, 24, 9
GENRES = ("Drama", "Comedy", "Horror")


@pytest.fixture(scope="module")
def data():
    """Users who like even-numbered films and dislike odd ones, with a few neutral 3s."""
    rng = np.random.default_rng(0)
    users, items, ratings = [], [], []
    for u in range(N_USERS):
        for i in rng.choice(N_ITEMS, PER_USER, replace=False):
            users.append(f"u{u}")
            items.append(f"m{i}")
            ratings.append(3 if rng.random() < 0.1 else (5 if i % 2 == 0 else 1))
    texts = [f"Film {i} ({1990 + i}) — {GENRES[i % 3]}" for i in range(N_ITEMS)]
    return from_triples(users, items, ratings, [f"m{i}" for i in range(N_ITEMS)], texts, name="tiny")


def _params(lm_folder, **extra):
    # One epoch, no validation split: the fastest training that still runs the prompt method end to end.
    return {"lm": str(lm_folder), "samples": 6, "history": 3, "epochs": 1, "batch_size": 4,
            "early_stopping": False, **extra}


@pytest.fixture(scope="module")
def fitted(data, chat_llama_folder):
    train_users, test_users = split_users(data, 0.25, seed=0)
    model = build_recommender("tallrec", _params(chat_llama_folder))
    info = model.fit(train_set(data, train_users, LikeScale()), seed=0)
    return model, info, test_users


def test_prompt_names_the_liked_and_disliked_titles_and_the_target():
    assert item_title("Toy Story (1995) — Animation, Comedy") == "Toy Story (1995)"
    assert item_title("Toy Story (1995) — Animation", titles_only=False) == "Toy Story (1995) — Animation"
    assert len(item_title("x" * 500)) == 100
    prompt = build_prompt(["Fargo (1996)", "Heat (1995)"], ["Home Alone (1990)"], "Babe (1995)")
    lines = prompt.split("\n")
    assert lines[1] == 'User Preference: "Fargo (1996)", "Heat (1995)"'
    assert lines[2] == 'User Unpreference: "Home Alone (1990)"'
    assert lines[3] == 'Whether the user will like the target movie "Babe (1995)"?'
    assert lines[-1] == "Answer:"
    assert "target book" in build_prompt([], [], "Emma", noun="book")


def test_training_draws_are_balanced_and_never_show_the_target_in_its_history(data):
    labels = train_set(data, None, LikeScale()).labels.tocsr()
    samples = draw_samples(labels, 9, 4, np.random.default_rng(0))
    assert [s.label for s in samples].count(1) == 5 and [s.label for s in samples].count(-1) == 4
    for s in samples:
        row = dict(zip(labels[s.user].indices.tolist(), labels[s.user].data.tolist()))
        assert row[s.target] == s.label  # the target's label is the user's own
        assert len(s.history) == 4 and s.target not in s.history
        assert [row[i] for i in s.history] == s.history_labels.tolist()
    again = draw_samples(labels, 9, 4, np.random.default_rng(0))
    assert [(s.user, s.target) for s in again] == [(s.user, s.target) for s in samples]


def test_trained_tallrec_gives_one_probability_per_item_from_the_users_history(fitted, data):
    model, info, test_users = fitted
    assert info["samples"] == 6 and info["liked_samples"] == 3 and info["epochs"] == 1
    items = np.array([0, 3, 5, 0])
    user = model.personalise(np.array([2, 1, 4, 6, 8]), np.array([1, -1, 1, 1, 1]))
    assert user.liked == ["Film 2 (1992)", "Film 4 (1994)"] and user.disliked == ["Film 1 (1991)"]  # first `history`
    proba = model.like_proba(user, items)
    assert proba.shape == (4,) and ((proba > 0) & (proba < 1)).all()
    assert proba[0] == proba[3]
    # The cache must not change a score: a fresh user state scoring in another order agrees.
    fresh = model.like_proba(model.personalise(np.array([2, 1, 4]), np.array([1, -1, 1])), items[::-1])
    np.testing.assert_allclose(fresh[::-1], proba, rtol=1e-5)
    other = model.like_proba(model.personalise(np.array([1, 3]), np.array([1, 1])), items)
    assert not np.allclose(other, proba)  # the history is in the prompt, so it changes the scores
    tasks, _ = cold_start_users(data, test_users, 2, seed=0, min_heldout=3)
    result = evaluate(model, cap_heldout(tasks, 3, seed=0), LikeScale(), data.n_items)
    assert result["n_users"] == len(tasks) and 0.0 <= result["ndcg@10"] <= 1.0


def test_save_and_load_give_identical_scores(data, chat_llama_folder, tmp_path):
    rec = FewShotRecommender("tallrec", params=_params(chat_llama_folder, samples=4)).fit(data)
    history = {"m2": 5, "m1": 1}
    targets = ["m0", "m3", "m6"]
    before = rec.predict_like_proba(history, targets)
    rec.save(tmp_path / "model")
    loaded = FewShotRecommender.load(tmp_path / "model")
    np.testing.assert_array_equal(loaded.predict_like_proba(history, targets), before)
    assert (tmp_path / "model" / "lm" / "fewtune.json").is_file()
    files = [p for p in (tmp_path / "model").rglob("*") if p.is_file()]
    assert {p.suffix for p in files} <= {".json", ".md", ".safetensors"}  # never a pickle
    np.testing.assert_array_equal(loaded.method_.state()["sample_target"], rec.method_.state()["sample_target"])


def test_bad_params_and_data_name_the_problem(data, chat_llama_folder):
    with pytest.raises(FewtuneError, match=r"samples must be at least 2.*history must be 0 or more.*learning_rate must be positive"):
        build_recommender("tallrec", {"samples": 1, "history": -1, "learning_rate": 0})
    with pytest.raises(FewtuneError, match=r"unknown parameter\(s\) shots for method 'tallrec'"):
        build_recommender("tallrec", {"shots": 16})
    with pytest.raises(FewtuneError, match=r"no training user has history \+ 1 = 51 liked or disliked items"):
        build_recommender("tallrec", _params(chat_llama_folder, history=50)).fit(train_set(data, None, LikeScale()), seed=0)
    with pytest.raises(FewtuneError, match="tallrec is not fitted"):
        build_recommender("tallrec", {}).personalise(np.array([0]), np.array([1]))


def test_capped_heldout_items_are_the_same_for_every_method_and_keep_old_run_keys(data):
    train_users, test_users = split_users(data, 0.25, seed=0)
    tasks, _ = cold_start_users(data, test_users, 2, seed=0, min_heldout=3)
    a, b = cap_heldout(tasks, 4, seed=1), cap_heldout(tasks, 4, seed=1)
    for full, x, y in zip(tasks, a, b):
        assert len(x.heldout_items) == min(4, len(full.heldout_items))
        np.testing.assert_array_equal(x.heldout_items, y.heldout_items)
        assert set(x.heldout_items) <= set(full.heldout_items)
        ratings = dict(zip(full.heldout_items.tolist(), full.heldout_ratings.tolist()))
        assert [ratings[i] for i in x.heldout_items] == x.heldout_ratings.tolist()
    assert cap_heldout(tasks, 0, seed=1) is tasks
    assert "max_items" not in Protocol().to_dict() and Protocol(max_items=5).to_dict()["max_items"] == 5
    with pytest.raises(FewtuneError, match="0 \\(all\\) or more"):
        cap_heldout(tasks, -1, seed=0)
