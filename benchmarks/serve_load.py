"""``hccr serve`` under load: 200 concurrent clients sending maximal uploads and maximal batches.

    python -m benchmarks serve_load [MODEL] [--clients 200] [--seconds 60]

Starts the server as a subprocess on a free local port (loopback only). Half the clients post the
largest single upload allowed (a ~4 MB PNG of grain that decodes to 4 M pixels), half the largest
batch (64 images at the batch's pixel cap); one more client polls /healthz twice a second. Prints
the answers by status (200 read, 503 refused with Retry-After, 413 over a limit), /healthz
latency, and the server's peak resident memory (VmHWM) and its size at the end (VmRSS).
"""

from __future__ import annotations

import argparse
import io
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import numpy as np
from common import save


def _png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(ln for ln in f if ln.startswith(key)).split()[1])


def main() -> None:
    import httpx

    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default="gb2312")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60)
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "hccr.cli", "serve", "--model", args.model, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    rss_idle = _kb(proc.pid, "VmRSS")
    rng = np.random.default_rng(0)
    grain = rng.integers(150, 256, (2000, 2000), dtype=np.uint8)  # paper grain: compresses badly
    grain[900:1100, 200:1800] = 0
    upload = _png(grain)  # just under the 4 MB limit
    small = np.full((700, 700), 255, np.uint8)
    small[330:370, 100:600] = 0
    batch = [("file", (f"{i}.png", _png(small), "image/png")) for i in range(64)]  # 64 x 0.49 M pixels
    counts: Counter = Counter()
    health: list[float] = []
    health_fail = [0]
    stop = threading.Event()
    lock = threading.Lock()

    def client(k: int) -> None:
        with httpx.Client(timeout=120) as c:
            while not stop.is_set():
                try:
                    if k % 2:
                        r = c.post(f"{url}/v1/recognize", content=upload, headers={"content-type": "image/png"})
                        kind = "upload"
                    else:
                        r = c.post(f"{url}/v1/recognize/batch", files=batch)
                        kind = "batch"
                    with lock:
                        counts[(kind, r.status_code)] += 1
                    if r.status_code == 503:
                        time.sleep(float(r.headers.get("retry-after", 1)))
                except httpx.HTTPError as e:
                    with lock:
                        counts[("error", type(e).__name__)] += 1
                    time.sleep(0.5)

    def poll() -> None:
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    ok = c.get(f"{url}/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                health.append(time.perf_counter() - t)
                health_fail[0] += not ok
                time.sleep(0.5)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(args.clients)]
    threads.append(threading.Thread(target=poll, daemon=True))
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in threads:
        t.join(timeout=180)
    elapsed = time.perf_counter() - t0
    peak, end = _kb(proc.pid, "VmHWM"), _kb(proc.pid, "VmRSS")
    proc.terminate()
    proc.wait(timeout=30)
    h = np.array(health) * 1000
    res = {"clients": args.clients, "seconds": round(elapsed), "upload_bytes": len(upload),
           "answers": {f"{k} {s}": n for (k, s), n in sorted(counts.items(), key=str)},
           "healthz": {"polls": len(h), "failed": health_fail[0], "p50_ms": round(float(np.median(h)), 1),
                       "p95_ms": round(float(np.percentile(h, 95)), 1), "max_ms": round(float(h.max()), 1)},
           "rss_mb": {"idle": round(rss_idle / 1e3), "peak": round(peak / 1e3), "end": round(end / 1e3)}}
    print(res)
    save("serve-load", res)


if __name__ == "__main__":
    main()
