"""setfit's options: steps from epochs, the supervised-contrastive loss, the differentiable head,
encoder dropout; and choosing parameters by cross-validation on the shots (--select cv)."""

import numpy as np
import pytest
import torch

from fewtune import FewShotClassifier, FewtuneError
from fewtune.training.optim import encoder_dropout
from fewtune.methods.setfit import SetFitParams, contrastive_steps, supcon_loss
from fewtune.data.sampling import cv_folds
from fewtune.selection import grid_points, parse_grid

from tests.helpers import synthetic

FAST = {"batch_size": 8, "learning_rate": 1e-3, "head_c": 1}  # a fixed head unless a test chooses it


@pytest.fixture(scope="module")
def data():
    return synthetic.make(per_class=8)


def test_steps_grow_linearly_with_the_number_of_texts():
    p = SetFitParams(epochs=4, batch_size=16)
    assert [contrastive_steps(p, n) for n in (16, 32, 80, 160)] == [4, 8, 20, 40]
    assert contrastive_steps(SetFitParams(steps=7), 1000) == 7
    assert contrastive_steps(SetFitParams(steps=0), 1000) == 0
    assert contrastive_steps(SetFitParams(epochs=0), 1000) == 0


def test_training_reports_the_steps_it_took(st_folder, data):
    clf = FewShotClassifier(backbone=str(st_folder), params={**FAST, "epochs": 2}).fit(*data)
    assert clf.train_info_["body_steps"] == 4  # 2 epochs × 16 texts / batch 8


def test_supcon_loss_is_low_for_separated_classes_and_high_for_mixed_ones():
    labels = torch.tensor([0, 0, 1, 1])
    separated = torch.tensor([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [0.01, 1.0]])
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.01], [0.01, 1.0]])
    low, high = supcon_loss(separated, labels, 0.1).item(), supcon_loss(mixed, labels, 0.1).item()
    assert low < 0.01 and high > 5.0
    # Multi-label rows are positives when they share a label.
    assert supcon_loss(separated, torch.tensor([[1, 0], [1, 1], [0, 1], [0, 1]]), 0.1).item() > low


def test_supcon_setfit_learns_the_task(st_folder, data):
    clf = FewShotClassifier(backbone=str(st_folder), params={**FAST, "loss": "supcon", "epochs": 3}).fit(*data)
    X, y = synthetic.held_out()
    assert clf.score(X, y) >= 0.75
    assert clf.train_info_["distance_from_pretrained"] > 0


def test_differentiable_head_trains_end_to_end_and_round_trips(st_folder, data, tmp_path):
    logistic = FewShotClassifier(backbone=str(st_folder), params={**FAST, "epochs": 2}, seed=1).fit(*data)
    diff = FewShotClassifier(backbone=str(st_folder), params={**FAST, "epochs": 2, "head": "differentiable",
                                                             "head_epochs": 3}, seed=1).fit(*data)
    X, y = synthetic.held_out()
    assert diff.train_info_["head_steps"] == 6
    # End to end: the encoder keeps moving after the contrastive stage, and the head is not the logistic one.
    assert diff.train_info_["distance_from_pretrained"] > logistic.train_info_["distance_from_pretrained"]
    assert not np.allclose(diff.predict_proba(X), logistic.predict_proba(X))
    assert diff.score(X, y) >= 0.75
    diff.save(tmp_path / "m")
    np.testing.assert_array_equal(FewShotClassifier.load(tmp_path / "m").predict_proba(X), diff.predict_proba(X))


def test_wise_interpolates_between_the_pretrained_and_the_trained_encoder(st_folder, data):
    params = {**FAST, "steps": 4}
    trained = FewShotClassifier(backbone=str(st_folder), params={**params, "wise": 1.0}, seed=2).fit(*data)
    default = FewShotClassifier(backbone=str(st_folder), params=params, seed=2).fit(*data)
    half = FewShotClassifier(backbone=str(st_folder), params={**params, "wise": 0.5}, seed=2).fit(*data)
    none = FewShotClassifier(backbone=str(st_folder), params={**params, "wise": 0.0}, seed=2).fit(*data)
    probe = FewShotClassifier(backbone=str(st_folder), method="linear-probe", seed=2).fit(*data)
    d = trained.train_info_["distance_from_pretrained"]
    assert d > 0
    assert half.train_info_["distance_from_pretrained"] == pytest.approx(d / 2, rel=1e-4)
    assert default.train_info_["distance_from_pretrained"] == pytest.approx(0.7 * d, rel=1e-4)
    # wise=0 is the pretrained encoder again: the same embeddings as a linear probe's.
    X, _ = synthetic.held_out()
    np.testing.assert_allclose(none.features(X), probe.features(X), atol=1e-5)
    with pytest.raises(FewtuneError, match="wise"):
        FewShotClassifier(backbone=str(st_folder), params={"wise": 1.5}).fit(*data)


def test_encoder_dropout_is_set_while_training_and_restored_after():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.1), torch.nn.Dropout(0.2))
    with encoder_dropout(model, 0.5):
        assert [m.p for m in model if isinstance(m, torch.nn.Dropout)] == [0.5, 0.5]
    assert [m.p for m in model if isinstance(m, torch.nn.Dropout)] == [0.1, 0.2]
    with encoder_dropout(model, -1):
        assert [m.p for m in model if isinstance(m, torch.nn.Dropout)] == [0.1, 0.2]


def test_attention_dropout_is_set_apart_from_the_others_and_restored(bert_folder):
    from transformers import AutoModel

    from fewtune.training.optim import attention_dropouts

    model = AutoModel.from_pretrained(str(bert_folder))
    everything = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    attention = attention_dropouts(model)
    # One per layer, the self-attention's own: not the embeddings' nor the ones after each output.
    assert len(attention) == model.config.num_hidden_layers and len(everything) > len(attention)
    assert all(type(m).__name__.endswith("SelfAttention") for m in model.modules() if any(
        d is getattr(m, "dropout", None) for d in attention))
    others = [m for m in everything if all(m is not a for a in attention)]
    with encoder_dropout(model, -1, 0.0):
        assert {m.p for m in attention} == {0.0} and {m.p for m in others} == {0.1}
    with encoder_dropout(model, 0.3, -1):
        assert {m.p for m in everything} == {0.3}
    with encoder_dropout(model, 0.3, 0.05):
        assert {m.p for m in attention} == {0.05} and {m.p for m in others} == {0.3}
    assert {m.p for m in everything} == {0.1}


def test_setfit_trains_without_attention_dropout_unless_asked(st_folder, data):
    """attention_dropout=0 (the default) changes what training does where the backbone has attention dropout,
    and only that: with every dropout at 0 it is the same run bit for bit."""
    X, y = data

    def embeddings(**params):
        clf = FewShotClassifier(backbone=str(st_folder), params={**FAST, "steps": 2, **params}, seed=0).fit(X, y)
        return clf.transform(X)

    default = embeddings()
    np.testing.assert_array_equal(default, embeddings(attention_dropout=0.0))
    assert not np.allclose(default, embeddings(attention_dropout=-1.0), atol=1e-6)
    np.testing.assert_array_equal(embeddings(dropout=0.0, attention_dropout=-1.0), embeddings(dropout=0.0))


@pytest.mark.parametrize("params, match", [
    ({"loss": "triplet"}, "loss must be one of pairs, supcon"),
    ({"head": "mlp"}, "head must be 'logistic' or 'differentiable'"),
    ({"dropout": 1.5}, "dropout must be in"),
    ({"attention_dropout": 1.5}, "attention_dropout must be in \\[0, 1\\) or -1"),
    ({"steps": -3}, "steps must be -1"),
    ({"learning_rate": 0}, "learning_rate must be positive"),
])
def test_bad_setfit_parameters_are_explained(st_folder, data, params, match):
    with pytest.raises(FewtuneError, match=match):
        FewShotClassifier(backbone=str(st_folder), params=params).fit(*data)


# --- selection by cross-validation on the shots -----------------------------------------------------
def test_grid_points_and_parsing():
    assert grid_points({"a": [1, 2], "b": [3]}) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]
    assert parse_grid(["learning_rate=1e-4,2e-5", "steps=2"], SetFitParams, "setfit") == {
        "learning_rate": [1e-4, 2e-5], "steps": [2]}
    with pytest.raises(FewtuneError, match="unknown parameter"):
        parse_grid(["bogus=1"], SetFitParams, "setfit")
    with pytest.raises(FewtuneError, match="KEY=VALUE"):
        parse_grid(["learning_rate"], SetFitParams, "setfit")


def test_cv_folds_are_stratified_and_limited_by_the_rarest_class():
    y = np.array([0] * 6 + [1] * 3)
    folds = cv_folds(y, 4, seed=0)
    assert len(folds) == 3
    for train, val in folds:
        assert set(np.bincount(y[val])) == {2, 1} and not set(train) & set(val)
    with pytest.raises(FewtuneError, match="at least 2 examples of every class"):
        cv_folds(np.array([0, 0, 1]), 4, seed=0)


def test_select_cv_uses_only_the_training_shots_and_saves_the_choice(st_folder, data, tmp_path, monkeypatch):
    X, y = data
    seen = []
    real_fit = FewShotClassifier.fit

    def spy(self, X_, y_, **kw):
        seen.append(list(X_) if not isinstance(X_[0], tuple) else [a for a, _ in X_])
        return real_fit(self, X_, y_, **kw)

    monkeypatch.setattr(FewShotClassifier, "fit", spy)
    # head_c=1e-4 all but switches the head off: cross-validation must see that and pick 10.
    clf = FewShotClassifier(backbone=str(st_folder), method="linear-probe", select="cv", params={"choose_c": False},
                            grid={"head_c": [1e-4, 10.0]}, cv_folds=4).fit(X, y)
    selection = clf.train_info_["selection"]
    assert selection["chosen"] == {"head_c": 10.0} and clf.model_.params.head_c == 10.0
    assert selection["folds"] == 4 and len(selection["results"]) == 2
    assert selection["results"][1]["accuracy"] > selection["results"][0]["accuracy"]
    assert all(set(texts) <= set(X) for texts in seen), "cross-validation read texts outside the shots"
    clf.save(tmp_path / "m")
    assert FewShotClassifier.load(tmp_path / "m").train_info_["selection"]["chosen"] == {"head_c": 10.0}
    assert "cross-validation on the training examples" in (tmp_path / "m" / "README.md").read_text()


def test_every_encoder_method_has_a_small_default_grid():
    from fewtune.methods import METHODS

    for name in ("setfit", "finetune", "linear-probe"):
        grid = METHODS[name].selection_grid
        assert grid and len(grid_points(grid)) <= 4
        for key in grid:
            assert key in METHODS[name].params_class.help()


def test_select_must_be_cv(st_folder, data):
    with pytest.raises(FewtuneError, match="select must be None or one of 'cv', 'evidence'"):
        FewShotClassifier(backbone=str(st_folder), select="grid").fit(*data)


def test_head_c_zero_chooses_the_head_on_bodies_that_never_saw_the_shots(st_folder, data, tmp_path):
    from fewtune.methods.setfit import HEAD_C_GRID
    from fewtune.training.heads import LinearHead

    X, y = data
    params = {**FAST, "epochs": 2, "head_c": 0}
    clf = FewShotClassifier(backbone=str(st_folder), params=params, seed=0).fit(X, y)
    info = clf.train_info_["head_c"]
    assert info["folds"] == 4 and list(info["oof_nll"]) == [f"{c:g}" for c in HEAD_C_GRID]
    # The geometric mean of the grid under the out-of-fold likelihood of the 16 shots, scaled from the fold
    # heads' 12 shots to the model's 16 (C weighs the sum of the losses).
    nll = np.array(list(info["oof_nll"].values()))
    weights = np.exp(-len(y) * (nll - nll.min()))
    assert info["fold_share"] == 0.75
    assert info["chosen"] == pytest.approx(0.75 * np.exp(np.dot(weights / weights.sum(), np.log(HEAD_C_GRID))),
                                           rel=1e-4)
    # That likelihood is the one of setfits trained on each fold's other shots, as a user would train them
    # with as many steps as the model's own body took.
    y_idx = np.array([list(clf.classes_).index(v) for v in y])
    logp = np.zeros(len(HEAD_C_GRID))
    for train_idx, val_idx in cv_folds(y_idx, 4, 0):
        member = FewShotClassifier(backbone=str(st_folder), params={**params, "head_c": 1,
                                                                        "steps": clf.train_info_["body_steps"]},
                                   seed=0).fit([X[i] for i in train_idx], [y[i] for i in train_idx])
        emb = member.transform(X)
        for i, c in enumerate(HEAD_C_GRID):
            proba = LinearHead.fit_logistic(emb[train_idx], y_idx[train_idx], 2, c=c, seed=0).predict_proba(emb[val_idx])
            logp[i] += np.log(proba[np.arange(len(val_idx)), y_idx[val_idx]]).sum()
    np.testing.assert_allclose(nll, -logp / len(y), atol=2e-6)
    # The model's head is the logistic head at that C on its own embeddings of the shots.
    X_test, _ = synthetic.held_out()
    head = LinearHead.fit_logistic(clf.transform(X), y_idx, 2, c=info["chosen"], seed=0)
    np.testing.assert_allclose(clf.predict_proba(X_test), head.predict_proba(clf.transform(X_test)), atol=1e-5)
    assert len(clf.train_info_["loss_curve"]) == clf.train_info_["body_steps"]  # the fold bodies' steps are not in it
    clf.save(tmp_path / "m")
    np.testing.assert_array_equal(FewShotClassifier.load(tmp_path / "m").predict_proba(X_test),
                                  clf.predict_proba(X_test))
    # Labels the texts do not bear out: the bodies that never saw a shot cannot predict it, and the head is timid.
    shuffled = list(np.random.default_rng(0).permutation(y))
    noise = FewShotClassifier(backbone=str(st_folder), params=params, seed=0).fit(X, shuffled)
    assert noise.train_info_["head_c"]["chosen"] < info["chosen"] / 4


def test_a_calibration_s_fold_models_keep_the_chosen_head_c(st_folder, data, monkeypatch):
    from fewtune.methods.setfit import SetFit

    chosen = []
    choose = SetFit._choose_head_c
    monkeypatch.setattr(SetFit, "_choose_head_c", lambda self, *a, **kw: chosen.append(1) or choose(self, *a, **kw))
    clf = FewShotClassifier(backbone=str(st_folder), params={**FAST, "steps": 1, "head_c": 0},
                            calibrate="temperature").fit(*data)
    assert len(chosen) == 1  # not again inside each of temperature scaling's fold models
    assert clf.train_info_["calibration"]["folds"] == 4


def test_select_cv_members_do_not_choose_head_c_again_unless_the_grid_is_over_it(st_folder, data, monkeypatch):
    from fewtune.methods.setfit import SetFit

    chosen = []
    choose = SetFit._choose_head_c
    monkeypatch.setattr(SetFit, "_choose_head_c", lambda self, *a, **kw: chosen.append(1) or choose(self, *a, **kw))
    clf = FewShotClassifier(backbone=str(st_folder), params={**FAST, "steps": 1, "head_c": 0}, select="cv",
                            grid={"learning_rate": [1e-3, 1e-4]}).fit(*data)
    assert len(chosen) == 1  # the chosen point's model only, not each of the 2 × 4 fold models
    assert clf.model_.params.head_c == 0 and "chosen" in clf.train_info_["head_c"]
    chosen.clear()
    over_c = FewShotClassifier(backbone=str(st_folder), params={**FAST, "steps": 1}, select="cv", cv_folds=2,
                               grid={"head_c": [0.0, 1.0]}).fit(*data)
    # The head_c=0 point's 2 fold models choose, as asked; then the chosen point's model, if it is that one.
    assert len(chosen) == 2 + (over_c.train_info_["selection"]["chosen"]["head_c"] == 0)


@pytest.mark.parametrize("freeing", ["card link only", "collection only", "neither"])
@pytest.mark.parametrize("options", [
    {"params": {**FAST, "steps": 1, "head_c": 0}},  # head_c=0's fold bodies
    {"params": {**FAST, "steps": 1}, "calibrate": "temperature"},  # the calibration's fold models
    {"params": {**FAST, "steps": 1}, "select": "cv", "cv_folds": 2, "grid": {"learning_rate": [1e-3, 1e-4]}},
], ids=["head_c=0", "calibrate", "select-cv"])
def test_fold_models_weights_are_freed_as_soon_as_they_are_done(st_folder, data, monkeypatch, options, freeing):
    """A SentenceTransformer and its model card hold each other. With the automatic collector off, every fold
    model's weights are gone before the next one trains, and the kept model's alone are alive when fit returns,
    by either of two means: the card holding its model weakly (backbones/card_link.py), or the collection after
    each fold model (training/memory.py). With neither they all stay held: the cycle is real, the test can fail."""
    import contextlib
    import gc
    import weakref

    from fewtune import selection
    from fewtune.backbones import loading
    from fewtune.bayes import out_of_fold
    from fewtune.methods import setfit
    from fewtune.methods.setfit import SetFit

    if freeing in ("card link only", "neither"):
        for module in (setfit, out_of_fold, selection):
            monkeypatch.setattr(module, "fold_models", lambda: contextlib.nullcontext(lambda: None))
    if freeing in ("collection only", "neither"):
        monkeypatch.setattr(loading, "weak_card_link", lambda model: model)
    weights = []  # a weak reference to one trained weight of every body, taken as its optimiser is made
    held = []  # how many earlier bodies' weights were still alive as each body began to train
    optimizer = SetFit._optimizer

    def tracked(self, trainable, *a, **kw):
        held.append(sum(ref() is not None for ref in weights))
        weights.append(weakref.ref(trainable[0]))
        return optimizer(self, trainable, *a, **kw)

    monkeypatch.setattr(SetFit, "_optimizer", tracked)
    gc.collect()
    gc.disable()
    try:
        clf = FewShotClassifier(backbone=str(st_folder), **options).fit(*data)
        alive = [ref() for ref in weights if ref() is not None]
    finally:
        gc.enable()
    assert len(weights) >= 3
    if freeing != "neither":  # while training, at most the kept model (where it was trained first) was alive beside it
        assert max(held) <= 1
        assert len(alive) == 1 and any(alive[0] is t for t in clf.model_.body.parameters())
    else:
        assert max(held) > 1 and len(alive) > 1


def test_head_c_zero_without_contrastive_steps_trains_no_fold_bodies(st_folder, data, monkeypatch):
    """steps=0 leaves every fold body the pretrained one: the shots' embeddings serve every fold."""
    from fewtune.methods.setfit import HEAD_C_GRID, SetFit
    from fewtune.training.heads import LinearHead

    def refuse(*a, **kw):
        raise AssertionError("a fold body was trained")

    monkeypatch.setattr(SetFit, "_fold_body_embeddings", refuse)
    X, y = data
    clf = FewShotClassifier(backbone=str(st_folder), params={**FAST, "steps": 0, "head_c": 0}, seed=0).fit(X, y)
    y_idx = np.array([list(clf.classes_).index(v) for v in y])
    emb = clf.transform(X)
    logp = np.zeros(len(HEAD_C_GRID))
    for train_idx, val_idx in cv_folds(y_idx, 4, 0):
        for i, c in enumerate(HEAD_C_GRID):
            proba = LinearHead.fit_logistic(emb[train_idx], y_idx[train_idx], 2, c=c, seed=0).predict_proba(emb[val_idx])
            logp[i] += np.log(proba[np.arange(len(val_idx)), y_idx[val_idx]]).sum()
    nll = np.array(list(clf.train_info_["head_c"]["oof_nll"].values()))
    np.testing.assert_allclose(nll, -logp / len(y), atol=2e-6)


def test_head_c_zero_falls_back_where_the_shots_cannot_choose(st_folder, data):
    X, y = data
    diff = FewShotClassifier(backbone=str(st_folder), params={**FAST, "steps": 1, "head_c": 0,
                                                               "head": "differentiable", "head_epochs": 1}).fit(X, y)
    assert diff.train_info_["head_c"] == {"chosen": 1.0, "why": "not chosen (differentiable head)"}
    keep = [i for i, label in enumerate(y) if label == "negative"] + [y.index("positive")]
    one = FewShotClassifier(backbone=str(st_folder), params={**FAST, "steps": 1, "head_c": 0}).fit(
        [X[i] for i in keep], [y[i] for i in keep])
    assert one.train_info_["head_c"] == {"chosen": 1.0, "why": "not chosen (a class with one shot)"}


def test_one_bar_counts_every_body_head_c_zero_trains(st_folder, data):
    """The time left a user sees is the run's: the kept body and the four fold bodies in one bar (on long
    texts the fold bodies are most of the wait), and no such bar where only one body trains."""
    from fewtune.progress import observe_progress

    def bars(params):
        events = []
        with observe_progress(lambda *event: events.append(event)):
            clf = FewShotClassifier(backbone=str(st_folder), params=params, seed=0, show_progress=False).fit(*data)
        added = {e[1]: (e[2], e[3]) for e in events if e[0] == "add"}
        done = {task: sum(e[2] for e in events if e[0] == "advance" and e[1] == task) for task in added}
        return clf, {added[t][0]: (added[t][1], done[t]) for t in added}

    clf, chosen = bars({**FAST, "steps": 3, "head_c": 0})
    (overall,) = [name for name in chosen if name.startswith("All 5 trainings")]
    assert "head_c=1" in overall and chosen[overall] == (15, 15)
    assert clf.train_info_["head_c"]["folds"] == 4
    # Each body's own bar still counts its own steps.
    assert chosen["Contrastive training"] == (3, 3) and chosen["Choosing the head: fold body 4/4"] == (3, 3)
    _, fixed = bars({**FAST, "steps": 3, "head_c": 1})
    assert not any(name.startswith("All ") for name in fixed) and fixed["Contrastive training"] == (3, 3)
