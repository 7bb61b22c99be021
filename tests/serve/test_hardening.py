"""The server under hostile and sustained input: fuzzed request bodies get a 4xx with a message (never
a 500), no request reaches the file system, and a soak of many requests leaves memory flat."""

from __future__ import annotations

import gc
import json
import tracemalloc
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fewtune.serve import create_app

from tests.serve.conftest import LIMITS

ANSWERS = {200, 400, 403, 404, 405, 409, 413, 415, 422}  # never a 5xx
json_value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300),
                          lambda inner: st.lists(inner, max_size=12) | st.dictionaries(st.text(max_size=12), inner,
                                                                                       max_size=5),
                          max_leaves=30)
fields = st.fixed_dictionaries({}, optional={"texts": json_value | st.lists(st.text(max_size=300), max_size=12),
                                             "model": json_value | st.sampled_from(["reviews", "fast", "nope"]),
                                             "abstain_below": json_value, "text_pairs": json_value})


# Any code point, lone surrogates included: JSON's "\ud800" escapes decode to them, and no tokenizer can
# encode one.
any_text = st.text(alphabet=st.characters(blacklist_categories=()), max_size=60)
bodies = st.fixed_dictionaries({}, optional={
    "texts": st.lists(any_text, max_size=6), "text_pairs": st.lists(any_text, max_size=6),
    "labels": st.lists(any_text, max_size=6), "prompt": any_text,
    "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "x"]),
                                                "content": any_text}), max_size=3),
    "model": st.sampled_from(["reviews", "fast", "bot", "nope"]) | any_text, "method": any_text,
    "abstain_label": any_text, "max_new_tokens": st.integers(-2, 20)})


@pytest.fixture(scope="module")
def client(folders):  # noqa: F811
    app = create_app({"reviews": folders / "reviews", "fast": folders / "reviews-onnx", "bot": folders / "bot"},
                     LIMITS, teach=False)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def check_answer(response) -> None:
    assert response.status_code in ANSWERS, (response.status_code, response.text[:300])
    if response.status_code != 200:
        message = response.json()["error"]
        assert isinstance(message, str) and message and "\n" not in message and "Traceback" not in message


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=fields | json_value)
def test_any_json_body_gets_an_answer_or_a_4xx_with_a_message(client, body):
    # json.dumps writes NaN / Infinity as a careless client would; the server must refuse them cleanly too.
    check_answer(client.post("/predict", content=json.dumps(body), headers={"content-type": "application/json"}))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=2000), path=st.sampled_from(["/predict", "/generate", "/train"]))
def test_arbitrary_bytes_get_a_4xx_with_a_message(client, raw, path):
    check_answer(client.post(path, content=raw, headers={"content-type": "application/json"}))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, path=st.sampled_from(["/predict", "/generate", "/train"]))
def test_every_endpoint_answers_any_text_with_json_and_never_a_5xx(client, body, path):
    check_answer(client.post(path, content=json.dumps(body), headers={"content-type": "application/json"}))


@pytest.mark.parametrize("path, body", [("/predict", {"texts": ["\ud800"]}),
                                        ("/predict", {"texts": ["fine", "a \udfff b"]}),
                                        ("/generate", {"model": "bot", "prompt": "hi \ud83d"}),
                                        ("/train", {"texts": ["a", "\ud800"], "labels": ["x", "y"]})])
def test_a_lone_surrogate_is_a_422_that_says_so(client, path, body):
    response = client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == 422 and "lone surrogate" in response.json()["error"]


def test_a_bug_is_a_json_500_not_a_plain_text_one(folders, monkeypatch):
    app = create_app({"reviews": folders / "reviews"}, LIMITS, teach=False)
    served = app.state.registry["reviews"]
    monkeypatch.setattr(served.model, "predict_proba", lambda texts: 1 / 0)
    with TestClient(app, raise_server_exceptions=False) as c:
        response = c.post("/predict", json={"texts": ["a"]})
    assert response.status_code == 500 and "ZeroDivisionError" in response.json()["error"]


@pytest.mark.parametrize("name", ["../reviews", "/etc/passwd", "reviews/../../x", "..", "~", "C:\\\\x", "%2e%2e"])
def test_model_names_never_reach_the_file_system(client, name, monkeypatch, tmp_path):
    import builtins
    import pathlib

    opened = []
    real_open, real_exists = builtins.open, pathlib.Path.exists
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k))
    monkeypatch.setattr(pathlib.Path, "exists", lambda self: opened.append(str(self)) or real_exists(self))
    response = client.post("/predict", json={"texts": ["a great film"], "model": name})
    assert response.status_code == 404 and "reviews" in response.json()["error"]  # names the models there are
    assert not [f for f in opened if name.strip("%.~/\\") and name.strip("%.~/\\") in f], opened


def test_a_soak_of_requests_keeps_memory_flat_and_fails_none(client):
    payload = {"texts": ["a great film", "an awful film", "loved it"], "model": "reviews"}
    for _ in range(30):  # warm-up: caches, tokenizer buffers, allocator pools
        assert client.post("/predict", json=payload).status_code == 200
    gc.collect()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        statuses = [client.post("/predict", json={**payload, "model": ("reviews", "fast")[i % 2]}).status_code
                    for i in range(300)]
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert statuses == [200] * 300
    assert end - start < 2_000_000, f"memory grew by {(end - start) / 1e6:.1f} MB over 300 requests"
    assert json.loads(client.get("/health").text)["status"] == "ok"


# --- bodies json.loads cannot read: a 422 that names the problem, never FastAPI's bare 400 -------------------
@pytest.fixture(scope="module")
def bare_client():
    """No model needed: the body is parsed before any handler runs. The default limits (a 4 MB body)."""
    with TestClient(create_app({}, teach=False), raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("body, fragments", [
    (b'{"texts": ["caf\xe9 au lait"]}', ["not valid UTF-8", "byte 15"]),  # Latin-1, not UTF-8
    (b'{"texts": ["a"]}\xff', ["not valid UTF-8"]),
    (b'{"texts": ["a"], "abstain_below": ' + b"7" * 5000 + b"}", ["more than 4300 digits"]),
    (b"[" * 100_000 + b"]" * 100_000, ["nests too deeply", "levels"]),
    (b'{"texts": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001, ["nests too deeply"]),
    (b'{"texts": [1,', ["not valid JSON", "character"]),
])
@pytest.mark.parametrize("path", ["/predict", "/generate", "/train"])
def test_a_body_that_is_not_json_is_a_422_that_names_the_problem(bare_client, path, body, fragments):
    response = bare_client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, (response.status_code, response.text[:300])
    check_answer(response)
    for fragment in fragments:
        assert fragment in response.json()["error"], response.json()["error"]


@pytest.mark.parametrize("body, content_type", [
    (b"", "application/json"),
    (b'["a", "b"]', "application/json"),
    (b'{"texts": ["a"]}', "text/plain"),
    (b'{"texts": ["a"]}', None),
])
def test_a_body_that_is_not_a_json_object_says_what_to_send(bare_client, body, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = bare_client.post("/predict", content=body, headers=headers)
    assert response.status_code == 422, (response.status_code, response.text[:300])
    check_answer(response)
    error = response.json()["error"]
    assert "must be a JSON object" in error and "Content-Type: application/json" in error, error


# --- a static student given a text none of whose tokens it knows ------------------------------------------------
def static_classifier(class_counts=None):
    """A two-word static student built in memory: "great" reads pos, "awful" neg; its bias alone says pos
    at 0.82, which is what a text of unknown tokens (zeros after the lookup) used to get."""
    import numpy as np
    from model2vec import StaticModel
    from tokenizers import Tokenizer, models, pre_tokenizers

    from fewtune.export.static import StaticClassifier

    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "great": 1, "awful": 2, "film": 3}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    table = StaticModel(np.array([[0, 0], [1, 0], [-1, 0], [0, 1]], dtype=np.float32), tokenizer)
    manifest = {"classes": ["neg", "pos"], "training": {"class_counts": class_counts or {"neg": 1, "pos": 1}}}
    return StaticClassifier(Path("static"), manifest, table, np.array([[-3.0, 0.0], [3.0, 0.0]]),
                            np.array([-0.75, 0.75]))


def test_a_text_a_static_student_cannot_read_is_marked_not_labeled_confidently():
    from fewtune.serve.loaded_models import CLASSIFIER, Served

    served = Served("static", CLASSIFIER, "static", static_classifier(), {"kind": CLASSIFIER, "runtime": "static"})
    with TestClient(create_app({"static": served}, teach=False)) as c:
        body = c.post("/predict", json={"texts": ["a great film", "🔥🔥🔥", "😀"]}).json()
        abstaining = c.post("/predict", json={"texts": ["🔥🔥🔥"], "abstain_below": 0.6}).json()
    known, *unknown = body["predictions"]
    assert known["label"] == "pos" and known["probability"] > 0.9
    assert "unknown_text" not in known and "warning" not in known  # the schema is unchanged for a readable text
    for row in unknown:
        assert row["unknown_text"] is True and "class prior" in row["warning"]
        assert row["probabilities"] == {"neg": 0.5, "pos": 0.5}  # the training mix, not the bias's 0.82
    assert abstaining["predictions"][0]["abstained"] is True and abstaining["predictions"][0]["unknown_text"] is True


def test_a_static_student_gives_an_unreadable_text_the_class_prior_and_warns():
    import warnings

    import numpy as np

    from fewtune.data import DataWarning

    clf = static_classifier({"neg": 3, "pos": 1})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        proba = clf.predict_proba(["great film", "🔥🔥"])
    assert proba[1] == pytest.approx([0.75, 0.25]) and proba[0][1] > 0.9
    assert [w.category for w in caught] == [DataWarning] and "class prior" in str(caught[0].message)
    clf.set_class_prior("neg=1,pos=4")  # the mix the texts will have: what an unreadable text gets then
    proba, unknown = clf.predict_proba_flagged(["🔥", "great"])
    assert proba[0] == pytest.approx([0.2, 0.8]) and unknown.tolist() == [True, False]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not clf.predict_proba_flagged(["awful film"])[1].any()
        clf.predict_proba(["awful film"])  # no warning for texts it can read
    assert np.allclose(clf.predict_proba(["great"]).sum(axis=1), 1)


def test_fewtune_predict_on_a_static_student_warns_once_about_unreadable_texts(tmp_path, capfd):
    from fewtune.export.static import write_static_classifier

    from tests.helpers.cli import run_cli

    clf = static_classifier({"neg": 3, "pos": 1})
    clf.table_.save_pretrained(str(tmp_path / "table"))
    write_static_classifier(tmp_path / "model", tmp_path / "table", clf.weight_, clf.bias_,
                            {"classes": ["neg", "pos"], "training": clf.train_info_}, lambda manifest: "# a student\n")
    result = run_cli(capfd, "predict", tmp_path / "model", "-", stdin="great film\n🔥🔥\n😀\n".encode())
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[2].startswith("🔥🔥,neg,0.75,0.75,0.25") and lines[3].startswith("😀,neg,0.75,")
    assert len([line for line in result.err_lines if line.startswith("warning:")]) == 1, result.err
    assert "class prior" in result.err


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_threshold_is_refused_not_read_as_one_or_zero(bare_client, value):
    response = bare_client.post("/predict", json={"texts": ["a"], "abstain_below": value})
    assert response.status_code == 422 and "not true or false" in response.json()["error"], response.text
