"""Deep ensembles over seeds and MC dropout: the sample-based posteriors beside Laplace."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fewtune import FewShotClassifier, FewtuneError
from fewtune.bayes.acquisition import acquisition_scores

from tests.helpers import synthetic
from tests.helpers.fast import FAST_SETFIT

FAST = {**FAST_SETFIT, "learning_rate": 1e-3}


@pytest.fixture(scope="module")
def data():
    return synthetic.make(per_class=8)


@pytest.fixture(scope="module")
def ensemble(st_folder, data):
    return FewShotClassifier(backbone=str(st_folder), params=FAST, posterior="ensemble", posterior_samples=3,
                             seed=4).fit(*data)


def test_ensemble_averages_members_trained_from_different_seeds(ensemble, st_folder, data):
    X, y = synthetic.held_out()
    samples = ensemble.sampled_proba(X)
    assert samples.shape == (3, len(X), 2)
    np.testing.assert_allclose(ensemble.predict_proba(X), samples.mean(0))
    assert ensemble.train_info_["posterior"] == {"kind": "ensemble", "members": 3, "seeds": [4, 5, 6]}
    # The first member is the model a plain fit with the same seed gives; the others differ from it.
    single = FewShotClassifier(backbone=str(st_folder), params=FAST, seed=4).fit(*data)
    np.testing.assert_allclose(samples[0], single.predict_proba(X), atol=1e-6)
    assert not np.allclose(samples[1], samples[0]) and not np.allclose(samples[2], samples[1])
    assert ensemble.score(X, y) >= 0.75


def test_ensemble_saves_every_member_and_reloads_identically(ensemble, tmp_path):
    X, _ = synthetic.held_out()
    folder = ensemble.save(tmp_path / "ens")
    assert sorted(p.name for p in (folder / "members").iterdir()) == ["1", "2"]
    loaded = FewShotClassifier.load(folder)
    assert loaded.posterior == "ensemble" and len(loaded.members_) == 2
    np.testing.assert_array_equal(loaded.predict_proba(X), ensemble.predict_proba(X))
    # A member folder gone is a clear error naming the model folder, not a silent smaller ensemble.
    shutil.rmtree(folder / "members" / "2")
    with pytest.raises(FewtuneError, match="ens"):
        FewShotClassifier.load(folder)


def test_bald_from_an_ensemble_is_the_members_disagreement(ensemble):
    X, _ = synthetic.held_out()
    scores = acquisition_scores(ensemble, X, "bald")
    p = ensemble.sampled_proba(X)
    def h(q):
        return -(q * np.log(np.clip(q, 1e-12, None))).sum(-1)
    np.testing.assert_allclose(scores, h(p.mean(0)) - h(p).mean(0), atol=1e-9)
    assert (scores >= -1e-12).all() and scores.max() > 0


def test_mc_dropout_samples_masks_reproducibly_and_reloads(st_folder, data, tmp_path):
    X, y = synthetic.held_out()
    clf = FewShotClassifier(backbone=str(st_folder), params=FAST, posterior="mc-dropout", posterior_samples=6,
                            seed=1).fit(*data)
    plain = FewShotClassifier(backbone=str(st_folder), params=FAST, seed=1).fit(*data)
    samples = clf.sampled_proba(X)
    assert samples.shape == (6, len(X), 2)
    assert not np.allclose(samples[0], samples[1])  # dropout is on at prediction time
    np.testing.assert_allclose(clf.predict_proba(X), samples.mean(0))
    np.testing.assert_array_equal(clf.predict_proba(X), clf.predict_proba(X))  # the masks come from the seed
    assert not np.allclose(clf.predict_proba(X), plain.predict_proba(X))
    # The dropout is switched off again afterwards: the trained model itself predicts like the plain one.
    np.testing.assert_allclose(clf.model_.predict_proba(X), plain.predict_proba(X), atol=1e-6)
    assert clf.score(X, y) >= 0.75
    loaded = FewShotClassifier.load(clf.save(tmp_path / "mc"))
    assert loaded.posterior == "mc-dropout" and loaded.posterior_samples == 6
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_mc_dropout_without_dropout_and_bad_sample_counts_are_clear_errors(st_folder, data, tmp_path):
    folder = tmp_path / "no_dropout"
    shutil.copytree(st_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(FewtuneError, match="no dropout"):
        FewShotClassifier(backbone=str(folder), params=FAST, posterior="mc-dropout").fit(*data)
    with pytest.raises(FewtuneError, match="posterior_samples"):
        FewShotClassifier(backbone=str(st_folder), params=FAST, posterior="ensemble", posterior_samples=1).fit(*data)
    with pytest.raises(FewtuneError, match="sampled_proba"):
        FewShotClassifier(backbone=str(st_folder), params=FAST).fit(*data).sampled_proba(["x"])


def test_cli_trains_an_ensemble_and_suggests_by_its_disagreement(st_folder, data, tmp_path, capfd):
    import csv

    from fewtune.bayes.acquisition import suggest
    from fewtune.cli import main

    X, y = data
    with open(tmp_path / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows([["text", "label"], *zip(X, y)])
    pool = synthetic.held_out()[0]
    with open(tmp_path / "pool.csv", "w", newline="") as f:
        csv.writer(f).writerows([["text"], *[[t] for t in pool]])
    code = main(["train", "--data", str(tmp_path / "train.csv"), "--backbone", str(st_folder), "-p", "steps=4",
                 "-p", "batch_size=8", "--posterior", "ensemble", "--posterior-samples", "2", "-o", str(tmp_path / "m"),
                 "--json", "-q"])
    out = json.loads(capfd.readouterr().out)
    assert code == 0 and out["posterior"]["members"] == 2
    assert main(["suggest", str(tmp_path / "m"), "--pool", str(tmp_path / "pool.csv"), "-n", "3", "--json", "-q"]) == 0
    picked = [r["text"] for r in json.loads(capfd.readouterr().out)["suggestions"]]
    assert picked == [pool[i] for i, _ in suggest(FewShotClassifier.load(tmp_path / "m"), pool, 3, "bald")]
