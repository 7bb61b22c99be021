"""The few-shot recommendation benchmark: every method on the same cold-start draws, over seeds.

For each seed the users are split once (training / test users, `split_users`), each method is fitted
once on the training users, and then scored for every K on the same test users' same K known
ratings (`cold_start_users`), their held-out items cut to the same `max_items` when set
(`cap_heldout`). One JSON line per (method, K, seed) goes to the output file as soon as it is
done; runs already there (same key) are skipped, so an interrupted benchmark resumes.
A method's fit is shared by its K values: each line's train_seconds is that fit's, and
peak_rss_mb is the process's peak from the start of the fit through that evaluation.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..bench.api import split_methods
from ..bench.plan import digest, json_value
from ..bench.records import done_keys, load_runs
from ..bench.worker import reset_peak_rss, rss_mb, versions
from ..errors import FewtuneError
from .metrics import mean_std

METRICS = ("auc", "auc_pooled", "ndcg@10", "recall@10")


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
    backbone: str = "minilm"
    max_items: int = 0  # score at most this many held-out items per test user (0 = all), the same for every method

    def to_dict(self) -> dict:
        # max_items came later: left out at its default so the keys of runs recorded before it stay valid.
        return {k: v for k, v in self.__dict__.items() if not (k == "max_items" and v == 0)}


def parse_methods(text: str) -> list[tuple[str, dict]]:
    """'popularity,mf:l2=1,factors=16,bayes' -> [(name, params)], each checked against its method."""
    from .methods import get_recommender

    parsed = []
    for item in split_methods(text):
        name, _, rest = item.partition(":")
        params = {}
        for pair in filter(None, (p.strip() for p in rest.split(","))):
            key, sep, value = pair.partition("=")
            if not sep:
                raise FewtuneError(f"--methods {item!r}: expected METHOD:KEY=VALUE,KEY=VALUE")
            params[key.strip().replace("-", "_")] = json_value(value.strip())
        cls = get_recommender(name.strip())
        cls.params_class.from_dict(params, method=name)  # a typo fails now, not after an hour
        parsed.append((name.strip(), params))
    if not parsed:
        raise FewtuneError("--methods: give at least one method")
    return parsed


def run_key(protocol: Protocol, method: str, params: dict, k: int, seed: int) -> str:
    return digest(protocol.to_dict(), method, sorted(params.items()), k, seed)


def run_bench(protocol: Protocol, methods: list[tuple[str, dict]], shots: list[int], seeds: list[int], out: Path, *,
              progress=None, on_record: Callable[[dict], None] | None = None, device: str | None = None) -> dict:
    """Run what is not yet in `out`; returns counts and the mean ± std table over seeds."""
    from .api import train_set
    from .methods import build_recommender
    from .data import LikeScale, cap_heldout, cold_start_users, load_movielens, split_users
    from .evaluate import evaluate

    if any(k < 0 for k in shots) or not shots:
        raise FewtuneError("--shots: give K values ≥ 0, e.g. 4,8,16")
    if protocol.max_items < 0:
        raise FewtuneError(f"--max-items must be 0 (all) or more, got {protocol.max_items}")
    done = done_keys(out) if out.exists() else set()
    todo = [(m, p, s) for s in seeds for m, p in methods
            if any(run_key(protocol, m, p, k, s) not in done for k in shots)]
    n_runs = len(seeds) * len(methods) * len(shots)
    task = progress.add("Recommendation runs", total=n_runs) if progress else None
    if progress:
        progress.advance(task, n_runs - sum(1 for m, p, s in todo for k in shots if run_key(protocol, m, p, k, s) not in done))
    scale = LikeScale(protocol.like, protocol.dislike)
    data = load_movielens(protocol.dataset) if todo else None
    count = 0
    for method, params, seed in todo:
        train_users, test_users = split_users(data, protocol.test_fraction, seed)
        reset_peak_rss()
        model = build_recommender(method, params, backbone=protocol.backbone, device=device)
        start = time.perf_counter()
        info = model.fit(train_set(data, train_users, scale), seed=seed, progress=None)
        train_seconds = time.perf_counter() - start
        for k in shots:
            key = run_key(protocol, method, params, k, seed)
            if key in done:
                continue
            users, skipped = cold_start_users(data, test_users, k, seed, scale, balanced=protocol.balanced,
                                              min_heldout=protocol.min_heldout)
            if protocol.max_users:
                users = users[:protocol.max_users]
            users = cap_heldout(users, protocol.max_items, seed)
            scores = evaluate(model, users, scale, data.n_items, n_unrated=protocol.n_unrated, seed=seed)
            record = {"key": key, "dataset": protocol.dataset, "method": method, "params": params, "K": k,
                      "seed": seed, **scores, "users_skipped": skipped, "train_seconds": round(train_seconds, 3),
                      "peak_rss_mb": rss_mb(), "protocol": protocol.to_dict(),
                      "train_info": {k2: v for k2, v in info.items() if k2 != "evidence_per_user"},
                      "versions": versions()}
            append_record(out, record)
            count += 1
            if on_record:
                on_record(record)
            if progress:
                progress.advance(task)
    return {"done": count, "skipped": n_runs - count, "out": str(out), "summary": summarize(out)}


def append_record(out: Path, record: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as f:  # one whole line per write: a crash loses at most this run
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()


def summarize(out: Path) -> list[dict]:
    """Mean ± std over seeds of each metric, per (dataset, method and params, K)."""
    groups: dict[tuple, list[dict]] = {}
    for r in load_runs(out):
        label = r["method"] + (" " + json.dumps(r["params"], sort_keys=True) if r.get("params") else "")
        groups.setdefault((r["dataset"], label, r["K"]), []).append(r)
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


SUMMARY_HEADER = ["data", "method", "K", "seeds", "AUC (per user)", "AUC (pooled)", "NDCG@10", "Recall@10", "train s"]
