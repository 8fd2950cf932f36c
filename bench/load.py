"""The server under load (issue 26): ``attnkit serve MODEL`` on loopback, N concurrent clients for T
seconds mixing good requests (Multi30k validation sentences, beam 1 to 5) with bad ones (broken JSON,
unknown fields, over-long text, a beam of 0, nbest above the beam, bytes that are not UTF-8, a body over
the limit, unknown paths and methods), uploads that stall halfway, and (issue 37) connections that send
half their headers and then a byte every half second, one reopened as soon as the server closes each
(slowloris). It stops by itself and reports requests/s, the latency of the good requests (p50, p99),
the answers by status, what became of the stalled uploads and half-open connections, and the
server's resident memory after a warm-up (150 requests one at a time, beams 1 to 5, on sentences the
load does not send), every 5 seconds, and at the end.

    python bench/load.py MODEL_DIR [--clients 16] [--seconds 60] [--stalled 8] [--half-open 32] [--json FILE]

It fails (exit 1) on any 5xx answer, any good request not answered 200, any bad request not answered
4xx, a stalled upload or half-open connection the server still holds long after its timeout, or memory
growth of 10% or more.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from attnkit.config import resolve_path
from attnkit.server import BODY_SECONDS, HEADER_SECONDS, MAX_BODY_BYTES, MAX_CHARS

JSON = {"Content-Type": "application/json"}
WARM_UP = 150  # requests, one at a time, before the memory at start is read


def bad_requests() -> list[tuple[str, str, bytes, dict]]:
    """(method, path, body, headers) of requests that must get a 4xx."""
    def post(body) -> tuple[str, str, bytes, dict]:
        return "POST", "/api/inspect", body if isinstance(body, bytes) else json.dumps(body).encode(), JSON

    return [post(b'{"text": "a dog'), post({"text": "a dog", "colour": "red"}), post({"text": "a" * (MAX_CHARS + 1)}),
            post({"text": "a dog", "beam": 0}), post({"text": "a dog", "beam": 2, "nbest": 3}),
            post(b'{"text": "a \xff dog"}'), post({"text": "x" * (MAX_BODY_BYTES + 10)}), post({"text": ""}),
            post([1, 2]), ("GET", "/api/nothing", b"", {}), ("GET", "/api/inspect", b"", {}),
            ("GET", "/static/../server.py", b"", {})]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "attnkit", "serve", model, "--port", str(port), "--device", "cpu"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server did not start:\n{proc.stderr.read().decode(errors='replace')}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/model")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not answer within 120 s")


class Client(threading.Thread):
    """Sends requests one after another on a keep-alive connection until ``stop``; records each answer."""

    def __init__(self, port: int, sentences: list[str], bad: list, seed: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.sentences, self.bad, self.stop = port, sentences, bad, stop
        self.rng = random.Random(seed)
        self.records: list[tuple[str, int, float]] = []  # (good|bad, status or 0 for a broken connection, seconds)

    def run(self) -> None:
        conn = None
        while not self.stop.is_set():
            if self.rng.random() < 0.8:
                kind, beam = "good", self.rng.randint(1, 5)
                request = ("POST", "/api/inspect", json.dumps({"text": self.rng.choice(self.sentences),
                                                               "beam": beam}).encode(), JSON)
            else:
                kind, request = "bad", self.rng.choice(self.bad)
            method, path, body, headers = request
            t0 = time.perf_counter()
            status = 0
            for fresh in ((False, True) if conn is not None else (True,)):  # a kept connection the server
                try:                                                        # closed: once more, on a new one
                    if fresh:
                        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                    conn.request(method, path, body=body or None, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    status = response.status
                    if response.getheader("connection", "").lower() == "close":
                        conn.close()
                        conn = None
                    break
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = None
            self.records.append((kind, status, time.perf_counter() - t0))


def stall(port: int, held: list[float]) -> None:
    """Send headers and half a body, then nothing; note how long the server keeps the connection."""
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=BODY_SECONDS * 6) as s:
            s.sendall(b"POST /api/inspect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 200\r\n\r\n{\"text\": \"a dog")
            while s.recv(4096):
                pass
        held.append(time.monotonic() - t0)
    except OSError:  # still open when the socket's own timeout ran out
        held.append(float("inf"))


def half_open(port: int, held: list[float], stop: threading.Event) -> None:
    """Until ``stop``: open a connection, send the request line and half the headers, then a byte every
    half second (slowloris); note how long the server keeps it, and open the next one at once, so that
    one such connection is always held against the server."""
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"POST /api/inspect HTTP/1.1\r\nHost: x\r\nContent-Type: applic")
                while time.monotonic() - t0 < HEADER_SECONDS * 6:
                    try:
                        if not s.recv(4096):
                            break
                    except TimeoutError:
                        s.sendall(b"a")
            held.append(time.monotonic() - t0)
        except OSError:  # reset by the server after its 408
            held.append(time.monotonic() - t0)


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a trained model directory (text)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--stalled", type=int, default=8, help="uploads that stall halfway (default 8)")
    parser.add_argument("--half-open", type=int, default=32,
                        help="connections that send half their headers and then trickle (default 32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    with gzip.open(resolve_path("attnkit:multi30k/val.en.gz"), "rt", encoding="utf-8") as f:
        sentences = [line.strip() for line in f if line.strip()]
    sentences, warm_up = sentences[:-WARM_UP], sentences[-WARM_UP:]
    port = free_port()
    server = start_server(args.model, port)
    try:
        for i, text in enumerate(warm_up):  # warm-up: the kernels and memory of every beam
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("POST", "/api/inspect", json.dumps({"text": text, "beam": 1 + i % 5}).encode(), JSON)
            conn.getresponse().read()
        rss_start = rss_mib(server.pid)
        stop = threading.Event()
        clients = [Client(port, sentences, bad_requests(), args.seed + i, stop) for i in range(args.clients)]
        held: list[float] = []
        stallers = [threading.Thread(target=stall, args=(port, held), daemon=True) for _ in range(args.stalled)]
        trickled: list[float] = []
        tricklers = [threading.Thread(target=half_open, args=(port, trickled, stop), daemon=True)
                     for _ in range(args.half_open)]
        t0 = time.monotonic()
        for t in clients + stallers + tricklers:
            t.start()
        samples = []  # the server's resident memory every 5 s: a plateau or a climb
        while time.monotonic() - t0 < args.seconds:
            time.sleep(min(5.0, args.seconds - (time.monotonic() - t0)))
            samples.append(round(rss_mib(server.pid)))
        stop.set()
        for t in clients:
            t.join(180)
        elapsed = time.monotonic() - t0
        for t in stallers:
            t.join(BODY_SECONDS * 7)
        for t in tricklers:
            t.join(HEADER_SECONDS * 7)
        rss_end = rss_mib(server.pid)
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    records = [r for c in clients for r in c.records]
    good = [r for r in records if r[0] == "good"]
    bad = [r for r in records if r[0] == "bad"]
    result = {
        "model": args.model, "clients": args.clients, "seconds": round(elapsed, 1), "requests": len(records),
        "requests_per_s": round(len(records) / elapsed, 1),
        "good": len(good), "good_per_s": round(len(good) / elapsed, 2),
        "good_p50_s": round(percentile([r[2] for r in good], 0.5), 3),
        "good_p99_s": round(percentile([r[2] for r in good], 0.99), 3),
        "bad": len(bad), "bad_p99_s": round(percentile([r[2] for r in bad], 0.99), 3),
        "status": dict(sorted(Counter(str(r[1]) for r in records).items())),
        "failed_good": sum(r[1] != 200 for r in good), "bad_not_4xx": sum(not 400 <= r[1] < 500 for r in bad),
        "5xx": sum(r[1] >= 500 for r in records),
        "stalled": args.stalled, "stalled_closed_within_s": round(max(held), 1) if held else None,
        "half_open": args.half_open, "half_open_connections": len(trickled),
        "half_open_closed_within_s": round(max(trickled), 1) if trickled else None,
        "rss_start_mib": round(rss_start, 1), "rss_end_mib": round(rss_end, 1),
        "rss_growth": round(rss_end / rss_start - 1, 3) if rss_start else None, "rss_every_5s_mib": samples,
    }
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    failed = [name for name, bad_value in (("5xx answers", result["5xx"]), ("failed good requests",
                                                                           result["failed_good"]),
                                           ("bad requests not 4xx", result["bad_not_4xx"]))
              if bad_value]
    if held and max(held) > BODY_SECONDS * 3:
        failed.append("stalled uploads held open")
    if trickled and max(trickled) > HEADER_SECONDS * 3:
        failed.append("half-open connections held open")
    if result["rss_growth"] is not None and result["rss_growth"] >= 0.10:
        failed.append("memory grew 10% or more")
    if failed:
        raise SystemExit("FAILED: " + ", ".join(failed))


if __name__ == "__main__":
    main()
