"""The scikit-learn contract of fewtune's models: params__KEY, tags, NotFittedError, GridSearchCV, clone,
and the Hugging Face names save_pretrained / from_pretrained."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict

from fewtune import FewShotClassifier, FewShotGenerator, FewtuneError
from fewtune.recommend import FewShotRecommender
from tests.helpers import synthetic
from tests.helpers.fast import FAST_SETFIT as FAST


def test_params_keys_are_settable_and_listed():
    clf = FewShotClassifier(method="finetune", params={"epochs": 2})
    assert clf.set_params(params__learning_rate=1e-4, seed=3) is clf
    assert clf.params == {"epochs": 2, "learning_rate": 1e-4} and clf.seed == 3
    assert clf.get_params()["params__learning_rate"] == 1e-4
    assert "params__learning_rate" not in clf.get_params(deep=False)
    again = clone(clf)
    assert again.params == clf.params


def test_tags_say_text_in_and_multi_label():
    tags = FewShotClassifier().__sklearn_tags__()
    assert tags.input_tags.string and not tags.input_tags.two_d_array
    assert tags.classifier_tags.multi_label and tags.estimator_type == "classifier"


@pytest.mark.parametrize("model", [FewShotClassifier(), FewShotGenerator(show_progress=False), FewShotRecommender()])
def test_using_a_model_before_fit_is_sklearns_not_fitted_error_and_ours(model):
    call = {FewShotClassifier: lambda m: m.predict(["x"]), FewShotGenerator: lambda m: m.generate("hi"),
            FewShotRecommender: lambda m: m.item_matcher()}[type(model)]
    with pytest.raises(NotFittedError, match="not fitted"):
        call(model)
    with pytest.raises(FewtuneError):
        call(model)


def test_grid_search_tunes_a_method_parameter_and_cross_val_predict_runs(st_folder):
    X, y = synthetic.make(per_class=8)
    search = GridSearchCV(FewShotClassifier(backbone=str(st_folder), params=dict(FAST)),
                          {"params__steps": [0, 4]}, cv=StratifiedKFold(2, shuffle=True, random_state=0))
    search.fit(X, y)
    assert search.best_params_["params__steps"] in (0, 4)
    assert len(search.cv_results_["mean_test_score"]) == 2
    assert search.best_estimator_.params["steps"] == search.best_params_["params__steps"]
    predicted = cross_val_predict(FewShotClassifier(backbone=str(st_folder), params=dict(FAST)), X, y, cv=2)
    assert len(predicted) == len(y) and set(predicted) <= set(y)
    proba = cross_val_predict(FewShotClassifier(backbone=str(st_folder), params=dict(FAST)), X, y, cv=2,
                              method="predict_proba")
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)


def test_generator_and_recommender_params_round_trip():
    gen = FewShotGenerator(show_progress=False, params={"epochs": 2})
    gen.set_params(params__learning_rate=3e-4)
    assert gen.params.learning_rate == 3e-4 and gen.params.epochs == 2
    assert clone(gen).params == gen.params
    with pytest.raises(FewtuneError, match="unknown parameter"):
        gen.set_params(params__lrr=1)
    rec = FewShotRecommender("bayes", params={"components": 8})
    assert rec.set_params(params__components=4, seed=5).params == {"components": 4}
    assert clone(rec).get_params() == rec.get_params()


def test_save_pretrained_and_from_pretrained_are_save_and_load(st_folder, tmp_path):
    X, y = synthetic.make(per_class=8)
    clf = FewShotClassifier(backbone=str(st_folder), params=dict(FAST)).fit(X, y)
    clf.save_pretrained(tmp_path / "m")
    again = FewShotClassifier.from_pretrained(tmp_path / "m")
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


def test_fit_reads_a_dataframes_named_columns_and_predict_the_same_column(st_folder):
    import pandas as pd

    X, y = synthetic.make(per_class=8)
    frame = pd.DataFrame({"review": X, "verdict": y, "id": range(len(X))})
    clf = FewShotClassifier(backbone=str(st_folder), params=dict(FAST)).fit(frame, text_col="review",
                                                                          label_col="verdict")
    listed = FewShotClassifier(backbone=str(st_folder), params=dict(FAST)).fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(frame), listed.predict_proba(X), atol=1e-6)
    with pytest.raises(FewtuneError, match=r"training data: no column 'text' \(did you mean 'texts'\?\)"):
        FewShotClassifier(backbone=str(st_folder)).fit(frame.rename(columns={"review": "texts"}), label_col="verdict")


class DatasetLike:
    """What fit reads of a datasets.Dataset (datasets is not a dependency): column_names, columns by name,
    and features whose ClassLabel has names."""

    def __init__(self, columns: dict, label_names: list[str]):
        self.columns_by_name, self.column_names = columns, list(columns)
        self.features = {"label": type("ClassLabel", (), {"names": label_names})()}

    def __getitem__(self, name):
        return self.columns_by_name[name]


def test_fit_reads_dataset_columns_and_class_label_names_without_datasets_installed(st_folder):
    X, y = synthetic.make(per_class=8)
    names = sorted(set(y))
    data = DatasetLike({"text": X, "label": [names.index(v) for v in y]}, names)
    clf = FewShotClassifier(backbone=str(st_folder), params=dict(FAST)).fit(data)
    assert list(clf.classes_) == names and clf.train_info_["class_counts"] == {"negative": 8, "positive": 8}


def test_transform_makes_the_classifier_a_pipeline_step(st_folder):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    X, y = synthetic.make(per_class=8)
    clf = FewShotClassifier(backbone=str(st_folder), method="linear-probe")
    pipe = Pipeline([("embed", clf), ("head", LogisticRegression(C=10.0))]).fit(X, y)
    fitted = pipe.named_steps["embed"]
    assert np.allclose(fitted.transform(X[:5]), fitted.features(X[:5]))
    assert fitted.transform(X[:5]).shape == (5, fitted.features(X[:1]).shape[1])
    # The step passes the embedding on: the pipeline's head learns the shots from it.
    assert np.mean(pipe.predict(X) == np.asarray(y)) > 0.8
