"""Every setting checked once, before the data (issue 36): the estimator names settings by its own parameter
names, the plan fit follows is kept until a setting changes, and a run looks its method up once."""

from __future__ import annotations

import sys

import pytest

from fewtune import FewShotClassifier
from fewtune.errors import FewtuneError, SettingError
from fewtune.methods import base
from tests.helpers.files import write_csv
from tests.helpers.reviews import HEADER, review_rows


@pytest.mark.parametrize("option, value, message", [
    ("select", "x", "select must be None or one of 'cv', 'evidence', got 'x'"),
    ("posterior", "nope", "posterior must be None or one of 'laplace', "),
    ("calibrate", "nope", "calibrate must be None or one of 'temperature', "),
])
def test_the_api_names_a_setting_by_its_parameter_name_before_reading_the_data(option, value, message):
    never_read = ({"text": "a"} for _ in ())  # fit fails on the setting before it looks at X
    with pytest.raises(SettingError) as caught:
        FewShotClassifier(**{option: value}).fit(never_read, ["a"])
    assert str(caught.value).startswith(message) and "--" not in str(caught.value)
    assert caught.value.setting == option and caught.value.value == value


def test_the_plan_is_kept_until_a_setting_changes(st_folder):
    from sklearn.base import clone

    clf = FewShotClassifier(str(st_folder), "linear-probe", device="cpu")
    plan = clf.check()
    assert clf.check() is plan and plan.grid is None and plan.chain == ()
    clf.set_params(select="cv")  # as GridSearchCV sets a candidate's options
    assert clf.check().grid == plan.method_cls.selection_grid
    clf.set_params(class_prior={"neg": 1, "pos": 3})
    assert clf.check().class_prior == {"neg": 1.0, "pos": 3.0}
    clf.class_prior["pos"] = 0  # a dict changed in place is a change too
    with pytest.raises(FewtuneError, match="'pos' must be positive"):
        clf.check()
    clf.class_prior = None
    clf.set_params(posterior="nope")
    with pytest.raises(SettingError, match="posterior"):
        clf.check()
    assert not hasattr(clone(clf.set_params(posterior=None)), "_plan")  # a clone plans for itself


def test_a_run_looks_its_method_up_once(st_folder, tmp_path, monkeypatch):
    from fewtune import experiment

    experiment.run  # noqa: B018 (imports the training module, which imports the lookup, before it is counted)
    lookups = []
    original = base.get_method

    def counted(name):
        lookups.append(name)
        return original(name)

    for module in list(sys.modules.values()):
        if module.__name__.startswith("fewtune") and getattr(module, "get_method", None) is original:
            monkeypatch.setattr(module, "get_method", counted)
    data = write_csv(tmp_path / "reviews.csv", review_rows(6), header=HEADER)
    spec = experiment.RunSpec(data=data, text_col="review", label_col="sentiment", shots=4, method="linear-probe",
                              backbone=str(st_folder), device="cpu", check_data=True, quiet=True)
    done = experiment.run(spec)
    assert done.result["evaluation"]["n"] > 0
    assert lookups == ["linear-probe"]


def test_finetunes_grid_names_the_learning_rate_it_trains_with(st_folder):
    """--select cv's table and the saved choice give the rate as a number: full fine-tuning's default,
    or LoRA's with lora=true (each is what learning_rate=0 trains with)."""
    from fewtune.methods.finetune import FULL_LEARNING_RATE, LORA_LEARNING_RATE, FinetuneParams

    full = FewShotClassifier(str(st_folder), "finetune", select="cv").check().grid
    lora = FewShotClassifier(str(st_folder), "finetune", select="cv", params={"lora": True}).check().grid
    assert full["learning_rate"] == [FULL_LEARNING_RATE, 1e-4] and lora["learning_rate"] == [LORA_LEARNING_RATE, 1e-4]
    assert full["l2sp"] == lora["l2sp"] == [0.0, 1.0]
    assert FinetuneParams().trained_learning_rate() == FULL_LEARNING_RATE
    assert FinetuneParams(lora=True).trained_learning_rate() == LORA_LEARNING_RATE


@pytest.mark.parametrize("method, expected", [("setfit", "me5-small"), ("linear-probe", "me5-small"),
                                              ("prompt", "smollm2-135m"), ("zero-shot", "smollm2-135m")])
def test_without_a_backbone_the_estimator_takes_the_kind_its_method_reads_as_the_cli_does(method, expected,
                                                                                           monkeypatch):
    from fewtune import classifier_plan
    from fewtune.backbones import BACKBONES, ResolvedBackbone
    from fewtune.experiment.spec import RunSpec

    resolved = []

    def resolve(name):  # the name only: resolving smollm2-135m for real converts its GGUF (10 s) the first time
        resolved.append(name)
        return ResolvedBackbone(name, BACKBONES[name].kind, f"/nowhere/{name}", "local")

    monkeypatch.setattr(classifier_plan, "resolve_backbone", resolve)
    clf = FewShotClassifier(method=method)
    assert clf.get_params()["backbone"] is None  # scikit-learn's clone keeps "the method's default"
    assert clf.check().backbone.name == expected == RunSpec(method=method).default_backbone()
    assert resolved == [expected]


def test_a_method_given_the_wrong_kind_of_backbone_says_which_kind_it_is(st_folder):
    with pytest.raises(FewtuneError, match=r"needs a backbone of kind causal-lm; '.*' is an encoder$"):
        FewShotClassifier(str(st_folder), "zero-shot").check()
