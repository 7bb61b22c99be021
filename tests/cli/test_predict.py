"""`fewtune predict` and `evaluate`: CSV, JSONL and stdin agree with the Python API; --output; reports."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.cli import run_cli
from tests.helpers.reviews import MULTILINE_TEXT, PREDICT_TEXTS, check_predictions, read_csv_rows, tree


# --- 2. predict: CSV, JSONL and stdin agree with the Python API --------------------------------------
def test_predict_csv_matches_loaded_and_in_memory_model(api_model, data_dir, capfd):
    from fewtune import FewShotClassifier

    r = run_cli(capfd, "predict", api_model.model, data_dir / "texts.csv", "--text-col", "review")
    assert r.code == 0, r.err
    rows = read_csv_rows(r.out)
    # The input's columns as read (its id kept, its text column's name kept), then the predictions.
    assert list(rows[0]) == ["id", "review", "label", "probability", *(f"p_{c}" for c in api_model.classes)]
    assert [row["id"] for row in rows] == [f"x{i}" for i in range(len(rows))]
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
    check_predictions(read_csv_rows(r.out), texts, api_model.classes, api_model.proba[: len(texts)], "text")


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
    refused = run_cli(capfd, *args, "--output", target)  # as train refuses an existing folder
    assert refused.code == 2 and "already exists" in refused.err and "--overwrite" in refused.err
    r = run_cli(capfd, *args, "--output", target, "--overwrite")
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
    assert ("--calibrate temperature" in r.out) == (report["calibration"]["ece"] > 0.05)  # the fix, when needed
    start = next(i for i, line in enumerate(lines) if line.startswith("confusion matrix"))
    assert lines[start + 1].split() == report["labels"]
    table = [line.split() for line in lines[start + 2: start + 2 + len(report["labels"])]]
    assert [row[0] for row in table] == report["labels"]
    assert [[int(x) for x in row[1:]] for row in table] == report["confusion_matrix"]


def test_predict_skips_blank_stdin_lines_and_says_how_many(api_model, capfd, monkeypatch):
    r = run_cli(capfd, "predict", api_model.model, "--format", "jsonl", stdin=b"great film\n\n  \nawful film\n",
                monkeypatch=monkeypatch)
    assert r.code == 0, r.err
    assert [json.loads(line)["text"] for line in r.out.splitlines()] == ["great film", "awful film"]
    assert "skipped 2 blank line(s)" in r.err


def test_predict_json_is_one_object_with_every_prediction(api_model, data_dir, tmp_path, capfd):
    r = run_cli(capfd, "predict", api_model.model, data_dir / "texts.csv", "--text-col", "review", "--json", "-q")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert result["classes"] == [str(c) for c in api_model.classes] and result["n"] == len(api_model.texts)
    assert [row["review"] for row in result["predictions"]] == api_model.texts
    assert [row["id"] for row in result["predictions"]][:2] == ["x0", "x1"]
    r = run_cli(capfd, "predict", api_model.model, data_dir / "texts.csv", "--text-col", "review", "--json", "-q",
                "-o", tmp_path / "p.csv")
    assert json.loads(r.out) == {"model": str(api_model.model), "classes": result["classes"], "n": result["n"],
                                 "output": str(tmp_path / "p.csv")}


def test_an_input_column_named_like_a_prediction_is_kept_beside_it(api_model, tmp_path, capfd):
    from tests.helpers.files import write_csv

    labeled = write_csv(tmp_path / "labeled.csv", [["a great film", "positive"], ["awful", "negative"]])
    r = run_cli(capfd, "predict", api_model.model, labeled, "--format", "jsonl", "-q")
    rows = [json.loads(line) for line in r.out.splitlines()]
    assert [row["input_label"] for row in rows] == ["positive", "negative"] and "label" in rows[0]


@pytest.mark.parametrize("ece, confidence, accuracy, expected", [
    (0.30, 0.55, 0.85, "timid: 55% confidence on average where 85% are right"),
    (0.20, 0.95, 0.75, "overconfident: 95% confidence on average where 75% are right"),
    (0.03, 0.84, 0.85, ""),
])
def test_evaluate_names_the_fix_for_probabilities_that_do_not_match_the_accuracy(ece, confidence, accuracy, expected):
    from fewtune.cli.evaluate import calibration_hint

    calibration = {"ece": ece, "reliability": [{"n": 10, "confidence": confidence, "accuracy": accuracy},
                                               {"n": 0, "confidence": 0.0, "accuracy": 0.0}]}
    hint = calibration_hint(calibration, accuracy)
    assert (expected in hint and "--calibrate temperature" in hint) if expected else hint == ""
    setfit_hint = calibration_hint(calibration, accuracy, fixed_setfit_head=True)
    if not expected:
        assert not setfit_hint
    else:  # head_c=0 raises a timid head's confidence; it is no fix for an overconfident one
        assert ("-p head_c=0" in setfit_hint) == ("timid" in expected) and "--calibrate temperature" in setfit_hint
    # 16 shots measure an accuracy of 75-85 % to ±9-11 %: the hint says that more labels are the fix; 400, ±2 %, not.
    few, many = (calibration_hint(calibration, accuracy, n_train=n) for n in (16, 400))
    if expected:
        assert f"16 training examples measure this accuracy only to ±{np.sqrt(accuracy * (1 - accuracy) / 16):.0%}" in few
        assert "more labeled examples" in few and "more labeled examples" not in many and many == hint
    else:
        assert few == many == ""


def test_evaluate_counts_the_examples_a_saved_model_was_trained_on(api_model):
    from fewtune import FewShotClassifier
    from fewtune.cli.evaluate import training_examples

    clf = FewShotClassifier.load(api_model.model)
    assert training_examples(clf) == sum(clf.train_info_["class_counts"].values()) == 16  # review_rows(8)
    clf.train_info_ = {}  # a folder that does not say
    assert training_examples(clf) is None
