"""Every `fewtune` command's default path, end to end through the command line, on tiny models.

The list of commands is read from the typer app itself, so a command added without a case here fails
`test_every_command_has_a_default_path_case`: the class of bug where a command's default path breaks
only from the command line (say, `fewtune distill` reading a registry before the methods registered
themselves, while the Python API worked) is caught by construction.

Each case is the command with as few options as it takes, except that backbones point at the tiny
models built by tests/conftest.py (never a real default), training runs a handful of steps, and a
case may add --json where its check needs to parse the output. A model trained once (tests/cli/
conftest.py `trained`) serves predict, evaluate, export, serve and distill; suggest's default strategy
(bald) needs a posterior, so it gets a second one trained with --posterior laplace.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import typer

import fewtune.cli
from tests.helpers.cli import Result, private_home, run_cli, run_redirected
from tests.helpers.files import write_csv
from tests.helpers.ratings import synthetic
from tests.helpers.reviews import PREDICT_TEXTS, read_csv_rows, train_args

FAST_PRETRAIN = ["-p", "steps=2", "-p", "batch_size=4", "-p", "block_size=32"]
# A few epochs on these replies: enough for the tiny LM to start a reply with a word, not end it at once.
PAIRS = [("hello how are you", "i am fine thanks"), ("what did you do today", "i went to the park"),
         ("do you like movies", "yes i love movies"), ("how is the weather", "the weather is nice")]
LEARN = {"lora": False, "learning_rate": 1e-2, "epochs": 10, "batch_size": 8, "warmup_ratio": 0.0}
CLASSES = ["negative", "positive"]
POOL_WORDS = ["great", "awful", "moving", "dull", "superb", "dreadful", "fine", "boring", "lovely", "bad"]


# --- the commands, from the app ----------------------------------------------------------------------
def command_paths(command, prefix: tuple[str, ...] = ()) -> list[str]:
    """Every command a user can run: the leaves, and a group that runs without a subcommand (`models`).
    (A group is whatever has subcommands: typer vendors its own click, so no isinstance of click's Group.)"""
    if not getattr(command, "commands", None):
        return [" ".join(prefix)]
    paths = [" ".join(prefix)] if prefix and command.invoke_without_command else []
    for name, sub in command.commands.items():
        paths += command_paths(sub, (*prefix, name))
    return paths


ALL_COMMANDS = command_paths(typer.main.get_command(fewtune.cli.app))


# --- the fixtures a case draws on, by name -------------------------------------------------------------
class Fixtures:
    """`f.NAME` is pytest's fixture NAME, set up on first use: each case asks only for what it needs."""

    def __init__(self, request, tmp_path: Path, capfd, monkeypatch):
        self._request, self.tmp, self.capfd, self.monkeypatch = request, tmp_path, capfd, monkeypatch
        self.state: Any = None  # what a case's setup hands to its check

    def __getattr__(self, name: str):
        if name.startswith("_"):  # copy, pickle and repr probes are no fixtures
            raise AttributeError(name)
        return self._request.getfixturevalue(name)


@dataclass
class Case:
    args: Callable[[Fixtures], list]
    check: Callable[[Fixtures, Result], None]
    stdin: Optional[bytes] = None
    setup: Optional[Callable[[Fixtures], Any]] = None


# --- fixtures ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference(trained):
    """The trained model's classes and labels for PREDICT_TEXTS, from the Python API."""
    from fewtune.saved_models import load_classifier

    clf = load_classifier(trained.model)
    proba = clf.predict_proba(PREDICT_TEXTS)
    labels = [str(clf.classes_[i]) for i in proba.argmax(1)]
    return {"classes": [str(c) for c in clf.classes_], "labels": labels, "proba": proba}


@pytest.fixture(scope="module")
def laplace_model(data_dir, st_folder, tmp_path_factory):
    """A model with a posterior, which `suggest`'s default strategy (bald) needs."""
    out = tmp_path_factory.mktemp("every_laplace") / "model"
    with private_home(tmp_path_factory):
        result = run_redirected(*train_args(data_dir / "my.csv", out, st_folder), "-p", "steps=2",
                                "--posterior", "laplace", "-q")
    assert result.code == 0, result.err
    return out


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    """Unlabeled texts for `distill` (it needs at least 20), in the default `text` column."""
    texts = [f"the {POOL_WORDS[i % 10]} film was {POOL_WORDS[(3 * i + 1) % 10]} and {POOL_WORDS[(7 * i + 2) % 10]} "
             f"({i})" for i in range(40)]
    return write_csv(tmp_path_factory.mktemp("every_pool") / "pool.csv", [[t] for t in texts], header=["text"])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Unlabeled text, one per line, for `pretrain` and `adapt`."""
    subjects, good, bad = ["the movie", "the film", "the plot", "the cast"], ["great", "funny"], ["boring", "slow"]
    lines = [f"{subjects[i % 4]} was {(good if i % 3 else bad)[i % 2]} and {subjects[(i + 1) % 4]} felt "
             f"{(bad if i % 3 else good)[(i + 1) % 2]} ." for i in range(300)]
    path = tmp_path_factory.mktemp("every_corpus") / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bot(chat_llama_folder, tmp_path_factory) -> Path:
    """A dialogue model from `fewtune train --task generate`, for `generate` and `chat`."""
    folder = tmp_path_factory.mktemp("every_bot")
    data = folder / "pairs.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": q, "response": a}) for q, a in PAIRS * 2) + "\n")
    params = [x for k, v in LEARN.items() for x in ("-p", f"{k}={v}")]
    with private_home(tmp_path_factory):
        result = run_redirected("train", "--task", "generate", "--data", data, "--backbone", chat_llama_folder,
                                *params, "-o", folder / "bot", "-q")
    assert result.code == 0, result.err
    return folder / "bot"


@pytest.fixture(scope="module")
def ratings(tmp_path_factory) -> Path:
    """A folder with ratings.csv, items.csv (synthetic users whose tastes follow item features) and history.csv."""
    data, _ = synthetic()
    folder = tmp_path_factory.mktemp("every_ratings")
    write_csv(folder / "ratings.csv", [[data.user_ids[u], data.item_ids[i], int(r)]
                                       for u, i, r in zip(data.user, data.item, data.rating)],
              header=["user_id", "movie", "stars"])
    write_csv(folder / "items.csv", list(zip(data.item_ids, data.item_texts)), header=["item", "text"])
    (folder / "history.csv").write_text("title,rating\nm0,5\nm1,1\nm2,3\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def recommender(ratings, tmp_path_factory) -> Path:
    """A saved recommender for `recommend rank` (popularity: the cheapest method; any model takes the path)."""
    out = tmp_path_factory.mktemp("every_recommender") / "model"
    with private_home(tmp_path_factory):
        result = run_redirected("recommend", "train", "--ratings", ratings / "ratings.csv", "--method", "popularity",
                                "--test-fraction", "0", "-o", out, "-q")
    assert result.code == 0, result.err
    return out


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("every_bench") / "runs.jsonl"


def bench_args(f: Fixtures) -> list:
    # The built-in mr, one method and the majority baseline, K=2, one seed, 20 test texts: the default
    # path's every step (plan, worker run, results file, report) at its smallest.
    return ["bench", "--dataset", "mr", "--methods", "linear-probe", "--baselines", "majority", "--shots", "2",
            "--seeds", "1", "--max-test", "20", "--backbone", f.st_folder, "--out", f.bench_out]


@pytest.fixture(scope="module")
def bench_runs(request, bench_out, tmp_path_factory) -> Path:
    """bench's results file for `report`: the bench case's own, or one run here when that case did not run."""
    if not bench_out.is_file():
        f = Fixtures(request, bench_out.parent, None, None)
        with private_home(tmp_path_factory):
            result = run_redirected(*bench_args(f), "-q")
        assert result.code == 0, result.err
    return bench_out


# --- checks ------------------------------------------------------------------------------------------
def lines_in(texts: list[str]) -> bytes:
    return ("\n".join(texts) + "\n").encode()


def predict_rows(f: Fixtures, model: Path, texts: list[str] = PREDICT_TEXTS) -> list[dict]:
    """`fewtune predict MODEL` on stdin (its default input) -> the CSV rows."""
    r = run_cli(f.capfd, "predict", model, "-q", stdin=lines_in(texts))
    assert r.code == 0, r.err
    return read_csv_rows(r.out)


def same_labels_where_clear(rows: list[dict], reference: dict, margin: float = 1e-3) -> None:
    """Labels equal to the PyTorch model's, except for texts it calls a near tie (a runtime may flip those)."""
    for row, proba, label in zip(rows, reference["proba"], reference["labels"]):
        if abs(proba[0] - proba[1]) > margin:
            assert row["label"] == label, (row, proba)


def check_train(f: Fixtures, r: Result) -> None:
    from fewtune.saved_models import load_classifier

    out = f.tmp / "model"
    assert (out / "fewtune.json").is_file() and str(out) in r.out
    clf = load_classifier(out)
    assert [str(c) for c in clf.classes_] == CLASSES
    assert set(map(str, clf.predict(PREDICT_TEXTS))) <= set(CLASSES)
    assert clf.train_info_["head_c"]["folds"] == 4  # the default head, chosen by bodies that never saw the shots


def check_predict(f: Fixtures, r: Result) -> None:
    rows = read_csv_rows(r.out)
    ref = f.reference
    assert [row["text"] for row in rows] == PREDICT_TEXTS  # one row per input text, in order
    assert all(row["label"] in ref["classes"] for row in rows)
    assert [row["label"] for row in rows] == ref["labels"]  # the same model as the Python API's


def check_evaluate(f: Fixtures, r: Result) -> None:
    report = json.loads(r.out)
    with open(f.data_dir / "test.csv", newline="", encoding="utf-8") as fh:
        n_rows = sum(1 for _ in csv.DictReader(fh))
    assert 0.0 <= report["accuracy"] <= 1.0 and report["n"] == n_rows


def check_check_data(f: Fixtures, r: Result) -> None:
    # Clean data: every row checked, both classes counted, no error (a warning is no failure).
    assert r.out.startswith("checked 40 examples of ") and "negative 20" in r.out and "positive 20" in r.out, r.out
    assert re.search(r"^0 errors, \d+ warnings?$", r.out.splitlines()[-1]), r.out


def check_methods(f: Fixtures, r: Result) -> None:
    names = {line.split(":")[0] for line in r.out.splitlines() if line and not line.startswith(" ")}
    assert {"setfit", "linear-probe", "finetune"} <= names, names


def check_datasets(f: Fixtures, r: Result) -> None:
    names = {line.split()[0] for line in r.out.splitlines()[1:] if line.strip()}
    assert {"mr", "bbc", "chitchat"} <= names, names


def check_models(f: Fixtures, r: Result) -> None:
    rows = [line.split() for line in r.out.splitlines()[1:] if line.strip()]
    assert "minilm" in {row[0] for row in rows}, r.out


def check_models_install(f: Fixtures, r: Result) -> None:
    match = re.fullmatch(r"minilm ready at (.+)", r.out.strip())
    assert match and (Path(match.group(1)) / "config.json").is_file(), r.out


def serve_setup(f: Fixtures) -> dict:
    """uvicorn's Server.run, instead of listening, drives the app it was given with a TestClient: one POST /predict."""
    import uvicorn
    from fastapi.testclient import TestClient

    seen: dict = {}

    def run(self, sockets=None):
        seen["sockets"] = [s.getsockname() for s in sockets or []]
        with TestClient(self.config.app) as client:
            seen["response"] = client.post("/predict", json={"texts": PREDICT_TEXTS})
        self.started = True

    f.monkeypatch.setattr(uvicorn.Server, "run", run)
    return seen


def check_serve(f: Fixtures, r: Result) -> None:
    seen, ref = f.state, f.reference
    assert seen["sockets"], "the server was given no socket"
    response = seen["response"]
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == f.trained.model.name and body["classes"] == ref["classes"]
    assert [p["label"] for p in body["predictions"]] == ref["labels"]
    assert "serving" in r.err


def check_export(f: Fixtures, r: Result) -> None:
    out = f.tmp / "onnx"
    assert out.is_dir() and "exported" in r.out
    rows = predict_rows(f, out)  # predict takes the exported folder
    assert [row["text"] for row in rows] == PREDICT_TEXTS
    same_labels_where_clear(rows, f.reference)


def check_distill(f: Fixtures, r: Result) -> None:
    out = f.tmp / "student"
    assert "saved to" in r.out and out.is_dir()
    rows = predict_rows(f, out)
    assert len(rows) == len(PREDICT_TEXTS) and {row["label"] for row in rows} <= set(f.reference["classes"])
    assert {k.removeprefix("p_") for k in rows[0] if k.startswith("p_")} == set(f.reference["classes"])


def check_generate(f: Fixtures, r: Result) -> None:
    from fewtune import FewShotGenerator

    # Greedy by default: the Python API's reply with the command's defaults, streamed (the stream may carry
    # whitespace at the end that the returned reply trims).
    reply = FewShotGenerator.load(f.bot).generate(PAIRS[0][0], max_new_tokens=64, temperature=0.0, top_p=0.9,
                                                  repetition_penalty=1.1)
    assert reply.strip() and r.out.endswith("\n") and r.out.rstrip() == reply.rstrip(), (reply, r.out)


def check_chat(f: Fixtures, r: Result) -> None:
    assert r.out.strip(), "chat printed no reply"


def check_bench(f: Fixtures, r: Result) -> None:
    runs = [json.loads(line) for line in f.bench_out.read_text().splitlines()]
    assert {run["method"] for run in runs} == {"linear-probe", "majority"}, runs
    assert all(0.0 <= run["accuracy"] <= 1.0 for run in runs)
    assert re.search(r"\d+ runs done, \d+ already there, 0 failed", r.out), r.out
    report = f.bench_out.with_name(f"{f.bench_out.stem}_report")  # written by default when the runs are done
    assert (report / "report.html").is_file() and str(report / "report.html") in r.out, r.out


def check_report(f: Fixtures, r: Result) -> None:
    match = re.search(r"wrote (\S+), (\S+) and (\d+) plots", r.out)
    assert match and Path(match.group(1)).is_file() and Path(match.group(2)).is_file(), r.out
    assert "linear-probe" in Path(match.group(1)).read_text()


def check_suggest(f: Fixtures, r: Result) -> None:
    out = json.loads(r.out)
    with open(f.data_dir / "texts.csv", newline="", encoding="utf-8") as fh:
        texts = [row["review"] for row in csv.DictReader(fh)]
    suggestions = out["suggestions"]
    assert out["strategy"] == "bald" and len(suggestions) == min(10, len(texts))
    assert {s["text"] for s in suggestions} <= set(texts) and {s["predicted"] for s in suggestions} <= set(CLASSES)


def check_pretrain(f: Fixtures, r: Result) -> None:
    from fewtune.backbones import resolve_backbone

    assert "held-out perplexity" in r.out and "model saved to" in r.out, r.out
    assert resolve_backbone(str(f.tmp / "lm")).kind == "causal-lm"


def check_adapt(f: Fixtures, r: Result) -> None:
    from fewtune.backbones import resolve_backbone

    assert "held-out simcse loss" in r.out and "model saved to" in r.out, r.out
    assert resolve_backbone(str(f.tmp / "adapted")).kind == "encoder"


def check_recommend_train(f: Fixtures, r: Result) -> None:
    match = re.search(r"held-out users, K=8 known ratings each: AUC ([\d.]+)", r.out)
    assert match and 0.0 <= float(match.group(1)) <= 1.0, r.out
    assert (f.tmp / "rec" / "fewtune.json").is_file() and "model saved to" in r.out


def check_recommend_rank(f: Fixtures, r: Result) -> None:
    rows = [line.split() for line in r.out.splitlines()[1:] if line.strip()]
    assert [int(row[0]) for row in rows] == list(range(1, 11)), r.out  # the default -n 10
    assert all(0.0 <= float(row[1]) <= 1.0 for row in rows)
    assert not {"m0", "m1", "m2"} & {row[2] for row in rows}  # rated (and neutral) items are not recommended back


def check_recommend_bench(f: Fixtures, r: Result) -> None:
    runs = [json.loads(line) for line in (f.tmp / "rec_runs.jsonl").read_text().splitlines()]
    assert [(run["method"], run["K"], run["seed"]) for run in runs] == [("popularity", 4, 0)]
    assert 0.0 <= runs[0]["auc"] <= 1.0 and "1 runs done" in r.out


def check_recommend_methods(f: Fixtures, r: Result) -> None:
    names = {line.split(":")[0] for line in r.out.splitlines() if line and not line.startswith(" ")}
    assert {"popularity", "item-knn", "mf", "bayes"} <= names, names


# --- the cases: command path (as `fewtune --help` names it) -> its default path -----------------------
# A key "COMMAND[variant]" is a second path of the same command (distill's other student, export --int8).
CASES: dict[str, Case] = {
    # head_c=0 undoes the helpers' fixed head: setfit's default head, chosen by fold bodies.
    "train": Case(lambda f: train_args(f.data_dir / "my.csv", f.tmp / "model", f.st_folder, "-p", "steps=2",
                                       "-p", "head_c=0"),
                  check_train),
    "predict": Case(lambda f: ["predict", f.trained.model], check_predict, stdin=lines_in(PREDICT_TEXTS)),
    "evaluate": Case(lambda f: ["evaluate", f.trained.model, "--data", f.data_dir / "test.csv", "--text-col",
                                "opinion", "--label-col", "verdict", "--json"], check_evaluate),
    "check-data": Case(lambda f: ["check-data", "--data", f.data_dir / "my.csv", "--text-col", "review",
                                  "--label-col", "sentiment", "--backbone", f.st_folder], check_check_data),
    "methods": Case(lambda f: ["methods"], check_methods),
    "datasets": Case(lambda f: ["datasets"], check_datasets),
    "models": Case(lambda f: ["models"], check_models),
    # MiniLM ships in a fewtune dependency, so installing it converts nothing: the real path, in milliseconds.
    "models install": Case(lambda f: ["models", "install", "minilm"], check_models_install),
    # --port 0: the default 8000 may be taken on a shared machine; uvicorn serves nothing (serve_setup).
    "serve": Case(lambda f: ["serve", f.trained.model, "--port", "0"], check_serve, setup=serve_setup),
    "export": Case(lambda f: ["export", f.trained.model, "-o", f.tmp / "onnx"], check_export),  # onnx: the only format
    "export[int8]": Case(lambda f: ["export", f.trained.model, "--int8", "-o", f.tmp / "onnx"], check_export),
    "distill": Case(lambda f: ["distill", f.trained.model, "--unlabeled", f.pool, "-o", f.tmp / "student",
                               "--backbone", f.st_folder, "-p", "epochs=1"], check_distill),
    "distill[static]": Case(lambda f: ["distill", f.trained.model, "--unlabeled", f.pool, "-o", f.tmp / "student",
                                       "--student", "static", "--backbone", f.st_folder], check_distill),
    "generate": Case(lambda f: ["generate", f.bot], check_generate, stdin=lines_in([PAIRS[0][0]])),
    "chat": Case(lambda f: ["chat", f.bot], check_chat, stdin=lines_in([PAIRS[0][0]])),
    "bench": Case(bench_args, check_bench),
    "report": Case(lambda f: ["report", f.bench_runs], check_report),
    "suggest": Case(lambda f: ["suggest", f.laplace_model, "--pool", f.data_dir / "texts.csv", "--text-col",
                               "review", "--json"], check_suggest),
    "pretrain": Case(lambda f: ["pretrain", "--corpus", f.corpus, "--out", f.tmp / "lm", *FAST_PRETRAIN],
                     check_pretrain),
    "adapt": Case(lambda f: ["adapt", "--backbone", f.st_folder, "--corpus", f.corpus, "--out", f.tmp / "adapted",
                             *FAST_PRETRAIN], check_adapt),
    "recommend train": Case(lambda f: ["recommend", "train", "--ratings", f.ratings / "ratings.csv", "--items",
                                       f.ratings / "items.csv", "--backbone", f.st_folder, "-o", f.tmp / "rec"],
                            check_recommend_train),
    # `fewtune recommend MODEL` is `recommend rank MODEL`: the default command, typed as users type it.
    "recommend rank": Case(lambda f: ["recommend", f.recommender, "--history", f.ratings / "history.csv"],
                           check_recommend_rank),
    # ml-100k (installed with fewtune), the cheapest method, one K, one seed.
    "recommend bench": Case(lambda f: ["recommend", "bench", "--methods", "popularity", "--shots", "4", "--seeds",
                                       "1", "--out", f.tmp / "rec_runs.jsonl"], check_recommend_bench),
    "recommend methods": Case(lambda f: ["recommend", "methods"], check_recommend_methods),
}


def command_of(key: str) -> str:
    return key.split("[")[0]


def test_every_command_has_a_default_path_case():
    assert ALL_COMMANDS and "train" in ALL_COMMANDS and "recommend train" in ALL_COMMANDS
    missing = sorted(set(ALL_COMMANDS) - {command_of(k) for k in CASES})
    assert not missing, f"commands without a case in CASES (add their default path): {missing}"
    stale = sorted({command_of(k) for k in CASES} - set(ALL_COMMANDS))
    assert not stale, f"cases for commands the app no longer has: {stale}"


@pytest.mark.parametrize("key", list(CASES))
def test_the_default_path_works_from_the_command_line(key, request, tmp_path, capfd, monkeypatch):
    case = CASES[key]
    f = Fixtures(request, tmp_path, capfd, monkeypatch)
    args = [str(a) for a in case.args(f)]  # fixtures are set up here, before the command's output is captured
    if case.setup is not None:
        f.state = case.setup(f)
    if case.stdin is not None:  # a file-like stdin with .buffer (predict, generate) and .readline (chat)
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(case.stdin), encoding="utf-8"))
    result = run_cli(capfd, *args)
    assert result.code == 0, f"fewtune {' '.join(args)}\nexit {result.code}\n{result.err}"
    assert "Traceback" not in result.err and "error:" not in result.err, result.err
    case.check(f, result)
