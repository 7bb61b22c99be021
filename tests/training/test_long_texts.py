"""long_texts=chunks: a text past the encoder's token limit read as overlapping windows whose embeddings
are averaged, the same in fit, predict, a reloaded model and the ONNX export; truncate unchanged.

conftest's tiny random sentence-transformers backbone, read at a 16-token limit so that a sentence is long.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fewtune import FewShotClassifier
from fewtune.data.audit import too_long
from fewtune.methods.setfit import SetFitParams
from fewtune.text_windows import MAX_WINDOWS, text_windows, window_weights
from fewtune.training.embed_texts import body_windows, embedding_dimension, encode, normalises

LIMIT = 16
CHUNKS = {"steps": 2, "batch_size": 8, "max_tokens": LIMIT, "long_texts": "chunks"}
SHORT = ["a great film", "an awful film", "meh"]
LONG = ("the acting was wonderful and the story moved me, although the middle drags a little; "
        "still, the ending is one of the best I have seen in years and I would watch it again")
POS = ["a great film", "wonderful acting", "loved every minute", LONG, "truly great", "superb"]
NEG = ["an awful film", "terrible acting", "hated every minute", "boring and dull " * 12, "truly awful", "dreadful"]
TEXTS, LABELS = POS + NEG, ["pos"] * len(POS) + ["neg"] * len(NEG)


@pytest.fixture(scope="module")
def body(st_folder):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(st_folder), device="cpu")
    model.max_seq_length = LIMIT
    return model


@pytest.fixture(scope="module")
def normalising_body(body):
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.models import Normalize
    except ImportError:  # sentence-transformers 6 moved its modules
        from sentence_transformers.sentence_transformer.modules import Normalize
    model = SentenceTransformer(modules=[*body, Normalize()], device="cpu")
    model.max_seq_length = LIMIT
    return model


@pytest.fixture(scope="module")
def chunks_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("long_texts") / "setfit-chunks"


@pytest.fixture(scope="module")
def chunks_model(st_folder, chunks_folder):
    clf = FewShotClassifier(str(st_folder), params=CHUNKS, seed=0).fit(TEXTS, LABELS)
    clf.save(chunks_folder)
    return clf


def test_truncate_is_the_default():
    assert SetFitParams().long_texts == "truncate"


def test_a_text_that_fits_reads_exactly_as_truncate_reads_it(body):
    windows, owner = body_windows(body, SHORT)
    assert windows == SHORT and list(owner) == [0, 1, 2]
    assert np.array_equal(encode(body, SHORT, chunks=True), encode(body, SHORT))


def test_windows_cover_a_long_text_within_the_limit_half_a_window_apart(body):
    windows, owner = body_windows(body, [LONG])
    assert len(windows) > 2 and set(owner) == {0}
    assert LONG.startswith(windows[0]) and LONG.endswith(windows[-1])
    for window in windows:
        assert window in LONG
        assert len(body.tokenizer(window)["input_ids"]) <= LIMIT
    # Consecutive windows overlap: each one starts inside the one before it.
    starts = [LONG.index(w) for w in windows]
    assert all(b < a + len(wa) for a, b, wa in zip(starts, starts[1:], windows))


def test_a_very_long_text_is_capped_at_max_windows(body):
    windows, _ = body_windows(body, ["word " * 2000])
    assert len(windows) == MAX_WINDOWS


@pytest.mark.parametrize("which", ["body", "normalising_body"])
def test_a_long_text_is_the_mean_of_its_windows_embeddings(which, request):
    model = request.getfixturevalue(which)
    windows, _ = body_windows(model, [LONG])
    mean = encode(model, windows).mean(axis=0)
    if normalises(model):
        mean = mean / np.linalg.norm(mean)
    got = encode(model, [SHORT[0], LONG], chunks=True)
    assert normalises(model) == (which == "normalising_body")
    np.testing.assert_allclose(got[1], mean, atol=1e-6)
    assert not np.allclose(got[1], encode(model, [LONG])[0], atol=1e-3)  # not what truncation reads


def test_window_weights_average_each_texts_windows():
    weights = window_weights(np.array([0, 1, 1, 1, 2]), 3)
    np.testing.assert_allclose(weights @ np.arange(5.0), [0.0, 2.0, 4.0])


def test_cutting_windows_leaves_the_tokenizers_settings_as_they_were(body):
    backend = body.tokenizer.backend_tokenizer
    backend.enable_truncation(LIMIT)
    before = backend.truncation
    text_windows(backend, [LONG], LIMIT)
    assert backend.truncation == before


def test_a_saved_chunks_model_reloads_with_the_same_probabilities(chunks_model, chunks_folder):
    texts = TEXTS + [LONG + " " + LONG]
    # Equal to float32 rounding: once in several runs of this file a row differed by 2e-8, as float32
    # products may round differently in differently aligned buffers.
    np.testing.assert_allclose(FewShotClassifier.load(chunks_folder).predict_proba(texts),
                               chunks_model.predict_proba(texts), rtol=0, atol=1e-6)
    assert json.loads((chunks_folder / "fewtune.json").read_text())["params"]["long_texts"] == "chunks"


def test_truncate_given_is_the_default_bit_for_bit(st_folder):
    params = {**CHUNKS}
    del params["long_texts"]
    default = FewShotClassifier(str(st_folder), params=params, seed=0).fit(TEXTS, LABELS)
    given = FewShotClassifier(str(st_folder), params={**params, "long_texts": "truncate"}, seed=0).fit(TEXTS, LABELS)
    assert np.array_equal(default.predict_proba(TEXTS), given.predict_proba(TEXTS))


@pytest.mark.parametrize("method,params", [("linear-probe", {"choose_c": False}), ("finetune", {"epochs": 1})])
def test_other_encoder_methods_read_windows(st_folder, method, params):
    chunks = FewShotClassifier(str(st_folder), method, params={**params, "max_tokens": LIMIT, "long_texts": "chunks"},
                               seed=0).fit(TEXTS, LABELS)
    body = chunks.model_.body
    emb = chunks.model_.features([LONG])
    windows, _ = body_windows(body, [LONG])
    np.testing.assert_allclose(emb[0], encode(body, windows).mean(axis=0), atol=1e-5)


def test_hybrid_reads_windows_on_its_encoder_side(st_folder, chat_llama_folder):
    params = {"lm": str(chat_llama_folder), "choose_by_cv": False, "max_tokens": LIMIT, "long_texts": "chunks"}
    model = FewShotClassifier(str(st_folder), "hybrid", params=params, seed=0).fit(TEXTS, LABELS).model_
    windows, _ = body_windows(model.body, [LONG])
    dim = embedding_dimension(model.body)
    np.testing.assert_allclose(model.features([LONG])[0, :dim], encode(model.body, windows).mean(axis=0), atol=1e-5)


def test_an_onnx_export_of_a_chunks_model_predicts_as_pytorch(chunks_model, chunks_folder):
    from fewtune.export import OnnxClassifier, export_onnx

    manifest = export_onnx(chunks_folder)
    assert manifest["long_texts"]["mode"] == "chunks" and manifest["format_version"] == 2
    runtime = OnnxClassifier.load(manifest["output"])
    texts = TEXTS + [LONG + " " + LONG, "word " * 2000]
    np.testing.assert_allclose(runtime.predict_proba(texts), chunks_model.predict_proba(texts), atol=1e-4)
    # Batches of windows, not texts: a small batch still gives every text its whole mean.
    np.testing.assert_allclose(runtime.predict_proba(texts, batch_size=3), chunks_model.predict_proba(texts),
                               atol=1e-4)
    # int8 quantises the transformer's products, never the windows' mean.
    int8 = export_onnx(chunks_folder, int8=True)
    assert int8["quantization"]["kept_in_float"][-1:] and int8["check"]["max_abs_probability_diff"] < 0.1


def test_check_data_names_the_way_to_read_long_texts_whole():
    (finding,) = too_long([3, 40], 16, ["line 2", "line 3"])
    assert "-p long_texts=chunks" in finding.message


def test_pooling_keeps_a_one_window_text_bit_for_bit():
    from fewtune.training.embed_texts import pool_windows

    emb = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    pooled = pool_windows(emb, np.array([0, 1, 1, 2]), 3, normalise=True)
    assert torch.equal(pooled[0], emb[0]) and torch.equal(pooled[2], emb[3])
    assert torch.allclose(pooled[1].norm(), torch.tensor(1.0))
