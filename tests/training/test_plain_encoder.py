"""A saved BERT body encoded in plain torch (training/plain_encoder.py) gives the SentenceTransformer's
embeddings bit for bit, and anything it does not run loads the real encoder."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fewtune import FewShotClassifier
from fewtune.backbones import ResolvedBackbone, load_encoder
from fewtune.training.embed_texts import encode
from fewtune.training.plain_encoder import plain_encoder
from tests.helpers import synthetic

TEXTS = ["A fine film.", "Dull and slow.", "loved it", "Ünïcödé ÀCCENTS and 中文字符 mixed", "word " * 600, "x", "",
         "  spaces  ", "emoji 😀 test", "hated it"]


def _st(folder):
    return load_encoder(ResolvedBackbone(name="t", kind="encoder", path=str(folder), source="local"), device="cpu")


@pytest.fixture(scope="module")
def saved(st_folder, tmp_path_factory):
    X, y = synthetic.make(per_class=8)
    clf = FewShotClassifier(backbone=str(st_folder), params={"steps": 4, "batch_size": 8}).fit(X, y)
    return clf, clf.save(tmp_path_factory.mktemp("plain") / "m"), X


@pytest.mark.parametrize("chunks", [False, True])
def test_same_bits_as_sentence_transformers_padded_truncated_and_in_windows(st_folder, chunks):
    plain, body = plain_encoder(st_folder), _st(st_folder)
    assert plain is not None
    for texts in (TEXTS, TEXTS[:3], ["same length", "same length"]):  # padded, and not (no mask at all)
        np.testing.assert_array_equal(plain.encode(texts, batch_size=4, chunks=chunks),
                                      encode(body, texts, batch_size=4, chunks=chunks))


def test_the_default_prompt_and_normalize_are_read_as_sentence_transformers_reads_them(st_folder, tmp_path):
    folder = tmp_path / "prompted"
    shutil.copytree(st_folder, folder)
    (folder / "config_sentence_transformers.json").write_text(json.dumps(
        {"prompts": {"query": "query: ", "document": ""}, "default_prompt_name": "query"}))
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "2_Normalize").mkdir()
    plain, body = plain_encoder(folder), _st(folder)
    assert plain.prefix == "query: " and plain.normalize
    np.testing.assert_array_equal(plain.encode(TEXTS), encode(body, TEXTS))


def test_a_loaded_setfit_model_predicts_as_fitted_without_loading_transformers_body(saved):
    clf, path, X = saved
    again = FewShotClassifier.load(path, device="cpu")
    assert again.model_._plain is not None and again.model_._body is None
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    body = again.model_.body  # anything that reads the body gets the real one, which then encodes
    assert body is not None and again.model_._plain is None
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize("change", ["cls pooling", "lower-casing", "relu", "roberta", "adapter"])
def test_a_body_it_does_not_run_is_left_to_sentence_transformers(st_folder, tmp_path, change):
    folder = tmp_path / "body"
    shutil.copytree(st_folder, folder)

    def edit(name, **values):
        path = folder / name
        path.write_text(json.dumps({**json.loads(path.read_text()), **values}))

    pooling = json.loads((folder / "modules.json").read_text())[1]["path"]
    {"cls pooling": lambda: edit(f"{pooling}/config.json", pooling_mode="cls", pooling_mode_mean_tokens=False,
                                 pooling_mode_cls_token=True),
     "lower-casing": lambda: edit("sentence_bert_config.json", do_lower_case=True),
     "relu": lambda: edit("config.json", hidden_act="relu"),
     "roberta": lambda: edit("config.json", model_type="roberta"),
     "adapter": lambda: (folder / "adapter_config.json").write_text("{}")}[change]()
    assert plain_encoder(folder) is None
