"""The one runner of the recommendation protocols, on a toy protocol: what it fits, writes, skips and resumes."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from fewtune.errors import FewtuneError
from fewtune.recommend.data import LikeScale, train_set
from fewtune.recommend.protocol import Protocol
from fewtune.recommend.runner import Score, parse_methods, run_key, run_protocol
from fewtune.recommend.tallrec_protocol import TallRecProtocol
from tests.helpers.ratings import synthetic

CALLS: list = []  # what the runner asked of the toy protocol, in order


@dataclass(frozen=True)
class Toy:
    """Counts share a fit in pairs; a run's score is its count times its seed."""

    dataset: str = "toy"
    backbone: str = "minilm"

    COUNT = "n"
    PROGRESS = "Toy runs"
    SUMMARY_HEADER = ["runs"]

    def to_dict(self) -> dict:
        return {"protocol": "toy"}

    def check(self, counts):
        if not counts:
            raise FewtuneError("no counts")

    def fit_groups(self, counts):
        return [counts[i:i + 2] for i in range(0, len(counts), 2)]

    def load(self):
        CALLS.append("load")
        return synthetic()[0]

    def training(self, data, counts, seed):
        CALLS.append(("fit", tuple(counts), seed))
        return train_set(data, None, LikeScale()), f"unit {seed}"

    def score(self, data, unit, model, n, seed):
        return Score({"value": n * seed, "unit": unit}, timings={"t": 0}, payload={"extra": True})

    def summarize(self, out, loaded=None):
        CALLS.append(("summarize", loaded is not None))
        return [{"runs": sum(1 for _ in open(out))}]

    def format_summary(self, rows):
        return [[str(r["runs"])] for r in rows]


class Progress:
    def __init__(self):
        self.events = []

    def add(self, title, total):
        self.events.append((title, total))
        return "task"

    def advance(self, task, n=1):
        self.events.append(n)


def test_the_runner_fits_once_per_group_writes_each_run_and_resumes(tmp_path):
    CALLS.clear()
    out, toy = tmp_path / "runs.jsonl", Toy()
    methods = parse_methods("popularity,popularity:smoothing=1")
    seen, progress = [], Progress()
    result = run_protocol(toy, methods, [1, 2, 3], [0, 2], out, progress=progress, on_record=seen.append)
    assert result == {"done": 12, "skipped": 0, "out": str(out), "summary": [{"runs": 12}]}
    # One load; per seed and method a fit for counts (1, 2) and one for (3,); the summary knows what ran.
    fits = [c for c in CALLS if c[0] == "fit"]
    assert CALLS[0] == "load" and CALLS[-1] == ("summarize", True)
    assert fits == [("fit", g, s) for s in (0, 2) for _ in methods for g in ((1, 2), (3,))]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records == seen
    assert list(records[0]) == ["key", "dataset", "method", "params", "n", "seed", "value", "unit", "train_seconds",
                                "t", "peak_rss_mb", "protocol", "train_info", "extra", "versions"]
    assert [(r["method"], r["params"], r["n"], r["seed"], r["value"]) for r in records[:3]] == [
        ("popularity", {}, 1, 0, 0), ("popularity", {}, 2, 0, 0), ("popularity", {}, 3, 0, 0)]
    assert records[-1]["key"] == run_key(toy, "popularity", {"smoothing": 1}, 3, 2) and records[-1]["value"] == 6
    assert progress.events == [("Toy runs", 12), 0] + [1] * 12

    # Resumed with one more count: only its runs are done; its group (3, 4) is fitted again, 3 is not rewritten.
    CALLS.clear()
    progress = Progress()
    result = run_protocol(toy, methods, [1, 2, 3, 4], [0, 2], out, progress=progress)
    assert (result["done"], result["skipped"]) == (4, 12)
    assert [c for c in CALLS if c[0] == "fit"] == [("fit", (3, 4), s) for s in (0, 2) for _ in methods]
    assert progress.events == [("Toy runs", 16), 12] + [1] * 4
    assert len(out.read_text().splitlines()) == 16
    CALLS.clear()
    assert run_protocol(toy, methods, [1, 2, 3, 4], [0, 2], out)["done"] == 0
    assert CALLS == [("summarize", False)]  # nothing to run: no data loaded


def test_each_protocol_checks_its_counts_before_anything_runs(tmp_path):
    out = tmp_path / "runs.jsonl"
    methods = parse_methods("popularity")
    for protocol, counts, message in [(Protocol(), [], "--shots: give K values ≥ 0"),
                                      (Protocol(max_items=-1), [4], "--max-items must be 0"),
                                      (Protocol(like=2, dislike=2), [4], "must be below the like threshold"),
                                      (TallRecProtocol(), [0, 16], "--samples: give training sample counts ≥ 1"),
                                      (TallRecProtocol(history=0), [16], "--history must be at least 1")]:
        with pytest.raises(FewtuneError, match=message):
            run_protocol(protocol, methods, counts, [0], out)
    assert not out.exists()
    # The two protocols share a fit differently: cold-start over all K, TALLRec's per budget.
    assert Protocol().fit_groups([2, 4]) == [[2, 4]] and TallRecProtocol().fit_groups([16, 64]) == [[16], [64]]
