"""The HTTP API, in-process through FastAPI's TestClient: no port, no server process.

Models: conftest's tiny random encoder (a setfit folder and its ONNX export) and a tiny causal LM
fine-tuned for dialogue; the page's training runs on the tiny encoder too.
"""

from __future__ import annotations

import re
import threading
import time

import numpy as np

import pytest
from fastapi.testclient import TestClient

from fewtune import FewShotClassifier, FewShotGenerator
from fewtune.errors import FewtuneError
from fewtune.serve import TeachConfig, create_app
from fewtune.serve.teach import Busy, Teacher
from tests.serve.conftest import FAST, LABELS, LIMITS, TEXTS

@pytest.fixture(scope="module")
def client(folders, st_folder):
    teach = TeachConfig(backbone=str(st_folder), methods={"setfit": FAST, "linear-probe": {}}, keep=1)
    app = create_app({"reviews": folders / "reviews", "fast": folders / "reviews-onnx", "bot": folders / "bot"},
                     LIMITS, teach=teach)
    with TestClient(app) as c:
        yield c


def error(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"], str) and "\n" not in body["error"]
    return body["error"]


# --- health, info, docs -----------------------------------------------------------------------------
def test_health_and_info_describe_every_model(client):
    assert client.get("/health").json() == {"status": "ok", "models": 3, "training": False}
    info = client.get("/info").json()
    assert set(info["models"]) == {"reviews", "fast", "bot"}
    reviews, fast, bot = (info["models"][k] for k in ("reviews", "fast", "bot"))
    assert reviews["kind"] == "classifier" and reviews["runtime"] == "pytorch" and reviews["method"] == "setfit"
    assert reviews["classes"] == ["neg", "pos"] and reviews["trained"]["n_examples"] == 8
    assert fast["runtime"] == "onnx" and fast["classes"] == ["neg", "pos"]
    assert bot["kind"] == "generator" and bot["task"] == "generate"
    assert info["limits"]["max_texts"] == 8 and info["teach"]["methods"] == ["setfit", "linear-probe"]
    assert client.get("/info/fast").json()["runtime"] == "onnx"
    assert "nope" in error(client.get("/info/nope"), 404)


def test_openapi_documents_the_endpoints(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/predict", "/generate", "/health", "/info", "/train"} <= set(paths)
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_nothing_from_the_internet(client, page):
    # FastAPI's own pages pull Swagger UI / ReDoc from a CDN and show a blank page offline.
    html = client.get(page).text
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    scripts = [a for a in re.findall(r'src="([^"]+)"', html) if a.endswith(".js")]
    assert scripts
    for url in scripts:
        response = client.get(url)
        assert response.status_code == 200 and len(response.content) > 100_000, url  # the real bundle


# --- predict ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["reviews", "fast"])
def test_predict_returns_what_the_python_api_returns(client, folders, name):
    texts = ["what a great film", "so boring", "meh"]
    want = FewShotClassifier.load(folders / "reviews").predict_proba(texts)
    body = client.post("/predict", json={"model": name, "texts": texts}).json()
    assert body["model"] == name and body["classes"] == ["neg", "pos"]
    for row, p in zip(body["predictions"], want):
        assert [row["probabilities"]["neg"], row["probabilities"]["pos"]] == pytest.approx(p, abs=1e-4)
        assert row["label"] == ["neg", "pos"][int(np.argmax(p))] and row["abstained"] is False
        assert row["probability"] == pytest.approx(p.max(), abs=1e-4)


def test_abstain_below_answers_the_abstain_label(client):
    body = client.post("/predict", json={"model": "reviews", "texts": ["a great film", "meh"], "abstain_below": 0.999,
                                         "abstain_label": "not sure"}).json()
    assert [r["label"] for r in body["predictions"]] == ["not sure", "not sure"]
    assert all(r["abstained"] and r["probability"] < 0.999 for r in body["predictions"])
    kept = client.post("/predict", json={"model": "reviews", "texts": ["meh"], "abstain_below": 0.0}).json()
    assert kept["predictions"][0]["label"] in ("neg", "pos")


# --- refusals: 4xx with one line, never a 500 -------------------------------------------------------
@pytest.mark.parametrize("request_kwargs,status,fragment", [
    ({"json": {"model": "reviews", "texts": ["x"] * 9}}, 413, "9 in one request; the limit is 8"),
    ({"json": {"model": "reviews", "texts": ["ok", "y" * 201]}}, 413, "texts[1]: 201 characters; the limit is 200"),
    ({"content": b'{"texts": ["' + b"z" * 30_000 + b'"]}', "headers": {"content-type": "application/json"}},
     413, "the limit is 20000"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "JSON"),
    ({"json": {"model": "reviews"}}, 422, "texts: Field required"),
    ({"json": {"model": "reviews", "texts": []}}, 422, "texts"),
    ({"json": {"model": "reviews", "texts": "not a list"}}, 422, "texts"),
    ({"json": {"model": "reviews", "texts": ["ok", "  "]}}, 400, "empty text"),
    ({"json": {"model": "reviews", "texts": ["ok"], "abstain_below": 2}}, 422, "abstain_below"),
    ({"json": {"model": "../../etc/passwd", "texts": ["ok"]}}, 404, "no model named"),
    ({"json": {"model": "bot", "texts": ["ok"]}}, 400, "use /generate"),
    ({"json": {"texts": ["ok"]}}, 400, "name a model: reviews, fast"),
    ({"json": {"model": "reviews", "texts": ["a", "b"], "text_pairs": ["c"]}}, 422, "2 texts but 1 text_pairs"),
    ({"json": {"model": "reviews", "texts": ["a"], "text_pairs": ["c"]}}, 400, "trained on single texts"),
], ids=["batch", "text-length", "body-size", "bad-json", "no-texts", "empty-list", "wrong-type", "empty-text",
        "bad-threshold", "unknown-model", "wrong-kind", "ambiguous", "pair-count", "pairs-to-single"])
def test_bad_predict_requests_get_a_4xx_with_a_message(client, request_kwargs, status, fragment):
    assert fragment in error(client.post("/predict", **request_kwargs), status)


def test_a_chunked_body_over_the_limit_is_refused_too(client):
    def chunks():
        for _ in range(30):
            yield b"x" * 1000

    assert "limit is 20000" in error(client.post("/predict", content=chunks(),
                                                 headers={"content-type": "application/json"}), 413)


def test_unknown_routes_and_methods_answer_json(client):
    assert error(client.get("/nothing-here"), 404)
    assert error(client.get("/predict"), 405)


# --- generate ---------------------------------------------------------------------------------------
def test_generate_replies_from_a_dialogue_model(client, folders):
    want = FewShotGenerator.load(folders / "bot").generate("hello how are you", max_new_tokens=8,
                                                            repetition_penalty=1.1)
    body = client.post("/generate", json={"model": "bot", "prompt": "hello how are you", "max_new_tokens": 8}).json()
    assert body == {"model": "bot", "response": want}
    chat = [{"role": "user", "content": "hello how are you"}, {"role": "assistant", "content": "fine"},
            {"role": "user", "content": "do you like movies"}]
    assert isinstance(client.post("/generate", json={"messages": chat, "max_new_tokens": 4}).json()["response"], str)


@pytest.mark.parametrize("payload,status,fragment", [
    ({"model": "bot", "prompt": "hi", "max_new_tokens": 17}, 413, "the limit is 16"),
    ({"model": "bot", "prompt": "h" * 201}, 413, "prompt: 201 characters"),
    ({"model": "bot", "messages": [{"role": "user", "content": "h" * 201}]}, 413, "messages[0]: 201 characters"),
    ({"model": "bot"}, 422, "exactly one of prompt or messages"),
    ({"model": "bot", "prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}, 422, "exactly one"),
    ({"model": "bot", "messages": [{"role": "wizard", "content": "hi"}]}, 422, "role"),
    ({"model": "bot", "prompt": "hi", "temperature": -1}, 422, "temperature"),
    ({"model": "reviews", "prompt": "hi"}, 400, "use /predict"),
])
def test_bad_generate_requests_get_a_4xx_with_a_message(client, payload, status, fragment):
    assert fragment in error(client.post("/generate", json=payload), status)


# --- teach: train from examples in the background, then serve the result ----------------------------
def wait_for(client, job: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get(f"/train/{job}").json()
        if state["status"] in ("done", "failed"):
            return state
        assert 0 <= state["fraction"] <= 1
        time.sleep(0.05)
    raise AssertionError(f"training job {job} still running after {timeout} s")


def test_training_from_examples_serves_a_new_model(client):
    started = client.post("/train", json={"texts": TEXTS, "labels": LABELS, "method": "setfit"})
    assert started.status_code == 202 and started.json()["status"] in ("queued", "running")
    state = wait_for(client, started.json()["job"])
    assert state["status"] == "done", state
    assert state["fraction"] == 1.0 and state["n_examples"] == 8
    name = state["model"]
    assert client.get(f"/info/{name}").json()["trained"]["n_examples"] == 8
    body = client.post("/predict", json={"model": name, "texts": ["a great film"]}).json()
    assert body["predictions"][0]["label"] in ("neg", "pos")
    # keep=1: the next taught model replaces this one; the operator's models stay.
    second = wait_for(client, client.post("/train", json={"texts": TEXTS, "labels": LABELS,
                                                          "method": "linear-probe"}).json()["job"])
    models = client.get("/info").json()["models"]
    assert second["model"] in models and name not in models and "reviews" in models


@pytest.mark.parametrize("payload,status,fragment", [
    ({"texts": TEXTS, "labels": ["pos"] * 8}, 400, "class"),
    ({"texts": TEXTS, "labels": LABELS, "method": "finetune"}, 400, "not offered here"),
    ({"texts": TEXTS * 3, "labels": LABELS * 3}, 413, "the limit is 20"),
    ({"texts": TEXTS, "labels": LABELS[:7]}, 422, "8 texts but 7 labels"),
    ({"texts": ["ok", "x" * 201], "labels": ["a", "b"]}, 413, "201 characters"),
])
def test_bad_training_requests_are_refused_before_training(client, payload, status, fragment):
    assert fragment in error(client.post("/train", json=payload), status)
    assert error(client.get("/train/nope"), 404)


def test_one_training_at_a_time(st_folder):
    release = threading.Event()
    trained = []

    def on_trained(name, clf):
        trained.append(name)
        release.wait(30)  # hold the first job in its running state

    teacher = Teacher(TeachConfig(backbone=str(st_folder), methods={"setfit": FAST}), on_trained, lambda name: None)
    first = teacher.start(TEXTS, LABELS, None)
    with pytest.raises(Busy, match="already training"):
        teacher.start(TEXTS, LABELS, None)
    release.set()
    deadline = time.monotonic() + 60
    while first.status not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.status == "done" and trained == ["taught-1"]
    assert first.stage == "done" and first.seconds > 0


def test_training_can_be_turned_off(folders):
    with TestClient(create_app({"reviews": folders / "reviews"}, teach=False)) as c:
        assert "turned off" in error(c.post("/train", json={"texts": TEXTS, "labels": LABELS}), 403)
        assert c.get("/info").json()["teach"] is None


# --- the page ---------------------------------------------------------------------------------------
def test_the_page_is_served_from_the_package_alone(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    js = client.get("/page/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert client.get("/page/style.css").status_code == 200
    for text in (page.text, js.text, client.get("/page/style.css").text):
        assert "http://" not in text and "https://" not in text  # no CDN: everything is local
    assert error(client.get("/page/index.html.bak"), 404)
    assert client.get("/page/..%2Fapp.py").status_code == 404


def test_bad_model_names_and_folders_are_refused_at_startup(folders, tmp_path):
    with pytest.raises(FewtuneError, match="model name"):
        create_app({"a/b": folders / "reviews"})
    with pytest.raises(FewtuneError, match="no such model folder"):
        create_app({"x": tmp_path / "missing"})


def test_serve_command_refuses_nothing_to_serve_and_clashing_names(folders, capfd):
    from fewtune.cli import main

    assert main(["serve", "--no-teach"]) == 2
    assert "nothing to serve" in capfd.readouterr().err
    assert main(["serve", str(folders / "reviews"), f"reviews={folders / 'reviews-onnx'}"]) == 2
    assert "two models named 'reviews'" in capfd.readouterr().err


def test_serve_bounds_connections_and_idle_time(folders, monkeypatch):
    import uvicorn

    from fewtune.cli import main

    seen = {}

    def run(server, sockets=None):  # the command binds the sockets itself and hands them to uvicorn.Server
        seen.update(vars(server.config), sockets=[s.getsockname() for s in sockets])
        server.started = True

    monkeypatch.setattr(uvicorn.Server, "run", run)
    assert main(["serve", str(folders / "reviews"), "--no-teach", "--port", "0"]) == 0
    assert seen["host"] == "127.0.0.1" and seen["sockets"][0][0] == "127.0.0.1"  # this machine only unless told
    assert seen["limit_concurrency"] <= 64 and seen["timeout_keep_alive"] <= 5
    assert seen["h11_max_incomplete_event_size"] <= 64 * 1024  # a request line or headers cannot grow forever


def test_the_openapi_schema_types_every_answer_and_declares_the_refusals(client):
    schema = client.get("/openapi.json").json()
    routes = {("/health", "get"): "200", ("/info", "get"): "200", ("/info/{name}", "get"): "200",
              ("/predict", "post"): "200", ("/generate", "post"): "200", ("/train", "post"): "202",
              ("/train/{job}", "get"): "200"}
    for (path, method), ok in routes.items():
        operation = schema["paths"][path][method]
        assert operation["tags"], path
        assert operation["responses"][ok]["content"]["application/json"]["schema"]["$ref"].startswith(
            "#/components/schemas/"), path
    refusals = schema["paths"]["/predict"]["post"]["responses"]
    for status in ("400", "404", "413", "422"):
        assert refusals[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert {"Predictions", "Prediction", "Generated", "Job", "Info", "Health"} <= set(schema["components"]["schemas"])
