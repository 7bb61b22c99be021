"""`fewtune train`'s settings are checked before any training: a typo in --calibrate, --posterior or
--class-prior costs no training time (issue 35, row 5)."""

from __future__ import annotations

import pytest

from fewtune import FewShotClassifier
from tests.helpers.cli import run_cli
from tests.helpers.reviews import train_args


@pytest.mark.parametrize("flags, fragments", [
    (["--calibrate", "nope"], ["--calibrate must be one of", "temperature", "'nope'"]),
    (["--posterior", "nope"], ["--posterior must be one of", "laplace", "'nope'"]),
    (["--class-prior", "positive=2,negative=x"], ["class prior", "'negative'", "must be a number", "'x'"]),
    (["--class-prior", "positive=2,negative=0"], ["class prior", "'negative'", "must be positive"]),
    (["--class-prior", "positive"], ["class prior", "is not LABEL=WEIGHT"]),
    (["--posterior-samples", "1"], ["posterior_samples must be 0", "at least 2"]),
    (["--calibrate", "auto", "--posterior", "laplace"], ["leave posterior unset"]),
], ids=["calibrate", "posterior", "prior-not-a-number", "prior-zero", "prior-syntax", "samples", "auto-and-posterior"])
def test_a_bad_posterior_or_calibration_setting_fails_before_training(flags, fragments, data_dir, st_folder, tmp_path,
                                                                      capfd, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(FewShotClassifier, "fit", no_training)
    r = run_cli(capfd, *train_args(data_dir / "my.csv", tmp_path / "out", st_folder, *flags))
    assert r.code == 2 and len(r.err_lines) == 1, r.err
    for fragment in fragments:
        assert fragment in r.err_lines[0], r.err_lines[0]
    assert not (tmp_path / "out").exists()


def test_overwrite_onto_a_folder_of_the_users_own_files_is_refused_before_training(data_dir, st_folder, tmp_path,
                                                                                   capfd, monkeypatch):
    monkeypatch.setattr(FewShotClassifier, "fit", lambda *a, **k: pytest.fail("training started"))
    mine = tmp_path / "my-files"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me", encoding="utf-8")
    r = run_cli(capfd, *train_args(data_dir / "my.csv", mine, st_folder, "--overwrite"))
    assert r.code == 2 and len(r.err_lines) == 1 and "is not a fewtune model folder" in r.err_lines[0], r.err
    assert (mine / "notes.txt").read_text(encoding="utf-8") == "keep me"


@pytest.mark.parametrize("flags, fragments", [
    (["--select", "x"], ["--select must be one of cv, evidence, got 'x'"]),
    (["--posterior", "nope"], ["--posterior must be one of", "'nope'"]),
    (["--calibrate", "nope"], ["--calibrate must be one of", "'nope'"]),
    (["--class-prior", "positive"], ["class prior", "is not LABEL=WEIGHT"]),
    (["-p", "no_such=1"], ["unknown parameter", "no_such"]),
], ids=["select", "posterior", "calibrate", "class-prior", "param"])
def test_a_bad_setting_is_named_by_its_flag_before_the_data_is_read(flags, fragments, st_folder, tmp_path, capfd,
                                                                   monkeypatch):
    # Issue 36: every setting is checked before any file is read. The data file does not exist and reading
    # it fails the test, so only the setting can be what is reported.
    import fewtune.experiment.train

    monkeypatch.setattr(fewtune.experiment.train, "prepare", lambda *a, **k: pytest.fail("the data was read"))
    r = run_cli(capfd, *train_args(tmp_path / "missing.csv", tmp_path / "out", st_folder, *flags))
    assert r.code == 2 and len(r.err_lines) == 1 and r.err_lines[0].startswith("error: "), r.err
    for fragment in fragments:
        assert fragment in r.err_lines[0], r.err_lines[0]
    assert "missing.csv" not in r.err and "None or" not in r.err  # the CLI's wording, not the API's
