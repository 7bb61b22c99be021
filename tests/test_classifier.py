"""FewShotClassifier: the scikit-learn contract, save/load, and the setfit method's behaviour."""

import json

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from fewtune import DataError, FewShotClassifier, FewtuneError, ModelFolderError
from fewtune.training.heads import LinearHead
from fewtune.methods.setfit import balanced_batches, pair_loss

from tests.helpers import synthetic
from tests.helpers.fast import FAST_SETFIT

FAST = {**FAST_SETFIT, "steps": 6}


@pytest.fixture(scope="module")
def data():
    return synthetic.make(per_class=8)


@pytest.fixture(scope="module")
def fitted(st_folder, data):
    X, y = data
    return FewShotClassifier(backbone=str(st_folder), params=FAST, seed=0).fit(X, y)


def test_fit_returns_self_and_sets_learned_attributes(st_folder, data):
    clf = FewShotClassifier(backbone=str(st_folder), params={"steps": 2, "batch_size": 8})
    assert clf.fit(*data) is clf
    assert list(clf.classes_) == ["negative", "positive"]
    assert clf.train_info_["n_examples"] == 16
    assert clf.train_info_["class_counts"] == {"negative": 8, "positive": 8}


def test_predict_proba_rows_sum_to_one_and_agree_with_predict(fitted):
    X, _ = synthetic.held_out()
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert list(fitted.predict(X)) == list(fitted.classes_[proba.argmax(axis=1)])


def test_learns_the_task_well_above_chance_on_held_out_texts(fitted):
    X, y = synthetic.held_out()
    assert fitted.score(X, y) >= 0.75


def test_three_classes_and_integer_labels(st_folder):
    X, y = synthetic.make(("negative", "neutral", "positive"), per_class=6)
    codes = {"negative": 0, "neutral": 1, "positive": 2}
    clf = FewShotClassifier(backbone=str(st_folder), params=FAST).fit(X, [codes[v] for v in y])
    assert list(clf.classes_) == [0, 1, 2]
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3)
    assert set(clf.predict(X)) <= {0, 1, 2}


def test_save_and_load_give_identical_outputs_and_no_pickle(fitted, tmp_path):
    X, _ = synthetic.held_out()
    folder = fitted.save(tmp_path / "model")
    loaded = FewShotClassifier.load(folder)
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    assert list(loaded.classes_) == list(fitted.classes_)
    names = {p.name for p in folder.rglob("*") if p.is_file()}
    assert {"fewtune.json", "README.md", "head.safetensors", "model.safetensors"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pkl", ".pickle"))]
    config = json.loads((folder / "fewtune.json").read_text())
    assert config["method"] == "setfit" and config["classes"] == ["negative", "positive"]
    assert {"torch", "transformers", "fewtune"} <= set(config["versions"])
    assert "negative" in (folder / "README.md").read_text()


def test_save_refuses_to_replace_an_existing_folder_unless_asked(fitted, tmp_path):
    folder = fitted.save(tmp_path / "m")
    with pytest.raises(ModelFolderError, match="already exists"):
        fitted.save(folder)
    fitted.save(folder, overwrite=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.csv").write_text("x")
    with pytest.raises(ModelFolderError, match="not a fewtune model folder"):
        fitted.save(tmp_path / "data", overwrite=True)
    assert (tmp_path / "data" / "mine.csv").read_text() == "x"


def test_a_failing_save_leaves_no_folder_behind(fitted, tmp_path, monkeypatch):
    def broken(folder):
        (folder / "partial.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(fitted.model_, "save", broken)
    with pytest.raises(OSError):
        fitted.save(tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_a_tampered_weights_file_is_reported_not_loaded(fitted, tmp_path):
    folder = fitted.save(tmp_path / "m")
    head = folder / "head.safetensors"
    data = bytearray(head.read_bytes())
    data[-1] ^= 0xFF
    head.write_bytes(bytes(data))
    with pytest.raises(ModelFolderError, match="checksum"):
        FewShotClassifier.load(folder)


def test_pickle_files_in_a_model_folder_are_refused(fitted, tmp_path):
    folder = fitted.save(tmp_path / "m")
    torch.save({"x": 1}, folder / "extra.pt")
    with pytest.raises(ModelFolderError, match="pickle"):
        FewShotClassifier.load(folder)
    assert FewShotClassifier.load(folder, trust=True).classes_ is not None


def test_a_pickle_backbone_trains_only_with_trust_and_the_saved_model_needs_no_trust(pickle_bert_folder, data,
                                                                                       tmp_path):
    with pytest.raises(ModelFolderError, match=r"trust=True"):
        FewShotClassifier(backbone=str(pickle_bert_folder), method="linear-probe").fit(*data)
    clf = FewShotClassifier(backbone=str(pickle_bert_folder), method="linear-probe", trust=True).fit(*data)
    folder = clf.save(tmp_path / "m")  # the saved body is safetensors: loading it is safe
    np.testing.assert_array_equal(FewShotClassifier.load(folder).predict_proba(data[0]), clf.predict_proba(data[0]))


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda f: (f / "fewtune.json").unlink(), "not a fewtune model folder"),
        (lambda f: (f / "fewtune.json").write_text("{not json"), "corrupt"),
        (lambda f: (f / "head.safetensors").unlink(), "missing head.safetensors"),
    ],
)
def test_corrupt_model_folders_give_a_clear_error(fitted, tmp_path, damage, match):
    folder = fitted.save(tmp_path / "m")
    damage(folder)
    with pytest.raises(ModelFolderError, match=match):
        FewShotClassifier.load(folder)


def test_same_seed_same_model_and_different_seed_differs(st_folder, data):
    X, _ = synthetic.held_out()
    a = FewShotClassifier(backbone=str(st_folder), params=FAST, seed=3).fit(*data).predict_proba(X)
    b = FewShotClassifier(backbone=str(st_folder), params=FAST, seed=3).fit(*data).predict_proba(X)
    c = FewShotClassifier(backbone=str(st_folder), params=FAST, seed=4).fit(*data).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_contrastive_steps_change_the_body_but_not_the_word_embeddings(st_folder, data):
    base = FewShotClassifier(backbone=str(st_folder), params={"steps": 0}).fit(*data)
    tuned = FewShotClassifier(backbone=str(st_folder), params={"steps": 4, "batch_size": 8, "learning_rate": 1e-3}).fit(*data)
    before = dict(base.model_.body.named_parameters())
    after = dict(tuned.model_.body.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed, "training left every encoder weight unchanged"
    assert not [n for n in changed if "word_embeddings" in n]


def test_text_pairs_train_and_predict(st_folder):
    X, y = synthetic.make(per_class=6)
    pairs = [(x, "second part") for x in X]
    clf = FewShotClassifier(backbone=str(st_folder), params=FAST).fit(pairs, y)
    assert clf.predict_proba(pairs[:3]).shape == (3, 2)
    with pytest.raises(FewtuneError, match="pairs"):
        clf.predict(X[:3])


def test_sklearn_get_params_and_clone(fitted):
    params = fitted.get_params()
    assert params["backbone"] == fitted.backbone and params["method"] == "setfit"
    twin = clone(fitted)
    assert not hasattr(twin, "model_") and twin.get_params() == params


def test_a_sibling_shares_the_model_settings_and_none_of_the_chain():
    # Grid points and fold models: the same backbone, method, params, seed, device, folds and trust, and no
    # selection, posterior, calibration, class prior or progress bars of their own unless asked.
    clf = FewShotClassifier("a-backbone", "linear-probe", params={"head_c": 1.0}, seed=3, device="cpu", trust=True,
                            select="cv", grid={"head_c": [1.0]}, cv_folds=3, posterior="ensemble",
                            posterior_samples=3, calibrate="temperature", class_prior="a=1", show_progress=True)
    plain = clf.sibling(params={"head_c": 2.0})
    assert plain.get_params(deep=False) == {**FewShotClassifier().get_params(deep=False), "backbone": "a-backbone",
                                            "method": "linear-probe", "params": {"head_c": 2.0}, "seed": 3,
                                            "device": "cpu", "cv_folds": 3, "trust": True,
                                            "show_progress": False}  # not auto: the caller's bars are up
    member = clf.sibling(posterior="laplace-cv")
    assert member.posterior == "laplace-cv" and member.params == {"head_c": 1.0} and member.calibrate is None
    assert member.params is not clf.params and clf.select == "cv"  # a copy; the classifier itself is unchanged


@pytest.mark.parametrize(
    "X, y, match",
    [
        (["good", "bad", ""], ["p", "n", "p"], "example 2.*empty"),
        (["good", "bad"], ["p", "p"], "one class"),
        (["good", "bad", "ok"], ["p", "n"], "3 texts but 2 labels"),
        (["good", 5], ["p", "n"], "example 1"),
    ],
)
def test_bad_training_data_names_the_example(st_folder, X, y, match):
    with pytest.raises(DataError, match=match):
        FewShotClassifier(backbone=str(st_folder)).fit(X, y)


def test_unknown_method_and_bad_parameters_are_explained(st_folder, data):
    with pytest.raises(FewtuneError, match="unknown method 'nope'.*setfit"):
        FewShotClassifier(backbone=str(st_folder), method="nope").fit(*data)
    with pytest.raises(FewtuneError, match="unknown parameter.*stepz"):
        FewShotClassifier(backbone=str(st_folder), params={"stepz": 1}).fit(*data)
    with pytest.raises(FewtuneError, match="'steps'.*int"):
        FewShotClassifier(backbone=str(st_folder), params={"steps": "many"}).fit(*data)


def test_predict_before_fit_is_an_error():
    with pytest.raises(FewtuneError, match="not fitted"):
        FewShotClassifier().predict(["x"])


@pytest.mark.parametrize("n_classes", [2, 4])
def test_linear_head_reproduces_sklearn_probabilities(n_classes):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    y = np.arange(40) % n_classes
    head = LinearHead.fit_logistic(x, y, n_classes)
    reference = LogisticRegression(max_iter=2000, random_state=0).fit(x, y).predict_proba(x)
    np.testing.assert_allclose(head.predict_proba(x), reference, atol=1e-5)
    restored = LinearHead.from_state_dict(head.state_dict())
    np.testing.assert_allclose(restored.predict_proba(x), head.predict_proba(x), rtol=1e-6, atol=1e-9)


def test_balanced_batches_hold_pairs_of_both_kinds_and_cover_every_example():
    y = np.array([0] * 5 + [1] * 5 + [2] * 5 + [3] * 5)
    batches = list(balanced_batches(y, 8, 20, np.random.default_rng(0)))
    seen = set()
    for b in batches:
        labels = y[b]
        counts = np.bincount(labels, minlength=4)
        assert (counts[counts > 0] >= 2).all() and (counts > 0).sum() >= 2
        seen.update(b.tolist())
    assert seen == set(range(20))


def test_pair_loss_is_zero_for_perfect_embeddings_and_positive_otherwise():
    labels = torch.tensor([0, 0, 1, 1])
    perfect = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    assert pair_loss(perfect, labels).item() == pytest.approx(0.0, abs=1e-7)
    assert pair_loss(torch.ones(4, 2), labels).item() > 0.4


@pytest.mark.integration
def test_minilm_setfit_on_real_topic_data_beats_chance_by_far_and_its_default_head_is_not_timid():
    """Real MiniLM, real BBC news (5 topics, chance 0.2), 4 shots per class, setfit's default head."""
    from fewtune.data import load_builtin, sample_k_shot

    train, test = load_builtin("bbc")
    shots = train.subset(sample_k_shot(train.labels, 4, seed=0))
    held = test.subset(range(0, len(test), 5))
    clf = FewShotClassifier("minilm", params={"steps": 10, "max_tokens": 128}).fit(shots.texts, shots.labels)
    accuracy = clf.score(held.texts, held.labels)
    assert accuracy > 0.7
    # About as confident as it is right: C = 1 on the same body was 0.45 confident at 0.88 accuracy.
    assert abs(clf.predict_proba(held.texts).max(1).mean() - accuracy) < 0.1


def test_l2sp_prior_keeps_the_encoder_closer_to_its_pretrained_weights(st_folder, data):
    params = {"steps": 6, "batch_size": 8, "learning_rate": 1e-3}
    free = FewShotClassifier(backbone=str(st_folder), params=params).fit(*data)
    held = FewShotClassifier(backbone=str(st_folder), params={**params, "l2sp": 100.0}).fit(*data)
    d_free = free.train_info_["distance_from_pretrained"]
    d_held = held.train_info_["distance_from_pretrained"]
    assert 0 < d_held < 0.8 * d_free


def test_l2sp_penalty_is_half_lambda_squared_distance():
    from fewtune.bayes import L2SPPrior

    w = torch.nn.Parameter(torch.zeros(3))
    prior = L2SPPrior([w], strength=4.0)
    with torch.no_grad():
        w += torch.tensor([1.0, 2.0, 2.0])
    assert prior.penalty().item() == pytest.approx(0.5 * 4.0 * 9.0)
    assert prior.distance() == pytest.approx(3.0)


def test_linear_probe_leaves_the_encoder_untouched_and_round_trips(st_folder, data, tmp_path):
    # At setfit's fixed C = 1, linear-probe is setfit without training steps.
    probe = FewShotClassifier(backbone=str(st_folder), method="linear-probe", params={"choose_c": False}).fit(*data)
    reference = FewShotClassifier(backbone=str(st_folder), params={"steps": 0, "head_c": 1}).fit(*data)
    X, y = synthetic.held_out()
    np.testing.assert_allclose(probe.predict_proba(X), reference.predict_proba(X), atol=1e-6)
    assert probe.score(X, y) >= 0.75
    loaded = FewShotClassifier.load(probe.save(tmp_path / "probe"))
    assert loaded.method == "linear-probe"
    np.testing.assert_array_equal(loaded.predict_proba(X), probe.predict_proba(X))


def test_majority_baseline_predicts_the_training_class_frequencies_and_round_trips(tmp_path):
    X = ["a", "b", "c", "d", "e", "f"]
    y = ["pos", "pos", "pos", "pos", "neg", "neg"]
    clf = FewShotClassifier(method="majority").fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(["anything", "else"]), [[1 / 3, 2 / 3]] * 2)
    assert list(clf.predict(["x"])) == ["pos"] and clf.score(["x", "y"], ["pos", "neg"]) == 0.5
    clf.save(tmp_path / "m")
    np.testing.assert_allclose(FewShotClassifier.load(tmp_path / "m").predict_proba(["z"]), [[1 / 3, 2 / 3]])


def test_help_shows_the_classifiers_parameters():
    import pydoc

    assert FewShotClassifier.__doc__ is not None
    text = pydoc.render_doc(FewShotClassifier, renderer=pydoc.plaintext)
    for parameter in ("backbone:", "method:", "posterior", "calibrate", "class_prior"):
        assert parameter in text
