"""Damaged files and wrong options end in one line naming the file and the fix, never a traceback."""

import json
import shutil

import pytest
from conftest import run_cli

from hccr.checkpoint import load_checkpoint
from hccr.errors import HccrError


def _damaged(tiny_run, tmp_path, name, change):
    d = tmp_path / name
    shutil.copytree(tiny_run, d)
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
                          "damaged weights file"),
    "weights missing": (lambda d: (d / "best.safetensors").unlink(), "weights file missing"),
    "json not json": (lambda d: (d / "best.json").write_text("{oops"), "not valid JSON"),
    "json a list": (lambda d: (d / "best.json").write_text("[1, 2]"), "not an hccr checkpoint"),
    "charset too short": (_edit_meta(["charset"], "一人"), "2 characters for 4 classes"),
    "image size 0": (_edit_meta(["preprocessing", "image_size"], 0), "image size 0"),
    "absurd classes": (_edit_meta(["model_args", "num_classes"], 10**9), "1000000000 classes"),
    "no model_args": (_edit_meta(["model_args"], None), "damaged checkpoint metadata"),
    "unknown arch": (_edit_meta(["arch"], "nope"), "unknown model 'nope'"),
}


@pytest.mark.parametrize("name", DAMAGE)
def test_damaged_checkpoints_are_one_line_errors(tiny_run, tmp_path, name):
    change, fragment = DAMAGE[name]
    d = _damaged(tiny_run, tmp_path, name.replace(" ", "-"), change)
    with pytest.raises(HccrError, match=fragment):
        load_checkpoint(d)


def test_cli_mistakes_are_one_line_errors(tiny_run, tiny_store, tmp_path):
    (tmp_path / "model.pt").write_bytes(b"\x80\x04")
    cases = [
        (["predict", "--model", tmp_path / "model.pt", tiny_store], "pickled PyTorch file"),
        (["predict", "--model", tiny_run, tiny_store, "--split", "test"], "'test' is not one of"),
        (["show", tiny_store, "--n", "0"], "--n must be at least 1"),
        (["train", "--data", tiny_store, "--out", tmp_path / "r", "--device", "cuda:7"], "--device cuda:7"),
        (["package", tiny_run, "--out", tmp_path / "p", "--prior-power", "0.5"], "--prior-power needs --divide-prior"),
    ]
    for args, fragment in cases:
        r = run_cli(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (args, r.stderr)
        assert fragment in r.stderr, (args, r.stderr)
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
