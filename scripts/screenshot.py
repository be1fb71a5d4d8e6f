"""Screenshot of the drawing page for the README: serve MODEL, draw CHAR stroke by stroke with the
mouse in headless Chromium (the strokes come from the bundled stroke data), save the page.

    python scripts/screenshot.py MODEL [--char 安] [--out docs/img/drawing-page.png]
"""

from __future__ import annotations

import argparse
import socket
import threading
import time

import uvicorn
from playwright.sync_api import sync_playwright

from hccr.data.strokes import char_strokes
from hccr.serve.app import create_app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--char", default="安")
    ap.add_argument("--out", default="docs/img/drawing-page.png")
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(args.model), host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 820, "height": 460})
        page.goto(f"http://127.0.0.1:{port}/")
        box = page.locator("#pad").bounding_box()
        for stroke in char_strokes(args.char):
            pts = stroke * (280 / 1024) + 20  # 1024-unit box -> the 320 px canvas with a margin
            page.mouse.move(box["x"] + pts[0, 0], box["y"] + pts[0, 1])
            page.mouse.down()
            for x, y in pts[1:]:
                page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
            page.mouse.up()
        page.wait_for_timeout(1500)
        page.screenshot(path=args.out)
        print(page.locator("#cands .cand .ch").all_inner_texts())
        browser.close()
    server.should_exit = True


if __name__ == "__main__":
    main()
