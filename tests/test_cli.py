"""The `fewtune` command line, run in-process through `fewtune.cli.main(argv)`.

Every test uses the tiny random sentence-transformers backbone from conftest (`st_folder`) and a
few contrastive steps, so training takes well under a second once the libraries are imported.
Trained model folders are built once per module and copied when a test needs to damage one.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import sys
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest

from fewtune.cli import main
from fewtune.storage.model_folder import PICKLE_SUFFIXES

FAST = ["-p", "steps=4", "-p", "batch_size=8"]
FAST_PARAMS = {"steps": 4, "batch_size": 8}
POS = ["great", "excellent", "wonderful", "loved"]
NEG = ["awful", "terrible", "boring", "hated"]
HEADER = ["id", "review", "sentiment"]  # deliberately not the default text/label column names

# Texts to predict on: commas, quotes, non-ASCII and (file input only) an embedded newline, so the
# CSV output has to quote properly to round-trip.
PREDICT_TEXTS = [
    "I loved it, a wonderful and great film",
    'She called it "awful": terrible, boring, hated it',
    "Café society: excellent acting, loved the score",
    "The plot was boring and the ending terrible",
    "Neither here nor there",
]
MULTILINE_TEXT = "hated every minute\nof this awful film"


# --- helpers --------------------------------------------------------------------------------------
@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


@contextlib.contextmanager
def _undo_main_side_effects():
    """main() sets two environment variables and warnings.showwarning for the process; undo that."""
    keys = ("HF_HUB_DISABLE_PROGRESS_BARS", "TOKENIZERS_PARALLELISM")
    env = {k: os.environ.get(k) for k in keys}
    showwarning = warnings.showwarning
    try:
        yield
    finally:
        warnings.showwarning = showwarning
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_cli(capfd, *args: str, stdin: Optional[bytes] = None, monkeypatch=None) -> Result:
    """Run `fewtune ARGS` in-process and return its exit code, stdout and stderr."""
    capfd.readouterr()  # drop anything printed before
    with contextlib.ExitStack() as stack:
        stack.enter_context(_undo_main_side_effects())
        if stdin is not None:
            mp = stack.enter_context(pytest.MonkeyPatch.context()) if monkeypatch is None else monkeypatch
            mp.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(stdin)))
        code = main([str(a) for a in args])
    captured = capfd.readouterr()
    return Result(code, captured.out, captured.err)


def run_redirected(*args: str) -> Result:
    """The same, for module-scoped fixtures (which cannot use capfd)."""
    out, err = io.StringIO(), io.StringIO()
    with _undo_main_side_effects(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return Result(code, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def private_home(tmp_path_factory):
    """conftest's FEWTUNE_HOME, for module-scoped fixtures that run before its autouse fixture."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEWTUNE_HOME", str(tmp_path_factory.getbasetemp() / "fewtune_home"))
        yield


def review_rows(n_per_class: int = 20) -> list[list[str]]:
    rows = []
    for i in range(n_per_class):
        a, b = POS[i % 4], POS[(i + 1) % 4]
        rows.append([f"p{i}", f"a {a} film, truly {b} from start to end (review {i})", "positive"])
        a, b = NEG[i % 4], NEG[(i + 1) % 4]
        rows.append([f"n{i}", f"an {a} film, truly {b} from start to end (review {i})", "negative"])
    return rows


def write_csv(path: Path, rows, header=HEADER, encoding: str = "utf-8") -> Path:
    with open(path, "w", newline="", encoding=encoding) as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def proba_columns(row: dict, classes) -> np.ndarray:
    return np.array([float(row[f"p_{c}"]) for c in classes])


def tree(folder: Path) -> set[str]:
    """Every path below `folder`, hidden ones included: what a command must not leave behind."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def train_args(data: Path, output: Path, backbone, *extra: str) -> list[str]:
    return ["train", "--data", data, "--text-col", "review", "--label-col", "sentiment", "--shots", "8",
            "-o", output, "--backbone", backbone, *FAST, *extra]


def check_predictions(rows: list[dict], texts: list[str], classes, expected: np.ndarray) -> None:
    """Rows of `predict` output: one per text, in order, probabilities equal to `expected`."""
    assert [r["text"] for r in rows] == texts
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected):
        got = proba_columns(row, classes)
        assert got == pytest.approx(want, abs=1e-6)
        assert got.sum() == pytest.approx(1.0, abs=1e-5)
        assert row["label"] == str(classes[int(np.argmax(got))])
        assert float(row["probability"]) == pytest.approx(got.max(), abs=1e-6)


# --- module fixtures: data, one CLI-trained model, one API-trained model ------------------------------
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli_data")
    write_csv(folder / "my.csv", review_rows())
    # Labeled held-out data with yet other column names, for `evaluate`.
    test_rows = [[f"t{i}", f"simply {POS[i % 4]}, I {POS[(i + 2) % 4]} scene {i}", "positive"] for i in range(8)]
    test_rows += [[f"u{i}", f"simply {NEG[i % 4]}, I {NEG[(i + 2) % 4]} scene {i}", "negative"] for i in range(8)]
    write_csv(folder / "test.csv", test_rows, header=["key", "opinion", "verdict"])
    texts = [*PREDICT_TEXTS, MULTILINE_TEXT]
    write_csv(folder / "texts.csv", [[f"x{i}", t] for i, t in enumerate(texts)], header=["id", "review"])
    return folder


@pytest.fixture(scope="module")
def trained(data_dir, st_folder, tmp_path_factory):
    """`fewtune train` on the user's own CSV, as a user would type it (no --quiet, no --json)."""
    out = tmp_path_factory.mktemp("cli_trained") / "model"
    with private_home(tmp_path_factory):
        result = run_redirected(*train_args(data_dir / "my.csv", out, st_folder))
    assert result.code == 0, result.err
    return types.SimpleNamespace(model=out, result=result)


@pytest.fixture(scope="module")
def api_model(st_folder, tmp_path_factory):
    """A model trained with the Python API; its in-memory probabilities are taken before saving."""
    from fewtune import FewShotClassifier

    rows = review_rows(8)
    with private_home(tmp_path_factory):
        clf = FewShotClassifier(backbone=str(st_folder), params=dict(FAST_PARAMS), seed=0)
        clf.fit([r[1] for r in rows], [r[2] for r in rows])
        texts = [*PREDICT_TEXTS, MULTILINE_TEXT]
        proba = clf.predict_proba(texts)
        folder = tmp_path_factory.mktemp("cli_api") / "model"
        clf.save(folder)
    return types.SimpleNamespace(model=folder, classes=list(clf.classes_), texts=texts, proba=proba)


# --- 1. train on a user's own CSV -----------------------------------------------------------------
def test_train_on_own_csv_saves_a_safe_model_folder(trained):
    model = trained.model
    for name in ("fewtune.json", "head.safetensors", "body/model.safetensors", "README.md"):
        assert (model / name).is_file(), name
    pickles = [p for p in model.rglob("*") if p.suffix in {".bin", ".pt", ".pkl", *PICKLE_SUFFIXES}]
    assert pickles == []
    assert not [p for p in model.parent.iterdir() if p.name.startswith(".")], "temporary folder left behind"
    config = json.loads((model / "fewtune.json").read_text(encoding="utf-8"))
    assert config["classes"] == ["negative", "positive"]
    assert config["training"]["n_examples"] == 16
    assert config["training"]["class_counts"] == {"negative": 8, "positive": 8}
    assert config["params"]["steps"] == 4 and config["params"]["batch_size"] == 8
    assert "positive" in (model / "README.md").read_text(encoding="utf-8")


def test_train_reports_accuracy_on_the_rows_not_drawn(trained, data_dir):
    from fewtune import FewShotClassifier
    from fewtune.data import load_labeled, sample_k_shot

    out = trained.result.out
    assert "held-out accuracy" in out
    assert "24 examples" in out and "not drawn" in out  # 40 rows - 2 classes x 8 shots
    assert f"model saved to {trained.model}" in out

    # The reported number is the accuracy of the saved model on exactly the 24 undrawn rows.
    pool = load_labeled(data_dir / "my.csv", text_col="review", label_col="sentiment")
    drawn = set(sample_k_shot(pool.labels, 8, 0).tolist())
    rest = [i for i in range(len(pool)) if i not in drawn]
    predicted = FewShotClassifier.load(trained.model).predict([pool.texts[i] for i in rest])
    accuracy = float(np.mean([p == pool.labels[i] for p, i in zip(predicted, rest)]))
    assert f"held-out accuracy {accuracy:.3f}" in out
    evaluation = json.loads((trained.model / "fewtune.json").read_text(encoding="utf-8"))["evaluation"]
    assert evaluation["n"] == 24
    assert evaluation["accuracy"] == pytest.approx(round(accuracy, 4))


# --- 2. predict: CSV, JSONL and stdin agree with the Python API --------------------------------------
def test_predict_csv_matches_loaded_and_in_memory_model(api_model, data_dir, capfd):
    from fewtune import FewShotClassifier

    r = run_cli(capfd, "predict", api_model.model, data_dir / "texts.csv", "--text-col", "review")
    assert r.code == 0, r.err
    rows = read_csv_rows(r.out)
    assert list(rows[0]) == ["text", "label", "probability", *(f"p_{c}" for c in api_model.classes)]
    loaded = FewShotClassifier.load(api_model.model).predict_proba(api_model.texts)
    np.testing.assert_allclose(loaded, api_model.proba, atol=1e-6)
    check_predictions(rows, api_model.texts, api_model.classes, api_model.proba)
    check_predictions(rows, api_model.texts, api_model.classes, loaded)


def test_predict_jsonl_matches_in_memory_model(api_model, data_dir, capfd):
    r = run_cli(capfd, "predict", api_model.model, data_dir / "texts.csv", "--text-col", "review",
                "--format", "jsonl", "--quiet")
    assert r.code == 0, r.err
    assert r.err == ""
    rows = [json.loads(line) for line in r.out.splitlines()]
    assert all(isinstance(row[f"p_{c}"], float) for row in rows for c in api_model.classes)
    check_predictions(rows, api_model.texts, api_model.classes, api_model.proba)


@pytest.mark.parametrize("where", [["-"], []], ids=["dash", "no-input"])
def test_predict_stdin_lines_match_in_memory_model(api_model, capfd, monkeypatch, where):
    texts = PREDICT_TEXTS  # one text per line: no embedded newline here
    stdin = ("\n".join(texts) + "\n").encode("utf-8")
    r = run_cli(capfd, "predict", api_model.model, *where, stdin=stdin, monkeypatch=monkeypatch)
    assert r.code == 0, r.err
    check_predictions(read_csv_rows(r.out), texts, api_model.classes, api_model.proba[: len(texts)])


def test_predict_cli_trained_model_matches_python_load(trained, data_dir, capfd):
    from fewtune import FewShotClassifier

    clf = FewShotClassifier.load(trained.model)
    texts = [*PREDICT_TEXTS, MULTILINE_TEXT]
    r = run_cli(capfd, "predict", trained.model, data_dir / "texts.csv", "--text-col", "review", "--quiet")
    assert r.code == 0, r.err
    check_predictions(read_csv_rows(r.out), texts, list(clf.classes_), clf.predict_proba(texts))


# --- 3. --output FILE -------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_predict_output_file_is_complete_and_alone(api_model, data_dir, tmp_path, capfd, fmt):
    args = ["predict", api_model.model, data_dir / "texts.csv", "--text-col", "review", "--format", fmt, "--quiet"]
    to_stdout = run_cli(capfd, *args)
    target = tmp_path / f"pred.{fmt}"
    target.write_text("old content that must be replaced\n", encoding="utf-8")
    r = run_cli(capfd, *args, "--output", target)
    assert r.code == 0, r.err
    assert r.out == ""
    assert target.read_text(encoding="utf-8") == to_stdout.out
    assert tree(tmp_path) == {target.name}  # no hidden temporary file left beside it


def test_predict_output_in_missing_folder(api_model, data_dir, tmp_path, capfd):
    target = tmp_path / "no" / "such" / "pred.csv"
    r = run_cli(capfd, "predict", api_model.model, data_dir / "texts.csv", "--text-col", "review", "-q",
                "-o", target)
    if r.code == 0:
        assert target.is_file()
    else:
        assert r.code == 2 and len(r.err_lines) == 1 and r.err.startswith("error:")


def test_predict_output_is_a_folder(api_model, data_dir, tmp_path, capfd):
    (tmp_path / "results").mkdir()
    try:
        r = run_cli(capfd, "predict", api_model.model, data_dir / "texts.csv", "--text-col", "review", "-q",
                    "-o", tmp_path / "results")
    finally:
        left = tree(tmp_path)
    assert left == {"results"}
    assert r.code == 2 and len(r.err_lines) == 1 and r.err.startswith("error:")


# --- 4. evaluate ------------------------------------------------------------------------------------
def test_evaluate_json_is_self_consistent(trained, data_dir, capfd):
    from fewtune import FewShotClassifier
    from fewtune.data import load_labeled

    r = run_cli(capfd, "evaluate", trained.model, "--data", data_dir / "test.csv", "--text-col", "opinion",
                "--label-col", "verdict", "--json", "--quiet")
    assert r.code == 0, r.err
    assert r.err == ""
    report = json.loads(r.out)
    cm = np.array(report["confusion_matrix"])
    labels = report["labels"]
    assert labels == ["negative", "positive"]
    assert cm.shape == (2, 2)
    assert report["n"] == cm.sum() == 16
    assert report["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    f1s = []
    for i, c in enumerate(labels):
        pc = report["per_class"][c]
        assert pc["support"] == cm[i].sum() == 8
        assert pc["recall"] == pytest.approx(cm[i, i] / cm[i].sum())
        assert pc["precision"] == pytest.approx(cm[i, i] / cm[:, i].sum() if cm[:, i].sum() else 0.0)
        p, rc = pc["precision"], pc["recall"]
        assert pc["f1"] == pytest.approx(2 * p * rc / (p + rc) if p + rc else 0.0)
        f1s.append(pc["f1"])
    assert report["macro_f1"] == pytest.approx(np.mean(f1s))

    # ... and it scores what the saved model actually predicts.
    data = load_labeled(data_dir / "test.csv", text_col="opinion", label_col="verdict")
    clf = FewShotClassifier.load(trained.model)
    predicted = clf.predict(data.texts)
    assert report["accuracy"] == pytest.approx(np.mean([p == t for p, t in zip(predicted, data.labels)]))
    # Calibration is computed from the same model's probabilities.
    proba = clf.predict_proba(data.texts)
    truth = np.array([list(clf.classes_).index(t) for t in data.labels])
    assert report["calibration"]["nll"] == pytest.approx(-np.mean(np.log(proba[np.arange(16), truth])), rel=1e-4)
    assert 0 <= report["calibration"]["ece"] <= 1 and sum(b["n"] for b in report["calibration"]["reliability"]) == 16


def test_evaluate_plain_text_prints_the_confusion_matrix(trained, data_dir, capfd):
    args = ["evaluate", trained.model, "--data", data_dir / "test.csv", "--text-col", "opinion",
            "--label-col", "verdict", "-q"]
    report = json.loads(run_cli(capfd, *args, "--json").out)
    r = run_cli(capfd, *args)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert f"accuracy  {report['accuracy']:.4f}" in lines
    assert f"macro-F1  {report['macro_f1']:.4f}" in lines
    start = next(i for i, line in enumerate(lines) if line.startswith("confusion matrix"))
    assert lines[start + 1].split() == report["labels"]
    table = [line.split() for line in lines[start + 2: start + 2 + len(report["labels"])]]
    assert [row[0] for row in table] == report["labels"]
    assert [[int(x) for x in row[1:]] for row in table] == report["confusion_matrix"]


# --- 5. train --json / --quiet -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def seed7_runs(data_dir, st_folder, tmp_path_factory):
    """Two `train --seed 7 --json --quiet` runs on the same data, into two folders."""
    folders = [tmp_path_factory.mktemp("cli_seed7") / name for name in ("a", "b")]
    with private_home(tmp_path_factory):
        args = ["--seed", "7", "--json", "--quiet"]
        results = [run_redirected(*train_args(data_dir / "my.csv", f, st_folder), *args) for f in folders]
    for r in results:
        assert r.code == 0, r.err
    return types.SimpleNamespace(folders=folders, results=results)


def test_train_json_prints_one_object(seed7_runs):
    r, folder = seed7_runs.results[0], seed7_runs.folders[0]
    assert "training setfit" not in r.err  # --quiet: no notes
    result = json.loads(r.out)  # the whole of stdout is one JSON object
    assert isinstance(result, dict)
    assert 0.0 <= result["evaluation"]["accuracy"] <= 1.0
    assert result["evaluation"]["n"] == 24
    assert result["n_train"] == 16 and result["shots"] == 8 and result["seed"] == 7 and result["method"] == "setfit"
    assert result["output"] == str(folder)
    saved = json.loads((folder / "fewtune.json").read_text(encoding="utf-8"))
    assert saved["evaluation"]["accuracy"] == result["evaluation"]["accuracy"]


def test_train_quiet_writes_nothing_on_stderr(data_dir, st_folder, tmp_path, capfd):
    r = run_cli(capfd, *train_args(data_dir / "my.csv", tmp_path / "m", st_folder), "-p", "steps=0", "--quiet")
    assert r.code == 0, r.err
    assert r.err == ""


def test_train_overwrite_replaces_a_model_folder(data_dir, st_folder, trained, tmp_path, capfd):
    out = Path(shutil.copytree(trained.model, tmp_path / "m"))
    r = run_cli(capfd, *train_args(data_dir / "my.csv", out, st_folder), "-q", "--overwrite", "--seed", "1")
    assert r.code == 0, r.err
    assert json.loads((out / "fewtune.json").read_text(encoding="utf-8"))["seed"] == 1
    assert tree(tmp_path) == {"m", *("m/" + p for p in tree(out))}


def test_train_interrupted_while_saving_leaves_no_folder(data_dir, st_folder, tmp_path, capfd, monkeypatch):
    from fewtune.methods.setfit import SetFit

    def half_save(self, folder):
        (folder / "head.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(SetFit, "save", half_save)
    r = run_cli(capfd, *train_args(data_dir / "my.csv", tmp_path / "m", st_folder), "-p", "steps=0", "-q")
    assert r.code == 130
    assert tree(tmp_path) == set()  # neither the model folder nor its hidden .m.tmp-* folder


def test_interrupt_returns_130(data_dir, st_folder, tmp_path, capfd, monkeypatch):
    import fewtune.data

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fewtune.data, "load_labeled", interrupted)
    r = run_cli(capfd, *train_args(data_dir / "my.csv", tmp_path / "m", st_folder), "-q")
    assert r.code == 130
    assert "Traceback" not in r.err and len(r.err_lines) <= 1
    assert tree(tmp_path) == set()


# --- 6. bad input: exit 2, one "error:" line naming file/line/column, nothing left behind --------------
@dataclass
class Env:
    tmp: Path  # where outputs go; must look the same after a failed command
    data: Path  # the module's good data files
    model: Path  # a good trained model folder (the module's; copy it before damaging it)
    backbone: str

    def train(self, data=None, *extra: str, output: str = "out") -> list[str]:
        return train_args(data or self.data / "my.csv", self.tmp / output, self.backbone, *extra)

    def predict(self, model: Path, *extra: str) -> list[str]:
        return ["predict", model, *extra, "--output", self.tmp / "pred.csv"]

    def model_copy(self) -> Path:
        return Path(shutil.copytree(self.model, self.tmp / "model"))

    def csv(self, name: str, rows, header=HEADER) -> Path:
        return write_csv(self.tmp / name, rows, header)


@dataclass
class Case:
    args: list
    fragments: list  # every one must appear in the error line
    stdin: Optional[bytes] = None
    extra_check: Optional[Callable] = field(default=None)


def _rows_with(index: int, column: int, value: str, n_per_class: int = 20):
    rows = review_rows(n_per_class)
    rows[index][column] = value
    return rows


def case_missing_column(env):
    return Case(env.train(None, "--text-col", "text"),
                [str(env.data / "my.csv"), "no column 'text'", "'id'", "'review'", "'sentiment'"])


def case_missing_label_column(env):
    args = env.train()
    args[args.index("sentiment")] = "label"
    return Case(args, [str(env.data / "my.csv"), "no column 'label'", "'sentiment'"])


def case_empty_text(env):
    f = env.csv("blank.csv", _rows_with(3, 1, "   "))  # 4th record: line 5 (the header is line 1)
    return Case(env.train(f), [str(f), "line 5", "column 'review'", "empty text"])


def case_missing_label(env):
    f = env.csv("nolabel.csv", _rows_with(5, 2, ""))
    return Case(env.train(f), [str(f), "line 7", "column 'sentiment'", "missing label"])


def case_one_class(env):
    f = env.csv("one.csv", [[i, t, "positive"] for i, t, _ in review_rows()])
    return Case(env.train(f), [str(f), "column 'sentiment'", "only one class", "'positive'"])


def case_too_few_shots(env):
    rows = [r for r in review_rows() if r[2] == "positive"] + [r for r in review_rows(3) if r[2] == "negative"]
    f = env.csv("few.csv", rows)
    return Case(env.train(f), [str(f), "column 'sentiment'", "class 'negative' has 3 examples", "8 shots"])


def latin1_csv(folder: Path) -> Path:
    rows = review_rows()
    rows[2][1] = "café crème, loved it, great"  # 3rd record: line 4
    return write_csv(folder / "latin.csv", rows, encoding="latin-1")


def case_undecodable(env):
    f = latin1_csv(env.tmp)
    assert b"caf\xe9" in f.read_bytes()
    return Case(env.train(f), [str(f), "line 4", "0xe9", "--encoding"])


def case_bad_encoding_name(env):
    return Case(env.train(None, "--encoding", "klingon-8"), [str(env.data / "my.csv"), "unknown encoding"])


def case_unknown_extension(env):
    f = env.tmp / "my.txt"
    shutil.copy(env.data / "my.csv", f)
    return Case(env.train(f), [str(f), "'.txt'", ".csv", ".jsonl"])


def case_missing_file(env):
    return Case(env.train(env.tmp / "absent.csv"), [str(env.tmp / "absent.csv"), "no such file"])


def case_malformed_jsonl(env):
    f = env.tmp / "my.jsonl"
    lines = [json.dumps({"review": r[1], "sentiment": r[2]}) for r in review_rows()]
    lines[2] = '{"review": "great film", "sentiment": '
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Case(env.train(f), [str(f), "line 3", "not valid JSON"])


def case_data_and_dataset(env):
    return Case(env.train(None, "--dataset", "mr"), ["exactly one of --data", "--dataset"])


def case_neither_data_nor_dataset(env):
    args = env.train()
    i = args.index("--data")
    del args[i: i + 2]
    return Case(args, ["exactly one of --data", "--dataset"])


def case_shots_zero(env):
    args = env.train()
    args[args.index("--shots") + 1] = "0"
    return Case(args, ["--shots", "at least 1"])


def case_param_not_key_value(env):
    return Case(env.train(None, "-p", "steps"), ["--param", "KEY=VALUE", "'steps'"])


def case_output_exists(env):
    (env.tmp / "out").mkdir()
    (env.tmp / "out" / "keep.txt").write_text("mine", encoding="utf-8")
    return Case(env.train(), [str(env.tmp / "out"), "already exists", "--overwrite"],
                extra_check=lambda: (env.tmp / "out" / "keep.txt").read_text(encoding="utf-8") == "mine")


def case_overwrite_non_model_folder(env):
    (env.tmp / "out").mkdir()
    (env.tmp / "out" / "keep.txt").write_text("mine", encoding="utf-8")
    return Case(env.train(None, "-p", "steps=0", "-q", "--overwrite"),
                [str(env.tmp / "out"), "not a fewtune model folder"],
                extra_check=lambda: (env.tmp / "out" / "keep.txt").read_text(encoding="utf-8") == "mine")


def case_test_file_missing_column(env):
    return Case(env.train(None, "--test", env.data / "test.csv"),
                [str(env.data / "test.csv"), "no column 'review'", "'opinion'"])


# Errors found only once training starts: fewtune prints its "training ..." note first, so these are
# also run with --quiet below, where the one-line contract must hold today.
def case_unknown_method(env):
    return Case(env.train(None, "--method", "zzz"), ["unknown method 'zzz'", "setfit"])


def case_unknown_backbone(env):
    return Case(env.train(None, "--backbone", "nosuchmodel"), ["unknown backbone 'nosuchmodel'", "minilm"])


def case_param_unknown_key(env):
    return Case(env.train(None, "-p", "bogus=1"), ["unknown parameter", "bogus", "steps"])


def case_param_wrong_type(env):
    return Case(env.train(None, "-p", "steps=many"), ["parameter 'steps'", "int", "'many'"])


def case_predict_not_a_model(env):
    folder = env.tmp / "notamodel"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello", encoding="utf-8")
    return Case(env.predict(folder, env.data / "texts.csv", "--text-col", "review"),
                [str(folder), "not a fewtune model folder", "fewtune.json"])


def case_predict_no_such_model(env):
    return Case(env.predict(env.tmp / "nowhere", env.data / "texts.csv", "--text-col", "review"),
                [str(env.tmp / "nowhere"), "no such model folder"])


def case_predict_truncated_body(env):
    m = env.model_copy()
    weights = m / "body" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    return Case(env.predict(m, env.data / "texts.csv", "--text-col", "review"),
                [str(weights), "checksum mismatch"])


def case_predict_edited_head(env):
    m = env.model_copy()
    head = m / "head.safetensors"
    data = bytearray(head.read_bytes())
    data[-1] ^= 0xFF
    head.write_bytes(bytes(data))
    return Case(env.predict(m, env.data / "texts.csv", "--text-col", "review"), [str(head), "checksum mismatch"])


def case_predict_corrupt_config(env):
    m = env.model_copy()
    (m / "fewtune.json").write_text('{"format": "fewtune-model", ', encoding="utf-8")
    return Case(env.predict(m, env.data / "texts.csv", "--text-col", "review"),
                [str(m / "fewtune.json"), "corrupt"])


def case_predict_pickle_file(env):
    import pickle

    m = env.model_copy()
    (m / "extra.pkl").write_bytes(pickle.dumps({"harmless": True}))
    return Case(env.predict(m, env.data / "texts.csv", "--text-col", "review"),
                [str(m), "pickle", "extra.pkl", "--trust"])


def case_predict_missing_text_column(env):
    return Case(env.predict(env.model, env.data / "texts.csv"),
                [str(env.data / "texts.csv"), "no column 'text'", "'review'"])


def case_predict_empty_text_in_file(env):
    f = env.csv("texts.csv", [["a", "fine"], ["b", ""], ["c", "ok"]], header=["id", "review"])
    return Case(env.predict(env.model, f, "--text-col", "review"),
                [str(f), "line 3", "column 'review'", "empty text"])


def case_predict_bad_format(env):
    return Case(env.predict(env.model, env.data / "texts.csv", "--text-col", "review", "--format", "xml"),
                ["--format", "csv or jsonl", "'xml'"])


def case_stdin_empty_line(env):
    return Case(env.predict(env.model, "-"), ["stdin", "line 2", "empty text"], stdin=b"great film\n\nawful film\n")


def case_stdin_nothing(env):
    return Case(env.predict(env.model), ["stdin", "no texts"], stdin=b"\n\n")


def case_stdin_undecodable(env):
    return Case(env.predict(env.model), ["stdin", "line 2", "--encoding"], stdin=b"great\ncaf\xe9 noir\n")


def case_evaluate_missing_label_column(env):
    return Case(["evaluate", env.model, "--data", env.data / "test.csv", "--text-col", "opinion"],
                [str(env.data / "test.csv"), "no column 'label'", "'verdict'"])


def case_evaluate_neither(env):
    return Case(["evaluate", env.model], ["exactly one of --data", "--dataset"])


BAD_INPUTS = [
    case_missing_column,
    case_missing_label_column,
    case_empty_text,
    case_missing_label,
    case_one_class,
    case_too_few_shots,
    case_undecodable,
    case_bad_encoding_name,
    case_unknown_extension,
    case_missing_file,
    case_malformed_jsonl,
    case_data_and_dataset,
    case_neither_data_nor_dataset,
    case_shots_zero,
    case_param_not_key_value,
    case_output_exists,
    case_overwrite_non_model_folder,
    case_test_file_missing_column,
    case_predict_not_a_model,
    case_predict_no_such_model,
    case_predict_truncated_body,
    case_predict_edited_head,
    case_predict_corrupt_config,
    case_predict_pickle_file,
    case_predict_missing_text_column,
    case_predict_empty_text_in_file,
    case_predict_bad_format,
    case_stdin_empty_line,
    case_stdin_nothing,
    case_stdin_undecodable,
    case_evaluate_missing_label_column,
    case_evaluate_neither,
]
LATE_ERRORS = [case_unknown_method, case_unknown_backbone, case_param_unknown_key, case_param_wrong_type]


@pytest.fixture
def env(tmp_path, data_dir, trained, st_folder) -> Env:
    out = tmp_path / "work"
    out.mkdir()
    return Env(tmp=out, data=data_dir, model=trained.model, backbone=str(st_folder))


def check_bad_input(capfd, monkeypatch, env: Env, case: Case) -> Result:
    before = tree(env.tmp)
    data_before = tree(env.data)
    r = run_cli(capfd, *case.args, stdin=case.stdin, monkeypatch=monkeypatch)
    assert r.code == 2, (r.code, r.err)
    assert "Traceback" not in r.out + r.err
    assert r.out == ""
    assert len(r.err_lines) == 1, r.err
    line = r.err_lines[0]
    assert line.startswith("error: ")
    for fragment in case.fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    # No output folder, no hidden .out.tmp-* folder, no half-written predictions file.
    assert tree(env.tmp) == before
    assert tree(env.data) == data_before
    if case.extra_check is not None:
        assert case.extra_check()
    return r


@pytest.mark.parametrize("make_case", BAD_INPUTS, ids=lambda f: f.__name__.removeprefix("case_"))
def test_bad_input_is_one_line_error(make_case, env, capfd, monkeypatch):
    check_bad_input(capfd, monkeypatch, env, make_case(env))


@pytest.mark.parametrize("make_case", LATE_ERRORS,
                         ids=lambda f: f.__name__.removeprefix("case_"))
def test_bad_train_setting_is_one_line_error(make_case, env, capfd, monkeypatch):
    check_bad_input(capfd, monkeypatch, env, make_case(env))


@pytest.mark.parametrize("make_case", LATE_ERRORS, ids=lambda f: f.__name__.removeprefix("case_"))
def test_bad_train_setting_is_one_line_error_when_quiet(make_case, env, capfd, monkeypatch):
    case = make_case(env)
    case.args.append("--quiet")
    check_bad_input(capfd, monkeypatch, env, case)


def test_undecodable_file_trains_with_its_encoding(env, capfd):
    f = latin1_csv(env.tmp)
    r = run_cli(capfd, *env.train(f, "--encoding", "latin-1", "-p", "steps=0", "-q"))
    assert r.code == 0, r.err
    assert (env.tmp / "out" / "fewtune.json").is_file()


def test_pickle_file_loads_with_trust(env, capfd, monkeypatch):
    case = case_predict_pickle_file(env)
    args = [a for a in case.args if a not in ("--output", env.tmp / "pred.csv")]
    r = run_cli(capfd, *args, "--trust", "-q")
    assert r.code == 0, r.err
    assert len(read_csv_rows(r.out)) == len(PREDICT_TEXTS) + 1


@pytest.mark.parametrize("name", ["head.safetensors", "body/model.safetensors"])
def test_corrupt_weights_with_matching_checksum(env, capfd, monkeypatch, name):
    m = env.model_copy()
    weights = m / name
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    config = json.loads((m / "fewtune.json").read_text(encoding="utf-8"))
    config["files"][name] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (m / "fewtune.json").write_text(json.dumps(config), encoding="utf-8")
    check_bad_input(capfd, monkeypatch, env, Case(env.predict(m, env.data / "texts.csv", "--text-col", "review"),
                                                  [str(m)]))


@pytest.mark.parametrize(
    "args, named",
    [
        (["train", "--bogus"], "--bogus"),
        (["train", "--data", "x.csv", "--shots", "many"], "--shots"),
        (["predict"], "model"),
        (["nosuchcommand"], "nosuchcommand"),
    ],
    ids=["unknown-option", "not-an-int", "missing-argument", "unknown-command"],
)
def test_usage_errors_exit_2_without_traceback(capfd, args, named):
    r = run_cli(capfd, *args)
    assert r.code == 2
    assert "Traceback" not in r.err
    assert named.lower() in r.err.lower()


def test_stdin_one_row_per_line(env, capfd, monkeypatch):
    texts = ["great film\u2028with a twist", "awful\x0cfilm", "loved it"]
    r = run_cli(capfd, "predict", env.model, "-q", stdin="\n".join(texts).encode("utf-8"), monkeypatch=monkeypatch)
    assert r.code == 0, r.err
    assert [row["text"] for row in read_csv_rows(r.out)] == texts


def test_stdin_byte_order_mark_is_dropped(env, capfd, monkeypatch):
    r = run_cli(capfd, "predict", env.model, "-q", stdin=b"\xef\xbb\xbfgreat film\nawful film\n",
                monkeypatch=monkeypatch)
    assert r.code == 0, r.err
    assert [row["text"] for row in read_csv_rows(r.out)] == ["great film", "awful film"]


# --- 7. models, datasets, methods ------------------------------------------------------------------------
def test_models_lists_minilm_installed(capfd):
    r = run_cli(capfd, "models")
    assert r.code == 0, r.err
    line = next(line for line in r.out.splitlines() if line.split()[:1] == ["minilm"])
    assert " yes " in f" {line} "
    rows = json.loads(run_cli(capfd, "models", "--json").out)
    minilm = next(row for row in rows if row["name"] == "minilm")
    assert minilm["installed"] is True and minilm["kind"] == "encoder"


def test_datasets_lists_the_builtins(capfd):
    r = run_cli(capfd, "datasets")
    assert r.code == 0, r.err
    names = {line.split()[0] for line in r.out.splitlines()[1:] if line.strip()}
    assert {"mr", "imdb", "bbc", "tweets"} <= names
    rows = json.loads(run_cli(capfd, "datasets", "--json").out)
    by_name = {row["name"]: row for row in rows}
    assert {"mr", "imdb", "bbc", "tweets"} <= set(by_name)
    assert all(row["n_test"] > 0 and len(row["classes"]) >= 2 for row in by_name.values() if row["task"] != "generate")
    assert by_name["chitchat"]["task"] == "generate" and by_name["chitchat"]["n_train"] > 3000


def test_methods_lists_setfit_and_its_params(capfd):
    r = run_cli(capfd, "methods")
    assert r.code == 0, r.err
    assert r.out.startswith("setfit:") or "\nsetfit:" in r.out
    assert "  epochs = 4.0" in r.out and "  batch_size = 16" in r.out
    assert "  --select cv searches: body_lr in [0.0002, 5e-05]; l2sp in [0.0, 1.0]" in r.out
    rows = json.loads(run_cli(capfd, "methods", "--json").out)
    setfit = next(row for row in rows if row["name"] == "setfit")
    assert setfit["params"]["epochs"]["default"] == 4.0 and setfit["params"]["steps"]["default"] == -1
    assert setfit["selection_grid"] == {"body_lr": [2e-4, 5e-5], "l2sp": [0.0, 1.0]}
    assert "encoder" in setfit["backbones"]


# --- 8. reproducibility -----------------------------------------------------------------------------------
def test_same_seed_same_model_and_predictions(seed7_runs, data_dir, capfd):
    from safetensors.torch import load_file

    folders = seed7_runs.folders
    evaluations = [json.loads(r.out)["evaluation"] for r in seed7_runs.results]
    assert evaluations[0] == evaluations[1]
    for name in ("head.safetensors", "body/model.safetensors"):
        a, b = (load_file(str(f / name)) for f in folders)
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].equal(b[key]), f"{name}: {key} differs"
    predictions = [run_cli(capfd, "predict", f, data_dir / "texts.csv", "--text-col", "review", "-q").out
                   for f in folders]
    assert predictions[0] == predictions[1]
    assert len(read_csv_rows(predictions[0])) == len(PREDICT_TEXTS) + 1


# --- 9. choosing parameters by cross-validation on the shots ------------------------------------------
def test_train_select_cv_prints_the_grid_and_saves_the_choice(data_dir, tmp_path, st_folder, capfd):
    args = ["train", "--data", data_dir / "my.csv", "--text-col", "review", "--label-col", "sentiment",
            "--shots", "8", "--backbone", st_folder, "--method", "linear-probe", "-o", tmp_path / "m",
            "--select", "cv", "--grid", "head_c=0.0001,10", "--cv-folds", "4", "-q"]
    r = run_cli(capfd, *args)
    assert r.code == 0, r.err
    assert "cross-validation on the training shots (4 folds)" in r.out
    chosen = [line for line in r.out.splitlines() if line.rstrip().endswith("chosen")]
    assert len(chosen) == 1 and chosen[0].startswith("10.0")
    config = json.loads((tmp_path / "m" / "fewtune.json").read_text())
    assert config["params"]["head_c"] == 10.0
    assert config["training"]["selection"]["chosen"] == {"head_c": 10.0}
    r = run_cli(capfd, *args[:-1], "--overwrite", "--json", "-q")
    assert json.loads(r.out)["selection"]["chosen"] == {"head_c": 10.0}


def test_train_select_evidence_prints_the_evidence_and_saves_the_choice(data_dir, tmp_path, st_folder, capfd):
    r = run_cli(capfd, "train", "--data", data_dir / "my.csv", "--text-col", "review", "--label-col", "sentiment",
                "--shots", "8", "--backbone", st_folder, "--method", "finetune", "-o", tmp_path / "m",
                "-p", "epochs=2", "-p", "lr=1e-3", "--select", "evidence", "--grid", "l2sp=1,1000", "-q")
    assert r.code == 0, r.err
    assert "prior strength by the Laplace evidence" in r.out
    rows = [line.split() for line in r.out.splitlines() if line.split()[:1] in (["1.0"], ["1000.0"])]
    assert len(rows) == 2 and sum(row[-1] == "chosen" for row in rows) == 1
    best = max(rows, key=lambda row: float(row[1]))
    assert best[-1] == "chosen"
    config = json.loads((tmp_path / "m" / "fewtune.json").read_text())
    assert config["params"]["l2sp"] == float(best[0])
    assert config["training"]["selection"]["method"] == "evidence"


@pytest.mark.parametrize("extra, match", [
    (["--select", "grid"], "--select must be one of cv, evidence"),
    (["--grid", "head_c=1,2"], "--grid only applies with --select"),
    (["--select", "evidence"], "select='evidence' needs a method trained as a MAP estimate"),
    (["--select", "cv", "--grid", "bogus=1"], "unknown parameter"),
    (["--select", "cv", "--cv-folds", "1"], "--cv-folds must be at least 2"),
])
def test_bad_select_options_are_explained(data_dir, tmp_path, st_folder, capfd, extra, match):
    r = run_cli(capfd, "train", "--data", data_dir / "my.csv", "--text-col", "review", "--label-col", "sentiment",
                "--backbone", st_folder, "--method", "linear-probe", *extra)
    assert r.code == 2 and match in r.err


# --- 10. multi-label ------------------------------------------------------------------------------------
def test_multi_label_train_predict_evaluate(tmp_path, st_folder, capfd):
    from . import synthetic

    X, Y = synthetic.make_multi_label("train")
    Xt, Yt = synthetic.make_multi_label("test")
    write_csv(tmp_path / "train.csv", [[x, ",".join(y)] for x, y in zip(X, Y)], header=["text", "label"])
    write_csv(tmp_path / "test.csv", [[x, ",".join(y)] for x, y in zip(Xt, Yt)], header=["text", "label"])
    r = run_cli(capfd, "train", "--data", tmp_path / "train.csv", "--test", tmp_path / "test.csv", "--multi-label",
                "--backbone", st_folder, "--method", "linear-probe", "-o", tmp_path / "m", "--json", "-q")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert result["evaluation"]["n"] == len(Xt)
    r = run_cli(capfd, "predict", tmp_path / "m", tmp_path / "test.csv", "-f", "jsonl", "-q")
    rows = [json.loads(line) for line in r.out.splitlines()]
    assert {"music", "negative", "plot", "positive"} == {k[2:] for k in rows[0] if k.startswith("p_")}
    for row in rows:
        on = [c for c in ("music", "negative", "plot", "positive") if row[f"p_{c}"] >= 0.5]
        assert row["labels"] == ",".join(on)
    r = run_cli(capfd, "evaluate", tmp_path / "m", "--data", tmp_path / "test.csv", "--json", "-q")
    report = json.loads(r.out)
    assert report["multi_label"] and round(report["accuracy"], 4) == result["evaluation"]["accuracy"] > 0.5
    assert 0.0 <= report["hamming_loss"] <= 1.0 and set(report["per_class"]) == {"music", "negative", "plot", "positive"}
    text = run_cli(capfd, "evaluate", tmp_path / "m", "--data", tmp_path / "test.csv", "-q").out
    assert "subset accuracy" in text and "Hamming loss" in text


def test_multi_label_refuses_shots_and_builtin_datasets(tmp_path, st_folder, capfd):
    write_csv(tmp_path / "t.csv", [["a b", "x,y"], ["c d", "y"]], header=["text", "label"])
    r = run_cli(capfd, "train", "--data", tmp_path / "t.csv", "--multi-label", "--shots", "2", "--backbone", st_folder)
    assert r.code == 2 and "multi-label rows" in r.err
    r = run_cli(capfd, "train", "--dataset", "mr", "--multi-label", "--backbone", st_folder)
    assert r.code == 2 and "single-label" in r.err
    r = run_cli(capfd, "train", "--data", tmp_path / "t.csv", "--multi-label", "--backbone", st_folder)
    assert r.code == 2 and "label 'y' is on every example" in r.err
