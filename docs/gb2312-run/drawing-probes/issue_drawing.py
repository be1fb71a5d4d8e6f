"""The validation writers drawn as issue 32's opening figure drew them: constant 3 px strokes, the character's
longer side 64 px (render_trajectory), given to the recognizer as a user's image (cropped, framed by predict)."""
import sys, time, numpy as np
sys.path.insert(0, "benchmarks")
from common import ARCHIVE, OUT, olhwdb_writers
from hccr.data.pot import read_pot
from hccr.data.render import render_trajectory
from hccr.runtime import load_recognizer
rec = load_recognizer(sys.argv[1] if len(sys.argv) > 1 else "gb2312")
_, val = olhwdb_writers(ARCHIVE, OUT)
right1 = right5 = n = 0; t0 = time.time()
for path in val:
    r = read_pot(path)
    labels = np.array([rec.charset.index[s.char] for s in r.samples])
    imgs = [render_trajectory(s.strokes, size=64, stroke_width=3.0) for s in r.samples]
    p = rec.predict_proba(imgs, crops=1)
    top5 = np.argsort(-p, 1)[:, :5]
    a1 = int((top5[:, 0] == labels).sum()); a5 = int((top5 == labels[:, None]).any(1).sum())
    right1 += a1; right5 += a5; n += len(labels)
    print(r.writer, len(labels), a1, a5, f"{time.time()-t0:.0f}s", flush=True)
print(f"all {n}: top-1 {right1/n*100:.2f}%  top-5 {right5/n*100:.2f}%")
