"""docs/onnx.md tells integrators how to run an hccr ONNX file without hccr. This test follows that page step by
step, written apart from hccr's own code, and checks that it gives hccr's answer: if the preprocessing or the
calibration changes, the page must change with it."""

import json

import numpy as np
import pytest
from PIL import Image, ImageFilter

ort = pytest.importorskip("onnxruntime")


def quantile(img, q):  # the 90th percentile etc. of uint8 pixels, as hccr reads it (from the histogram)
    cum = np.bincount(img.ravel(), minlength=256).cumsum()
    return float(np.searchsorted(cum, q * (cum[-1] - 1), side="right"))


def documented_input(gray: np.ndarray, size: int, margin: float) -> np.ndarray:
    img = gray
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    if np.median(border) < 128:  # 1. polarity
        img = 255 - img
    h, w = img.shape  # 2. (inputs here are under 1,024 px)
    paper = quantile(img, 0.9)
    flattened = paper < 250
    if flattened:  # 3. flatten the paper
        s = 64 / max(h, w)
        small = Image.fromarray(img).resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BOX)
        k = 2 * (max(small.size) // 8) + 1
        bg = small.filter(ImageFilter.MaxFilter(k)).filter(ImageFilter.MinFilter(k)).filter(ImageFilter.GaussianBlur(k / 4))
        bg = np.maximum(np.asarray(bg.resize((w, h), Image.Resampling.BILINEAR), np.float32), 0.6 * paper)
        out = img.astype(np.float32) * (255.0 / np.maximum(bg, 1.0))
        med = float(np.median(out))
        if 200 <= med < 255:
            out *= 255.0 / med
        img = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    ink = img < 235  # 4. crop to the ink
    if flattened or quantile(img, 0.9) < 250 or ink.mean() < 0.02:
        ink = np.asarray(Image.fromarray(img).filter(ImageFilter.MedianFilter(3))) < 207
    if ink.any() and not ink.all():
        r, c = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
        img = img[r[0]:r[-1] + 1, c[0]:c[-1] + 1]
    h, w = img.shape  # 5. frame
    side = max(h, w)
    if margin:
        side = int(np.ceil(side / (1 - 2 * margin)))
    sq = np.zeros((side, side), np.uint8)
    sq[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = 255 - img
    if side != size:
        sq = np.asarray(Image.fromarray(sq).resize((size, size), Image.Resampling.BILINEAR))
    return sq.astype(np.float32)[None, None] / 255


def _images():
    from hccr.data.synth import SynthConfig, writer_samples

    rng = np.random.default_rng(0)
    sample = writer_samples(["读"], 0, SynthConfig(chars="读", writers=1, seed=21))[0][0]
    clean = np.full((120, 140), 255, np.uint8)  # the sample on a page with white around it
    h, w = sample.shape
    clean[(120 - h) // 2:(120 - h) // 2 + h, (140 - w) // 2:(140 - w) // 2 + w] = sample
    ramp = np.linspace(0.65, 0.85, clean.shape[1])[None, :]  # gray paper lit unevenly, with grain
    gray_paper = np.clip(clean * ramp + rng.normal(0, 4, clean.shape), 0, 255).astype(np.uint8)
    return {"clean": clean, "gray, unevenly lit paper": gray_paper, "light ink on dark": 255 - clean}


def test_the_onnx_page_reproduces_hccr_input_and_calibrated_answer():
    from pathlib import Path

    import hccr
    from hccr.inputs import as_gray

    rec = hccr.load()  # the shipped model, through this very file
    sess = ort.InferenceSession(str(Path(hccr.__file__).parent / "assets" / "gb2312.onnx"),
                                providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    pre, T, charset = json.loads(meta["preprocessing"]), float(meta.get("temperature", 1)), meta["charset"]
    assert meta["crops"] == "1" and int(meta["input_size"]) == pre["image_size"] == 64
    for name, img in _images().items():
        x = documented_input(img, pre["image_size"], pre["margin"])
        assert np.abs(x - rec.spec.batch([as_gray(img)], 1)).max() < 1e-6, name  # the same pixels
        probs = sess.run(None, {"image": x})[0]
        z = np.log(np.clip(probs.astype(np.float64), 1e-30, None)) / T
        cal = np.exp(z - z.max(1, keepdims=True))
        cal /= cal.sum(1, keepdims=True)
        ours = rec.predict_proba([img])
        assert np.abs(cal - ours).max() < 1e-5, name  # the calibrated output is hccr's answer
        assert np.abs(probs - ours).max() > 1e-3, name  # and the raw output is not (the page says so)
        assert charset[int(cal.argmax())] == rec.predict(img, topk=1)[0][0][0], name


def test_the_pages_input_side_is_the_graphs_for_one_and_five_crops(tiny_run, tmp_path):
    """The page: S is the metadata's input_size for every file; a five-crop file's is round(image_size * 280 / 256)."""
    from hccr.export import export_onnx

    for crops in (1, 5):
        path = export_onnx([str(tiny_run)], tmp_path / f"c{crops}.onnx", crops=crops)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        meta = sess.get_modelmeta().custom_metadata_map
        size = json.loads(meta["preprocessing"])["image_size"]
        side = sess.get_inputs()[0].shape[2]
        assert int(meta["input_size"]) == side == (size if crops == 1 else round(size * 280 / 256)), (crops, side)
