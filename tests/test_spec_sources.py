"""One input spec and one data-source protocol: what convert, train, predict and export share."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli

from hccr.errors import HccrError
from hccr.preprocess import InputSpec


def test_input_spec_round_trips_through_metadata_and_refuses_nonsense():
    spec = InputSpec(64, "dark", 0.05, 5)
    assert InputSpec.from_meta(spec.to_meta()) == spec
    assert (spec.side(), spec.side(1)) == (70, 64)
    assert spec.boxes() == [(3, 3), (0, 0), (0, 6), (6, 0), (6, 6)] and spec.boxes(1) == [(0, 0)]
    # Older checkpoints have no crops or margin: five crops, no margin.
    assert InputSpec.from_meta({"image_size": 32, "ink": "high"}) == InputSpec(32, "high", 0.0, 5)
    for bad, msg in (({"size": 4}, "input size"), ({"size": 64, "ink": "red"}, "ink"),
                     ({"size": 64, "margin": 0.6}, "margin"), ({"size": 64, "crops": 3}, "crops")):
        with pytest.raises(HccrError, match=msg):
            InputSpec(**bad)


def test_one_cleaning_gives_the_batch_and_the_several_characters_flag():
    """A word (two blocks side by side) is flagged and a single block is not, on the very images
    the batch holds; a photo-sized image is shrunk before it is cleaned."""
    from hccr.runtime import several_characters

    word = np.full((60, 200), 255, np.uint8)
    word[10:50, 10:80] = word[10:50, 120:190] = 0
    one = np.full((60, 60), 255, np.uint8)
    one[10:50, 15:45] = 0
    photo = np.kron(one, np.ones((40, 40), np.uint8))  # 2,400 px square
    spec = InputSpec(32)
    x, several = spec.batch_checked([word, one, photo], crops=1)
    assert several.tolist() == [True, False, False] == several_characters([word, one, photo])
    assert np.array_equal(x, spec.batch([word, one, photo], crops=1)) and x.shape == (3, 1, 32, 32)
    assert np.abs(x[1] - x[2]).mean() < 0.01  # the big copy frames like the small one


def test_checkpoint_torch_and_onnx_recognizers_share_one_spec(tiny_run, tmp_path):
    pytest.importorskip("onnxruntime")
    from hccr.export import export_onnx
    from hccr.predict import Recognizer
    from hccr.runtime import OnnxRecognizer

    meta = json.loads((tiny_run / "best.json").read_text())
    rec = Recognizer.from_checkpoint(tiny_run)
    assert rec.spec == InputSpec.from_meta(meta["preprocessing"]) == InputSpec(32, "high", 0.0, 5)
    onnx = OnnxRecognizer(export_onnx([str(tiny_run)], tmp_path / "m.onnx", crops=1))
    # The graph flips polarity itself, so its input spec differs from the checkpoint's in crops only.
    assert onnx.spec == rec.spec.with_(crops=1)
    img = np.full((50, 30), 255, np.uint8)
    img[10:40, 12:18] = 0
    assert np.allclose(onnx.predict_proba([img]), rec.predict_proba([img], crops=1), atol=1e-4)


def test_predict_reads_gnt_records_with_their_labels_exactly_as_convert_stores_them(tiny_run, tiny_store):
    from hccr.data.store import Store
    from hccr.predict import Recognizer, predict_inputs

    rec = Recognizer.from_checkpoint(tiny_run)
    gnt = tiny_store.parent / "gnt"
    files = predict_inputs(rec, [str(gnt)], crops=1, progress=False)
    packed = predict_inputs(rec, [str(tiny_store)], crops=1, progress=False)
    st = Store(tiny_store)
    assert len(files.labels) == len(st.labels) == 320 and (files.labels >= 0).all()
    assert all("#" in i and i.split("#")[0].endswith(".gnt") for i in files.ids)
    # Same samples, same framing: the two routes agree image for image.
    order = np.argsort(packed.labels, kind="stable"), np.argsort(files.labels, kind="stable")
    assert (packed.labels[order[0]] == files.labels[order[1]]).all()
    agree = (packed.probs.argmax(1) == packed.labels).mean(), (files.probs.argmax(1) == files.labels).mean()
    assert abs(agree[0] - agree[1]) < 0.02


def test_cli_predicts_a_gnt_file_and_a_glob_of_them(tiny_run, tiny_store, tmp_path):
    gnt = sorted((tiny_store.parent / "gnt").rglob("*.gnt"))
    r = run_cli("predict", "--model", tiny_run, str(gnt[0]), "--format", "jsonl", "--out", tmp_path / "p.npz")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert rows and all(row["file"].startswith(str(gnt[0]) + "#") for row in rows)
    assert "accuracy on" in r.stderr  # labelled records: an accuracy line
    r = run_cli("predict", "--model", tiny_run, str(tiny_store.parent / "gnt" / "**" / "*.gnt"), "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert len([ln for ln in r.stdout.splitlines() if ".gnt#" in ln]) == 320


def test_conversion_inverts_light_on_dark_images_as_prediction_does(tmp_path):
    from PIL import Image

    from hccr.data.store import ConvertOptions, Store, convert

    for name, flip in (("dark", False), ("light", True)):
        for ch in "一二":
            (tmp_path / name / ch).mkdir(parents=True)
            for k in range(3):
                img = np.full((40, 40), 255, np.uint8)
                img[8 + 4 * k : 12 + 4 * k, 5:35] = 20 + 10 * k if ch == "一" else 30
                Image.fromarray(255 - img if flip else img).save(tmp_path / name / ch / f"{k}.png")
        convert([str(tmp_path / name)], tmp_path / f"{name}-store", ConvertOptions(size=32), workers=1,
                progress=False)
    dark, light = Store(tmp_path / "dark-store"), Store(tmp_path / "light-store")
    assert np.array_equal(np.asarray(dark.images), np.asarray(light.images))


def test_a_folder_of_loose_images_and_char_folders_is_read_whole_or_said_to_be_cut(tmp_path, capsys):
    from PIL import Image

    from hccr.data.images import scan_image_folder
    from hccr.data.sources import plan_units

    img = np.full((40, 40), 255, np.uint8)
    img[18:22, 5:35] = 0
    (tmp_path / "mixed" / "一").mkdir(parents=True)
    Image.fromarray(img).save(tmp_path / "mixed" / "loose.png")
    Image.fromarray(img).save(tmp_path / "mixed" / "一" / "0.png")
    # predict reads both: the loose image unlabelled, the folder's labelled
    files = [f for u in plan_units([str(tmp_path / "mixed")], labelled=False) for f in u.files]
    assert sorted((p.split("/")[-1], c) for p, c in files) == [("0.png", "一"), ("loose.png", None)]
    assert capsys.readouterr().err == ""
    # convert can only learn from labelled images: the loose one is named as left out
    assert [it.char for it in scan_image_folder(tmp_path / "mixed")] == ["一"]
    assert "1 image(s) beside the <char>/ folders (e.g. loose.png)" in capsys.readouterr().err
    (tmp_path / "flat").mkdir()
    Image.fromarray(img).save(tmp_path / "flat" / "a.png")
    with pytest.raises(HccrError, match="1 image\\(s\\) without labels.*hccr predict"):
        scan_image_folder(tmp_path / "flat")
