"""The one runner of the recommendation benchmarks: each protocol's (method, count, seed) runs, resumable.

A protocol object (protocol.Protocol, the cold-start one; tallrec_protocol.TallRecProtocol, TALLRec's)
is the frozen settings that, besides the method, decide a run's numbers (`to_dict`, part of every run's
key), and it supplies what differs between protocols (`BenchProtocol`): which counts share a method's
fit, the data, the training set of a fit, the scoring of one run, and the table over seeds. The runner
does the rest, the same for both: the loop over seeds, methods and counts, skipping runs whose key is
already in the output file (so an interrupted benchmark resumes), building and fitting each method
(train time; peak memory from the start of the fit through the run's scoring), one JSON line per run
written as soon as it is done, progress, and the summary.
"""

from __future__ import annotations

import json
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from ..bench.api import split_methods
from ..bench.plan import digest, json_value
from ..bench.records import done_keys
from ..bench.context import versions
from ..bench.worker import reset_peak_rss, rss_mb
from ..errors import FewtuneError
from .base import TrainSet
from .methods import build_recommender, get_recommender


@dataclass
class Score:
    """One run's numbers, as its record places them: `metrics` after the seed, `timings` after
    train_seconds, `payload` after train_info."""

    metrics: dict[str, Any]
    timings: dict[str, Any] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)


class BenchProtocol(typing.Protocol):
    """What a protocol supplies to `run_protocol`."""

    dataset: str
    backbone: str
    COUNT: ClassVar[str]  # the record field of a run's count: "K" known ratings, "samples" in the budget
    PROGRESS: ClassVar[str]  # the progress bar's title
    SUMMARY_HEADER: ClassVar[list[str]]

    def to_dict(self) -> dict: ...

    def check(self, counts: list[int]) -> None:
        """Raise FewtuneError for invalid settings or counts, before anything runs."""

    def fit_groups(self, counts: list[int]) -> list[list[int]]:
        """The counts that share one fit of a method (per method and seed), in run order."""

    def load(self) -> Any:
        """What every run reads (the ratings, the test set): called once, only when a run is to be done."""

    def training(self, loaded: Any, counts: list[int], seed: int) -> tuple[TrainSet, Any]:
        """(what a method is fitted on for these counts and seed, what `score` needs besides the model)."""

    def score(self, loaded: Any, unit: Any, model, count: int, seed: int) -> Score:
        """One run's numbers: the fitted model scored for `count` and `seed`."""

    def summarize(self, out: Path, loaded: Any = None) -> list[dict]:
        """The table over seeds of the runs in `out` (`loaded` is None when nothing ran)."""

    def format_summary(self, rows: list[dict]) -> list[list[str]]:
        """`summarize`'s rows as table cells, under SUMMARY_HEADER."""


def parse_methods(text: str) -> list[tuple[str, dict]]:
    """'popularity,mf:l2=1,factors=16,bayes' -> [(name, params)], each checked against its method."""
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


def run_key(protocol: BenchProtocol, method: str, params: dict, count: int, seed: int) -> str:
    return digest(protocol.to_dict(), method, sorted(params.items()), count, seed)


def method_label(record: dict) -> str:
    """A table row's method: its name, then its parameters (as JSON) when it has any."""
    return record["method"] + (" " + json.dumps(record["params"], sort_keys=True) if record.get("params") else "")


def append_record(out: Path, record: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as f:  # one whole line per write: a crash loses at most this run
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()


def run_protocol(protocol: BenchProtocol, methods: list[tuple[str, dict]], counts: list[int], seeds: list[int],
                 out: Path, *, progress=None, on_record: Callable[[dict], None] | None = None,
                 device: str | None = None) -> dict:
    """Run what is not yet in `out`; returns the runs done, those skipped (already there), and the table."""
    protocol.check(counts)
    done = done_keys(out) if out.exists() else set()

    def left(method, params, group, seed):
        return [c for c in group if run_key(protocol, method, params, c, seed) not in done]

    todo = [(m, p, g, s) for s in seeds for m, p in methods for g in protocol.fit_groups(counts) if left(m, p, g, s)]
    n_runs = len(seeds) * len(methods) * len(counts)
    task = progress.add(protocol.PROGRESS, total=n_runs) if progress else None
    if progress:
        progress.advance(task, n_runs - sum(len(left(*unit)) for unit in todo))
    loaded = protocol.load() if todo else None
    count = 0
    for method, params, group, seed in todo:
        train, unit = protocol.training(loaded, group, seed)
        reset_peak_rss()
        model = build_recommender(method, params, backbone=protocol.backbone, device=device)
        start = time.perf_counter()
        info = model.fit(train, seed=seed, progress=None)
        train_seconds = time.perf_counter() - start
        for c in group:
            key = run_key(protocol, method, params, c, seed)
            if key in done:
                continue
            score = protocol.score(loaded, unit, model, c, seed)
            record = {"key": key, "dataset": protocol.dataset, "method": method, "params": params,
                      protocol.COUNT: c, "seed": seed, **score.metrics, "train_seconds": round(train_seconds, 3),
                      **score.timings, "peak_rss_mb": rss_mb(), "protocol": protocol.to_dict(),
                      "train_info": {k: v for k, v in info.items() if k != "evidence_per_user"},
                      **score.payload, "versions": versions()}
            append_record(out, record)
            count += 1
            if on_record:
                on_record(record)
            if progress:
                progress.advance(task)
    return {"done": count, "skipped": n_runs - count, "out": str(out), "summary": protocol.summarize(out, loaded)}
