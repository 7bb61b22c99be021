"""`fewtune train` on a user's own CSV: the saved folder, --json/--quiet, reproducibility, --select, multi-label."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.cli import run_cli
from tests.helpers.files import write_csv
from fewtune.storage.model_folder import PICKLE_SUFFIXES
from tests.helpers.reviews import FAST, PREDICT_TEXTS, read_csv_rows, train_args, tree


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
    assert f"model saved to {trained.model}; next: fewtune predict {trained.model}" in out

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



# --- 5. train --json / --quiet -----------------------------------------------------------------------
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
            "--select", "cv", "--grid", "head_c=0.0001,10", "-p", "choose_c=false", "--cv-folds", "4", "-q"]
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
    # Without choose_c=false the grid's C would be overruled by the choice on the shots: refused, in one line.
    r = run_cli(capfd, *[a for a in args if a not in ("-p", "choose_c=false")][:-1], "--overwrite", "-q")
    assert r.code != 0 and "head_c=0.0001 is not used while choose_c is true" in r.err and "Traceback" not in r.err


def test_train_select_evidence_prints_the_evidence_and_saves_the_choice(data_dir, tmp_path, st_folder, capfd):
    r = run_cli(capfd, "train", "--data", data_dir / "my.csv", "--text-col", "review", "--label-col", "sentiment",
                "--shots", "8", "--backbone", st_folder, "--method", "finetune", "-o", tmp_path / "m",
                "-p", "epochs=2", "-p", "learning_rate=1e-3", "--select", "evidence", "--grid", "l2sp=1,1000", "-q")
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
    from tests.helpers import synthetic

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


def test_train_without_output_says_the_model_was_not_saved(data_dir, st_folder, capfd):
    r = run_cli(capfd, "train", "--data", data_dir / "my.csv", "--text-col", "review", "--label-col", "sentiment",
                "--shots", "4", "--backbone", st_folder, *FAST)
    assert r.code == 0, r.err
    assert "model not saved: pass -o FOLDER to keep it" in r.out
