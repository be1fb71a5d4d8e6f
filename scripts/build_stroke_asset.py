"""Build hccr/assets/strokes.npz from the npm package hanzi-writer-data@2.0.1.

    npm pack hanzi-writer-data@2.0.1 && python scripts/build_stroke_asset.py hanzi-writer-data-2.0.1.tgz

The package (derived from Make Me a Hanzi, Arphic Public License) has one JSON per character with
the stroke medians in writing order, in a 1024-unit box with y up. The asset stores them as int16
points with y flipped to y' = 900 - y (y down, like an image), plus offsets:

    chars          int32 code points, sorted
    char_strokes   int32 (n_chars + 1) offsets into stroke_points
    stroke_points  int32 (n_strokes + 1) offsets into points
    points         int16 (n_points, 2) x, y'
"""

from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("package", help="the .tgz from `npm pack hanzi-writer-data@2.0.1`, or its unpacked folder")
    ap.add_argument("--out", default=str(ROOT / "hccr" / "assets" / "strokes.npz"))
    args = ap.parse_args()

    src = Path(args.package)
    members: dict[str, bytes] = {}
    if src.is_dir():
        for f in src.glob("*.json"):
            members[f.name] = f.read_bytes()
        licence = (src / "ARPHICPL.TXT").read_bytes()
    else:
        with tarfile.open(src) as tf:
            for m in tf.getmembers():
                name = m.name.split("/", 1)[-1]
                if m.isfile() and (name.endswith(".json") and "/" not in name or name == "ARPHICPL.TXT"):
                    members[name] = tf.extractfile(m).read()  # type: ignore[union-attr]
        licence = members.pop("ARPHICPL.TXT")

    chars, char_strokes, stroke_points, points = [], [0], [0], []
    for name in sorted(members, key=lambda n: ord(n[0]) if len(n) == 6 else 1 << 30):
        stem = name[:-5]
        if len(stem) != 1 or name == "package.json":
            continue
        data = json.loads(members[name])
        medians = data["medians"]
        chars.append(ord(stem))
        for med in medians:
            pts = np.asarray(med, dtype=np.int32).reshape(-1, 2)
            pts[:, 1] = 900 - pts[:, 1]
            points.append(pts.astype(np.int16))
            stroke_points.append(stroke_points[-1] + len(pts))
        char_strokes.append(char_strokes[-1] + len(medians))

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, chars=np.asarray(chars, np.int32), char_strokes=np.asarray(char_strokes, np.int32),
                        stroke_points=np.asarray(stroke_points, np.int32), points=np.concatenate(points))
    (out.parent / "ARPHICPL.TXT").write_bytes(licence)
    print(f"wrote {out}: {len(chars)} characters, {len(stroke_points) - 1} strokes, "
          f"{stroke_points[-1]} points, {out.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
