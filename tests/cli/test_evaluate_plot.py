"""`fewtune evaluate --plot DIR`: the reliability diagram and the confusion matrix of a trained model (and its
training loss curve, every step), their paths printed (and in --json), the diagram's ECE the one evaluate reports; a multi-label model's label
decisions; a --plot that cannot be written is one line before any model loads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers.cli import run_cli
from tests.helpers.files import write_csv
from tests.helpers.reviews import tree

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _title(path: Path) -> str:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        return image.text["Title"]


def _evaluate(trained, data_dir) -> list:
    return ["evaluate", trained.model, "--data", data_dir / "test.csv", "--text-col", "opinion", "--label-col",
            "verdict"]


def test_plot_writes_both_figures_and_json_names_them(trained, data_dir, tmp_path, capfd):
    figs = tmp_path / "not" / "yet" / "figs"  # missing folders are made
    r = run_cli(capfd, *_evaluate(trained, data_dir), "--plot", figs, "--json", "-q")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["plots"] == {"reliability": str(figs / "reliability.png"),
                               "confusion_matrix": str(figs / "confusion_matrix.png"),
                               "loss_curve": str(figs / "loss_curve.png")}
    ece = report["calibration"]["ece"]
    assert _title(figs / "reliability.png") == f"Reliability: ECE {ece:.4f} (10 bins, 16 texts)"
    assert _title(figs / "confusion_matrix.png") == f"Confusion matrix: 16 texts, accuracy {report['accuracy']:.4f}"
    curve = json.loads((trained.model / "fewtune.json").read_text())["training"]["loss_curve"]
    assert _title(figs / "loss_curve.png").endswith(f"over {curve[-1][0]} steps")  # setfit's steps, every one kept
    assert tree(tmp_path / "not") == {"yet", "yet/figs", "yet/figs/reliability.png", "yet/figs/confusion_matrix.png",
                                      "yet/figs/loss_curve.png"}
    # The same scores as without --plot: the figures add to the report, they change nothing in it.
    plain = json.loads(run_cli(capfd, *_evaluate(trained, data_dir), "--json", "-q").out)
    assert {k: v for k, v in report.items() if k != "plots"} == plain


def test_plot_prints_where_the_figures_went_after_the_report(trained, data_dir, tmp_path, capfd):
    (tmp_path / "reliability.png").write_bytes(b"an earlier figure")
    r = run_cli(capfd, *_evaluate(trained, data_dir), "--plot", tmp_path, "-q")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[-3:] == [f"reliability diagram  {tmp_path / 'reliability.png'}",
                          f"confusion matrix     {tmp_path / 'confusion_matrix.png'}",
                          f"training loss        {tmp_path / 'loss_curve.png'}"]
    ece_line = next(line for line in lines if line.startswith("ECE"))
    assert f"ECE {ece_line.split()[1]} " in _title(tmp_path / "reliability.png")  # the printed ECE, drawn
    assert sorted(tree(tmp_path)) == ["confusion_matrix.png", "loss_curve.png", "reliability.png"]  # replaced


def test_a_multi_label_model_gets_the_reliability_of_its_label_decisions(tmp_path, st_folder, capfd):
    from tests.helpers import synthetic

    X, Y = synthetic.make_multi_label("train")
    Xt, Yt = synthetic.make_multi_label("test")
    write_csv(tmp_path / "train.csv", [[x, ",".join(y)] for x, y in zip(X, Y)], header=["text", "label"])
    write_csv(tmp_path / "test.csv", [[x, ",".join(y)] for x, y in zip(Xt, Yt)], header=["text", "label"])
    r = run_cli(capfd, "train", "--data", tmp_path / "train.csv", "--multi-label", "--backbone", st_folder,
                "--method", "linear-probe", "-o", tmp_path / "m", "--json", "-q")
    assert r.code == 0, r.err
    evaluate = ["evaluate", tmp_path / "m", "--data", tmp_path / "test.csv"]
    r = run_cli(capfd, *evaluate, "--plot", tmp_path / "figs", "--json")
    assert r.code == 0, r.err
    assert "no confusion matrix for a multi-label model" in r.err
    report = json.loads(r.out)
    assert report["plots"] == {"reliability": str(tmp_path / "figs" / "reliability.png")}
    cal = report["label_calibration"]
    decisions = len(Xt) * len(report["labels"])
    assert sum(b["n"] for b in cal["reliability"]) == decisions
    assert _title(tmp_path / "figs" / "reliability.png") == (f"Reliability: ECE {cal['ece']:.4f} (10 bins, "
                                                             f"{decisions} label decisions)")
    assert tree(tmp_path / "figs") == {"reliability.png"}
    # The scores are the ones evaluate gives without --plot (one pass of probabilities serves both).
    plain = json.loads(run_cli(capfd, *evaluate, "--json", "-q").out)
    assert {k: v for k, v in report.items() if k not in ("plots", "label_calibration")} == plain
    text = run_cli(capfd, *evaluate, "--plot", tmp_path / "figs", "-q").out
    assert f"label-decision ECE  {cal['ece']:.4f}" in text
    assert text.splitlines()[-1] == f"reliability diagram  {tmp_path / 'figs' / 'reliability.png'}"


# --- a --plot that cannot be written: one line, before the model loads ----------------------------------
@pytest.fixture
def before_load(tmp_path, monkeypatch):
    """A sealed model folder (weights never loaded: loading fails the test) and labeled data for it."""
    import fewtune.saved_models
    from fewtune import FewShotClassifier
    from fewtune.storage.model_folder import write_model_folder

    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded before the bad --plot was reported")

    monkeypatch.setattr(fewtune.saved_models, "load_classifier", loaded)
    monkeypatch.setattr(FewShotClassifier, "load", loaded)
    config = {"method": "linear-probe", "classes": ["neg", "pos"], "multi_label": False, "text_pairs": False}
    model = write_model_folder(tmp_path / "model", config,
                               lambda folder: (folder / "head.safetensors").write_bytes(b"never loaded"),
                               lambda config: "# test\n", overwrite=False)
    data = write_csv(tmp_path / "test.csv", [["good film", "pos"], ["bad film", "neg"]], header=["text", "label"])
    afile = tmp_path / "afile"
    afile.write_text("x")
    return type("Env", (), {"root": tmp_path, "model": model, "data": data, "afile": afile})


def _one_line_refusal(capfd, env, plot, *fragments: str) -> None:
    before = tree(env.root)
    r = run_cli(capfd, "evaluate", env.model, "--data", env.data, "--plot", plot)
    assert r.code == 2 and "Traceback" not in r.err, (r.code, r.err)
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith(f"error: --plot {plot}"), r.err
    for fragment in fragments:
        assert fragment in r.err_lines[0], r.err_lines[0]
    assert tree(env.root) == before and r.out == ""


def test_plot_naming_a_file_is_refused(before_load, capfd):
    _one_line_refusal(capfd, before_load, before_load.afile, "is a file", "give a folder")


def test_plot_under_a_file_is_refused(before_load, capfd):
    _one_line_refusal(capfd, before_load, before_load.afile / "figs", f"{before_load.afile} is a file, not a folder")


def test_plot_where_a_figure_name_is_a_folder_is_refused(before_load, capfd):
    figs = before_load.root / "figs"
    (figs / "confusion_matrix.png").mkdir(parents=True)
    _one_line_refusal(capfd, before_load, figs, "confusion_matrix.png is a folder")


@pytest.mark.parametrize("missing", [False, True])
def test_plot_in_a_folder_without_write_permission_is_refused(before_load, capfd, monkeypatch, missing):
    locked = before_load.root / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: (False if Path(p) == locked and mode & os.W_OK
                                                             else real_access(p, mode, **kw)))  # readable
    plot = locked / "figs" if missing else locked  # a folder to make inside it, or the folder itself
    _one_line_refusal(capfd, before_load, plot, f"no permission to write in {locked}")
