"""Few-shot recommendation: learn a new user's taste from a handful of ratings.

    from fewtune.recommend import FewShotRecommender
    rec = FewShotRecommender(method="bayes").fit("ml-100k")
    rec.recommend({"Star Wars (1977)": 5, "Fargo (1996)": 4, "Home Alone (1990)": 1})

Methods (fewtune.recommend.RECOMMENDERS): popularity, item-knn, mf (logistic matrix factorisation),
bayes (a per-user Bayesian logistic model on item text embeddings whose prior is learned from
the training users) and tallrec (a LoRA-tuned causal LM asked whether the user will like an item). Data: MovieLens-100k / -1M from installed packages (data.py), or your own
ratings. The cold-start protocol and its metrics: data.py, evaluate.py, metrics.py, protocol.py;
TALLRec's protocol: tallrec_protocol.py; the benchmark loop both run through: runner.py.
"""

# Exports load on first use: `fewtune --help` imports this package (for its CLI) and must stay quick.
_EXPORTS = {
    "FewShotRecommender": "api",
    "RECOMMENDERS": "methods",
    "get_recommender": "methods",
    "LikeScale": "data",
    "RatingsData": "data",
    "cold_start_users": "data",
    "from_frame": "data",
    "from_triples": "data",
    "load_movielens": "data",
    "split_users": "data",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
