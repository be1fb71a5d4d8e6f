import importlib.util

import numpy as np
import pytest
import torch
from conftest import run_cli

from hccr.ensemble import combine, fit_weights
from hccr.errors import HccrError
from hccr.evaluate import topk_accuracy
from hccr.predict import Predictions, Recognizer, crop_boxes, multicrop


def test_five_crop_geometry():
    assert crop_boxes(70, 64) == [(3, 3), (0, 0), (0, 6), (6, 0), (6, 6)]
    assert crop_boxes(280, 256) == [(12, 12), (0, 0), (0, 24), (24, 0), (24, 24)]  # the paper's 280 -> 256
    x = torch.zeros(1, 1, 70, 70)
    x[0, 0, 0, 0] = 1  # a mark in the top-left corner
    x[0, 0, 69, 69] = 2  # and one in the bottom-right corner
    v = multicrop(x, 64, 5)
    assert v.shape == (5, 1, 64, 64)
    assert v[1, 0, 0, 0] == 1 and v[4, 0, 63, 63] == 2  # corners land in the corner crops
    assert v[0].sum() == 0  # the centre crop sees neither
    assert multicrop(x, 64, 1).shape == (1, 1, 64, 64)
    with pytest.raises(HccrError):
        multicrop(x, 64, 3)


def test_recognizer_keeps_aspect_and_pads(tmp_path):
    from hccr.models import create_model

    model = create_model("resnet-lean", num_classes=3, image_size=32, widths=(8, 8, 8, 8))
    meta = {"charset": "一二三", "preprocessing": {"image_size": 32, "ink": "high", "margin": 0.0}}
    rec = Recognizer(model, meta)
    tall = np.full((60, 20), 255, np.uint8)
    tall[:, 5:15] = 0
    x = rec.normalize_images([tall], crops=5)
    assert x.shape == (1, 1, 35, 35)  # 32 * 280 / 256 = 35
    assert x[0, 0, :, 0].max() == 0 and x[0, 0, 17, 17] > 0.9  # padded left/right, ink in the middle, ink high
    assert rec.predict_proba([tall], crops=5).shape == (1, 3)
    assert rec.predict_proba([tall, tall], crops=1).shape == (2, 3)
    (top,) = rec.predict(tall, topk=2)
    assert len(top) == 2 and top[0][0] in {"一", "二", "三"} and abs(sum(p for _, p in rec.predict(tall, topk=3)[0]) - 1) < 1e-5


def _pred(probs, labels, ids=None, charset="abc"):
    ids = np.array(ids if ids is not None else [f"store:{i}" for i in range(len(labels))])
    return Predictions(np.asarray(probs, np.float32), charset, np.asarray(labels), ids, "x", {"ms_per_char": 1.0})


def test_ensemble_weights_normalise_and_mismatches_are_refused():
    a = _pred([[0.9, 0.1, 0.0]], [0])
    b = _pred([[0.1, 0.9, 0.0]], [0])
    e = combine([a, b], [3, 1])
    np.testing.assert_allclose(e.probs, [[0.7, 0.3, 0.0]], atol=1e-6)
    assert e.meta["weights"] == [0.75, 0.25]
    with pytest.raises(HccrError, match="charset"):
        combine([a, _pred([[0.5, 0.5, 0.0]], [0], charset="abd")])
    with pytest.raises(HccrError, match="same order"):
        combine([a, _pred([[0.5, 0.5, 0.0]], [0], ids=["store:7"])])
    with pytest.raises(HccrError, match="weights"):
        combine([a, b], [1, -1])
    with pytest.raises(HccrError, match="finite"):  # NaN compares false with everything: it once passed through
        combine([a, b], [float("nan"), 1])
    a.meta["crops"], b.meta["crops"] = 5, 1
    assert combine([a, b]).meta["crops"] == "5/1"  # the report says what each member read, not the first's
    p3 = combine([a, b, b])
    assert p3.meta["weights"] == pytest.approx([0.3, 0.2, 0.5])  # the paper's default for three


def test_fitted_weights_prefer_the_better_member():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    good = np.eye(3)[y] * 0.8 + 0.2 / 3
    bad = np.full((200, 3), 1 / 3)
    w = fit_weights([_pred(bad, y), _pred(good, y)])
    assert w[1] > 0.9 and abs(w.sum() - 1) < 1e-9


def test_evaluate_exact_topk(tmp_path):
    from hccr.evaluate import evaluate

    probs = [[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.1, 0.2, 0.7]]
    labels = [0, 1, 2, 2]  # top-1 right for rows 0 and 3; row 1 is second, row 2 third
    acc = topk_accuracy(np.array(probs), np.array(labels), ks=(1, 2, 3))
    assert acc == {"top1": 0.5, "top2": 0.75, "top3": 1.0}
    res = evaluate(_pred(probs, labels), tmp_path / "rep")
    assert res["summary"]["top1"] == 0.5
    for f in ("report.md", "per_class.csv", "confusion.png", "reliability.png"):
        assert (tmp_path / "rep" / f).stat().st_size > 0
    assert "| model | 0.5000 |" in (tmp_path / "rep" / "report.md").read_text()


def test_the_confusion_plot_of_a_big_model_shows_the_confusions_the_report_lists():
    """6,763 classes, samples of 5: the plot's classes are those in the errors (true or predicted) and those with
    samples, never the 50-odd sample-less classes it showed, and a misread class is not drawn as perfect."""
    from hccr.evaluate import confusion_subset

    y = np.array([10] * 10 + [20] * 10 + [30] * 10 + [40] * 5 + [50] * 5)
    pred = y.copy()
    pred[:2] = 6000  # 10 -> 6000 twice (a class with no sample of its own)
    pred[10] = 30  # 20 -> 30 once
    classes, mat = confusion_subset(y, pred, 6763)
    assert classes.tolist() == [10, 20, 30, 40, 50, 6000]  # before: 56 of 60 rows were classes without samples
    at = {c: i for i, c in enumerate(classes.tolist())}
    assert mat[at[10], at[6000]] == 0.2 and mat[at[10], at[10]] == 0.8 and mat[at[20], at[30]] == 0.1
    few, small = confusion_subset(np.array([0, 1, 1]), np.array([0, 1, 0]), 3)  # small models: every class
    assert few.tolist() == [0, 1, 2] and small[1].tolist() == [0.5, 0.5, 0.0]


def test_evaluate_says_what_is_wrong_with_prediction_files(tmp_path):
    from hccr.evaluate import evaluate

    a = _pred([[0.5, 0.3, 0.2]], [0])
    with pytest.raises(HccrError, match=r"b: predictions of other samples than a's"):  # 'a' against 'b'
        evaluate(a, tmp_path / "r1", compare={"b": _pred([[0.4, 0.3, 0.2, 0.1]], [0], charset="bacd")}, name="a")
    # a model of more characters (a --keep-classes fine-tune, d new) against its source, on the same samples:
    # compared (it was refused), each scored on the samples of characters it knows, and the report says so
    src = _pred([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.3, 0.2]], [0, 1, -1])
    tuned = _pred([[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1], [0.1, 0.1, 0.1, 0.7]], [0, 1, 3], charset="abcd")
    res = evaluate(tuned, tmp_path / "r3", compare={"source": src}, name="tuned")
    assert res["table"]["tuned"]["count"] == 3 and res["table"]["source"]["count"] == 2
    assert res["table"]["source"]["top1"] == 1.0 and abs(res["table"]["tuned"]["top1"] - 2 / 3) < 1e-9
    assert "scored on the samples of characters it knows: tuned 3, source 2" in (tmp_path / "r3" / "report.md").read_text()
    unknown = _pred([[0.5, 0.3, 0.2]], [-1])
    unknown.meta.update(unknown_labels=1, unknown_chars="z")  # predicted on a store of characters it does not know
    with pytest.raises(HccrError, match="none of its 1 labelled images is of a character the model knows"):
        evaluate(unknown, tmp_path / "r2", name="u")


def test_a_report_that_fails_late_leaves_the_earlier_one_whole(tmp_path, monkeypatch):
    import hccr.evaluate as E

    pytest.importorskip("matplotlib")  # the failing step is the last plot, drawn only with hccr[plot]
    probs = [[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]]
    E.evaluate(_pred(probs, [0, 2]), tmp_path / "rep", name="first")
    before = {f.name: f.read_bytes() for f in (tmp_path / "rep").iterdir()}

    def broken(*a, **k):  # the last plot fails (a full disk, a Ctrl-C) after the table and the first plots
        raise OSError("No space left on device")

    monkeypatch.setattr(E, "_plot_reliability", broken)
    with pytest.raises(OSError):
        E.evaluate(_pred(probs, [1, 1]), tmp_path / "rep", name="second")
    assert {f.name: f.read_bytes() for f in (tmp_path / "rep").iterdir()} == before  # no hidden folder left either
    with pytest.raises(HccrError):  # nothing labelled: refused, and no empty folder made
        E.evaluate(_pred(probs, [-1, -1]), tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_the_demo_finds_the_real_data_where_hccr_data_says(tmp_path, monkeypatch):
    from hccr.quickstart import default_real, olhwdb_archive

    (tmp_path / "casia-hwdb-22" / "CASIA-HWDB_Test" / "Test").mkdir(parents=True)
    (tmp_path / "casia-olhwdb1.1-train.tar.xz").write_bytes(b"")
    monkeypatch.setenv("HCCR_DATA", str(tmp_path))
    assert default_real() == [str(tmp_path / "casia-hwdb-22" / "CASIA-HWDB_Test" / "Test")]
    assert olhwdb_archive().is_file()
    monkeypatch.setenv("HCCR_DATA", str(tmp_path / "elsewhere"))
    assert default_real() is None and not olhwdb_archive().exists()


@pytest.mark.slow
def test_quickstart_tiny_end_to_end(tmp_path):
    (tmp_path / "no-data").mkdir()  # HCCR_DATA names a folder without the real data: the demo says where it looked
    r = run_cli("quickstart", "--tiny", "--out", tmp_path / "qs", timeout=900, env={"HCCR_DATA": str(tmp_path / "no-data")})
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"no real handwriting found in {tmp_path / 'no-data'}" in r.stdout
    table = r.stdout.split("synthetic test writers:")[1]
    for row in ("fast-1", "fast-2", "fast-3", "ensemble (paper 0.3/0.2/0.5)", "ensemble (fitted)"):
        assert row in table
    assert "shipped gb2312 (6,763-way)" in r.stdout and "gb2312-synth (6,763-way)" in r.stdout  # both shipped models
    assert (tmp_path / "qs" / "report" / "report.md").exists()
    r = run_cli("evaluate", tmp_path / "qs" / "preds" / "ensemble-paper.test.npz", tmp_path / "qs" / "preds" / "fast-1.test.npz",
                "--out", tmp_path / "rep")
    assert r.returncode == 0 and "fast-1" in r.stdout
    assert r.stdout.index("ensemble-paper.test") < r.stdout.index("fast-1.test")  # in the order given
    assert (tmp_path / "rep" / "confusions.png").exists() or "confused examples" not in (tmp_path / "rep" / "report.md").read_text()
    r = run_cli("predict", tmp_path / "qs" / "models" / "fast-1", tmp_path / "qs" / "data" / "train", "--split", "val",
                "--out", tmp_path / "val.npz")
    assert r.returncode == 0, r.stderr
    r = run_cli("evaluate", tmp_path / "qs" / "preds" / "fast-1.test.npz", tmp_path / "val.npz",
                "--out", tmp_path / "rep2")  # predictions of other samples are not a comparison
    assert r.returncode == 2 and "other samples" in r.stderr and "Traceback" not in r.stderr
    from PIL import Image

    from hccr.data.store import Store

    Image.fromarray(255 - Store(tmp_path / "qs" / "data" / "test").images[0]).save(tmp_path / "x.png")
    r = run_cli("predict", tmp_path / "qs" / "models" / "fast-1", tmp_path / "x.png", "--topk", "3")
    assert r.returncode == 0, r.stderr
    line = [x for x in r.stdout.splitlines() if "x.png:" in x][0]
    assert len(line.split(":", 1)[1].split()) == 6  # three (character, probability) pairs
    r = run_cli("ensemble", tmp_path / "qs" / "preds" / "fast-1.test.npz", tmp_path / "qs" / "preds" / "fast-2.test.npz",
                "--out", tmp_path / "e.npz", "--weights", "1,x")
    assert r.returncode != 0 and "--weights must be numbers" in r.stderr
    # the ensemble file is the weighted average of its members' (the paper's 0.3/0.2/0.5 by default)
    preds = [tmp_path / "qs" / "preds" / f"fast-{k}.test.npz" for k in (1, 2, 3)]
    each = [Predictions.load(p).probs.astype(np.float64) for p in preds]
    for args, w in (([], (0.3, 0.2, 0.5)), (["--weights", "3,1,0"], (0.75, 0.25, 0.0))):
        r = run_cli("ensemble", *preds, "--out", tmp_path / "e.npz", *args)
        assert r.returncode == 0 and "accuracy: top1" in r.stdout, r.stderr
        got = Predictions.load(tmp_path / "e.npz")
        assert got.meta["weights"] == pytest.approx(w)
        assert np.abs(got.probs - sum(wk * p for wk, p in zip(w, each, strict=True))).max() < 1e-3  # float16 files
    r = run_cli("ensemble", *preds, "--out", tmp_path / "e.npz", "--fit", preds[0])
    assert r.returncode == 2 and "one validation file per member" in r.stderr


def test_only_big_runs_of_many_classes_are_halved(tmp_path, monkeypatch):
    from PIL import Image

    import hccr.runtime as rt

    assert rt.probs_dtype(100, 6763) == np.float32 and rt.probs_dtype(100_000, 6763) == np.float16
    assert rt.probs_dtype(100_000, 3000) == np.float32  # few classes: float32 costs little
    from hccr.data.charset import Charset
    from hccr.preprocess import InputSpec

    class Uniform(rt.BaseRecognizer):  # any recognizer of 9 classes: the same answer for every image
        charset, spec, identity = Charset("abcdefghi"), InputSpec(size=32, crops=1), {"name": "uniform"}

        def proba_normalized(self, x, crops):
            return np.full((len(x), 9), 1 / 9, np.float32)

    rec = Uniform()
    for i in range(5):
        img = np.full((40, 40), 255, np.uint8)
        img[10:30, 18:22] = 0  # a stroke
        Image.fromarray(img).save(tmp_path / f"{i}.png")
    monkeypatch.setattr(rt, "MANY_CLASSES", 4)
    monkeypatch.setattr(rt, "HALF_ABOVE", 9 * 3)  # halved once the run passes 3 images
    pred = rt.predict_inputs(rec, [str(tmp_path)], batch_size=2, progress=False)
    assert pred.probs.dtype == np.float16 and pred.probs.shape == (5, 9)  # every chunk halved, none promoted back


def test_metrics_stream_in_chunks_and_read_float16_files(tmp_path, monkeypatch):
    import hccr.evaluate as ev

    rng = np.random.default_rng(0)
    probs = rng.random((50, 9)).astype(np.float32)
    probs /= probs.sum(1, keepdims=True)
    labels = rng.integers(-1, 9, 50)
    ok = labels >= 0
    rank = (probs[ok] > probs[ok, labels[ok]][:, None]).sum(1)  # the definition, on the whole array
    monkeypatch.setattr(ev, "CHUNK", 7)  # many chunks, one ragged
    got = ev.topk_accuracy(probs, labels, ks=(1, 3))
    assert got == {"top1": float((rank < 1).mean()), "top3": float((rank < 3).mean())}
    assert ev.confusion_pairs(probs, labels)[0][2] >= 1
    p = Predictions(probs.astype(np.float16), "abcdefghi", labels.astype(np.int32),
                    np.array([f"store:{i}" for i in range(50)]), "x", {})
    p.save(tmp_path / "p.npz")
    back = Predictions.load(tmp_path / "p.npz")
    assert back.probs.dtype == np.float16  # kept half: 6,763 classes x 100,000 images = 1.35 GB, not 2.7
    assert ev.topk_accuracy(back.probs, back.labels, ks=(1,))["top1"] == pytest.approx(got["top1"], abs=0.05)


def test_temperature_fit_recovers_a_known_miscalibration_and_the_shipped_model_carries_one():
    from hccr.evaluate import calibration, fit_temperature
    from hccr.runtime import temper

    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, (4000, 10))
    p_true = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    labels = np.array([rng.choice(10, p=row) for row in p_true])  # labels drawn from the calibrated model
    over = temper(p_true, 0.5)  # the same model, overconfident (logits doubled)
    t = fit_temperature(over, labels)
    assert 1.8 < t < 2.2  # the fix undoes the doubling
    assert calibration(temper(over, t), labels)["ece"] < calibration(over, labels)["ece"] / 2
    import hccr

    assert 0.3 < hccr.load().temperature < 3 and hccr.load().temperature != 1.0  # fitted, recorded in the asset


def test_cli_calibrate_records_the_temperature_in_the_checkpoint(tiny_run, tiny_store, tmp_path):
    import json
    import shutil

    from conftest import run_cli

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    r = run_cli("calibrate", tiny_store, "--model", run, "--split", "all")
    assert r.returncode == 0, r.stderr
    import re

    t_said, before, after = map(float, re.search(r"temperature ([\d.]+): ECE ([\d.]+) uncalibrated \(T = 1\) -> ([\d.]+)", r.stdout).groups())
    assert after <= before  # the fitted temperature makes the confidences more honest on what it was fitted to
    t = json.loads((run / "best.json").read_text())["calibration"]["temperature"]
    assert Recognizer.from_checkpoint(run).temperature == t and t != 1.0 and abs(t - t_said) < 1e-3
    if importlib.util.find_spec("onnxruntime"):  # an export of the calibrated checkpoint answers as it does
        from hccr.runtime import OnnxRecognizer

        r = run_cli("export", run, "--out", tmp_path / "cal.onnx", "--crops", "1")
        assert r.returncode == 0, r.stderr
        onnx = OnnxRecognizer(tmp_path / "cal.onnx")
        imgs = [(np.random.default_rng(k).random((40, 40)) * 255).astype("uint8") for k in range(4)]
        assert onnx.temperature == t
        assert np.abs(onnx.predict_proba(imgs) - Recognizer.from_checkpoint(run).predict_proba(imgs, crops=1)).max() < 1e-4
        # a package calibrated through its .onnx file: its .json twin (what --model STEM and --init read) too
        assert run_cli("package", tiny_run, "--out", tmp_path / "pk").returncode == 0
        r = run_cli("calibrate", tiny_store, "--model", tmp_path / "pk.onnx", "--split", "all")
        assert r.returncode == 0 and f"wrote {tmp_path / 'pk.json'}" in r.stdout, r.stdout + r.stderr
        t_onnx = OnnxRecognizer(tmp_path / "pk.onnx").temperature
        assert json.loads((tmp_path / "pk.json").read_text())["calibration"]["temperature"] == t_onnx != 1.0
        # an .onnx file with an app's own JSON beside it (not an hccr checkpoint): the JSON is left as it was
        shutil.copy(tmp_path / "pk.onnx", tmp_path / "app.onnx")
        (tmp_path / "app.json").write_text('{"labels": "my app config"}')
        r = run_cli("calibrate", tiny_store, "--model", tmp_path / "app.onnx", "--split", "all")
        assert r.returncode == 0 and "app.json" not in r.stdout, r.stdout + r.stderr
        assert (tmp_path / "app.json").read_text() == '{"labels": "my app config"}'
    r = run_cli("calibrate", tmp_path, "--model", run, "--split", "train")  # a folder has no split to pick
    assert r.returncode == 2 and "--split train picks part of one store" in r.stderr


def test_paired_test_tells_a_real_difference_from_chance():
    from hccr.evaluate import paired_test

    right = np.ones(1000, bool)
    worse = right.copy()
    worse[:40] = False  # the second recognizer misses 40 samples the first reads
    assert paired_test(right, worse) == {"only_a": 40, "only_b": 0, "p": 0.0}
    swapped = worse.copy()
    swapped[40:80] = False
    swapped[:40] = True  # as many right only in each: no evidence either way
    tie = paired_test(worse, swapped)
    assert (tie["only_a"], tie["only_b"]) == (40, 40) and tie["p"] == 1.0
    a, b = np.r_[np.ones(128, bool), np.zeros(156, bool)], np.r_[np.zeros(128, bool), np.ones(156, bool)]
    assert paired_test(a, b)["p"] == 0.109  # 128 against 156: a small gap, not significant at 5%


def test_allowed_characters_are_characters_and_only_gb_names_are_names():
    from hccr.data.charset import Charset, resolve_charset
    from hccr.runtime import allowed_indices

    cs = Charset("0123456789X安宴")  # a model that reads digits (an ID number's) as well
    assert allowed_indices(cs, list("0123456789X")) == list(range(11))
    assert allowed_indices(cs, "X-1") == [1, 10]
    assert len(resolve_charset("GB2312-1")) == 3755  # a name in capitals is still the name
    with pytest.raises(HccrError, match="not a known name"):
        resolve_charset("gb9999")
