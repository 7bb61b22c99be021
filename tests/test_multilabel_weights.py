"""Multi-label classification (one-vs-rest) and class weights, across the encoder methods."""

import numpy as np
import pytest
from safetensors import safe_open

from fewtune import DataError, FewShotClassifier, FewtuneError
from fewtune.data.multilabel import binarize, looks_multi_label
from fewtune.training.heads import LinearHead, class_weights

from tests.helpers import synthetic

PARAMS = {
    "setfit": {"steps": 8, "batch_size": 8, "learning_rate": 1e-3},
    "linear-probe": {},
    "finetune": {"epochs": 10, "learning_rate": 1e-3, "head_learning_rate": 1e-2, "batch_size": 4},
}
CLASSES = ["music", "negative", "plot", "positive"]


@pytest.fixture(scope="module")
def multi():
    return synthetic.make_multi_label("train"), synthetic.make_multi_label("test")


@pytest.mark.parametrize("method", ["setfit", "linear-probe", "finetune"])
def test_multi_label_fit_predict_and_round_trip(st_folder, multi, method, tmp_path):
    (X, Y), (Xt, Yt) = multi
    clf = FewShotClassifier(backbone=str(st_folder), method=method, params=PARAMS[method]).fit(X, Y)
    assert clf.multi_label_ and list(clf.classes_) == CLASSES
    proba = clf.predict_proba(Xt)
    assert proba.shape == (len(Xt), 4) and ((proba >= 0) & (proba <= 1)).all()
    # Independent probabilities: a text can have two labels, so rows need not sum to 1.
    assert not np.allclose(proba.sum(1), 1.0)
    pred = clf.predict(Xt)
    np.testing.assert_array_equal(pred, (proba >= 0.5).astype(int))
    truth = np.array([[c in labels for c in CLASSES] for labels in Yt], dtype=int)
    assert (pred == truth).mean() >= 0.8, "label-wise accuracy on unseen sentences"
    assert (pred[:, [1, 3]] == truth[:, [1, 3]]).mean() >= 0.7, "the sentiment labels, not only the topics"
    sets = clf.predict_label_sets(Xt)
    assert sets[0] == [c for c, on in zip(CLASSES, pred[0]) if on]
    assert 0.0 <= clf.score(Xt, Yt) <= 1.0 and clf.score(Xt, Yt) == (pred == truth).all(1).mean()

    clf.save(tmp_path / "m")
    with safe_open(str(tmp_path / "m" / "head.safetensors"), framework="pt") as f:
        assert f.metadata()["activation"] == "sigmoid"
    again = FewShotClassifier.load(tmp_path / "m")
    assert again.multi_label_
    np.testing.assert_array_equal(again.predict_proba(Xt), proba)


def test_an_indicator_matrix_is_accepted_with_integer_classes(st_folder, multi):
    (X, Y), _ = multi
    indicator = np.array([[c in labels for c in CLASSES] for labels in Y], dtype=int)
    clf = FewShotClassifier(backbone=str(st_folder), method="linear-probe").fit(X, indicator)
    assert list(clf.classes_) == [0, 1, 2, 3]
    assert clf.predict(X).shape == indicator.shape


def test_multi_label_detection():
    assert looks_multi_label([["a"], ["b", "c"]]) and looks_multi_label(np.eye(3, dtype=int))
    assert not looks_multi_label(["a", "b"]) and not looks_multi_label(np.array([0, 1]))


@pytest.mark.parametrize("y, match", [
    ([["a"], ["a", "b"], ["a"]], "label 'a' is on every example"),
    ([["a"], "b", ["b"]], "example 1, labels: expected a list of labels"),
    ([["a"], [" "], ["b"]], "example 1, labels: empty label"),
    ([["a"], ["a"], ["a"]], "at least 2 different labels"),
    (np.array([[1, 0], [0, 1], [2, 0]]), "example 2, labels: an indicator matrix holds only 0 and 1"),
    (np.array([[1, 0], [1, 0], [0, 0]]), "label 1 is on no example"),
])
def test_bad_multi_label_targets_name_the_problem(y, match):
    with pytest.raises(DataError, match=match):
        binarize(y, 3, source="training data")


def test_balanced_class_weights_follow_scikit_learn_and_bce_pos_weight():
    np.testing.assert_allclose(class_weights(np.array([0, 0, 0, 1]), 2, "balanced").numpy(), [4 / 6, 4 / 2])
    np.testing.assert_allclose(class_weights(np.array([[1, 0], [1, 1], [1, 0], [0, 0]]), 2, "balanced").numpy(),
                               [1 / 3, 3.0])
    assert class_weights(np.array([0, 1]), 2, "none") is None


@pytest.mark.parametrize("method", ["setfit", "linear-probe", "finetune"])
def test_balanced_class_weight_raises_the_minority_class(st_folder, method):
    X, y = synthetic.make(per_class=8)
    keep = [i for i, label in enumerate(y) if label == "positive"][:2]
    X = [x for i, x in enumerate(X) if y[i] == "negative" or i in keep]
    y = [v for i, v in enumerate(y) if v == "negative" or i in keep]
    Xt, _ = synthetic.held_out()
    minority = {}
    for mode in ("none", "balanced"):
        params = {**PARAMS[method], "class_weight": mode}
        if method == "setfit":
            params["steps"] = 0  # compare the heads on the same encoder
        clf = FewShotClassifier(backbone=str(st_folder), method=method, params=params, seed=0).fit(X, y)
        minority[mode] = clf.predict_proba(Xt)[:, list(clf.classes_).index("positive")].mean()
    assert minority["balanced"] > minority["none"] + 0.02


def test_class_weight_must_be_none_or_balanced(st_folder):
    X, y = synthetic.make(per_class=4)
    for method in PARAMS:
        with pytest.raises(FewtuneError, match="class_weight"):
            FewShotClassifier(backbone=str(st_folder), method=method, params={"class_weight": "inverse"}).fit(X, y)


def test_one_vs_rest_head_matches_per_label_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5))
    y = (rng.normal(size=(30, 3)) + x[:, :3] > 0).astype(int)
    head = LinearHead.fit_logistic(x, y, 3)
    for j in range(3):
        expected = LogisticRegression(max_iter=2000).fit(x, y[:, j]).predict_proba(x)[:, 1]
        np.testing.assert_allclose(head.predict_proba(x)[:, j], expected, atol=1e-6)
