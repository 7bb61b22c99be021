"""Few-shot recommendation methods on a synthetic data set whose users' tastes follow item features.

Each item has 4 hidden features; its text names a genre word per feature sign, so even the tiny
random encoder sees different texts for different items. Each user likes an item with probability
σ(3·wᵤ·fᵢ) with wᵤ drawn around zero: tastes differ from user to user, so popularity can barely
tell likes from dislikes, while a method that learns the user's weights from K ratings can.
"""

from __future__ import annotations

import numpy as np
import pytest

from fewtune.errors import FewtuneError
from fewtune.recommend import FewShotRecommender, LikeScale, cold_start_users, split_users
from fewtune.recommend.data import train_set
from fewtune.recommend.methods import RECOMMENDERS, build_recommender, get_recommender
from fewtune.recommend.evaluate import evaluate
from fewtune.recommend.logistic import map_fit
from tests.helpers.ratings import N_ITEMS, synthetic

@pytest.fixture(scope="module")
def ratings():
    return synthetic()


@pytest.fixture(scope="module")
def split(ratings):
    data, _ = ratings
    train_users, test_users = split_users(data, 0.25, seed=0)
    return train_users, test_users


def _fit(name, data, train_users, params=None, **fit_options):
    model = build_recommender(name, params or {})
    model.fit(train_set(data, train_users, LikeScale()), seed=0, **fit_options)
    return model


def _embeddings(features):
    # The hidden features plus 4 noise dimensions: the method must find which directions matter.
    noise = np.random.default_rng(1).standard_normal((len(features), 4))
    return np.hstack([features, noise]).astype(np.float32)


def test_bayes_learns_tastes_that_popularity_cannot(ratings, split):
    data, features = ratings
    train_users, test_users = split
    tasks, _ = cold_start_users(data, test_users, 8, seed=0)
    bayes = _fit("bayes", data, train_users, {"components": 8}, embeddings=_embeddings(features))
    popularity = _fit("popularity", data, train_users)
    scale = LikeScale()
    auc_bayes = evaluate(bayes, tasks, scale, data.n_items)["auc"]
    auc_pop = evaluate(popularity, tasks, scale, data.n_items)["auc"]
    assert auc_bayes > 0.75
    assert auc_bayes > auc_pop + 0.15


def test_more_known_ratings_help_the_bayes_method(ratings, split):
    data, features = ratings
    train_users, test_users = split
    bayes = _fit("bayes", data, train_users, {"components": 8}, embeddings=_embeddings(features))
    auc = {}
    for k in (0, 2, 16):
        tasks, _ = cold_start_users(data, test_users, k, seed=0, min_heldout=4)
        auc[k] = evaluate(bayes, tasks, LikeScale(), data.n_items)["auc"]
    assert auc[0] < 0.65 < auc[16]
    assert auc[2] < auc[16]


def test_bayes_posterior_without_ratings_is_the_learned_prior(ratings, split):
    data, features = ratings
    bayes = _fit("bayes", data, split[0], {"components": 8}, embeddings=_embeddings(features))
    mean, cov = bayes.posterior(np.zeros(0, np.int64), np.zeros(0, np.int8))
    np.testing.assert_array_equal(mean, bayes.prior_mean_)
    np.testing.assert_array_equal(cov, bayes.prior_cov_)
    # And the learned prior is not the initial one: EM moved it, and the evidence went up.
    assert not np.allclose(bayes.prior_cov_, 0.1 * np.eye(len(mean)))


def test_bayes_evidence_increases_during_em(ratings, split):
    data, features = ratings
    model = build_recommender("bayes", {"components": 8, "max_iter": 8, "tol": 0})
    info = model.fit(train_set(data, split[0], LikeScale()), seed=0, embeddings=_embeddings(features))
    trace = info["evidence_per_user"]
    assert len(trace) == 8
    assert trace[-1] > trace[0] + 0.5


def test_bayes_posterior_approaches_the_users_own_fit_with_many_ratings(ratings, split):
    data, features = ratings
    bayes = _fit("bayes", data, split[0], {"components": 8, "item_bias": False}, embeddings=_embeddings(features))
    rng = np.random.default_rng(3)
    x = bayes._features  # (items, p)
    w_true = rng.standard_normal(x.shape[1]) * 0.5
    items = rng.integers(0, N_ITEMS, 3000)  # many ratings (items repeat: a rich user)
    labels = np.where(rng.random(3000) < 1 / (1 + np.exp(-x[items] @ w_true)), 1, -1)
    mean, cov = bayes.posterior(items, labels)
    own, _, _ = map_fit(x[items], (labels > 0).astype(float), np.zeros(x.shape[1]), 1e-6 * np.eye(x.shape[1]))
    np.testing.assert_allclose(mean, own, atol=0.1)
    few_mean, few_cov = bayes.posterior(items[:4], labels[:4])
    assert np.trace(cov) < 0.1 * np.trace(few_cov)  # the posterior narrows as ratings accumulate


@pytest.mark.parametrize("name", ["popularity", "item-knn", "mf"])
def test_personalised_baselines_beat_chance_and_popularity_ignores_history(ratings, split, name):
    data, _ = ratings
    train_users, test_users = split
    model = _fit(name, data, train_users, {"epochs": 150} if name == "mf" else None)
    tasks, _ = cold_start_users(data, test_users, 16, seed=0)
    result = evaluate(model, tasks, LikeScale(), data.n_items)
    for key in ("auc", "auc_pooled", "ndcg@10", "recall@10"):
        assert 0.0 <= result[key] <= 1.0
    if name == "popularity":
        a = model.like_proba(model.personalise(np.array([0, 1]), np.array([1, -1])), np.arange(5))
        b = model.like_proba(model.personalise(np.array([2]), np.array([-1])), np.arange(5))
        np.testing.assert_array_equal(a, b)
    else:
        assert result["auc"] > 0.6  # tastes are learnable from co-ratings too


def test_mf_fold_in_without_ratings_scores_by_item_bias(ratings, split):
    data, _ = ratings
    mf = _fit("mf", data, split[0], {"epochs": 50})
    user = mf.personalise(np.zeros(0, np.int64), np.zeros(0))
    np.testing.assert_allclose(mf.like_proba(user, np.arange(N_ITEMS)), 1 / (1 + np.exp(-mf.item_bias_)))


def test_item_knn_backs_off_to_popularity_without_similar_known_items(ratings, split):
    data, _ = ratings
    knn = _fit("item-knn", data, split[0])
    pop = _fit("popularity", data, split[0])
    user = knn.personalise(np.zeros(0, np.int64), np.zeros(0))
    np.testing.assert_allclose(knn.like_proba(user, np.arange(N_ITEMS)), pop.like_proba(None, np.arange(N_ITEMS)))
    liked = knn.like_proba(knn.personalise(np.array([0]), np.array([1])), np.arange(N_ITEMS))
    disliked = knn.like_proba(knn.personalise(np.array([0]), np.array([-1])), np.arange(N_ITEMS))
    # Liking item 0 raises the items most similar to it, disliking it lowers them.
    top = knn.neighbor_index_[0][np.argmax(knn.neighbor_sim_[0])]
    assert liked[top] > disliked[top]


@pytest.mark.parametrize("name", sorted(["popularity", "user-rate", "item-knn", "mf", "bayes"]))
def test_save_and_load_give_identical_scores(ratings, split, st_folder, tmp_path, name):
    data, _ = ratings
    params = {"epochs": 20} if name == "mf" else {"components": 8} if name == "bayes" else None
    rec = FewShotRecommender(name, backbone=str(st_folder), params=params).fit(data, users=split[0])
    history = {"m1": 5, data.item_texts[2]: 1, "m3": "like", "m4": 3}  # items by id or by text
    before = rec.predict_like_proba(history, [f"m{i}" for i in range(N_ITEMS)])
    rec.save(tmp_path / "model")
    loaded = FewShotRecommender.load(tmp_path / "model")
    after = loaded.predict_like_proba(history, [f"m{i}" for i in range(N_ITEMS)])
    np.testing.assert_array_equal(before, after)
    assert rec.recommend(history, n=5) == loaded.recommend(history, n=5)
    assert {p.suffix for p in (tmp_path / "model").iterdir()} <= {".json", ".md", ".safetensors"}


def test_recommend_ranks_unrated_items_best_first(ratings, split):
    data, features = ratings
    rec = FewShotRecommender("popularity").fit(data, users=split[0])
    history = [("m0", 5), ("m1", 1), ("m2", 3)]
    rows = rec.recommend(history, n=10)
    assert len(rows) == 10
    assert not {"m0", "m1", "m2"} & {r["item"] for r in rows}  # the neutral m2 is not recommended back either
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    everything = rec.recommend(history, n=N_ITEMS)
    assert everything[0]["score"] == max(rec.predict_like_proba([], [f"m{i}" for i in range(3, N_ITEMS)]))


def test_bad_histories_and_params_name_the_problem(ratings, split):
    data, _ = ratings
    rec = FewShotRecommender("popularity").fit(data, users=split[0])
    with pytest.raises(FewtuneError, match=r"item 2: unknown item 'no such film'"):
        rec.recommend([("m0", 5), ("no such film", 4)])
    with pytest.raises(FewtuneError, match=r"item 1: rating 'great' is neither a number nor like/dislike"):
        rec.recommend({"m0": "great"})
    with pytest.raises(FewtuneError, match=r"unknown parameter\(s\) factor for method 'mf'"):
        build_recommender("mf", {"factor": 3})
    with pytest.raises(FewtuneError, match=r"l2 must be > 0"):
        build_recommender("mf", {"l2": "0"})
    with pytest.raises(FewtuneError, match=r"unknown recommendation method 'svd'"):
        get_recommender("svd")
    with pytest.raises(FewtuneError, match="not fitted"):
        FewShotRecommender().recommend({})


def test_registry_holds_every_method():
    get_recommender("popularity")
    assert set(RECOMMENDERS) == {"popularity", "user-rate", "item-knn", "mf", "bayes", "tallrec"}


def test_user_rate_reads_only_the_users_own_likes(ratings, split):
    data, _ = ratings
    model = _fit("user-rate", data, split[0], {"smoothing": 2.0})
    fan = model.personalise(np.array([0, 1, 2, 3]), np.array([1, 1, 1, -1]))
    critic = model.personalise(np.array([0, 1, 2, 3]), np.array([-1, -1, -1, 1]))
    items = np.arange(6)
    assert model.like_proba(fan, items) == pytest.approx(np.full(6, (3 + 2 * model.overall_) / 6))
    assert (model.like_proba(fan, items) > model.like_proba(critic, items)).all()
    assert model.like_proba(model.personalise(np.zeros(0, np.int64), np.zeros(0)), items)[0] == pytest.approx(model.overall_)
    # Within a user the ranking follows the items' popularity.
    order = np.argsort(-model.rank_scores(fan, items), kind="stable")
    assert list(order) == list(np.argsort(-model.item_rate_[items], kind="stable"))


def test_a_causal_lm_embeds_items_by_its_mean_pooled_last_layer(llama_folder, monkeypatch, tmp_path):
    import torch

    from fewtune.backbones import load_causal_lm, resolve_backbone
    from fewtune.recommend.embeddings import item_embeddings

    monkeypatch.setenv("FEWTUNE_HOME", str(tmp_path))
    texts = ["this movie was great .", "it was terrible", "overall great"]
    emb = item_embeddings(texts, str(llama_folder))
    model, tokenizer = load_causal_lm(resolve_backbone(str(llama_folder)))
    with torch.inference_mode():
        ids = tokenizer(texts[1], return_tensors="pt")
        alone = model(**ids, output_hidden_states=True).hidden_states[-1][0].mean(0).numpy()
    # Padding in the batch does not leak into a text's embedding.
    np.testing.assert_allclose(emb[1], alone, atol=1e-5)
    assert emb.shape == (3, model.config.hidden_size)
    np.testing.assert_array_equal(item_embeddings(texts, str(llama_folder)), emb)  # cached: same arrays back
