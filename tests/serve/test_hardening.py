"""The server under hostile and sustained input: fuzzed request bodies get a 4xx with a message (never
a 500), no request reaches the file system, and a soak of many requests leaves memory flat."""

from __future__ import annotations

import gc
import json
import tracemalloc

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
