"""method="auto" (a portfolio cross-validated on the shots) and "hybrid" (both backbone families in one head)."""

import json

import numpy as np
import pytest

from fewtune import FewShotClassifier
from fewtune.errors import FewtuneError
from fewtune.methods.auto import fit_pool, log_linear_pool
from tests.helpers import synthetic


def test_hybrid_reads_the_embedding_and_the_calibrated_label_words_in_one_head(st_folder, chat_llama_folder, tmp_path):
    X, y = synthetic.make(per_class=8)
    Xt, yt = synthetic.held_out()
    clf = FewShotClassifier(backbone=str(st_folder), method="hybrid", params={"lm": str(chat_llama_folder)}).fit(X, y)
    info = clf.train_info_
    assert info["lm"] == str(chat_llama_folder) and info["prompt"]["template"] == "ensemble"
    # The LM's weight and the head's strength are chosen on the shots, from the grid, by out-of-fold NLL.
    cv = info["cv"]["cv_nll"]
    assert len(cv) == 20 and cv[f"scale={info['lm_feature_scale']:g},C={info['head_c']:g}"] == min(cv.values())
    features = clf.features(Xt)
    assert features.shape == (len(Xt), info["embedding_dim"] + 2)
    weight, bias = clf.model_.last_layer()
    logits = features @ weight.T + bias
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), clf.predict_proba(Xt), atol=1e-5)
    assert clf.score(X, y) >= 0.9  # the embedding all but separates the shots
    clf.save(tmp_path / "m")
    np.testing.assert_allclose(FewShotClassifier.load(tmp_path / "m").predict_proba(Xt), clf.predict_proba(Xt), atol=1e-6)
    # A softmax head on fixed features: the Laplace posterior refits it.
    lap = FewShotClassifier(backbone=str(st_folder), method="hybrid", params={"lm": str(chat_llama_folder)},
                            posterior="laplace").fit(X, y)
    assert lap.train_info_["posterior"]["tau"] > 0 and np.allclose(lap.predict_proba(Xt).sum(1), 1)


def test_a_calibrations_hybrids_share_one_encoder_and_predict_as_with_their_own(st_folder, chat_llama_folder,
                                                                                  monkeypatch):
    """hybrid never trains its encoder: the fold models of its calibration load it once between them."""
    from fewtune.methods import hybrid
    from fewtune.training import encoder_method

    X, y = synthetic.make(per_class=8)
    loads, real_load, shared = [], encoder_method.load_encoder, hybrid.pretrained_body
    monkeypatch.setattr(encoder_method, "load_encoder", lambda *a, **kw: loads.append(1) or real_load(*a, **kw))

    def fit():
        loads.clear()
        return FewShotClassifier(backbone=str(st_folder), method="hybrid", params={"lm": str(chat_llama_folder)},
                                 calibrate="temperature", cv_folds=2, seed=0).fit(X, y)

    one = fit()
    assert len(loads) == 2  # the kept model's, and one for the 2 fold models
    monkeypatch.setattr(hybrid, "pretrained_body", lambda *a, frozen: shared(*a, frozen=False))
    own = fit()
    assert len(loads) == 3
    np.testing.assert_allclose(one.predict_proba(X), own.predict_proba(X), atol=1e-6)


def test_hybrid_with_no_weight_on_the_lm_does_not_run_it_at_predict(st_folder, chat_llama_folder, monkeypatch):
    from fewtune.methods.zero_shot import ZeroShot

    X, y = synthetic.make(per_class=8)
    Xt, _ = synthetic.held_out()
    clf = FewShotClassifier(backbone=str(st_folder), method="hybrid", params={
        "lm": str(chat_llama_folder), "choose_by_cv": False, "lm_feature_scale": 0.0, "head_c": 10.0}).fit(X, y)
    probe = FewShotClassifier(backbone=str(st_folder), method="linear-probe",
                               params={"head_c": 10.0, "choose_c": False}).fit(X, y)

    def never(*args, **kwargs):
        raise AssertionError("the LM ran though the head gives it no weight")

    monkeypatch.setattr(ZeroShot, "predict_proba", never)
    np.testing.assert_allclose(clf.predict_proba(Xt), probe.predict_proba(Xt), atol=1e-4)  # it is the probe


def test_hybrid_needs_a_causal_lm(st_folder):
    X, y = synthetic.make()
    with pytest.raises(FewtuneError, match="hybrid's lm must be a causal LM"):
        FewShotClassifier(backbone=str(st_folder), method="hybrid", params={"lm": str(st_folder)}).fit(X, y)


def test_the_log_linear_pool_weights_the_informative_model():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    good = np.where(np.eye(2)[y] == 1, 0.85, 0.15)
    noise = rng.dirichlet([1, 1], 200)
    logps = np.log(np.stack([good, noise]))
    w = fit_pool(logps, y)
    assert w[0] > 0.8 and w[1] < 0.2
    np.testing.assert_allclose(log_linear_pool(logps, np.array([1.0, 0.0])), good)


def test_auto_cross_validates_the_portfolio_and_keeps_the_best_out_of_fold(st_folder, chat_llama_folder, tmp_path):
    X, y = synthetic.make(per_class=8)
    Xt, _ = synthetic.held_out()
    params = {"candidates": "zero-shot,linear-probe", "lm": str(chat_llama_folder), "folds": 2}
    clf = FewShotClassifier(backbone=str(st_folder), method="auto", params=params).fit(X, y)
    info = clf.train_info_["auto"]
    # Cheapest first, whatever order they were named in; each scored on every shot out of fold.
    assert list(info["candidates"]) == ["linear-probe", "zero-shot"] and info["folds"] == 2
    nll = {k: v["cv_nll"] for k, v in info["candidates"].items()}
    if info["chosen"] == "stack":
        assert info["stack"]["chosen"] and info["stack"]["cv_nll"] < min(nll.values())
    else:
        assert info["chosen"] == min(nll, key=nll.get) and info["members"] == [info["chosen"]]
    proba = clf.predict_proba(Xt)
    assert np.array_equal(clf.predict(Xt), clf.classes_[proba.argmax(1)])
    # The folds' shared score cache gives what scoring afresh gives, and is gone once the search ends.
    assert all(getattr(m, "score_cache", None) is None for m in clf.model_.members)
    alone = FewShotClassifier(backbone=str(chat_llama_folder), method="zero-shot").fit(X, y)
    if info["members"] == ["zero-shot"]:
        np.testing.assert_allclose(proba, alone.predict_proba(Xt), atol=1e-9)
    clf.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "auto.json").read_text())
    assert [m["method"] for m in saved["members"]] == info["members"]
    card = (tmp_path / "m" / "README.md").read_text()
    assert "cross-validation on the training examples (auto)" in card and "— **chosen**" in card
    np.testing.assert_allclose(FewShotClassifier.load(tmp_path / "m").predict_proba(Xt), proba, atol=1e-6)


def test_auto_skips_the_language_model_candidates_when_the_classes_are_ids(st_folder, chat_llama_folder):
    X, y = synthetic.make()
    ids = ["0" if label == "negative" else "1" for label in y]
    clf = FewShotClassifier(backbone=str(st_folder), method="auto",
                            params={"lm": str(chat_llama_folder), "folds": 2, "stack": False,
                                    "candidates": "linear-probe,zero-shot"})
    with pytest.raises(FewtuneError, match="cannot run candidate 'zero-shot': the class names are ids"):
        clf.fit(X, ids)  # named by the user: an error, not a silent skip
    default = FewShotClassifier(backbone=str(st_folder), method="auto",
                                params={"lm": str(chat_llama_folder), "folds": 2, "stack": False})
    # The default portfolio on id labels: the LM candidates are skipped and say why; the encoder ones run.
    default.fit(X, ids)
    info = default.train_info_["auto"]
    assert list(info["candidates"]) == ["linear-probe", "setfit", "finetune"]
    assert set(info["skipped"]) == {"zero-shot", "hybrid", "prompt"} and "ids" in info["skipped"]["zero-shot"]


def test_auto_without_the_causal_lm_runs_the_encoder_candidates_and_says_how_to_install_it(st_folder, monkeypatch):
    import fewtune.methods.auto as auto
    from fewtune.errors import BackboneError

    real = auto.resolve_backbone

    def not_installed(name):
        if name == "smollm2-135m":
            raise BackboneError("backbone 'smollm2-135m' is not installed; run: fewtune models install smollm2-135m")
        return real(name)

    monkeypatch.setattr(auto, "resolve_backbone", not_installed)
    X, y = synthetic.make()
    clf = FewShotClassifier(backbone=str(st_folder), method="auto",
                            params={"folds": 2, "stack": False, "candidates": "linear-probe,zero-shot"})
    with pytest.raises(FewtuneError, match="cannot run candidate 'zero-shot'.*fewtune models install smollm2-135m"):
        clf.fit(X, y)
    clf = FewShotClassifier(backbone=str(st_folder), method="auto", params={"folds": 2, "stack": False}).fit(X, y)
    skipped = clf.train_info_["auto"]["skipped"]
    assert set(skipped) == {"zero-shot", "hybrid", "prompt"}
    assert "fewtune models install smollm2-135m" in skipped["prompt"]


@pytest.mark.parametrize("params,match", [
    ({"time_budget": 5}, "time_budget 5s is too small"),
    ({"candidates": "setfit,auto"}, "candidate 'auto' is not a method auto can run"),
    ({"folds": 1}, "folds must be at least 2"),
])
def test_bad_auto_settings_are_refused_before_any_training(st_folder, params, match):
    X, y = synthetic.make()
    with pytest.raises(FewtuneError, match=match):
        FewShotClassifier(backbone=str(st_folder), method="auto", params=params).fit(X, y)


def test_auto_needs_two_shots_of_every_class(st_folder):
    with pytest.raises(FewtuneError, match="auto chooses by cross-validation on the shots.*at least 2 examples"):
        FewShotClassifier(backbone=str(st_folder), method="auto").fit(["good film", "bad film"], ["pos", "neg"])


def test_a_budget_no_candidate_fits_in_says_what_to_do(st_folder, monkeypatch):
    import fewtune.methods.auto as auto

    monkeypatch.setattr(auto, "MIN_BUDGET", 0.0)
    X, y = synthetic.make()
    with pytest.raises(FewtuneError, match="no candidate finished within the time budget.*--time-budget"):
        FewShotClassifier(backbone=str(st_folder), method="auto",
                          params={"candidates": "linear-probe", "time_budget": 1e-6, "folds": 2}).fit(X, y)


def test_the_budget_reads_a_cache_filling_first_fold_and_estimates_prompt_before_starting_it(
        st_folder, chat_llama_folder, monkeypatch):
    import fewtune.methods.auto as auto

    clock = {"now": 0.0}
    # zero-shot's first fold scores every shot (100 s); its later folds and final training read the cache.
    costs = {"zero-shot": [100.0, 1.0, 1.0, 1.0], "linear-probe": [1.0] * 4, "prompt": [500.0] * 4}
    trained = []

    class Fitted:
        def __init__(self, n_classes):
            self.n_classes = n_classes

        def predict_proba(self, texts):
            return np.full((len(texts), self.n_classes), 1.0 / self.n_classes)

        def parts(self):
            return []

    def fake_train(self, name, params, backbone, texts, y, n_classes, seed):
        runs = sum(1 for t in trained if t == name)
        trained.append(name)
        clock["now"] += costs[name][min(runs, 3)]
        return Fitted(n_classes)

    monkeypatch.setattr(auto.Auto, "_train", fake_train)
    monkeypatch.setattr(auto.time, "perf_counter", lambda: clock["now"])
    X, y = synthetic.make(per_class=8)
    params = {"candidates": "linear-probe,zero-shot,prompt", "lm": str(chat_llama_folder), "folds": 4,
              "time_budget": 200, "stack": False}
    info = FewShotClassifier(backbone=str(st_folder), method="auto", params=params,
                             show_progress=False).fit(X, y).train_info_["auto"]
    assert set(info["candidates"]) == {"linear-probe", "zero-shot"}  # not abandoned after its costly first fold
    assert "prompt" not in trained and "(from zero-shot)" in info["skipped"]["prompt"]


def test_the_cli_takes_auto_with_a_time_budget_and_refuses_it_elsewhere(st_folder, tmp_path, capfd):
    from fewtune.cli import main

    X, y = synthetic.make()
    (tmp_path / "train.csv").write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in zip(X, y)))
    common = ["train", "--data", str(tmp_path / "train.csv"), "--backbone", str(st_folder), "-q"]
    assert main([*common, "--time-budget", "60"]) == 2
    assert "--time-budget applies to --method auto, not setfit" in capfd.readouterr().err
    assert main([*common, "--method", "auto", "--time-budget", "5"]) == 2
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "too small" in err
    assert main([*common, "--as-user-file"]) == 2
    assert "--as-user-file applies to --dataset" in capfd.readouterr().err
    assert main([*common, "--method", "auto", "-p", "candidates=linear-probe", "-p", "folds=2", "--json"]) == 0
    result = json.loads(capfd.readouterr().out)
    assert result["auto"]["chosen"] == "linear-probe" and "linear-probe" in result["auto"]["candidates"]
    assert main([*common, "--method", "auto", "-p", "candidates=linear-probe,majority", "-p", "folds=2"]) == 0
    out = capfd.readouterr().out
    assert "out-of-fold NLL" in out and "majority" in out and "auto chose" in out


def test_bench_runs_a_builtin_as_a_user_file_without_its_template():
    from fewtune.bench.plan import data_source

    plain, user = data_source("mr"), data_source("mr", user_file=True)
    assert not plain.withholds_prompt and user.withholds_prompt
    assert user.name == "mr-as-file" and user.builtin_name == "mr"
    assert type(user).from_dict(user.to_dict()) == user and "user_file" not in plain.to_dict()


def test_auto_says_each_candidates_score_as_it_finishes(st_folder, caplog, capsys):
    import logging

    X, y = synthetic.make()
    params = {"folds": 2, "stack": False, "candidates": "linear-probe,majority"}
    with caplog.at_level(logging.INFO, logger="fewtune.methods.auto"):
        info = FewShotClassifier(backbone=str(st_folder), method="auto", params=params,
                                 show_progress=False).fit(X, y).train_info_["auto"]
    lines = [r.getMessage() for r in caplog.records if r.name == "fewtune.methods.auto"]
    assert lines == [f"auto: {name} out-of-fold NLL {r['cv_nll']:.3f}, accuracy {r['cv_accuracy']:.3f} "
                     f"({r['seconds']:.1f} s, 2 folds)" for name, r in info["candidates"].items()]
    caplog.clear()
    capsys.readouterr()
    FewShotClassifier(backbone=str(st_folder), method="auto", params=params, show_progress=True).fit(X, y)
    err = capsys.readouterr().err
    # With the bars shown, the lines go above them (Progress.log), not to the logger.
    assert "auto: linear-probe out-of-fold NLL" in err and "auto: majority out-of-fold NLL" in err
    assert not [r for r in caplog.records if r.name == "fewtune.methods.auto"]
