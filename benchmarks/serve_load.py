"""Load test of ``hccr serve`` on 127.0.0.1: N requests from C concurrent clients, 0 errors expected.

    python benchmarks/serve_load.py MODEL [--requests 1000] [--clients 16]

Starts the server as a subprocess on a free local port, posts PNG uploads and JSON strokes
alternately, prints p50/p95 latency and requests/s, and stops the server. Loopback only.
"""

from __future__ import annotations

import argparse
import io
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import save  # noqa: E402


def main() -> None:
    import httpx
    from PIL import Image

    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=16)
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "hccr.cli", "serve", args.model, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        img = np.full((70, 60), 255, np.uint8)
        img[30:36, 5:55] = 0
        img[5:65, 28:33] = 0
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        png = buf.getvalue()
        strokes = {"strokes": [[[10, 50], [90, 52]], [[50, 5], [50, 95]]]}

        def one(i: int) -> tuple[int, float]:
            t = time.perf_counter()
            with httpx.Client(timeout=30) as c:
                if i % 2:
                    r = c.post(base + "/v1/recognize", json=strokes)
                else:
                    r = c.post(base + "/v1/recognize", files={"file": ("x.png", png, "image/png")})
            return r.status_code, time.perf_counter() - t

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(one, range(args.requests)))
        wall = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=20)
    codes = np.array([c for c, _ in results])
    lat = np.array([t for _, t in results]) * 1000
    errors = int((codes != 200).sum())
    res = {"requests": args.requests, "clients": args.clients, "errors": errors, "p50_ms": float(np.percentile(lat, 50)),
           "p95_ms": float(np.percentile(lat, 95)), "requests_per_s": args.requests / wall, "wall_s": wall}
    print(f"{args.requests} requests, {args.clients} clients: {errors} errors, p50 {res['p50_ms']:.1f} ms, "
          f"p95 {res['p95_ms']:.1f} ms, {res['requests_per_s']:.1f} requests/s")
    save("serve_load", res)


if __name__ == "__main__":
    main()
