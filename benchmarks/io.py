"""I/O: our .gnt reader vs a per-record struct reader; conversion rates of .gnt, the PNG export and
real pen trajectories (.pot, drawn by hccr's pen), and a conversion killed with -9 resuming.

    python -m benchmarks io [--samples 50000] [--no-pot]

The .gnt file holds synthetic handwriting (dark ink on white paper, CASIA-like sizes), so the
conversion does the work it does on CASIA files; both readers decode the same fields (size, tag ->
character, width, height, bitmap as an H×W uint8 array). The .pot part converts all 220 writers of
CASIA-OLHWDB1.1 (the archive unpacked once to .bench/olhwdb).
"""

from __future__ import annotations

import argparse
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REAL, olhwdb_writers, save, table

from hccr.data.gnt import read_gnt, write_gnt
from hccr.data.store import convert


def struct_reader(path: Path) -> list[tuple[np.ndarray, str]]:
    """The straightforward baseline: one struct.unpack per record header, one read per bitmap."""
    out = []
    with open(path, "rb") as f:
        while True:
            head = f.read(10)
            if len(head) < 10:
                break
            size, tag, w, h = struct.unpack("<I2sHH", head)
            ch = (tag[:1] if tag[1] == 0 else tag).decode("gbk")
            img = np.frombuffer(f.read(w * h), dtype=np.uint8).reshape(h, w)
            out.append((img, ch))
    return out


def best_of(fn, path, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        res = fn(path)
        times.append(time.perf_counter() - t)
    return min(times), res


def convert_pot(tmp: Path) -> dict:
    """All 220 writers' trajectories -> a 64 px store (both cores); then the same conversion killed
    with -9 half-way and run again: it resumes from its finished chunks and ends with every sample."""
    import signal
    import subprocess

    found = olhwdb_writers()
    if found is None:
        return {}
    pots = [str(p) for p in found[0] + found[1]]
    t = time.perf_counter()
    res = convert(pots, tmp / "pot-store", progress=False)
    dt = time.perf_counter() - t
    print(f"convert .pot -> store (64 px, all cores, pen drawn): {res.count / dt:,.0f} samples/s "
          f"({res.count} samples of {len(pots)} writers, {dt:.0f} s)")
    cmd = [sys.executable, "-m", "hccr.cli", "convert", *pots, str(tmp / "killed")]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(dt / 2)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = len(list((tmp / "killed.partial" / "chunks").glob("*.npz")))
    r = subprocess.run(cmd, capture_output=True, text=True)
    from hccr.data.store import Store

    again = Store(tmp / "killed")
    same = len(again) == res.count and bool(np.array_equal(again.labels, Store(tmp / "pot-store").labels))
    print(f"killed with -9 after {dt / 2:.0f} s ({done} of {len(pots)} files done); rerun: "
          f"{r.stdout.strip().splitlines()[0] if r.stdout.strip() else r.stderr.strip()[:80]}; "
          f"{len(again)} samples, labels identical: {same}")
    return {"samples": res.count, "seconds": dt, "samples_per_s": res.count / dt, "killed_after_files": done,
            "resumed_identical": same}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=50_000)
    ap.add_argument("--no-pot", action="store_true", help="skip the CASIA-OLHWDB1.1 conversion")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hccr-io-"))
    try:
        from hccr.data.charset import gb2312_chars

        chars = gb2312_chars(True)

        from hccr.data.synth import SynthConfig, writer_samples

        cfg = SynthConfig(chars="".join(chars[:500]), writers=1, seed=1)
        pool = [im for w in range(4) for im, _ in writer_samples(chars[:500], w, cfg)]  # 2,000 real-looking bitmaps

        def gen():
            for i in range(args.samples):
                yield pool[i % len(pool)], chars[i % len(chars)]

        path = tmp / "bench.gnt"
        write_gnt(path, gen())
        mb = path.stat().st_size / 1e6
        n = args.samples
        read_gnt(path)  # warm the page cache for all readers alike
        t_base, base = best_of(struct_reader, path)
        t_bulk, bulk = best_of(read_gnt, path)  # every field of every record decoded; bitmaps are views
        t_iter, it = best_of(lambda p: list(read_gnt(p)), path)  # plus one H×W array object per sample
        assert len(base) == len(bulk) == len(it) == n
        assert all(a[1] == b for a, b in zip(base, bulk.chars, strict=True))
        assert all(np.array_equal(a[0], b[0]) for a, b in zip(base[:: 997], it[:: 997], strict=True))
        rows = [
            {"reader": "struct per record (baseline)", "s": t_base, "samples/s": n / t_base, "MB/s": mb / t_base, "x": 1.0},
            {"reader": "hccr bulk parse (read_gnt)", "s": t_bulk, "samples/s": n / t_bulk, "MB/s": mb / t_bulk,
             "x": t_base / t_bulk},
            {"reader": "hccr parse + H×W array per sample", "s": t_iter, "samples/s": n / t_iter, "MB/s": mb / t_iter,
             "x": t_base / t_iter},
        ]
        print(f"\n.gnt reading: {n} samples, {mb:.0f} MB")
        print(table(rows, ["reader", "s", "samples/s", "MB/s", "x"]))

        t = time.perf_counter()
        convert([str(path)], tmp / "store", progress=False)
        t_conv = time.perf_counter() - t
        print(f"\nconvert .gnt -> store (64 px, all cores): {n / t_conv:,.0f} samples/s ({t_conv:.1f} s)")

        png = {}
        if REAL.is_dir():
            src = REAL / "CASIA-HWDB_Train" / "Train"
            t = time.perf_counter()
            res = convert([str(src)], tmp / "png-store", progress=False)
            t_png = time.perf_counter() - t
            png = {"samples": res.count, "seconds": t_png, "samples_per_s": res.count / t_png}
            print(f"convert PNG export -> store (64 px): {res.count / t_png:,.0f} samples/s "
                  f"({res.count} images, {t_png:.1f} s)")
        pot = {} if args.no_pot else convert_pot(tmp)
        save("io", {"samples": n, "file_mb": mb, "readers": rows, "convert_gnt_samples_per_s": n / t_conv,
                    "convert_gnt_seconds": t_conv, "convert_png": png, "convert_pot": pot})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
