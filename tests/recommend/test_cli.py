"""`fewtune recommend` in-process: train on a ratings file, recommend from a history file, bench."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from fewtune.cli import main
from tests.helpers.ratings import synthetic


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    data, _ = synthetic()
    folder = tmp_path_factory.mktemp("recommend_cli")
    with open(folder / "ratings.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "movie", "stars"])
        for u, i, r in zip(data.user, data.item, data.rating):
            w.writerow([data.user_ids[u], data.item_ids[i], int(r)])
    with open(folder / "items.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["item", "text"])
        w.writerows(zip(data.item_ids, data.item_texts))
    (folder / "history.csv").write_text("title,rating\nm0,5\nm1,1\nm2,3\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def model(files):
    out = files / "model"
    code = main(["recommend", "train", "--ratings", str(files / "ratings.csv"), "--items", str(files / "items.csv"),
                 "--method", "item-knn", "--shots", "4", "-o", str(out), "--quiet", "--json"])
    assert code == 0
    return out


def test_train_reports_evaluation_and_saves(model, files, capsys):
    code = main(["recommend", "train", "--ratings", str(files / "ratings.csv"), "--method", "popularity",
                 "--shots", "4", "--quiet", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["evaluation"]["K"] == 4 and 0 <= result["evaluation"]["auc"] <= 1
    assert (model / "fewtune.json").is_file() and (model / "recommender.safetensors").is_file()


def test_default_command_ranks_items_for_a_history(model, files, capsys):
    code = main(["recommend", str(model), "--history", str(files / "history.csv"), "-n", "5", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    recs = out["recommendations"]
    assert len(recs) == 5 and [r["rank"] for r in recs] == [1, 2, 3, 4, 5]
    assert not {"m0", "m1", "m2"} & {r["item"] for r in recs}
    assert out["history"] == {"likes": 1, "dislikes": 1, "neutral": 1}
    scores = [r["score"] for r in recs]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("content, message", [
    ("title,rating\nm0,5\nNo Such Film,4\n", r"history.csv, line 3: unknown item 'No Such Film'"),
    ("film,rating\nm0,5\n", r"history.csv: no item column"),
    ("title,rating\nm0,lots\n", r"history.csv, line 2: rating 'lots' is neither a number"),
])
def test_bad_history_files_name_file_line_and_field(model, tmp_path, capsys, content, message):
    path = tmp_path / "history.csv"
    path.write_text(content, encoding="utf-8")
    assert main(["recommend", str(model), "--history", str(path)]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_a_classifier_folder_or_missing_folder_is_refused(tmp_path, capsys):
    assert main(["recommend", str(tmp_path / "nothing"), "--history", "h.csv"]) == 2
    assert "no such model folder" in capsys.readouterr().err


def test_bench_writes_one_line_per_run_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("fewtune.recommend.data.load_movielens", lambda name: synthetic()[0])
    out = tmp_path / "runs.jsonl"
    argv = ["recommend", "bench", "--methods", "popularity,item-knn:neighbors=20", "--shots", "2,4", "--seeds", "2",
            "--out", str(out), "--quiet", "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert first["done"] == len(lines) == 2 * 2 * 2
    assert {(r["method"], r["K"], r["seed"]) for r in lines} == {
        (m, k, s) for m in ("popularity", "item-knn") for k in (2, 4) for s in (0, 1)}
    assert all(0 <= r["auc"] <= 1 and r["peak_rss_mb"] > 0 for r in lines)
    assert main(argv) == 0  # resumed: nothing left to do
    second = json.loads(capsys.readouterr().out)
    assert second["done"] == 0 and second["skipped"] == 8
    summary = {(r["method"], r["K"]): r for r in second["summary"]}
    assert summary[("popularity", 2)]["seeds"] == 2


def _timed_synthetic(name):
    data = synthetic()[0]
    data.timestamp = (data.n_ratings - np.arange(data.n_ratings)).astype(np.float64)  # newest first in the file
    return data


def test_bench_on_tallrecs_protocol_counts_samples_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("fewtune.recommend.data.load_movielens", _timed_synthetic)
    out = tmp_path / "runs.jsonl"
    argv = ["recommend", "bench", "--protocol", "tallrec", "--methods", "popularity,mf", "--samples", "16,64",
            "--seeds", "2", "--max-test", "200", "--out", str(out), "--quiet", "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert first["done"] == len(lines) == 2 * 2 * 2
    for r in lines:
        assert r["n_test"] == 200 and len(r["scores"]) == 200
        assert r["auc_ci95"][0] < r["auc"] < r["auc_ci95"][1]
        assert r["ratings_used"] <= 11 * r["samples"]  # the budget: the samples' histories and targets only
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["done"] == 0
    rows = {(r["method"], r["samples"]): r for r in second["summary"]}
    assert set(rows) == {(m, n) for m in ("popularity", "mf") for n in (16, 64)}
    assert all(row["seeds"] == 2 and row["auc_ci95"][0] < row["auc"] < row["auc_ci95"][1] for row in rows.values())


@pytest.mark.parametrize("argv, message", [
    (["--protocol", "tallrec", "--shots", "4"], "--shots does not apply to --protocol tallrec; use --samples"),
    (["--samples", "16"], "--samples does not apply to --protocol cold-start; use --shots"),
    (["--protocol", "next"], "--protocol must be one of cold-start, tallrec"),
    (["--protocol", "tallrec", "--samples", "16,x"], "--samples must be whole numbers"),
    (["--protocol", "tallrec", "--history", "0"], "--history must be at least 1"),
])
def test_bench_protocol_options_are_checked(tmp_path, capsys, argv, message):
    assert main(["recommend", "bench", *argv, "--out", str(tmp_path / "r.jsonl"), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r.jsonl").exists()
