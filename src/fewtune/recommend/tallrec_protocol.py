"""TALLRec's own evaluation protocol (Bao et al. 2023), beside fewtune's cold-start one.

TALLRec's preprocessing (preprocess_movie.py in its repository): each user's ratings in time order,
a rating above 3 is a like; every rating after the user's first 10 becomes one *sample*: the 10
ratings before it (items and like/dislike), the target item, and whether the user liked it. Few-shot
training takes N samples (16 / 64 / 256) at random from the training samples; the score is the AUC
over the test samples' P(like).

Here the users are split once (`split_users` with seed 0), the same split for every seed and method:
training samples come from the training users, test samples from the test users (a fixed subset of
`max_test`, drawn with seed 0, like TALLRec's 1,000-sample test file). A seed draws the training
samples: one shuffle per seed, the first N of it, so the 16 samples are among the 64. TALLRec split
the last 10,000 samples of its file 8:1:1 in file order, which is by user too, over fewer users.

The budget is the samples. A method learns from the ratings they hold (each sample's history and
target: at most 11·N ratings, `budget_train_set`) and from nothing else of the training users;
pretrained models (a sentence encoder for item texts, a causal LM) are not ratings and do not count.
A test sample is scored from its own history alone (`Recommender.score_samples`).

The AUC comes with a bootstrap 95% interval over the test samples (`auc_interval`); a table row's
interval resamples the test samples jointly for every seed, so it shows the test set's noise on the
mean over seeds, and the std over seeds shows the draws'. The loop, the records and the resuming are
runner.run_protocol's; this module supplies the protocol's part.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..backbones.catalog import ITEM_ENCODER
from ..bench.records import load_runs
from ..errors import FewtuneError
from . import data as ratings  # load_movielens through the module: a test substitutes data.load_movielens
from .base import Sample, TrainSet
from .data import RatingsData, split_users
from .methods import get_recommender
from .metrics import rank_auc
from .runner import Score, method_label, run_protocol

BOOTSTRAP = 1000  # resamples of the test samples for an AUC interval
SCORE_DIGITS = 5  # each test sample's score is kept in the run's record, for the joint intervals
SUMMARY_HEADER = ["method", "samples", "seeds", "AUC (mean ± std)", "95% CI", "train s", "ratings used"]


@dataclass(frozen=True)
class TallRecProtocol:
    """Everything besides the method that decides a run's numbers; part of every run's key."""

    dataset: str = "ml-100k"
    history: int = 10
    like_above: float = 3.0
    test_fraction: float = 0.2
    max_test: int = 1000
    backbone: str = ITEM_ENCODER

    COUNT = "samples"
    PROGRESS = "Recommendation runs (TALLRec protocol)"
    SUMMARY_HEADER = SUMMARY_HEADER

    def to_dict(self) -> dict:
        return {"protocol": "tallrec", **self.__dict__}

    # -- runner.BenchProtocol ----------------------------------------------------------------
    def check(self, counts: list[int]) -> None:
        if self.history < 1:
            raise FewtuneError(f"--history must be at least 1, got {self.history}")
        if self.max_test < 2:
            raise FewtuneError(f"--max-test must be at least 2 test samples, got {self.max_test}")
        if not counts or any(n < 1 for n in counts):
            raise FewtuneError("--samples: give training sample counts ≥ 1, e.g. 16,64,256")

    def fit_groups(self, counts: list[int]) -> list[list[int]]:
        return [[n] for n in counts]  # each budget is its own training set: one fit per (method, N, seed)

    def load(self) -> Loaded:
        data = ratings.load_movielens(self.dataset)
        pool, test = protocol_samples(data, self)
        return Loaded(data, pool, test, liked(test))

    def training(self, loaded: Loaded, counts: list[int], seed: int) -> tuple[TrainSet, int]:
        """The seed's first N training samples' ratings; how many ratings that is."""
        train = budget_train_set(draw_budget(loaded.pool, counts[0], seed), loaded.data.n_items,
                                 loaded.data.item_texts)
        return train, int(train.labels.nnz)

    def score(self, loaded: Loaded, ratings_used: int, model, n: int, seed: int) -> Score:
        """The AUC over the fixed test samples, with its bootstrap interval; each sample's score kept."""
        start = time.perf_counter()
        scores = model.score_samples(loaded.test)
        predict_seconds = time.perf_counter() - start
        y = loaded.y
        lo, hi = auc_interval(y, scores)
        return Score({"auc": float(rank_auc(y, scores)[0]), "auc_ci95": [lo, hi], "ratings_used": ratings_used,
                      "n_test": len(loaded.test), "test_like_rate": float(y.mean())},
                     timings={"predict_seconds": round(predict_seconds, 3)},
                     payload={"scores": [round(float(v), SCORE_DIGITS) for v in scores]})

    def summarize(self, out: Path, loaded: Loaded | None = None) -> list[dict]:
        return summarize(out, self, loaded.y if loaded is not None else None)

    def format_summary(self, rows: list[dict]) -> list[list[str]]:
        return format_summary(rows)


class Loaded(NamedTuple):
    """What every run of the protocol reads: the ratings, the training users' samples, the test samples
    and their labels."""

    data: RatingsData
    pool: list[Sample]
    test: list[Sample]
    y: np.ndarray


def time_ordered_samples(data: RatingsData, users: np.ndarray, history: int = 10,
                         like_above: float = 3.0) -> list[Sample]:
    """Every sample of the users: each rating after a user's first `history`, with the `history` before it.

    Ratings are ordered by timestamp (ties keep the file's order, as TALLRec's stable sort does).
    """
    if data.timestamp is None:
        raise FewtuneError(f"{data.name}: the ratings carry no timestamps; TALLRec's protocol orders each user's "
                           "ratings in time (give a timestamp column)")
    order = np.lexsort((np.arange(data.n_ratings), data.timestamp, data.user))  # by user, then time, then file
    starts = np.searchsorted(data.user[order], np.arange(data.n_users + 1))
    labels = np.where(data.rating > like_above, 1, -1).astype(np.int8)
    out = []
    for u in np.asarray(users):
        rows = order[starts[u]:starts[u + 1]]
        items, signs = data.item[rows], labels[rows]
        for i in range(history, len(rows)):
            out.append(Sample(int(u), int(items[i]), int(signs[i]), items[i - history:i].astype(np.int64),
                              signs[i - history:i].copy()))
    return out


def protocol_samples(data: RatingsData, protocol: TallRecProtocol) -> tuple[list[Sample], list[Sample]]:
    """(the training users' samples, the fixed test samples): one user split and one test subset, seed 0."""
    train_users, test_users = split_users(data, protocol.test_fraction, 0)
    pool = time_ordered_samples(data, train_users, protocol.history, protocol.like_above)
    test = time_ordered_samples(data, test_users, protocol.history, protocol.like_above)
    if len(test) > protocol.max_test:
        keep = np.sort(np.random.default_rng(0).choice(len(test), protocol.max_test, replace=False))
        test = [test[i] for i in keep]
    return pool, test


def budget_train_set(samples: list[Sample], n_items: int, item_texts: list[str]) -> TrainSet:
    """The ratings the samples hold (histories and targets), one row per sampled user, and the samples."""
    from scipy import sparse

    users = sorted({s.user for s in samples})
    row = {u: k for k, u in enumerate(users)}
    cells: dict[tuple[int, int], int] = {}
    for s in samples:
        for item, label in zip(s.history.tolist() + [s.target], s.history_labels.tolist() + [s.label]):
            cells[(row[s.user], int(item))] = int(label)
    keys = list(cells)
    matrix = sparse.csr_matrix((np.array([cells[k] for k in keys], dtype=np.float64),
                                ([k[0] for k in keys], [k[1] for k in keys])), shape=(len(users), n_items))
    return TrainSet(matrix, list(item_texts), samples=list(samples))


def draw_budget(pool: list[Sample], n: int, seed: int) -> list[Sample]:
    """The first n of the seed's shuffle of the training samples (nested: 16 ⊂ 64 ⊂ 256 for one seed)."""
    if n > len(pool):
        raise FewtuneError(f"--samples {n}: the training users have only {len(pool)} samples")
    order = np.random.default_rng([seed, 11]).permutation(len(pool))[:n]
    return [pool[i] for i in order]


def auc_interval(y: np.ndarray, scores: np.ndarray, *, level: float = 0.95, resamples: int = BOOTSTRAP,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUC (of the mean AUC when scores is seeds × samples),
    resampling the test samples — the same resample for every row."""
    y = np.asarray(y)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        idx = rng.integers(0, len(y), len(y))
        if 0 < y[idx].sum() < len(idx):
            values.append(rank_auc(y[idx], scores[:, idx]).mean())
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def run_tallrec_bench(protocol: TallRecProtocol, methods: list[tuple[str, dict]], sizes: list[int], seeds: list[int],
                      out: Path, **options) -> dict:
    """Every (method, samples, seed) not yet in `out` (runner.run_protocol); returns counts and the table over seeds."""
    result = run_protocol(protocol, methods, sizes, seeds, out, **options)
    del result["skipped"]  # the result's JSON (`recommend bench --json`) never carried it on this protocol
    return result


def liked(samples: list[Sample]) -> np.ndarray:
    """Each sample's label as the AUC reads it: True for a liked target."""
    return np.array([s.label > 0 for s in samples])


def summarize(out: Path, protocol: TallRecProtocol, y: np.ndarray | None = None) -> list[dict]:
    """Per (method and params, samples): mean ± std of the AUC over seeds, the joint bootstrap interval of
    that mean, and the mean training time."""
    def same(p: dict) -> bool:  # the item backbone is the method's choice, not the protocol's: rows differ by it
        return {**p, "backbone": None} == {**protocol.to_dict(), "backbone": None}

    runs = [r for r in load_runs(out) if same(r.get("protocol") or {})]
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        label = method_label(r)
        if get_recommender(r["method"]).needs_encoder:
            label += f" [{r['protocol']['backbone']}]"
        groups.setdefault((label, r["samples"]), []).append(r)
    rows = []
    for (label, n), group in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if y is None:  # the test labels, rebuilt once: every run of this protocol scored the same samples
            y = liked(protocol_samples(ratings.load_movielens(protocol.dataset), protocol)[1])
        aucs = np.array([r["auc"] for r in group])
        lo, hi = auc_interval(y, np.array([r["scores"] for r in group]))
        rows.append({"method": label, "samples": n, "seeds": len(group), "auc": float(aucs.mean()),
                     "auc_std": float(aucs.std(ddof=1)) if len(group) > 1 else 0.0, "auc_ci95": [lo, hi],
                     "train_seconds": float(np.mean([r["train_seconds"] for r in group])),
                     "ratings_used": float(np.mean([r["ratings_used"] for r in group]))})
    return rows


def format_summary(rows: list[dict]) -> list[list[str]]:
    return [[r["method"], str(r["samples"]), str(r["seeds"]), f"{r['auc']:.3f} ± {r['auc_std']:.3f}",
             f"{r['auc_ci95'][0]:.3f}–{r['auc_ci95'][1]:.3f}", f"{r['train_seconds']:.1f}", f"{r['ratings_used']:.0f}"]
            for r in rows]
