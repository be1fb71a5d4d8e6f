"""Damaged files and wrong options end in one line naming the file and the fix, never a traceback."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from hccr.checkpoint import load_checkpoint
from hccr.errors import HccrError


def _damaged(tiny_run, tmp_path, name, change):
    d = tmp_path / name
    shutil.copytree(tiny_run, d, ignore=shutil.ignore_patterns("last.*"))  # the loaded checkpoint is best.*
    change(d)
    return d


def _edit_meta(key_path, value):
    def change(d):
        meta = json.loads((d / "best.json").read_text())
        target = meta
        for k in key_path[:-1]:
            target = target[k]
        target[key_path[-1]] = value
        (d / "best.json").write_text(json.dumps(meta))
    return change


DAMAGE = {
    "truncated weights": (lambda d: (d / "best.safetensors").write_bytes((d / "best.safetensors").read_bytes()[:100]),
                          "do not match their recorded SHA-256"),
    "weights missing": (lambda d: (d / "best.safetensors").unlink(), "weights file missing"),
    "json not json": (lambda d: (d / "best.json").write_text("{oops"), "not valid JSON"),
    "json a list": (lambda d: (d / "best.json").write_text("[1, 2]"), "not an hccr checkpoint"),
    "charset too short": (_edit_meta(["charset"], "一人"), "field charset: has 2 characters for 4 classes"),
    "image size 0": (_edit_meta(["preprocessing", "image_size"], 0), "field preprocessing.image_size"),
    "absurd classes": (_edit_meta(["model_args", "num_classes"], 10**9), "field model_args.num_classes"),
    "no model_args": (_edit_meta(["model_args"], None), "field model_args: must be an object"),
    "unknown arch": (_edit_meta(["arch"], "nope"), "unknown model 'nope'"),
}

# Hostile but well-formed metadata: each bad field is named, in one line, before anything is allocated.
HOSTILE = {
    "temperature NaN": (["calibration"], {"temperature": float("nan")}, "calibration.temperature"),
    "temperature 0": (["calibration"], {"temperature": 0}, "calibration.temperature"),
    "temperature negative": (["calibration"], {"temperature": -1.5}, "calibration.temperature"),
    "temperature a string": (["calibration"], {"temperature": "hot"}, "calibration.temperature"),
    "huge widths": (["model_args", "widths"], [4096, 8192, 16384, 16384], "parameters (at most"),  # sized, not built
    "width of ten million": (["model_args", "stem"], 10**7, "model_args.stem"),
    "classes a string": (["model_args", "num_classes"], "four", "model_args.num_classes"),
    "classes a bool": (["model_args", "num_classes"], True, "model_args.num_classes"),
    "margin NaN": (["preprocessing", "margin"], float("nan"), "preprocessing.margin"),
    "crops 3": (["preprocessing", "crops"], 3, "preprocessing.crops"),
    "ink sideways": (["preprocessing", "ink"], "sideways", "preprocessing.ink"),
    "charset a list": (["charset"], ["一", "十", "口", "人"], "charset"),
    "charset repeats": (["charset"], "一十一人", "charset"),
    "digest not hex": (["weights_sha256"], "zz" * 32, "weights_sha256"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_checkpoint_metadata_names_the_file_and_the_field(tiny_run, tmp_path, name):
    keys, value, field = HOSTILE[name]
    d = _damaged(tiny_run, tmp_path, name.replace(" ", "-"), _edit_meta(keys, value))
    with pytest.raises(HccrError) as e:
        load_checkpoint(d)
    msg = str(e.value)
    assert "\n" not in msg and str(d / "best.json") in msg and field in msg, msg


def test_flipped_bits_in_the_weights_are_caught(tiny_run, tmp_path):
    import numpy as np

    d = _damaged(tiny_run, tmp_path, "flipped", lambda d: None)
    raw = bytearray((d / "best.safetensors").read_bytes())
    rng = np.random.default_rng(0)
    for pos in rng.integers(len(raw) // 2, len(raw), 12):  # in the tensor data, past the header
        raw[pos] ^= 1 << int(rng.integers(8))
    (d / "best.safetensors").write_bytes(bytes(raw))
    with pytest.raises(HccrError, match="do not match their recorded SHA-256"):
        load_checkpoint(d)
    load_checkpoint(tiny_run)  # the untouched copy loads


def test_nan_weights_are_refused_not_answered(tiny_run, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from hccr.integrity import sha256_file

    def poison(d):
        w = load_file(str(d / "best.safetensors"))
        key = next(k for k, v in w.items() if v.is_floating_point() and v.dim() == 4)
        w[key][0].fill_(float("nan"))
        save_file(w, str(d / "best.safetensors"))
        meta = json.loads((d / "best.json").read_text())
        meta["weights_sha256"] = sha256_file(d / "best.safetensors")  # written so: the digest matches
        (d / "best.json").write_text(json.dumps(meta))

    d = _damaged(tiny_run, tmp_path, "nan", poison)
    with pytest.raises(HccrError, match="NaN or infinite"):
        load_checkpoint(d)
    r = run_cli("predict", "--model", d, "-", timeout=120)
    assert r.returncode != 0 and "NaN or infinite" in r.stderr and "Traceback" not in r.stderr
    assert torch.isfinite(load_checkpoint(tiny_run)[0].state_dict()[next(iter(load_checkpoint(tiny_run)[0].state_dict()))]).all()


ONNX_HOSTILE = {
    "temperature NaN": ("temperature", "nan", "temperature"),
    "temperature 0": ("temperature", "0", "temperature"),
    "temperature negative": ("temperature", "-2", "temperature"),
    "input size huge": ("input_size", "99999999", "input_size"),
    "crops a word": ("crops", "five", "crops"),
    "preprocessing not JSON": ("preprocessing", "{oops", "preprocessing"),
    "weights NaN": ("weights", "[NaN]", "weights"),
    "charset empty": ("charset", "", "charset"),
    "digest mismatch": ("graph_sha256", "0" * 64, "graph_sha256"),
}


@pytest.fixture(scope="module")
def tiny_onnx(tiny_run, tmp_path_factory):
    from hccr.export import export_onnx

    return export_onnx([str(tiny_run)], tmp_path_factory.mktemp("onnx") / "m.onnx", crops=1)


@pytest.mark.parametrize("name", ONNX_HOSTILE)
def test_hostile_onnx_metadata_names_the_file_and_the_field(tiny_onnx, tmp_path, name):
    import onnx

    from hccr.runtime import OnnxRecognizer

    key, value, field = ONNX_HOSTILE[name]
    m = onnx.load(str(tiny_onnx))
    entry = next((e for e in m.metadata_props if e.key == key), None) or m.metadata_props.add()
    entry.key, entry.value = key, value
    path = tmp_path / "hostile.onnx"
    onnx.save(m, str(path))
    with pytest.raises(HccrError) as e:
        OnnxRecognizer(path)
    assert str(path) in str(e.value) and field in str(e.value), str(e.value)
    OnnxRecognizer(tiny_onnx)  # the original loads


def test_flipped_bits_in_an_onnx_graph_are_caught(tiny_onnx, tmp_path):
    import onnx
    from onnx import numpy_helper

    from hccr.runtime import OnnxRecognizer

    m = onnx.load(str(tiny_onnx))
    init = max(m.graph.initializer, key=lambda t: len(t.raw_data))
    arr = numpy_helper.to_array(init).copy()
    arr.reshape(-1)[:12] += 0.5  # changed answers, same shapes: only the digest tells
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    onnx.save(m, str(tmp_path / "flipped.onnx"))
    with pytest.raises(HccrError, match="graph_sha256"):
        OnnxRecognizer(tmp_path / "flipped.onnx")


@pytest.mark.parametrize("name", DAMAGE)
def test_damaged_checkpoints_are_one_line_errors(tiny_run, tmp_path, name):
    change, fragment = DAMAGE[name]
    d = _damaged(tiny_run, tmp_path, name.replace(" ", "-"), change)
    with pytest.raises(HccrError, match=fragment):
        load_checkpoint(d)


def test_cli_mistakes_are_one_line_errors(tiny_run, tiny_store, tmp_path):
    import numpy as np
    from PIL import Image

    from hccr.data.store import Store, store_view

    (tmp_path / "model.pt").write_bytes(b"\x80\x04")
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "lone").mkdir()  # a checkpoint copied out of its run folder
    for f in ("best.json", "best.safetensors"):
        (tmp_path / "lone" / f).write_bytes((tiny_run / f).read_bytes())
    (tmp_path / "empty").mkdir()
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "synth.json").write_text("")  # a settings record cut short (a full disk, an editor)
    (tmp_path / "run-cut").mkdir()
    (tmp_path / "run-cut" / "config.json").write_text('{"config": {')
    all_train = store_view(tiny_store, tmp_path / "all-train", np.zeros(len(Store(tiny_store)), np.uint8))
    ink = np.full((40, 40), 255, np.uint8)
    ink[10:30, 18:22] = 0
    (tmp_path / "unknown" / "安").mkdir(parents=True)
    for n in ("a", "b"):  # labelled images of a character tiny_run does not know
        Image.fromarray(ink).save(tmp_path / "unknown" / "安" / f"{n}.png")
    from hccr.data.store import ConvertOptions, convert

    for c in "安宴":  # a store of two other characters
        (tmp_path / "two" / c).mkdir(parents=True)
        for n in range(3):
            Image.fromarray(np.roll(ink, 3 * n + 5 * (c == "宴"), axis=1)).save(tmp_path / "two" / c / f"{n}.png")
    convert([str(tmp_path / "two")], tmp_path / "two-store", ConvertOptions(size=32), workers=1, progress=False)
    shutil.copytree(tiny_run, tmp_path / "run-copy")
    cases = [
        (["train", "--data", tmp_path / "unknown", "--out", tmp_path / "r1"], "packed into one by `hccr convert"),
        (["train", "--data", tmp_path / "nosuch", "--out", tmp_path / "r2"], "nosuch: no such store"),
        (["evaluate", "--model", tiny_run, tmp_path / "unknown", "--out", tmp_path / "r3"],
         "none of its 2 labelled images is of a character the model knows (安)"),
        (["predict", "--model", tmp_path / "model.pt", tiny_store], "pickled PyTorch file"),
        (["predict", "--model", tmp_path / "notes.txt", tiny_store], "notes.txt: not a checkpoint (expected"),
        (["average", tmp_path / "nosuch", tiny_run, "--out", tmp_path / "a"], "or gb2312 / gb2312-synth)"),
        (["export", tiny_run, "--out", tmp_path / "m.txt"], "an ONNX model's name ends in .onnx (e.g. m.onnx)"),
        (["evaluate", tmp_path / "p.npz", tiny_store], "prediction files (.npz) or labelled data to predict, not both"),
        (["ensemble", tmp_path / "notes.txt", tmp_path / "notes.txt", "--out", tmp_path / "e.npz"],
         "not an hccr predictions file (hccr predict --out FILE.npz writes one"),
        (["package", tmp_path / "lone" / "best.json", "--out", tmp_path / "pk", "--divide-prior"],
         "no config.json beside it names its training store"),
        (["package", "gb2312", "--out", tmp_path / "pk", "--divide-prior"], "gb2312 is a shipped model, packaged"),
        (["predict", "--model", tiny_run, tiny_store, "--split", "test"], "'test' is not one of"),
        (["show", tiny_store, "--n", "0"], "--n must be at least 1"),
        (["train", "--data", tiny_store, "--out", tmp_path / "r", "--device", "cuda:7"], "--device cuda:7"),
        (["predict", "--model", tiny_run, tiny_store, "--device", "cuda:7"], "--device cuda:7"),  # not 'damaged weights'
        (["predict", "--model", tiny_run, tiny_store, "--device", "bogus"], "not a device name"),
        (["package", tiny_run, "--out", tmp_path / "p", "--prior-power", "0.5"], "--prior-power needs --divide-prior"),
        (["convert", tiny_store, tmp_path / "s1", "--pen-spread", "-0.3"], "--pen-spread must be 0 or more"),
        (["convert", tiny_store, tmp_path / "s2", "--pen-width", "0"], "--pen-width must be above 0"),
        (["convert", tiny_store, tmp_path / "s3", "--val-every", "-1"], "--val-every must be at least 2, got -1"),
        (["convert", tiny_store, tmp_path / "s3", "--margin", "0.9"], "--margin must be a fraction"),
        (["synth", tmp_path / "syn", "--chars", "安", "--size", "-3"], "--size must be above 0"),
        (["synth", tmp_path / "syn", "--chars", "安", "--font-fraction", "2"], "--font-fraction must be a share"),
        (["show", all_train, "--split", "val", "--out", tmp_path / "g.png"], "no samples in split 'val'"),
        (["export", tiny_run, tiny_run, "--out", tmp_path / "e.onnx", "--weights", "a,b"], "--weights must be numbers"),
        (["export", tiny_run, tiny_run, "--out", tmp_path / "e.onnx", "--weights", "inf,1"], "weights must be finite"),
        (["ensemble", tmp_path / "p.npz", tmp_path / "p.npz", "--out", tmp_path / "ens"], "name ends in .npz"),
        (["ensemble", tmp_path / "p.npz", tmp_path / "p.npz", "--out", tmp_path / "e.npz", "--weights", "1,1",
          "--fit", tmp_path / "p.npz", "--fit", tmp_path / "p.npz"], "--weights and --fit both set"),
        (["serve", "--port", "99999"], "a port is a number from 0 to 65535"),
        (["show", tiny_store, "--out", tmp_path], f"{tmp_path}: is a folder; give a file name"),
        (["synth", tmp_path / "syn", "--chars", "安", "--writers", "0"], "--writers 0: give at least 1"),
        (["quickstart", "--minutes", "-1", "--out", tmp_path / "qs"], "--minutes must be above 0"),
        (["quickstart", "--real", tmp_path / "empty", "--out", tmp_path / "qs"], "an empty folder"),
        (["predict", "--model", tiny_run, tiny_store, "--batch-size", "0"], "--batch-size must be at least 1"),
        (["predict", "--model", tiny_run, tiny_store, tiny_store], "a packed store is read on its own"),
        (["predict", "--model", tiny_run, tmp_path / "two", "--split", "val"], "--split val picks part of one store"),
        (["info", tiny_run], "a model, not a store of samples"),
        (["synth", tmp_path / "syn", "--chars", "安", "--style", "learned", "--preview", tmp_path / "p.png"],
         "--preview is not available with --style learned"),
        (["synth", "--fit", Path(__file__).parent / "data", "--style-out", tmp_path / "bank.npz"],
         "a component bank lends a stroke only where 3 real writers wrote it"),
        (["serve", "--workers", "0"], "--workers: must be above 0"),
        (["serve", "gb2312", "--model", "gb2312-synth"], "two models; give one"),
        (["synth", tmp_path / "cut", "--chars", "安"], f"{tmp_path / 'cut' / 'synth.json'}: damaged file (not valid JSON"),
        (["train", "--data", tiny_store, "--out", tmp_path / "run-cut", "--resume"], "config.json: damaged file"),
        (["train", "--data", tiny_store, "--out", tmp_path / "run-copy", "--resume", "--preset", "paper-1"],
         "--resume continues"),
        (["train", "--data", tmp_path / "two-store", "--out", tmp_path / "run-copy", "--resume"],
         "holds 2 characters: resume with the run's store"),
    ]
    for args, fragment in cases:
        r = run_cli(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr)
        assert fragment in r.stderr, (args, r.stderr)
    assert not (tmp_path / "s3.partial").exists()  # refused before converting anything
    import socket

    with socket.socket() as busy:  # a port another server holds: one line, before the model loads
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = run_cli("serve", "--port", str(busy.getsockname()[1]))
    assert r.returncode == 2 and "cannot listen there" in r.stderr and "INFO" not in r.stderr, r.stderr
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("hccr ")


@pytest.mark.parametrize("damage, fragment", [
    (lambda d: (d / "images.npy").write_bytes((d / "images.npy").read_bytes()[:200]), "damaged store"),
    (lambda d: (d / "labels.npy").unlink(), "damaged store"),
    (lambda d: (d / "manifest.json").write_text("{nope"), "damaged store"),
    (lambda d: (d / "charset.txt").write_text("一", encoding="utf-8"), "labels beyond"),
])
def test_damaged_stores_are_one_line_errors(tiny_store, tmp_path, damage, fragment):
    d = tmp_path / "store"
    shutil.copytree(tiny_store, d)
    damage(d)
    r = run_cli("info", d)
    assert r.returncode == 2 and "Traceback" not in r.stderr and fragment in r.stderr, r.stderr


def test_benchmark_with_a_missing_model_file_says_so_in_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    missing = tmp_path / "candidate.onnx"
    r = subprocess.run([sys.executable, "-m", "benchmarks", "shipped", "--model", str(missing)],
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.strip() == f"error: {missing}: no such ONNX file"


def test_outputs_are_what_their_names_say_and_errors_leave_nothing(tiny_run, tiny_store, tmp_path):
    import numpy as np
    from PIL import Image

    assert run_cli("show", tiny_store, "--out", tmp_path / "grid.jpg").returncode == 0
    assert Image.open(tmp_path / "grid.jpg").format == "JPEG"  # not PNG data under a .jpg name
    (tmp_path / "flat").mkdir()
    img = np.full((40, 40), 255, np.uint8)
    img[10:30, 18:22] = 0
    Image.fromarray(img).save(tmp_path / "flat" / "a.png")
    r = run_cli("predict", "--model", tiny_run, tmp_path / "flat", "--out", tmp_path / "p")  # no .npz: evaluate could
    assert r.returncode == 2 and "p.npz" in r.stderr and not (tmp_path / "p").exists()  # not tell it from an image
    assert run_cli("predict", "--model", tiny_run, tmp_path / "flat", "--out", tmp_path / "p.npz").returncode == 0
    r = run_cli("evaluate", tmp_path / "p.npz", "--out", tmp_path / "rep")  # no labels: nothing to evaluate
    assert r.returncode == 2 and "no labelled samples" in r.stderr and not (tmp_path / "rep").exists()
    r = run_cli("evaluate", "--model", tiny_run, tmp_path / "flat", "--out", tmp_path / "rep")  # the same, from images
    assert r.returncode == 2 and "flat: no labelled samples" in r.stderr and not (tmp_path / "rep").exists()


def test_package_never_replaces_a_model_unasked(tiny_run, tmp_path):
    assert run_cli("package", tiny_run, "--out", tmp_path / "m").returncode == 0
    (tmp_path / "m.onnx").write_bytes(b"a calibrated model of the user's")
    r = run_cli("package", tiny_run, "--out", tmp_path / "m")
    assert r.returncode == 2 and "already packaged there; --overwrite replaces it" in r.stderr
    assert (tmp_path / "m.onnx").read_bytes() == b"a calibrated model of the user's"
    assert run_cli("package", tiny_run, "--out", tmp_path / "m", "--overwrite").returncode == 0
    assert (tmp_path / "m.onnx").stat().st_size > 1000


def test_a_failed_write_names_the_users_file_and_leaves_nothing(tmp_path):
    import errno

    from hccr.utils import atomic_path

    with pytest.raises(OSError) as e, atomic_path(tmp_path / "p.npz") as tmp:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert e.value.filename == str(tmp_path / "p.npz") and e.value.errno == errno.ENOSPC  # not ".p.npz.tmp-PID"
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "char.png").write_bytes(b"x")
    r = run_cli("evaluate", tmp_path / "nothing.npz", "--out", tmp_path / "char.png")
    assert r.returncode == 2 and "char.png: is a file; the report is a folder" in r.stderr


def test_evaluate_scores_the_part_of_a_store_asked_for(tiny_run, tiny_store, tmp_path):
    from hccr.data.store import Store

    n_val, n_all = len(Store(tiny_store).indices("val")), len(Store(tiny_store))
    r = run_cli("evaluate", "--model", tiny_run, tiny_store, "--out", tmp_path / "all")
    assert r.returncode == 0 and "--split val scores the held-out ones alone" in r.stderr  # training samples in it
    assert f"{n_all} labelled samples" in (tmp_path / "all" / "report.md").read_text(encoding="utf-8")
    r = run_cli("evaluate", "--model", tiny_run, tiny_store, "--split", "val", "--out", tmp_path / "val")
    assert r.returncode == 0 and "--split val" not in r.stderr, r.stderr
    assert f"(val split), {n_val} labelled samples" in (tmp_path / "val" / "report.md").read_text(encoding="utf-8")
    assert 0 < n_val < n_all
    r = run_cli("evaluate", tmp_path / "val" / "predictions.npz", "--split", "val")
    assert r.returncode == 2 and "--split" in r.stderr  # prediction files have no parts to pick
    # two runs' predictions.npz, compared: each row is its own model, named by its folder; no split for files
    import shutil

    (tmp_path / "again").mkdir()
    shutil.copy(tmp_path / "val" / "predictions.npz", tmp_path / "again" / "predictions.npz")
    r = run_cli("evaluate", tmp_path / "val" / "predictions.npz", tmp_path / "again" / "predictions.npz",
                "--out", tmp_path / "both")
    assert r.returncode == 0, r.stderr
    report = (tmp_path / "both" / "report.md").read_text(encoding="utf-8")
    assert "| val/predictions |" in report and "| again/predictions |" in report
