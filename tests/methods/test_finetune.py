"""The finetune method: encoder + linear head trained end to end, with LoRA, L2-SP, re-init and early stopping."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fewtune import FewShotClassifier, FewtuneError
from fewtune.backbones import ResolvedBackbone, load_encoder
from fewtune.methods.finetune import Finetune, stratified_holdout
from fewtune.training.transformer_layers import hf_model, reinit_top_layers, transformer_layers
from fewtune.training.lora import lora_target_modules

from tests.helpers import synthetic

# The tiny random encoder knows no words: the head needs a larger learning rate than for a real model.
FAST = {"epochs": 8, "learning_rate": 1e-3, "head_learning_rate": 1e-2}
SHORT = {"epochs": 2, "learning_rate": 1e-3, "head_learning_rate": 1e-2}


def finetune(st_folder, params, seed=0):
    return FewShotClassifier(backbone=str(st_folder), method="finetune", params=params, seed=seed)


def tiny_encoder(st_folder):
    return load_encoder(ResolvedBackbone("tiny", "encoder", str(st_folder), "local"), device="cpu")


@pytest.fixture(scope="module")
def data():
    return synthetic.make(per_class=8)


@pytest.fixture(scope="module")
def fitted(st_folder, data):
    return finetune(st_folder, FAST).fit(*data)


def test_learns_the_task_well_above_chance_on_held_out_texts(fitted):
    X, y = synthetic.held_out()
    assert fitted.score(X, y) >= 0.75
    info = fitted.train_info_
    assert info["epochs"] == 8 and info["steps"] == 16
    assert info["distance_from_pretrained"] > 0
    assert "best_epoch" not in info


def test_predict_agrees_with_predict_proba_and_rows_sum_to_one(fitted):
    X, _ = synthetic.held_out()
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 2) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert list(fitted.predict(X)) == list(fitted.classes_[proba.argmax(axis=1)])


def test_save_and_load_give_identical_probabilities_from_safetensors_only(fitted, tmp_path):
    X, _ = synthetic.held_out()
    folder = fitted.save(tmp_path / "model")
    loaded = FewShotClassifier.load(folder)
    assert loaded.method == "finetune"
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"head.safetensors", "body/model.safetensors", "body/modules.json"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pkl", ".pickle"))]
    head = load_file(str(folder / "head.safetensors"))
    assert head["head.weight"].shape == (2, 32) and head["head.bias"].shape == (2,)


def test_same_seed_gives_identical_outputs_and_another_seed_differs(st_folder, data):
    X, _ = synthetic.held_out()
    a = finetune(st_folder, SHORT, seed=3).fit(*data).predict_proba(X)
    b = finetune(st_folder, SHORT, seed=3).fit(*data).predict_proba(X)
    c = finetune(st_folder, SHORT, seed=4).fit(*data).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("attention, expected", [(None, 0.0), (-1.0, "the backbone's")])
def test_attention_dropout_is_off_while_training_unless_asked_and_the_rates_are_restored(
        st_folder, data, monkeypatch, attention, expected):
    """The default trains with no dropout on the attention probabilities (PyTorch's fused kernel on CPU), the
    backbone's own on everything else; -1 keeps the backbone's attention dropout too. Rates seen in training."""
    from fewtune.training.optim import attention_dropouts

    seen: dict[str, set] = {"attention": set(), "other": set()}
    loaded = Finetune._load_body

    def load_and_watch(self):
        loaded(self)
        attention = attention_dropouts(self.body)
        others = [m for m in self.body.modules() if isinstance(m, torch.nn.Dropout) and m not in attention]

        def record(body, _):  # the rates each training forward pass runs with (sdpa reads .p, not the module)
            if body.training:
                seen["attention"].update(m.p for m in attention)
                seen["other"].update(m.p for m in others)

        self.body.register_forward_pre_hook(record)

    monkeypatch.setattr(Finetune, "_load_body", load_and_watch)
    params = {**SHORT, **({} if attention is None else {"attention_dropout": attention})}
    clf = finetune(st_folder, params).fit(*data)
    own = {m.p for m in attention_dropouts(tiny_encoder(st_folder))}
    assert own and 0.0 not in own  # the tiny backbone has attention dropout of its own to switch off
    assert seen["attention"] == ({0.0} if expected == 0.0 else own)
    assert seen["other"] and 0.0 not in seen["other"]
    assert {m.p for m in attention_dropouts(clf.model_.body)} == own  # restored: the saved config's rates


def test_full_fine_tuning_moves_the_encoder_but_not_the_word_embeddings(fitted, st_folder):
    before = dict(tiny_encoder(st_folder).named_parameters())
    after = dict(fitted.model_.body.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert any("encoder.layer.1." in n for n in changed) and any("encoder.layer.0." in n for n in changed)
    assert not [n for n in changed if "word_embeddings" in n]


def test_transformer_layers_are_found_for_bert_and_llama(st_folder, llama_folder):
    bert = hf_model(tiny_encoder(st_folder))
    assert transformer_layers(bert) is bert.encoder.layer
    from transformers import AutoModelForCausalLM

    llama = AutoModelForCausalLM.from_pretrained(str(llama_folder))
    assert transformer_layers(llama) is llama.model.layers


def test_reinit_top_layers_changes_only_the_top_layer(st_folder):
    model = hf_model(tiny_encoder(st_folder))
    before = {n: t.detach().clone() for n, t in model.named_parameters()}
    torch.manual_seed(0)
    params = reinit_top_layers(model, 1)
    after = dict(model.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and all(n.startswith("encoder.layer.1.") for n in changed)
    assert {id(t) for t in params} == {id(t) for t in model.encoder.layer[1].parameters()}
    query = model.encoder.layer[1].attention.self.query
    assert "encoder.layer.1.attention.self.query.weight" in changed
    assert torch.all(query.bias == 0)
    norm = model.encoder.layer[1].output.LayerNorm
    assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)
    with pytest.raises(FewtuneError, match="only 2 transformer layers"):
        reinit_top_layers(model, 3)


def test_reinit_layers_trains_and_is_checked_against_the_backbone(st_folder, data):
    clf = finetune(st_folder, {**SHORT, "reinit_layers": 1}).fit(*data)
    assert clf.predict_proba(data[0][:2]).shape == (2, 2)
    with pytest.raises(FewtuneError, match="reinit_layers=5.*only 2"):
        finetune(st_folder, {**SHORT, "reinit_layers": 5}).fit(*data)


def test_lora_trains_only_adapters_and_head_then_merges_and_round_trips(st_folder, data, tmp_path):
    clf = finetune(st_folder, {"epochs": 3, "lora": True, "learning_rate": 1e-2, "head_learning_rate": 1e-2}).fit(*data)
    trained = clf.model_.trained_parameter_names
    assert trained and all("lora_" in n or n.startswith("head.") for n in trained)
    assert any("lora_A" in n for n in trained) and any("lora_B" in n for n in trained)
    assert clf.train_info_["trainable_parameters"] < 5000
    assert clf.train_info_["distance_from_pretrained"] > 0

    # Merged: a plain encoder again, in which only LoRA's target matrices differ from pretrained.
    body = dict(clf.model_.body.named_parameters())
    assert not [n for n in body if "lora" in n]
    pretrained = dict(tiny_encoder(st_folder).named_parameters())
    assert set(body) == set(pretrained)
    changed = {n for n in body if not torch.equal(body[n], pretrained[n])}
    assert changed and all(n.endswith(("query.weight", "value.weight")) for n in changed)

    X, _ = synthetic.held_out()
    folder = clf.save(tmp_path / "lora")
    assert not list(folder.rglob("adapter_*"))
    np.testing.assert_array_equal(FewShotClassifier.load(folder).predict_proba(X), clf.predict_proba(X))


def test_lora_targets_are_peft_defaults_or_the_attention_linears(st_folder):
    assert lora_target_modules(hf_model(tiny_encoder(st_folder))) == ["query", "value"]
    from transformers import MPNetConfig, MPNetModel

    mpnet = MPNetModel(MPNetConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32))
    assert lora_target_modules(mpnet) == ["k", "o", "q", "v"]


def test_l2sp_keeps_the_encoder_closer_to_its_pretrained_weights(fitted, st_folder, data):
    held = finetune(st_folder, {**FAST, "l2sp": 100.0}).fit(*data)
    d_free = fitted.train_info_["distance_from_pretrained"]
    d_held = held.train_info_["distance_from_pretrained"]
    assert 0 < d_held < 0.8 * d_free


def test_early_stopping_validates_on_training_shots_only_and_keeps_the_best_epoch(st_folder, data, monkeypatch):
    seen = []
    original = Finetune._embed_batch

    def spy(self, texts):
        seen.extend(texts)
        return original(self, texts)

    monkeypatch.setattr(Finetune, "_embed_batch", spy)
    X, y = data
    clf = finetune(st_folder, {**FAST, "epochs": 4, "early_stopping": True, "patience": 1}).fit(X, y)
    assert set(seen) <= set(X)
    info = clf.train_info_
    assert info["n_validation"] == 4 and info["n_fit"] == 12  # 2 of each class's 8 shots held out
    assert 1 <= info["best_epoch"] <= info["epochs"] <= 4
    # The kept weights are the best epoch's: their validation loss is the one reported.
    y_idx = np.array([list(clf.classes_).index(v) for v in y])
    _, val = stratified_holdout(y_idx, 0.2, np.random.default_rng(0))
    loss = clf.model_._loss([X[i] for i in val], torch.as_tensor(y_idx[val]))
    assert loss == pytest.approx(info["validation_loss"], abs=1e-5)


def test_stratified_holdout_is_disjoint_stratified_and_needs_two_per_class():
    y = np.array([0] * 8 + [1] * 5 + [2] * 2)
    train, val = stratified_holdout(y, 0.2, np.random.default_rng(0))
    assert set(train).isdisjoint(val) and sorted([*train, *val]) == list(range(len(y)))
    assert list(np.bincount(y[val])) == [2, 1, 1]
    again = stratified_holdout(y, 0.2, np.random.default_rng(0))
    assert np.array_equal(again[1], val)
    with pytest.raises(FewtuneError, match="at least 2 examples of every class"):
        stratified_holdout(np.array([0, 0, 1]), 0.2, np.random.default_rng(0))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"learning_rate": "fast"}, "'learning_rate'.*float"),
        ({"dropout": 1.0}, "dropout"),
        ({"attention_dropout": 1.0}, "attention_dropout must be in \\[0, 1\\) or -1"),
        ({"warmup_ratio": 2}, "warmup_ratio"),
        ({"l2sp": -1}, "l2sp must not be negative"),
        ({"lora": True, "reinit_layers": 1}, "reinit_layers needs full fine-tuning"),
        ({"epochz": 3}, "unknown parameter.*epochz"),
    ],
)
def test_bad_parameters_are_explained(st_folder, data, params, match):
    with pytest.raises(FewtuneError, match=match):
        finetune(st_folder, params).fit(*data)


def test_early_stopping_with_one_shot_per_class_is_explained(st_folder):
    with pytest.raises(FewtuneError, match="at least 2 examples"):
        finetune(st_folder, {"early_stopping": True}).fit(["great film", "awful film"], ["pos", "neg"])
