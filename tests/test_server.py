"""The JSON API of `attnkit serve` (FastAPI's TestClient, no network): every bad request is a 4xx
with a one-line message, and the next good request still succeeds."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from attnkit.server import MAX_BODY_BYTES, MAX_CHARS, MAX_TOKENS, make_app
from attnkit.tasks import load_inspector


@pytest.fixture(scope="module")
def client(tiny_runs) -> TestClient:
    return TestClient(make_app(load_inspector(tiny_runs["transformer"]), "tiny"))


def good(client: TestClient) -> dict:
    response = client.post("/api/inspect", json={"text": "ab cd ef", "beam": 2, "nbest": 2})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_good_request_gives_the_output_and_every_attention_map(client):
    answer = good(client)
    assert answer["task"] == "translation" and answer["tokens"] == ["ab", "cd", "ef", "</s>"]
    assert len(answer["result"]["nbest"]) == 2
    best = answer["result"]["nbest"][0]["text"].split()
    maps = {m["name"]: m for m in answer["attention"]}
    assert set(maps) == {"encoder", "self", "cross"}
    cross = maps["cross"]
    assert (cross["layers"], cross["heads"]) == (2, 2)
    assert cross["rows"] == best + ["</s>"] and cross["cols"] == answer["tokens"]
    weights = cross["weights"]  # (layers, heads, rows, cols)
    assert [len(weights), len(weights[0]), len(weights[0][0]), len(weights[0][0][0])] == [2, 2, len(best) + 1, 4]
    assert all(abs(sum(row) - 1) < 1e-3 for layer in weights for head in layer for row in head)


def test_the_model_and_the_page_and_the_openapi_document(client):
    info = client.get("/api/model").json()
    assert info["task"] == "translation" and info["arch"] == "transformer" and info["options"] == ["beam", "nbest"]
    assert info["limits"]["max_chars"] == MAX_CHARS
    page = client.get("/")
    assert page.status_code == 200 and "attnkit" in page.text and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/api/inspect" in spec["paths"] and "InspectRequest" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"text": ""}, 422, "text: String should have at least 1 character"),
    ({"text": "   "}, 422, "the input is empty"),
    ({"text": "ab " * (MAX_CHARS // 3 + 1)}, 422, f"text: String should have at most {MAX_CHARS} characters"),
    ({"text": "ab " * (MAX_TOKENS + 1)}, 422, f"over the limit of {MAX_TOKENS}"),
    ({"text": 5}, 422, "text: Input should be a valid string"),
    ({"text": "ab", "beam": "5"}, 422, "beam: Input should be a valid integer"),
    ({"text": "ab", "beam": 0}, 422, "beam: Input should be greater than or equal to 1"),
    ({"text": "ab", "temperature": 1.0}, 422, "temperature: a translation model takes no such option"),
    ({"text": "ab", "model": "other"}, 422, "model: unknown field"),
    ({}, 422, "text: Field required"),
    ([1, 2], 422, "Input should be a valid dictionary"),
], ids=["empty", "blank", "too-many-chars", "too-many-tokens", "text-not-string", "beam-not-int", "beam-zero",
        "option-of-another-task", "unknown-field", "missing-text", "not-an-object"])
def test_bad_json_gets_a_4xx_with_a_message_and_the_server_keeps_serving(client, body, status, message):
    response = client.post("/api/inspect", json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"], response.json()
    good(client)


@pytest.mark.parametrize(("content", "status", "message"), [
    (b'{"text": "ab \xff cd"}', 400, "not valid UTF-8 (byte 0xff at offset 13)"),
    (b'{"text": "ab', 422, "not valid JSON"),
    (b'{"text": "' + b"a" * MAX_BODY_BYTES + b'"}', 413, f"over the limit of {MAX_BODY_BYTES} bytes"),
], ids=["invalid-utf8", "broken-json", "body-too-large"])
def test_bad_bodies_get_a_4xx_with_a_message_and_the_server_keeps_serving(client, content, status, message):
    response = client.post("/api/inspect", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    good(client)


def test_a_body_over_the_limit_without_a_length_is_refused_while_streaming(client):
    chunks = iter([b'{"text": "', b"a" * MAX_BODY_BYTES, b'"}'])  # sent chunked: no Content-Length
    response = client.post("/api/inspect", content=chunks, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "over the limit" in response.json()["error"]
    good(client)


def test_unknown_paths_and_methods_answer_json_errors(client):
    assert client.get("/api/nothing").json() == {"error": "Not Found"}
    response = client.get("/api/inspect")
    assert response.status_code == 405 and response.json() == {"error": "Method Not Allowed"}


@pytest.mark.parametrize(("run", "kind", "names"), [
    ("tagger", "tagging", {"encoder"}),
    ("transformer_classifier", "classification", {"encoder", "pooling"}),
    ("lm", "language_model", {"self"}),
])
def test_every_task_is_served(tiny_runs, run, kind, names):
    client = TestClient(make_app(load_inspector(tiny_runs[run]), run))
    answer = client.post("/api/inspect", json={"text": "ab cd ef"}).json()
    assert answer["result"]["kind"] == kind and {m["name"] for m in answer["attention"]} == names
    for m in answer["attention"]:
        assert len(m["weights"][0][0]) == len(m["rows"]) and len(m["weights"][0][0][0]) == len(m["cols"])


def png(width: int = 40, height: int = 30) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def test_a_captioning_model_captions_an_uploaded_image_with_attention_over_its_grid(tiny_runs):
    import base64

    client = TestClient(make_app(load_inspector(tiny_runs["captioner"]), "tiny-captioner"))
    info = client.get("/api/model").json()
    assert info["input"] == "image" and info["options"] == ["beam"]
    url = "data:image/png;base64," + base64.b64encode(png()).decode()
    answer = client.post("/api/caption", json={"image": url, "beam": 2}).json()
    result = answer["result"]
    assert result["kind"] == "captioning" and "resized from 40x30 to 24x24" in result["note"]
    (cross,) = answer["attention"]
    assert cross["grid"] == [6, 6] and len(cross["cols"]) == 36
    assert cross["rows"] == result["caption"].split() + ["</s>"]
    assert len(cross["weights"][0][0]) == len(cross["rows"])
    for body, message in [({"image": "%%%"}, "image: not base64"),
                          ({"image": base64.b64encode(b"not an image").decode()}, "image: not an image file"),
                          ({"image": url, "text": "a"}, "text: unknown field")]:
        response = client.post("/api/caption", json=body)
        assert response.status_code == 422 and message in response.json()["error"]
    response = client.post("/api/inspect", json={"text": "a cat"})
    assert response.status_code == 422 and "captions images" in response.json()["error"]
    assert client.post("/api/caption", json={"image": url}).status_code == 200


def test_a_text_model_refuses_an_image(client):
    import base64

    response = client.post("/api/caption", json={"image": base64.b64encode(png()).decode()})
    assert response.status_code == 422 and "this model reads text" in response.json()["error"]
    good(client)


# -- limits under load and hostile clients --------------------------------------------------------------
def test_nbest_above_the_beam_is_refused_as_on_the_command_line(client):
    response = client.post("/api/inspect", json={"text": "ab cd", "beam": 2, "nbest": 3})
    assert response.status_code == 422 and "nbest 3 cannot exceed the beam size 2" in response.json()["error"]


def test_files_outside_the_web_assets_are_not_served(client):
    for path in ("/static/../server.py", "/static/..%2fserver.py", "/static/%2e%2e/%2e%2e/pyproject.toml",
                 "/course/../../pyproject.toml", "/course/..%2f..%2fpyproject.toml", "/course/%2e%2e/BENCHMARKS.md",
                 "/course/../../src/attnkit/server.py", "/course/no-such-page.md"):
        response = client.get(path)
        assert response.status_code == 404, (path, response.status_code)
    assert client.get("/static/app.js").status_code == 200


def test_the_course_pages_are_served_as_html(client):
    assert client.get("/api/model").json()["course"] is True  # a source checkout has docs/course
    page = client.get("/course/03-attention.md")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<h1>" in page.text and "<table>" in page.text and '<html lang="en">' in page.text
    assert '<html lang="ru">' in client.get("/course/ru/03-attention.md").text
    assert client.get("/course/").status_code == client.get("/course/ru/").status_code == 200


def test_the_search_steps_come_with_the_translation(client):
    answer = client.post("/api/inspect", json={"text": "ab cd ef", "beam": 2, "nbest": 2}).json()
    steps = answer["result"]["search"]
    finished = sorted((c for step in steps for c in step if c["fate"] == "finished"), key=lambda c: -c["score"])
    assert [c["text"] for c in finished][:2] == [h["text"] + " </s>" if h["text"] else "</s>"
                                                 for h in answer["result"]["nbest"]]
    assert [round(c["score"], 4) for c in finished][:2] == [h["score"] for h in answer["result"]["nbest"]]
    assert all(c["slot"] in (0, 1) for step in steps for c in step if c["fate"] == "kept")


def test_the_queue_turns_requests_away_when_full_or_after_waiting():
    import threading
    import time

    from starlette.exceptions import HTTPException

    from attnkit.server import Queue

    queue = Queue(size=1, seconds=0.3)
    release, started = threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(5)
        return "done"

    running = threading.Thread(target=queue.run, args=(slow,))
    running.start()
    started.wait(5)
    waited = {}
    waiting = threading.Thread(target=lambda: waited.setdefault("error", _error_of(queue, lambda: "late")))
    waiting.start()
    time.sleep(0.05)
    full = _error_of(queue, lambda: "third")  # one runs, one waits: the queue of one is full
    assert isinstance(full, HTTPException) and full.status_code == 503 and "1 requests are waiting" in full.detail
    assert full.headers == {"Retry-After": "1"}
    waiting.join()
    late = waited["error"]
    assert isinstance(late, HTTPException) and late.status_code == 503 and "waited 0.3 s" in late.detail
    release.set()
    running.join()
    assert queue.run(lambda: "free again") == "free again" and queue.count == 0


def _error_of(queue, work):
    from starlette.exceptions import HTTPException

    try:
        return queue.run(work)
    except HTTPException as err:
        return err


def test_a_stalled_body_is_answered_408_and_its_connection_closed(tiny_runs):
    """A client that sends headers and part of its body, then nothing: after the body's time limit it
    gets a 408 and the server closes the connection (it does not hold it for ever)."""
    import socket
    import threading
    import time

    import uvicorn

    app = make_app(load_inspector(tiny_runs["transformer"]), "tiny", body_seconds=0.5)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"POST /api/inspect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"text\": ")
            start = time.monotonic()
            answer = b""
            while chunk := conn.recv(4096):  # until the server closes the connection
                answer += chunk
            assert time.monotonic() - start < 4
        assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within 0.5 s" in answer
    finally:
        server.should_exit = True
        thread.join(5)
