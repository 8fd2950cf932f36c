"""Make the pictures of the README's "See inside" section:

    python docs/images/make_images.py                    # into runs/images/, to look at
    python docs/images/make_images.py --out docs/images  # replace the README's pictures (tracked files)

Trains a tiny Transformer for under a minute on a toy task whose attention is easy to read (the
target is the source sentence reversed, so encoder-decoder attention should be an anti-diagonal),
then draws each plot with the CLI and photographs the page of `attnkit serve` in headless
Chromium (Playwright, Debian's /usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

SUBJECTS = ["a dog", "the man", "two girls", "a little boy", "the woman", "a black cat"]
VERBS = ["runs", "sits", "plays", "jumps", "waits", "sleeps"]
PLACES = ["on the beach", "in the park", "near the water", "in the snow", "on a bench", "at home"]


def sentences(n: int, seed: int) -> list[str]:
    r = random.Random(seed)
    return [f"{r.choice(SUBJECTS)} {r.choice(VERBS)} {r.choice(PLACES)}" for _ in range(n)]


def write(path: Path, lines: list[str]) -> str:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def attnkit(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "attnkit.cli.main", *args], check=True)


def train(root: Path) -> Path:
    data = {}
    for split, n, seed in (("train", 3000, 1), ("valid", 50, 2)):
        src = sentences(n, seed)
        data[split] = {"src": write(root / f"{split}.src", src),
                       "tgt": write(root / f"{split}.tgt", [" ".join(reversed(s.split())) for s in src])}
    cfg = {"data": data, "vocab": {"level": "word", "joint": True},
           "model": {"arch": "transformer", "d_model": 64, "num_heads": 4, "ff_dim": 128, "encoder_layers": 2,
                     "decoder_layers": 2, "dropout": 0.0, "attention_dropout": 0.0, "max_positions": 32},
           "training": {"batch_tokens": 512, "lr": 0.002, "warmup_steps": 100, "valid_every": 50,
                        "log_every": 10, "patience": 0, "label_smoothing": 0.0},
           "decoding": {"beam": 4}}
    (root / "toy-reverse.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    out = root / "toy-reverse"
    attnkit("-q", "train", str(root / "toy-reverse.yaml"), "--out", str(out), "--max-minutes", "0.8")
    return out


def screenshot(run: Path, text: str, out: Path) -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from attnkit.server import make_app
    from attnkit.tasks import load_inspector

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(make_app(load_inspector(run), run.name), log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        page = browser.new_page(viewport={"width": 900, "height": 1000})
        page.goto(f"http://127.0.0.1:{sock.getsockname()[1]}/")
        page.wait_for_selector("#submit:not([disabled])")
        page.fill("#text", text)
        page.fill("#opt-nbest", "3")
        page.click("#submit")
        page.wait_for_selector("table.heatmap")
        page.screenshot(path=str(out / "page.png"), full_page=True)
        browser.close()
    server.should_exit = True


def main() -> None:
    parser = argparse.ArgumentParser(description="Draw the README's pictures of a tiny toy Transformer.")
    parser.add_argument("--out", type=Path, default=Path("runs/images"),
                        help="folder for the pictures (default: runs/images; docs/images replaces the README's)")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        run = train(Path(tmp))
        text = "a little boy plays in the snow"
        attnkit("plot", "attention", str(run), "--text", text, "--kind", "cross", "--out",
                str(out / "attention-cross.png"))
        attnkit("plot", "attention", str(run), "--text", text, "--kind", "encoder", "--layer", "1", "--out",
                str(out / "attention-encoder.png"))
        attnkit("plot", "positions", "--text", "I am a robot", "--d-model", "64", "--out",
                str(out / "positions.png"))
        attnkit("plot", "curves", str(run), "--out", str(out / "curves.png"))
        screenshot(run, text, out)
    print(f"pictures in {out}")


if __name__ == "__main__":
    main()
