"""The page end to end in headless Chromium: classify a text, label examples, train, use the new model.

Debian's Chromium (/usr/bin/chromium, installed by scripts/bootstrap.sh where apt is available)
driven by Playwright; Playwright's own browser download is never used. The server is uvicorn in a
thread on a free loopback port; the models are conftest's tiny random encoder.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import pytest

from fewtune import FewShotClassifier
from fewtune.serve import TeachConfig, create_app
from tests.helpers.fast import FAST_SETFIT as FAST

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying to reach Google's hosts, which a
# machine with no network refuses many times a second.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
EXAMPLES = [("a great film", "pos"), ("wonderful acting", "pos"), ("loved every minute", "pos"),
            ("an awful film", "neg"), ("terrible acting", "neg"), ("hated every minute", "neg")]

pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian's chromium is not installed at /usr/bin/"
                                "chromium (scripts/bootstrap.sh installs it as root with apt-get)")


@pytest.fixture(scope="module")
def server(st_folder, tmp_path_factory):
    import uvicorn

    folder = tmp_path_factory.mktemp("browser") / "reviews"
    texts, labels = zip(*EXAMPLES)
    FewShotClassifier(str(st_folder), params=FAST).fit(list(texts), list(labels)).save(folder)
    app = create_app({"reviews": folder}, teach=TeachConfig(backbone=str(st_folder), methods={"setfit": FAST}))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # a free port, chosen by the system
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (a test dependency) is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield browser
        browser.close()


def test_try_then_teach_then_use_the_new_model(server, browser, tmp_path):
    from playwright.sync_api import expect

    page = browser.new_page()
    problems, elsewhere = [], []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith(server) else None)
    page.set_default_timeout(30_000)
    page.goto(server + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "1")
    expect(page.locator("#model")).to_have_value("reviews")

    # Try: type a text, see a label and one confidence bar per class.
    page.fill("#text", "what a great film")
    page.click("#predict")
    expect(page.locator("#result .label")).to_have_text(re.compile(r"^(pos|neg) \(\d+\.\d%\)$"))
    expect(page.locator("#result .bar")).to_have_count(2)

    # Teach: label examples, train in the background, watch the progress bar finish.
    for text, label in EXAMPLES:
        page.fill("#ex-text", text)
        page.fill("#ex-label", label)
        page.click("#add-example")
    expect(page.locator("#examples tbody tr")).to_have_count(len(EXAMPLES))
    page.locator("#examples tbody tr").nth(0).locator("button").click()  # remove one again
    expect(page.locator("#examples tbody tr")).to_have_count(len(EXAMPLES) - 1)
    expect(page.locator("#train")).to_be_enabled()
    page.click("#train")
    expect(page.locator("#train-progress")).to_be_visible()
    expect(page.locator("#train-status")).to_contain_text("is ready", timeout=120_000)
    assert page.eval_on_selector("#train-progress", "p => p.value") == 1

    # Use it: the new model is selected; classify with it.
    expect(page.locator("#model")).to_have_value("taught-1")
    expect(page.locator("#model-facts")).to_contain_text("trained on 5 examples")
    page.fill("#text", "hated it, awful")
    page.click("#predict")
    expect(page.locator("#result .label")).to_have_text(re.compile(r"^(pos|neg) \(\d+\.\d%\)$"))
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert problems == [] and elsewhere == []


def test_the_api_docs_render_offline(server, browser):
    # Swagger UI draws one block per operation from /openapi.json; a blank page (its script from a
    # CDN that cannot be reached) has none.
    page = browser.new_page()
    failed = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(server + "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    paths = set(page.locator(".opblock-summary-path").all_inner_texts())
    assert {"/predict", "/generate", "/health", "/train"} <= {p.strip() for p in paths}
    assert not failed, failed
    page.close()
