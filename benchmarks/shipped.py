"""The shipped recognizer on real handwriting, 6,763-way, one crop, as a user runs it.

    python -m benchmarks shipped [--model gb2312] [--record] [--against OTHER]

- online: CASIA-OLHWDB1.1's validation writers (every 22nd of the 220 by name: 1023-c ... 1239-c,
  never trained on), their trajectories drawn by hccr's pen (as ``hccr convert`` and the drawing
  page draw them), all 3,755 level-1 characters; per writer; the calibration error (ECE);
- offline: casia-hwdb-22's test scans (writers never seen), level 1 and level 2 apart (宬 is not
  GB2312: counted apart);
- level 2 in synthetic form: fresh simulated writers (seed 9001) of the 3,008 level-2 characters;
- speed: one image at a time through ONNX Runtime (preprocessing included), and the file sizes;
- ``--against OTHER``: OTHER reads the same online samples, paired with the model (exact McNemar test);
- ``--pens``: the validation writers drawn again with one pen for all (hccr's median pen, the drawing page's,
  and a 2 px pen) instead of each writer's drawn pen: how much of the per-writer spread is the pen.

The archive (../shared/data/casia-olhwdb1.1-train.tar.xz) is unpacked once to .bench/olhwdb and
the validation writers converted once. ``--record`` stores the figures in the model's metadata,
from which ``hccr model-card`` writes its card.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import ARCHIVE, OUT, REAL, ROOT, convert_once, olhwdb_writers, save, store_is_current

from hccr.data.charset import gb2312_chars
from hccr.data.images import load_gray, scan_image_folder
from hccr.data.render import RENDER_VERSION
from hccr.evaluate import calibration, paired_test, topk_accuracy
from hccr.runtime import load_recognizer, predict_inputs
from hccr.utils import use_all_cores
from hccr.zoo import SHIPPED, shipped_files


def olhwdb_validation(archive: Path, cache: Path) -> Path | None:
    """A store of the validation writers' samples, drawn as hccr draws trajectories (made once)."""
    from hccr.data.store import ConvertOptions

    store = cache / "olhwdb-val"
    if store_is_current(store):
        return store  # made before by this renderer: the archive need not be unpacked again
    found = olhwdb_writers(archive, cache)
    return found and convert_once(found[1], store, ConvertOptions(size=64, charset="gb2312"))


def pen_sensitivity(rec, archive: Path, cache: Path) -> dict:
    """Level-1 top-1 per validation writer, each writer drawn with the pen hccr draws for it (as the
    store holds them) and again with one pen for all: the median pen (the drawing page's) and 2 px."""
    from hccr.data.pot import read_pot
    from hccr.data.render import PenDraw, render_framed
    from hccr.data.sources import pot_pen
    from hccr.runtime import resize_batch

    found = olhwdb_writers(archive, cache)
    if not found:
        return {}
    pen = pot_pen()
    res: dict = {}
    for path in found[1]:
        r = read_pot(path)
        drawn = pen.draw([len(s.strokes) for s in r.samples], r.writer)
        labels = np.array([rec.charset.index[s.char] for s in r.samples])
        row = {"pen_px": round(drawn[0].width, 2)}
        for name, width in (("own", None), ("median", pen.width), ("2px", 2.0)):
            ds = drawn if width is None else [PenDraw(width, d.ink, d.stroke_scale) for d in drawn]
            imgs = np.stack([255 - render_framed(s.strokes, 64, pen, d) for s, d in zip(r.samples, ds, strict=True)])
            top = np.concatenate([rec.probabilities(resize_batch(imgs[i : i + 512], rec.spec.side(1)), 1).argmax(1)
                                  for i in range(0, len(imgs), 512)])
            row[name] = int((top == labels).sum())
        res[r.writer] = row | {"samples": len(labels)}
    n = sum(r["samples"] for r in res.values())
    res["all"] = {k: round(sum(r[k] for r in res.values()) / n, 4) for k in ("own", "median", "2px")}
    return res


def scores(probs: np.ndarray, labels: np.ndarray) -> dict:
    return {k: round(v, 4) for k, v in topk_accuracy(probs, labels, ks=(1, 5)).items()} | {"images": int(len(labels))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gb2312", help="a shipped name or a model file (.onnx, checkpoint)")
    ap.add_argument("--archive", type=Path, default=ARCHIVE)
    ap.add_argument("--synthetic-writers", type=int, default=2)
    ap.add_argument("--record", action="store_true", help="store the figures in the model's metadata")
    ap.add_argument("--against", help="another model read on the same online samples, paired with this one")
    ap.add_argument("--pens", action="store_true", help="also read the validation writers drawn with one pen for all")
    args = ap.parse_args()
    use_all_cores()
    rec = load_recognizer(args.model)
    cs = rec.charset
    level1 = set(gb2312_chars(True))
    res: dict = {"model": args.model, "backend": type(rec).__name__}
    evaluations = []

    store = olhwdb_validation(args.archive, OUT)
    if store is not None:
        pred = predict_inputs(rec, [str(store)], crops=1, progress=False)
        res["online"] = scores(pred.probs, pred.labels)
        res["online"]["ece"] = round(calibration(pred.probs, pred.labels)["ece"], 4)
        from hccr.data.store import Store

        st = Store(store)
        names = st.writer_names
        per = {names[w]: round(float((pred.probs[st.writers == w].argmax(1) == pred.labels[st.writers == w]).mean()), 4)
               for w in np.unique(st.writers)}
        res["online"]["per_writer"] = per
        # where the level-1 errors go: to another level-1 character, or to one of the level-2 classes that only
        # simulated writers taught (the cost of reading 6,763-way rather than 3,755-way)
        is1 = np.array([c in level1 for c in cs.chars])
        top = pred.probs.argmax(1)
        res["online"]["errors"] = int((top != pred.labels).sum())
        res["online"]["errors_to_level2"] = int(((top != pred.labels) & ~is1[top]).sum())
        res["online"]["top1_level1_only"] = round(float((np.where(is1, pred.probs, -1.0).argmax(1) == pred.labels).mean()), 4)
        print(f"online, {len(per)} validation writers, level 1, {len(cs):,}-way: {res['online']}")
        if args.against:  # a = this model, b = the other
            other = predict_inputs(load_recognizer(args.against), [str(store)], crops=1, progress=False)
            right = [p.probs.argmax(1) == p.labels for p in (pred, other)]
            res["online"]["paired"] = {"against": args.against, **paired_test(*right)}
            print(f"paired with {args.against} on the same samples: {res['online']['paired']}")
        if args.pens:
            res["online"]["pens"] = pens = pen_sensitivity(rec, args.archive, OUT)
            for w, r in pens.items():
                print(f"  pens, {w}: {r}")
        evaluations.append({"what": f"real writers never trained on, online (CASIA-OLHWDB1.1 validation writers "
                                    f"{', '.join(per)}; {len(pred.labels)} samples of the 3,755 level-1 characters, "
                                    f"drawn by hccr's pen, renderer version {RENDER_VERSION}: round joints), {len(cs):,}-way",
                            "result": {k: v for k, v in res["online"].items() if k != "per_writer"},
                            "command": "python -m benchmarks shipped"})

    if REAL.is_dir():
        items = scan_image_folder(REAL / "CASIA-HWDB_Test" / "Test")
        known = [it for it in items if it.char in cs.index]
        probs = rec.predict_proba([load_gray(it.path) for it in known], crops=1)
        labels = np.array([cs.index[it.char] for it in known])
        in1 = np.array([it.char in level1 for it in known])
        res["offline"] = {"level1": scores(probs[in1], labels[in1]), "level2": scores(probs[~in1], labels[~in1]),
                          "level1_chars": len({it.char for it in known if it.char in level1}),
                          "level2_chars": len({it.char for it in known if it.char not in level1}),
                          "not_gb2312_images": len(items) - len(known)}
        print(f"offline, casia-hwdb-22 test: {res['offline']}")
        for lv in ("level1", "level2"):
            evaluations.append({"what": f"real scans, casia-hwdb-22 test (writers never seen), its "
                                        f"{res['offline'][lv + '_chars']} {lv.replace('level', 'level-')} characters, "
                                        f"{len(cs):,}-way", "result": res["offline"][lv],
                                "command": "python -m benchmarks shipped"})

    from hccr.data.synth import SynthConfig, writer_samples

    chars = [c for c in gb2312_chars() if c not in level1]
    cfg = SynthConfig(chars="".join(chars), writers=args.synthetic_writers, seed=9001,
                      style=str(ROOT / "hccr" / "assets" / "style-builtin.json"))
    samples = [s for w in range(args.synthetic_writers) for s in writer_samples(chars, w, cfg)]
    probs = rec.predict_proba([im for im, _ in samples], crops=1)
    res["synthetic_level2"] = scores(probs, np.array([cs.index[c] for _, c in samples]))
    print(f"level 2, unseen synthetic writers (seed 9001): {res['synthetic_level2']}")
    evaluations.append({"what": f"level-2 characters, unseen synthetic writers ({len(samples)} images, seed 9001, "
                                "built-in style)", "result": res["synthetic_level2"],
                        "command": "python -m benchmarks shipped"})

    images = [im for im, _ in samples[:200]]
    rec.predict_proba(images[:5])
    times = []
    for im in images:
        t = time.perf_counter()
        rec.predict_proba(im)
        times.append(1000 * (time.perf_counter() - t))
    res["single_image_ms"] = {"median": round(float(np.median(times)), 2), "p95": round(float(np.percentile(times, 95)), 2)}
    shipped = args.model in SHIPPED
    stem = (shipped_files(args.model)[0] if shipped else Path(args.model)).with_suffix("")
    res["file_mb"] = {sfx: round(stem.with_suffix(sfx).stat().st_size / 1e6, 2)
                      for sfx in (".json", ".onnx", ".safetensors") if stem.with_suffix(sfx).exists()}
    print(f"one image at a time ({res['backend']}): {res['single_image_ms']} ms; files (MB) {res['file_mb']}")
    # a candidate file is saved under its folder's name, so it never overwrites the shipped model's figures
    save(f"shipped-{args.model}" if shipped else f"shipped-{stem.parent.name}-{stem.name}", res)
    if args.record and not shipped:
        print("--record writes into a shipped model's metadata only; nothing recorded for a file")
    elif args.record:
        from hccr.packaging import record_evaluations

        record_evaluations(shipped_files(args.model)[0], evaluations)
        print(f"recorded {len(evaluations)} evaluations in {shipped_files(args.model)[0]}")


if __name__ == "__main__":
    main()
