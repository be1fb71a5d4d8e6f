"""Shared helpers for benchmarks: machine description, JSON output, the held-out-writer tail split."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from hccr.quickstart import data_folder

ROOT = Path(__file__).resolve().parents[1]
DATA = data_folder(ROOT)  # the real data, outside the checkout
REAL = Path(os.environ.get("HCCR_REAL_DATA", DATA / "casia-hwdb-22"))
OUT = ROOT / ".bench"


def tail_store(train: Path, dst: Path, fraction: float = 0.1) -> Path:
    """``train`` (casia-hwdb-22's training PNGs as converted) with the last 10% of each class by file
    number as validation: CASIA numbers files in writer order, so that tail comes from writers the
    rest never saw (the PNG export carries no writer ids). Images are shared; only the split differs."""
    import numpy as np

    from hccr.data.store import Store, store_view

    if (dst / "split.npy").exists():
        return dst
    st = Store(train)
    split = np.zeros(len(st), np.uint8)
    for c in np.unique(st.labels):
        idx = np.flatnonzero(st.labels == c)  # in file-number order, as hccr convert read the folder
        split[idx[-round(len(idx) * fraction):]] = 1
    return store_view(train, dst, split)


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in have]
                break
    except OSError:
        pass
    import torch

    return {"cpu": cpu, "flags": flags, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "date": time.strftime("%Y-%m-%d"), "python": platform.python_version()}


def save(name: str, result: dict) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.json"
    result = {"benchmark": name, "machine": machine(), **result}
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {path}")
    return path


def store_is_current(dst: Path) -> bool:
    """A finished store at ``dst`` whose trajectories were drawn by this version of hccr's renderer."""
    import json

    from hccr.data.render import RENDER_VERSION

    manifest = dst / "manifest.json"
    return manifest.exists() and json.loads(manifest.read_text()).get("render_version", 1) == RENDER_VERSION


def convert_once(sources: list, dst: Path, opts) -> Path:
    """``sources`` (files or folders) converted into a store at ``dst`` with ``opts``, once; reused after."""
    import shutil

    from hccr.data.store import convert

    if store_is_current(dst):
        return dst
    if (dst / "manifest.json").exists():
        print(f"{dst}: drawn by an older renderer; converting again")
        shutil.rmtree(dst)
    convert([str(p) for p in sources], dst, opts, progress=False)
    return dst


def real_stores(train: Path, test: Path, size: int = 64, val_fraction: float = 0.0) -> tuple[Path, Path]:
    """casia-hwdb-22's training and test PNGs as stores at ``size`` px, converted once and reused after
    (the test store takes the training store's character list); exits with a message without the data."""
    from hccr.data.store import ConvertOptions, Store

    if not REAL.is_dir():
        sys.exit(f"real data not found at {REAL}")
    convert_once([REAL / "CASIA-HWDB_Train" / "Train"], train, ConvertOptions(size=size, val_fraction=val_fraction))
    return train, convert_once([REAL / "CASIA-HWDB_Test" / "Test"], test,
                               ConvertOptions(size=size, charset="".join(Store(train).charset)))


def table(rows: list[dict], cols: list[str]) -> str:
    def fmt(v) -> str:
        return (f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}") if isinstance(v, float) else "" if v is None else str(v)

    cells = [cols] + [[fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    cells.insert(1, ["-" * w for w in widths])
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells)


ARCHIVE = DATA / "casia-olhwdb1.1-train.tar.xz"
EVERY = 22  # the validation writers: positions 22, 44, ... of the name-sorted list (10 of 220)


def olhwdb_writers(archive: Path = ARCHIVE, cache: Path = OUT) -> tuple[list[Path], list[Path]] | None:
    """(training writers' .pot files, validation writers' .pot files) of CASIA-OLHWDB1.1, the archive
    unpacked once to ``cache/olhwdb``; None (with a message) where the archive is absent."""
    import subprocess

    root = cache / "olhwdb"
    if not (root / ".done").exists():
        if not archive.is_file():
            print(f"skipping: {archive} not found")
            return None
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "-xJf", str(archive), "-C", str(root)], check=True)
        (root / ".done").touch()
    pots = sorted(root.rglob("*.pot"), key=lambda p: p.stem)
    val = pots[EVERY - 1 :: EVERY]
    return [p for p in pots if p not in val], val
