"""Metrics, plots and a Markdown report for probability files."""

from __future__ import annotations

import contextlib
import csv
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import HccrError
from .runtime import Predictions

CHUNK = 4096  # rows per step: metrics over N x 6,763 probabilities never make an N x C temporary


def scan(probs: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-row argmax, top probability and rank of the true class (-1 where unlabelled), computed
    in chunks of rows in float32 whatever the stored dtype (float16 prediction files included)."""
    n = len(labels)
    pred, conf, rank = np.zeros(n, np.int64), np.zeros(n, np.float32), np.full(n, -1, np.int64)
    for i in range(0, n, CHUNK):
        p = np.asarray(probs[i : i + CHUNK], np.float32)
        y = labels[i : i + CHUNK]
        pred[i : i + len(p)] = p.argmax(1)
        conf[i : i + len(p)] = p.max(1)
        ok = y >= 0
        if ok.any():  # rank = number of classes with a strictly higher probability than the true one;
            true_p = p[np.flatnonzero(ok), y[ok]]  # a true class at 0 (outside --charset) is never a hit
            rank[i + np.flatnonzero(ok)] = np.where(true_p > 0, (p[ok] > true_p[:, None]).sum(1), p.shape[1])
    return {"pred": pred, "conf": conf, "rank": rank}


def topk_accuracy(probs: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (1, 5, 10),
                  stats: dict | None = None) -> dict[str, float]:
    ok = labels >= 0
    if not ok.any():
        raise HccrError("no labelled samples to evaluate (predict on a store or a <root>/<char>/ folder)")
    rank = (stats or scan(probs, labels))["rank"][ok]
    return {f"top{k}": float((rank < k).mean()) for k in ks if k <= probs.shape[1] or k == 1}


def paired_test(a_right: np.ndarray, b_right: np.ndarray) -> dict:
    """Two recognizers read the same samples: how many each alone reads right, and the exact two-sided
    McNemar p-value (a binomial test on those samples) that says whether the difference is more than chance."""
    a, b = np.asarray(a_right, bool), np.asarray(b_right, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n, k = only_a + only_b, min(only_a, only_b)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
    return {"only_a": only_a, "only_b": only_b, "p": round(p, 4)}


def calibration(probs: np.ndarray, labels: np.ndarray, bins: int = 15, stats: dict | None = None) -> dict:
    ok = labels >= 0
    st = stats or scan(probs, labels)
    conf = st["conf"][ok]
    correct = st["pred"][ok] == labels[ok]
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges) - 1, 0, bins - 1)
    acc, cnf, cnt = np.zeros(bins), np.zeros(bins), np.bincount(which, minlength=bins)
    for b in range(bins):
        sel = which == b
        if sel.any():
            acc[b], cnf[b] = correct[sel].mean(), conf[sel].mean()
    ece = float((cnt / max(cnt.sum(), 1) * np.abs(acc - cnf)).sum())
    return {"ece": ece, "bin_acc": acc.tolist(), "bin_conf": cnf.tolist(), "bin_count": cnt.tolist(), "edges": edges.tolist()}


def confusion_pairs(probs: np.ndarray, labels: np.ndarray, top: int = 10, stats: dict | None = None
                    ) -> list[tuple[int, int, int]]:
    """(true class, predicted class, count) for the most frequent mistakes."""
    ok = labels >= 0
    pred = (stats or scan(probs, labels))["pred"][ok]
    y = labels[ok]
    wrong = pred != y
    if not wrong.any():
        return []
    c = probs.shape[1]
    codes, counts = np.unique(y[wrong].astype(np.int64) * c + pred[wrong], return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    return [(int(codes[i] // c), int(codes[i] % c), int(counts[i])) for i in order]


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of the true labels (golden-section
    search over log T in [1/8, 16]): one number, so a few hundred labelled images suffice."""
    ok = np.flatnonzero(labels >= 0)
    if len(ok) == 0:
        raise HccrError("calibration needs labelled images")
    logp = np.log(np.clip(np.asarray(probs[ok], np.float64), 1e-30, None))
    y = labels[ok]

    def nll(log_t: float) -> float:
        z = logp / np.exp(log_t)
        z -= z.max(1, keepdims=True)
        return float(-(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1))).mean())

    lo, hi = np.log(1 / 8), np.log(16)
    g = (np.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(40):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return float(np.exp((lo + hi) / 2))


def calibrate_model(model: str | None, inputs: list[str], split: str = "val", write: bool = True) -> dict:
    """Fit ``model``'s softmax temperature on labelled ``inputs`` it did not train on (lowest NLL) and, with
    ``write``, record it in the model's files; the shipped models are never rewritten (their files serve every
    user of the install). Returns the temperature, ECE before and after, images, top-1 and the files written."""
    from .packaging import write_temperature
    from .runtime import load_recognizer, predict_inputs, temper
    from .zoo import SHIPPED

    rec = load_recognizer(model)
    rec.temperature = 1.0
    pred = predict_inputs(rec, inputs, crops=None, split=split)
    ok = pred.labels >= 0
    if ok.sum() < 50:
        raise HccrError(f"calibration needs at least 50 labelled images the model knows, got {int(ok.sum())}")
    t = fit_temperature(pred.probs, pred.labels)
    out = {"temperature": t, "ece_before": calibration(pred.probs, pred.labels)["ece"],
           "ece_after": calibration(temper(pred.probs, t), pred.labels)["ece"], "images": int(ok.sum()),
           "top1": topk_accuracy(pred.probs, pred.labels, ks=(1,))["top1"], "written": []}
    if write and model is not None and model not in SHIPPED:
        info = {"images": out["images"], "data": ",".join(Path(i).name for i in inputs), "split": split,
                "ece_before": round(out["ece_before"], 4), "ece_after": round(out["ece_after"], 4)}
        out["written"] = [str(p) for p in write_temperature(model, t, info)]
    return out


def predict_labelled(inputs: list[Path], model: str | None, out: Path, split: str = "all",
                     crops: int | None = None) -> Predictions:
    """Predictions for labelled data (``hccr evaluate``; ``split``: the part of a store to score), saved as
    ``out/predictions.npz``; CASIA ``.gnt`` inputs are converted once into a store in ``out`` (the report shows their
    images), again when they change. Nothing is saved when no sample has a label."""
    from .data.store import ConvertOptions, convert
    from .runtime import load_recognizer, predict_inputs
    from .utils import read_json, write_json

    rec = load_recognizer(model, crops=crops)
    gnt = [p for p in inputs if p.suffix.lower() == ".gnt" or (p.is_dir() and any(p.rglob("*.gnt")))]
    data = [str(p) for p in inputs if p not in gnt]
    if gnt:
        store, record = out / "data", out / "data.sources.json"
        files = sorted({f.resolve() for p in gnt for f in ([p] if p.is_file() else p.rglob("*.gnt"))})
        stamp = [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files]
        if not ((store / "manifest.json").exists() and record.exists() and read_json(record) == stamp):
            convert([str(p) for p in gnt], store, ConvertOptions(size=64), overwrite=True)
            write_json(record, stamp)
        data.append(str(store))
    pred = predict_inputs(rec, data, crops=crops, split=split)
    require_labels(pred, ", ".join(str(p) for p in inputs[:3]) + (", ..." if len(inputs) > 3 else ""))
    with _made_folder(out):  # a full disk, Ctrl-C: no empty report folder left behind
        pred.save(out / "predictions.npz", float16=True)
    return pred


@contextlib.contextmanager
def _made_folder(out: Path) -> Iterator[Path]:
    """``out`` made for the block if missing, and removed again if the block leaves it empty (a refused or failed
    report leaves no empty folder behind)."""
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        yield out
    finally:
        if made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def require_labels(pred: Predictions, named: str) -> None:
    """An :class:`HccrError` naming ``named`` unless some of ``pred``'s samples are labelled with characters the
    model knows; it says which of the two is missing."""
    if (pred.labels >= 0).any():
        return
    if pred.meta.get("unknown_labels"):
        raise HccrError(f"{named}: none of its {pred.meta['unknown_labels']} labelled images is of a character "
                        f"the model knows ({pred.meta.get('unknown_chars', '')[:40]}); evaluate another model")
    raise HccrError(f"{named}: no labelled samples to evaluate (evaluate needs each image's character: a store, "
                    "<root>/<char>/ folders, or .gnt/.pot files; `hccr predict` reads unlabelled images)")


def _same_characters(a: Predictions, b: Predictions) -> bool:
    """Whether every sample labelled in both names the same character in each's character list."""
    both = (a.labels >= 0) & (b.labels >= 0)
    ca, cb = np.array(list(a.charset)), np.array(list(b.charset))
    return bool(np.array_equal(ca[a.labels[both]], cb[b.labels[both]]))


def summary(pred: Predictions, stats: dict | None = None) -> dict:
    stats = stats or scan(pred.probs, pred.labels)
    s = topk_accuracy(pred.probs, pred.labels, stats=stats)
    s["ece"] = calibration(pred.probs, pred.labels, stats=stats)["ece"]
    s["count"] = int((pred.labels >= 0).sum())
    s["ms_per_char"] = pred.meta.get("ms_per_char")
    return s


def _example_image(pred: Predictions, i: int) -> np.ndarray | None:
    """The sample behind row ``i`` (ink high, square) from its store or file, if still readable."""
    from .data.images import load_gray
    from .data.store import Store
    from .preprocess import normalize

    sid = str(pred.ids[i])
    try:
        if sid.startswith("store:"):
            return np.asarray(Store(pred.source).images[int(sid[6:])])
        return normalize(load_gray(sid), 64)
    except (HccrError, OSError):
        return None


REPORT_FILES = ("per_class.csv", "confusions.png", "confusion.png", "reliability.png", "report.md")


def evaluate(main: Predictions, out: str | os.PathLike, compare: dict[str, Predictions] | None = None,
             name: str = "model") -> dict:
    """Write ``report.md``, ``per_class.csv``, ``confusions.png``, and with matplotlib (``hccr[plot]``)
    ``confusion.png`` and ``reliability.png``; without it the report says how to get them. The files are
    written into a hidden folder inside ``out`` and moved into place together once all are written, and an
    earlier report's files that this one has not are removed: never a mix of two reports."""
    with _made_folder(Path(out)) as out:
        work = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
        try:
            result = _write_report(main, work, compare, name)
            for f in REPORT_FILES:  # report.md last: a reader that sees it sees the rest
                if (work / f).exists():
                    os.replace(work / f, out / f)
                else:
                    (out / f).unlink(missing_ok=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return result


def _write_report(main: Predictions, out: Path, compare: dict[str, Predictions] | None, name: str) -> dict:
    """:func:`evaluate`'s files, written into ``out``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
        print("note: the confusion and reliability plots need matplotlib (pip install 'hccr[plot]'); the report and "
              "its tables are written without them", file=sys.stderr)
    from .data.charset import Charset
    from .report import label_tile, save_png, tile_grid

    require_labels(main, name)
    for other, pr in (compare or {}).items():  # one table compares models on the same samples, or it misleads
        if pr.charset == main.charset:
            same = len(pr) == len(main) and np.array_equal(pr.labels, main.labels)
        else:  # other characters (a --keep-classes fine-tune and its source): the same samples, each model
            # scored on those of characters it knows (a note under the table gives the counts)
            same = len(pr) == len(main) and np.array_equal(pr.ids, main.ids) and _same_characters(main, pr)
        if not same:
            raise HccrError(f"{other}: predictions of other samples than {name}'s ({len(pr)} against {len(main)}, "
                            "or other labels); compare models on the same data")
    cs = Charset(main.charset)
    y, probs = main.labels, main.probs
    ok = y >= 0
    stats = scan(probs, y)
    summ = summary(main, stats)  # nothing labelled: an error before any file is written
    cal = calibration(probs, y, stats=stats)
    pred = stats["pred"]

    # Per-class accuracy.
    rows = []
    for c in range(len(cs)):
        sel = ok & (y == c)
        if sel.any():
            rows.append((cs[c], int(sel.sum()), float((pred[sel] == c).mean())))
    with open(out / "per_class.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["character", "count", "accuracy"])
        w.writerows(rows)

    # Most confused pairs with an example image of each.
    pairs = confusion_pairs(probs, y, stats=stats)
    tiles = []
    for t, p, n in pairs:
        idx = np.flatnonzero(ok & (y == t) & (pred == p))[0]
        img = _example_image(main, int(idx))
        if img is not None:
            tiles.append(label_tile(img, cs[t], 96, caption=f"{n}x", predicted=cs[p]))
    if tiles:
        save_png(tile_grid(tiles, cols=min(5, len(tiles))), out / "confusions.png")

    classes, mat = confusion_subset(y[ok], pred[ok], len(cs))
    if plt is not None:
        _plot_confusion(plt, mat, len(classes), len(cs), out / "confusion.png")
        _plot_reliability(plt, cal, out / "reliability.png")

    # Comparison table and report.
    table = {name: main, **(compare or {})}  # in the order given: the detailed one first
    results = {k: (summ if v is main else summary(v)) for k, v in table.items()}
    unknown = main.meta.get("unknown_labels") or 0
    part = f" ({main.meta['split']} split)" if main.meta.get("split") not in (None, "all") else ""
    lines = [f"# Evaluation: {name}", "", f"Source: `{main.source}`{part}, {summ['count']} labelled samples, "
             f"{len(cs)} classes, {main.meta.get('crops', '?')} crop(s)."
             + (f" {unknown} more are of characters the model does not know ({main.meta.get('unknown_chars', '')[:40]}):"
                " counted apart, not in these figures." if unknown else ""), "",
             "| model | top-1 | top-5 | top-10 | ECE | ms/char |", "|---|---|---|---|---|---|"]
    for k, r in results.items():
        ms = f"{r['ms_per_char']:.2f}" if r.get("ms_per_char") is not None else ""
        lines.append(f"| {k} | {r['top1']:.4f} | {topk_text(r, 5)} | {topk_text(r, 10)} | {r['ece']:.4f} | {ms} |")
    if len({r["count"] for r in results.values()}) > 1:  # models of other character lists
        lines += ["", "Each model is scored on the samples of characters it knows: "
                  + ", ".join(f"{k} {r['count']:,}" for k, r in results.items()) + "."]
    if main.meta.get("weights"):
        lines += ["", f"Ensemble weights: {', '.join(f'{w:.3f}' for w in main.meta['weights'])}."]
    lines += ["", "## Most confused pairs (true -> predicted)", ""]
    lines += [f"- {cs[t]} -> {cs[p]}: {n}" for t, p, n in pairs] or ["- none"]
    if tiles:
        lines += ["", "![confused examples](confusions.png)"]
    worst = sorted(rows, key=lambda r: r[2])[:10]
    lines += ["", "## Lowest per-class accuracy", "", "| character | count | accuracy |", "|---|---|---|"]
    lines += [f"| {c} | {n} | {a:.4f} |" for c, n, a in worst]
    lines += ["", "Full table: [per_class.csv](per_class.csv)", ""]
    lines += (["![confusion](confusion.png)", "![reliability](reliability.png)", ""] if plt is not None else
              ["The confusion and reliability plots need matplotlib: `pip install 'hccr[plot]'`.", ""])
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return {"summary": summ, "table": results, "pairs": pairs}


def topk_text(result: dict, k: int) -> str:
    """A top-k figure for a table, or "n/a" where the model has fewer than k classes (every answer is in its top k)."""
    return f"{result[f'top{k}']:.4f}" if f"top{k}" in result else "n/a"


def confusion_subset(y: np.ndarray, pred: np.ndarray, num_classes: int, most: int = 60
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(classes, rates) of the confusion plot: every class up to ``most``; beyond, the ``most`` classes involved in
    the most errors (as the true or the predicted class: the pairs the report lists), then the most frequent others
    among those with samples, in class order. ``rates[i, j]``: the share of class ``classes[i]``'s samples read as
    ``classes[j]``, over all its samples (a class misread as one outside the plot does not look perfect)."""
    classes = np.arange(num_classes)
    if num_classes > most:
        wrong = pred != y
        involved = np.bincount(y[wrong], minlength=num_classes) + np.bincount(pred[wrong], minlength=num_classes)
        seen = np.bincount(y, minlength=num_classes)
        order = np.lexsort((-seen, -involved))  # errors first, then samples; neither: never chosen
        classes = np.sort(order[:most][(involved + seen)[order[:most]] > 0])
    pos = np.full(num_classes, -1)
    pos[classes] = np.arange(len(classes))
    mat = np.zeros((len(classes), len(classes)))
    keep = (pos[y] >= 0) & (pos[pred] >= 0)
    np.add.at(mat, (pos[y[keep]], pos[pred[keep]]), 1)
    counts = np.bincount(y, minlength=num_classes)[classes]
    return classes, mat / np.maximum(counts, 1)[:, None]


def _plot_confusion(plt, mat: np.ndarray, n: int, total: int, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.imshow(np.log10(mat + 1e-3), cmap="viridis")
    ax.set_title(f"confusion (log10 rate), {n} classes" if n == total else
                 f"confusion (log10 rate): the {n} of {total:,} classes\nin the most errors, in class order")
    ax.set_xlabel("predicted (class order)")
    ax.set_ylabel("true (class order)")
    fig.colorbar(im)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_reliability(plt, cal: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    centers = (np.array(cal["edges"][:-1]) + np.array(cal["edges"][1:])) / 2
    has = np.array(cal["bin_count"]) > 0
    ax.plot([0, 1], [0, 1], "--", color="gray", lw=1)
    ax.bar(centers[has], np.array(cal["bin_acc"])[has], width=1 / len(centers), edgecolor="k", alpha=0.7)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {cal['ece']:.4f})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
