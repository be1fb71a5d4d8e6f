"""Pack CASIA-OLHWDB ``.pot`` files into a compact, lossless transport form, and unpack it.

A lent GPU machine receives at most 64 MiB of working tree per call, and the archive of the 220
writers is 116 MiB (xz of the ``.pot`` files, whose absolute int16 coordinates compress poorly).
Stroke points as deltas in separate low- and high-byte streams, xz-compressed, take about 0.37 MB per
writer instead of 0.55 MB, and the writers can be split into parts (one device call each).

Lossless for what hccr reads: unpacking writes ``.pot`` files in CASIA's layout
(:func:`hccr.data.pot.encode_pot_record`) whose records parse to the same characters and points;
records the reader rejects are not carried.

    python scripts/pack_for_device.py pack POT_DIR OUT.xz [--writers A:B]
    python scripts/pack_for_device.py unpack IN.xz... --out DIR
    python scripts/pack_for_device.py scans SCAN_DIR OUT_DIR   (gray PNGs: casia-hwdb-22 in 17 MB)
"""

from __future__ import annotations

import argparse
import io
import lzma
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hccr.data.pot import encode_pot_record, read_pot  # noqa: E402


def pack(files: list[Path], out: Path) -> dict:
    names, counts, codes, nstrokes, npoints, pts = [], [], [], [], [], []
    for f in files:
        rec = read_pot(f)
        names.append(f.stem)
        counts.append(len(rec.samples))
        for s in rec.samples:
            codes.append(ord(s.char))
            nstrokes.append(len(s.strokes))
            npoints.extend(len(st) for st in s.strokes)
            pts.extend(s.strokes)
    p = np.concatenate(pts).astype(np.int32)
    n = np.array(npoints, np.int64)
    starts = np.cumsum(n) - n
    first = p[starts]
    first_d = np.diff(first, axis=0, prepend=np.zeros((1, 2), np.int32)).astype(np.int16)
    inner = np.ones(len(p), bool)
    inner[starts] = False
    d = (p - np.roll(p, 1, axis=0))[inner]  # within-stroke steps: small
    esc = np.flatnonzero((np.abs(d) > 127).any(axis=1))
    buf = io.BytesIO()
    np.savez(buf, names=np.array(names), counts=np.array(counts, np.int32), codes=np.array(codes, np.uint32),
             nstrokes=np.array(nstrokes, np.uint16), npoints=n.astype(np.uint16),
             first_lo=(first_d.view(np.uint16) & 0xFF).astype(np.uint8).T.copy(),
             first_hi=(first_d.view(np.uint16) >> 8).astype(np.uint8).T.copy(),
             steps=np.clip(d, -127, 127).astype(np.int8).T.copy(), esc_at=esc.astype(np.int32),
             esc=d[esc].astype(np.int16))
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_bytes(lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME))
    tmp.replace(out)
    return {"writers": len(names), "samples": len(codes), "points": len(p), "bytes": out.stat().st_size}


def unpack(src: Path, out_dir: Path) -> int:
    with np.load(io.BytesIO(lzma.decompress(src.read_bytes()))) as f:
        z = {k: f[k] for k in f.files}  # an NpzFile reads a member at every access: once each
    n = z["npoints"].astype(np.int64)
    starts = np.cumsum(n) - n
    first_d = (z["first_lo"].T.astype(np.uint16) | (z["first_hi"].T.astype(np.uint16) << 8)).view(np.int16)
    steps = z["steps"].T.astype(np.int32)
    steps[z["esc_at"]] = z["esc"]
    d = np.zeros((int(n.sum()), 2), np.int32)
    inner = np.ones(len(d), bool)
    inner[starts] = False
    d[inner] = steps
    d[starts] = np.cumsum(first_d.astype(np.int32), axis=0)
    # each stroke: its absolute first point, then the cumulative sum of its steps
    seg = np.repeat(np.arange(len(n)), n)
    csum = np.cumsum(np.where(inner[:, None], d, 0), axis=0)
    p = d[starts][seg] + csum - csum[starts][seg]
    strokes = np.split(p.astype(np.int16), np.cumsum(n)[:-1])
    bounds = np.concatenate([[0], np.cumsum(z["counts"])])
    out_dir.mkdir(parents=True, exist_ok=True)
    stroke_at = np.concatenate([[0], np.cumsum(z["nstrokes"])])
    for w, name in enumerate(z["names"].tolist()):
        body = bytearray()
        for i in range(int(bounds[w]), int(bounds[w + 1])):
            body += encode_pot_record(chr(int(z["codes"][i])), strokes[int(stroke_at[i]):int(stroke_at[i + 1])])
        tmp = out_dir / f"{name}.pot.tmp"
        tmp.write_bytes(bytes(body))
        tmp.replace(out_dir / f"{name}.pot")
    return int(bounds[-1])


def gray_scans(src: Path, out: Path) -> int:
    """A folder of scans -> the same tree of gray PNGs, as hccr reads them (transparency on white):
    casia-hwdb-22's RGBA exports take 1.5 KB instead of 3.4 KB per image."""
    from PIL import Image

    from hccr.data.images import load_gray

    n = 0
    for f in sorted(src.rglob("*.png")):
        dst = out / f.relative_to(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(load_gray(f)).save(dst, optimize=True)
        n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack")
    a.add_argument("pots", type=Path)
    a.add_argument("out", type=Path)
    a.add_argument("--writers", default=":", help="A:B, a slice of the writers in name order (default: all)")
    b = sub.add_parser("unpack")
    b.add_argument("packs", type=Path, nargs="+")
    b.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("scans")
    c.add_argument("src", type=Path)
    c.add_argument("out", type=Path)
    args = ap.parse_args()
    if args.cmd == "pack":
        files = sorted(args.pots.rglob("*.pot"))
        a, _, b = args.writers.partition(":")
        print(pack(files[int(a) if a else None:int(b) if b else None], args.out))
    elif args.cmd == "scans":
        print(gray_scans(args.src, args.out), "scans written to", args.out)
    else:
        print(sum(unpack(p, args.out) for p in args.packs), "samples unpacked into", args.out)


if __name__ == "__main__":
    main()
