"""Round 19's store: round 11's mix (its split kept) followed by a second drawing of the training writers' trajectories
with --stroke-jitter (all training). Writers keep their names, so a writer's two drawings are one writer.

    python docs/gb2312-run/real-writers-round-19/merge.py MIX JITTERED OUT
"""
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from hccr.data.store import Store

mix, jit, out = (Path(a) for a in sys.argv[1:4])
a, b = Store(mix), Store(jit)
assert list(a.charset) == list(b.charset), "the two stores must share one charset"
assert not set(b.writer_names) & {a.writer_names[w] for w in np.unique(a.writers[a.split == 1])}, "validation writer"
work = out.with_name(out.name + ".partial")
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
n = len(a) + len(b)
img = np.lib.format.open_memmap(work / "images.npy", mode="w+", dtype=np.uint8, shape=(n, *a.images.shape[1:]))
t0, step = time.time(), 100_000
for src, base in ((a, 0), (b, len(a))):
    for i in range(0, len(src), step):
        img[base + i : base + min(i + step, len(src))] = src.images[i : i + step]
img.flush()
del img
names = list(a.writer_names) + [w for w in b.writer_names if w not in a.writer_names]
where = {w: i for i, w in enumerate(names)}
bw = np.array([where[w] for w in b.writer_names], np.int32)[b.writers]
np.save(work / "labels.npy", np.concatenate([a.labels, b.labels]).astype(np.int32))
np.save(work / "writers.npy", np.concatenate([a.writers, bw]).astype(np.int32))
np.save(work / "sizes.npy", np.concatenate([a.sizes, b.sizes]))
np.save(work / "split.npy", np.concatenate([a.split, np.zeros(len(b), np.uint8)]))
shutil.copy(mix / "charset.txt", work / "charset.txt")
(work / "writers.txt").write_text("".join(w + "\n" for w in names), encoding="utf-8")
ids = (mix / "ids.txt").read_text(encoding="utf-8").splitlines() + \
    [f"{s}~jitter" for s in (jit / "ids.txt").read_text(encoding="utf-8").splitlines()]
(work / "ids.txt").write_text("".join(s + "\n" for s in ids), encoding="utf-8")
m = json.loads((mix / "manifest.json").read_text())
mj = json.loads((jit / "manifest.json").read_text())
m.update(count=n, train=int(m["train"]) + len(b), writers=len(names), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
         merged_from=[str(mix), str(jit)], sources=m["sources"] + mj["sources"],
         jitter_options=mj["options"], problems=m.get("problems", [])[:500])
(work / "manifest.json").write_text(json.dumps(m, indent=1, ensure_ascii=False))
shutil.rmtree(out, ignore_errors=True)
work.rename(out)
print(f"wrote {out}: {n:,} samples ({len(a):,} + {len(b):,} jittered), {len(names)} writers, {time.time() - t0:.0f} s")
