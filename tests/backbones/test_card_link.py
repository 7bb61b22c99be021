"""A loaded encoder is freed as soon as it is dropped: its model card holds it weakly (backbones/card_link.py)."""

import copy
import gc
import weakref

import numpy as np
import pytest

from fewtune import FewShotClassifier
from fewtune.backbones import load_encoder, resolve_backbone


def test_a_loaded_encoder_goes_with_its_last_reference_while_sentence_transformers_own_waits(
        st_folder, no_automatic_collection):
    from sentence_transformers import SentenceTransformer

    body = load_encoder(resolve_backbone(str(st_folder)))
    assert body.model_card_data.model is body  # the card still sees its model
    weights = weakref.ref(next(body.parameters()))
    del body
    assert weights() is None
    plain = SentenceTransformer(str(st_folder), device="cpu")  # the cycle, as sentence-transformers builds it
    weights = weakref.ref(next(plain.parameters()))
    del plain
    assert weights() is not None
    gc.collect()
    assert weights() is None


def test_a_classifier_dropped_in_a_loop_takes_its_encoder_with_it(st_folder, no_automatic_collection):
    X = [f"{w} {t}" for w in ("good", "great", "bad", "awful") for t in ("film", "plot")]
    y = ["pos"] * 4 + ["neg"] * 4
    # A process's first fit may import parts of torch whose import keeps its callers' frames in a cycle, once.
    FewShotClassifier(backbone=str(st_folder), method="linear-probe").fit(X, y)
    for method in ("linear-probe", "setfit"):
        params = {"steps": 1} if method == "setfit" else {}
        clf = FewShotClassifier(backbone=str(st_folder), method=method, params=params)
        clf.fit(X, y)
        weights = weakref.ref(next(clf.model_.body.parameters()))
        del clf
        assert weights() is None, method


def test_sentence_transformers_still_writes_its_card_and_copies_the_model(st_folder, tmp_path):
    body = load_encoder(resolve_backbone(str(st_folder)))
    twin = copy.deepcopy(body)
    texts = ["a short text", "another one"]
    np.testing.assert_allclose(twin.encode(texts), body.encode(texts), atol=1e-6)
    body.save(str(tmp_path / "saved"), create_model_card=True)
    card = (tmp_path / "saved" / "README.md").read_text(encoding="utf-8")
    assert "sentence-transformers" in card and "SentenceTransformer" in card


def test_a_copy_or_a_pickle_holds_its_own_model_weakly_and_predicts_the_same(st_folder):
    import pickle

    X = [f"{w} {t}" for w in ("good", "great", "bad", "awful") for t in ("film", "plot")]
    y = ["pos"] * 4 + ["neg"] * 4
    clf = FewShotClassifier(backbone=str(st_folder), method="linear-probe").fit(X, y)
    for twin in (copy.deepcopy(clf), pickle.loads(pickle.dumps(clf))):
        body = twin.model_.body
        assert body is not clf.model_.body and body.model_card_data.model is body
        assert "model" not in vars(body.model_card_data)  # weakly, as loaded
        np.testing.assert_allclose(twin.predict_proba(X), clf.predict_proba(X), atol=1e-6)
    # A card pickled on its own goes through the cycle once; its model's copy has no other owner, so it is gone.
    card = pickle.loads(pickle.dumps(clf.model_.body.model_card_data))
    assert card.model is None and type(card).__name__ == "SentenceTransformerModelCardData"
