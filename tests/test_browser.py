"""The page of `attnkit serve` in a real headless Chromium (Debian's, driven by Playwright): type a
sentence, get the translation, and find the attention heatmap with one row per target token and one
column per source token; click through maps, layers and heads.

Skipped when Chromium is absent, except under ATTNKIT_REQUIRE_BROWSER=1 (set by .ci/run), where a
missing browser is a failure: CI cannot silently skip this test."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("ATTNKIT_CHROMIUM", "/usr/bin/chromium"))
REQUIRED = os.environ.get("ATTNKIT_REQUIRE_BROWSER") == "1"


def browser_missing() -> str | None:
    if not CHROMIUM.is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set ATTNKIT_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser():
    missing = browser_missing()
    if missing:
        if REQUIRED:
            pytest.fail(f"ATTNKIT_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


def serving(run: Path):
    """`attnkit serve`'s app for ``run`` under uvicorn, in a thread, on a free port of 127.0.0.1."""
    import uvicorn

    from attnkit.server import make_app
    from attnkit.tasks import load_inspector

    app = make_app(load_inspector(run), run.parent.name)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def server(tiny_runs):
    yield from serving(tiny_runs["transformer"])


def heatmap_size(page) -> tuple[int, int]:
    return page.locator("table.heatmap tbody tr").count(), page.locator("table.heatmap thead th.col").count()


def test_type_a_sentence_and_click_through_the_attention(browser, server):
    page = browser.new_page()
    page.goto(server)
    page.wait_for_selector("#submit:not([disabled])")
    assert "translation model (transformer)" in page.inner_text("#model-info")
    page.fill("#text", "ab cd ef gh")
    page.fill("#opt-beam", "2")
    page.fill("#opt-nbest", "2")
    page.click("#submit")
    page.wait_for_selector("#nbest li")
    assert page.locator("#nbest li").count() == 2
    best = page.locator("#nbest li .hyp").first.inner_text().split()

    # the encoder-decoder attention is shown first: a row per target token (and </s>), a column per
    # source token (and </s>), each labelled with its token
    page.wait_for_selector("table.heatmap")
    assert "encoder-decoder attention, layer 1, head 1" in page.inner_text("#view-title")
    assert heatmap_size(page) == (len(best) + 1, 5)
    assert page.locator("table.heatmap thead th.col").all_inner_texts() == ["ab", "cd", "ef", "gh", "</s>"]
    assert page.locator("table.heatmap tbody th.row").all_inner_texts() == best + ["</s>"]
    weights = [float(w) for w in page.locator("table.heatmap tbody tr").first.locator("td").evaluate_all(
        "cells => cells.map(c => c.dataset.weight)")]
    assert sum(weights) == pytest.approx(1.0, abs=1e-3)

    # the search, step by step: each step's candidates, the two hypotheses that finished among them
    assert page.locator("#steps li").count() >= 2
    assert page.locator("#steps .cand.finished").count() >= 2 and page.locator("#steps .cand.kept").count() >= 2
    assert "log P" in page.locator("#steps .cand.finished").first.get_attribute("title")
    # and the course page of each view, served from docs/course
    link = page.locator("#search-link a")
    assert link.get_attribute("href") == "/course/10-training-decoding.md"
    assert page.locator("#view-title a").get_attribute("href") == "/course/03-attention.md"
    course = browser.new_page()
    course.goto(server + link.get_attribute("href"))
    assert "decoding" in course.inner_text("h1").lower() and course.locator("img").count() >= 3
    for img in course.locator("img").all():  # every picture of the page is served
        assert course.evaluate("(img) => img.complete && img.naturalWidth > 0", img.element_handle())
    course.close()

    # the encoder's self-attention, layer 2, head 2: source x source
    page.get_by_role("button", name="encoder self-attention").click()
    page.locator("#layers button", has_text="2").click()
    page.locator("#heads button", has_text="2").click()
    assert "encoder self-attention, layer 2, head 2" in page.inner_text("#view-title")
    assert heatmap_size(page) == (5, 5)

    # the decoder's masked self-attention, the mean of the heads: predicted tokens x decoder inputs
    page.get_by_role("button", name="decoder self-attention (masked)").click()
    page.locator("#heads button", has_text="mean").click()
    assert "mean of the heads" in page.inner_text("#view-title")
    assert heatmap_size(page) == (len(best) + 1, len(best) + 1)
    first_row = page.locator("table.heatmap tbody tr").first.locator("td").evaluate_all(
        "cells => cells.map(c => Number(c.dataset.weight))")
    assert first_row[0] == pytest.approx(1.0) and all(w == 0 for w in first_row[1:])  # the causal mask
    page.close()


def test_an_error_is_shown_and_the_page_keeps_working(browser, server):
    page = browser.new_page()
    page.goto(server)
    page.wait_for_selector("#submit:not([disabled])")
    page.fill("#text", "ab " * 200)  # more tokens than the server takes
    page.click("#submit")
    page.wait_for_selector("#status.error")
    assert "over the limit" in page.inner_text("#status")
    page.fill("#text", "cd ef")
    page.click("#submit")
    page.wait_for_selector("#nbest li")
    assert heatmap_size(page)[1] == 3
    assert "error" not in (page.get_attribute("#status", "class") or "")
    page.close()


def test_upload_an_image_and_see_where_each_caption_word_looked(browser, tiny_runs, tmp_path):
    from PIL import Image

    Image.new("L", (30, 30), 255).save(tmp_path / "scene.png")
    for url in serving(tiny_runs["captioner"]):
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#submit:not([disabled])")
        assert page.inner_text("#submit") == "Caption" and page.is_hidden("#text")
        page.set_input_files("#image", str(tmp_path / "scene.png"))
        page.click("#submit")
        page.wait_for_selector("#caption")
        words = page.inner_text("#caption").split()
        page.wait_for_selector(".image-views canvas")
        assert page.locator(".image-views figcaption").all_inner_texts() == words + ["</s>"]
        assert "attention over the image" in page.inner_text("#view-title")
        page.close()


def test_the_api_docs_render_with_no_network_but_the_server(browser, server):
    """/docs draws its page from assets the server itself serves: with every other host unreachable
    (as offline), the operations of the API still show, and nothing was asked of another host."""
    page = browser.new_page()
    elsewhere: list[str] = []

    def only_the_server(route):
        if route.request.url.startswith(server):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_server)
    page.goto(f"{server}/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=15000)
    assert "/api/inspect" in page.inner_text(".swagger-ui")
    page.wait_for_load_state("networkidle")
    assert not elsewhere, elsewhere
    page.close()
