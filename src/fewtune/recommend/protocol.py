"""The few-shot recommendation benchmark: every method on the same cold-start draws, over seeds.

For each seed the users are split once (training / test users, `split_users`), each method is fitted
once on the training users, and then scored for every K on the same test users' same K known
ratings (`cold_start_users`), their held-out items cut to the same `max_items` when set
(`cap_heldout`). One JSON line per (method, K, seed) goes to the output file as soon as it is
done; runs already there (same key) are skipped, so an interrupted benchmark resumes.
A method's fit is shared by its K values: each line's train_seconds is that fit's, and
peak_rss_mb is the process's peak from the start of the fit through that evaluation. The loop, the
records and the resuming are runner.run_protocol's; this module supplies the protocol's part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..backbones.catalog import ITEM_ENCODER
from ..bench.records import load_runs
from ..errors import FewtuneError
from ..numeric import mean_std
from . import data as ratings  # load_movielens through the module: a test substitutes data.load_movielens
from .data import LikeScale, RatingsData, cap_heldout, cold_start_users, split_users, train_set
from .evaluate import evaluate
from .runner import Score, method_label, run_protocol

METRICS = ("auc", "auc_pooled", "ndcg@10", "recall@10")
SUMMARY_HEADER = ["data", "method", "K", "seeds", "AUC (per user)", "AUC (pooled)", "NDCG@10", "Recall@10", "train s"]


@dataclass(frozen=True)
class Protocol:
    """Everything besides the method that decides a run's numbers; part of every run's key."""

    dataset: str = "ml-100k"
    like: float = 4.0
    dislike: float = 2.0
    test_fraction: float = 0.2
    balanced: bool = False
    min_heldout: int = 4
    n_unrated: int = 0
    max_users: int = 0  # score at most this many test users (0 = all), the same ones for every method
    backbone: str = ITEM_ENCODER
    max_items: int = 0  # score at most this many held-out items per test user (0 = all), the same for every method

    COUNT = "K"
    PROGRESS = "Recommendation runs"
    SUMMARY_HEADER = SUMMARY_HEADER

    def to_dict(self) -> dict:
        # max_items came later: left out at its default so the keys of runs recorded before it stay valid.
        return {k: v for k, v in self.__dict__.items() if not (k == "max_items" and v == 0)}

    @property
    def scale(self) -> LikeScale:
        return LikeScale(self.like, self.dislike)

    # -- runner.BenchProtocol ----------------------------------------------------------------
    def check(self, counts: list[int]) -> None:
        if any(k < 0 for k in counts) or not counts:
            raise FewtuneError("--shots: give K values ≥ 0, e.g. 4,8,16")
        if self.max_items < 0:
            raise FewtuneError(f"--max-items must be 0 (all) or more, got {self.max_items}")
        LikeScale(self.like, self.dislike)  # checks the thresholds before anything runs

    def fit_groups(self, counts: list[int]) -> list[list[int]]:
        return [list(counts)]  # one fit per method and seed, scored for every K

    def load(self) -> RatingsData:
        return ratings.load_movielens(self.dataset)

    def training(self, data: RatingsData, counts: list[int], seed: int):
        """The seed's training users' ratings; the test users for scoring."""
        train_users, test_users = split_users(data, self.test_fraction, seed)
        return train_set(data, train_users, self.scale), test_users

    def score(self, data: RatingsData, test_users, model, k: int, seed: int) -> Score:
        """The test users' K known ratings (the same draws for every method), their held-out ones scored."""
        users, skipped = cold_start_users(data, test_users, k, seed, self.scale, balanced=self.balanced,
                                          min_heldout=self.min_heldout)
        if self.max_users:
            users = users[:self.max_users]
        users = cap_heldout(users, self.max_items, seed)
        scores = evaluate(model, users, self.scale, data.n_items, n_unrated=self.n_unrated, seed=seed)
        return Score({**scores, "users_skipped": skipped})

    def summarize(self, out: Path, loaded=None) -> list[dict]:
        return summarize(out)

    def format_summary(self, rows: list[dict]) -> list[list[str]]:
        return format_summary(rows)


run_bench = run_protocol  # run_bench(Protocol(...), methods, shots, seeds, out): the CLI's and benchmarks' name


def summarize(out: Path) -> list[dict]:
    """Mean ± std over seeds of each metric, per (dataset, method and params, K)."""
    groups: dict[tuple, list[dict]] = {}
    for r in load_runs(out):
        groups.setdefault((r["dataset"], method_label(r), r["K"]), []).append(r)
    rows = []
    for (dataset, label, k), runs in sorted(groups.items()):
        row = {"dataset": dataset, "method": label, "K": k, "seeds": len(runs)}
        for metric in METRICS + ("train_seconds",):
            row[metric], row[metric + "_std"] = mean_std(r.get(metric) for r in runs)
        rows.append(row)
    return rows


def format_summary(rows: list[dict]) -> list[list[str]]:
    """Table rows: data set, method, K, seeds, then mean ± std of each metric."""
    def cell(row, metric, digits=3):
        mean, std = row[metric], row[metric + "_std"]
        return "—" if mean != mean else f"{mean:.{digits}f} ± {std:.{digits}f}"

    return [[r["dataset"], r["method"], str(r["K"]), str(r["seeds"]), *(cell(r, m) for m in METRICS),
             cell(r, "train_seconds", 1)] for r in rows]
