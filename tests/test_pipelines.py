"""`hccr predict` as users drive it: flat folders, globs, stdin, --format, --on-error, unknown labels."""

import csv
import io
import json
import subprocess
import sys

import pytest
from conftest import run_cli
from PIL import Image

from hccr.report import glyph


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    flat = root / "flat"
    flat.mkdir()
    for i, ch in enumerate("永国"):
        Image.fromarray(glyph(ch, 64)).save(flat / f"{i}.png")
    (flat / "2.png").write_bytes(b"not a png at all")
    labelled = root / "labelled"
    for ch in "永国宬":  # 宬 is not a GB2312 character: the shipped model cannot know it
        (labelled / ch).mkdir(parents=True)
        Image.fromarray(glyph("安" if ch == "宬" else ch, 64)).save(labelled / ch / "1.png")
    return flat, labelled


def test_flat_folder_stops_on_a_bad_image_or_skips_and_counts_it(folders):
    flat, _ = folders
    r = run_cli("predict", flat)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "2.png" in r.stderr and "--on-error skip" in r.stderr
    r = run_cli("predict", flat, "--on-error", "skip", "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["top"][0]["char"] for row in rows] == ["永", "国"]
    assert rows[0]["file"].endswith("0.png") and len(rows[0]["top"]) == 5
    assert "skipped 1 unreadable image" in r.stderr


def test_glob_and_stdin_and_csv(folders):
    flat, _ = folders
    r = run_cli("predict", str(flat / "[01].png"), "--format", "csv", "--topk", "2")
    assert r.returncode == 0, r.stderr
    table = list(csv.reader(io.StringIO(r.stdout)))
    assert table[0] == ["file", "char1", "prob1", "char2", "prob2"] and [t[1] for t in table[1:]] == ["永", "国"]
    paths = f"{flat / '1.png'}\n{flat / '0.png'}\n"
    p = subprocess.run([sys.executable, "-m", "hccr.cli", "predict", "-", "--format", "jsonl"], input=paths,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert [json.loads(line)["top"][0]["char"] for line in p.stdout.splitlines()] == ["国", "永"]
    # a path on stdin that is not there is a bad sample like an unreadable one: --on-error skip goes on
    p = subprocess.run([sys.executable, "-m", "hccr.cli", "predict", "-", "--format", "jsonl", "--on-error", "skip"],
                       input=paths + f"{flat / 'gone.png'}\n", capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and len(p.stdout.splitlines()) == 2 and "gone.png" in p.stderr, p.stderr
    r = run_cli("predict", str(flat / "*.jpg"))
    assert r.returncode == 2 and "no image file matches" in r.stderr


def test_images_of_unknown_characters_are_counted_not_dropped(folders):
    _, labelled = folders
    r = run_cli("predict", labelled)
    assert r.returncode == 0, r.stderr
    assert "1 of 3 labelled images are of characters the model does not know (宬)" in r.stdout
    assert r.stdout.strip().splitlines()[-1].startswith("accuracy on 2 images: top1 1.0000")  # last, left in view
    r = run_cli("predict", labelled, "--out", labelled.parent / "u.npz")
    assert run_cli("evaluate", labelled.parent / "u.npz", "--out", labelled.parent / "rep").returncode == 0
    report = (labelled.parent / "rep" / "report.md").read_text()
    assert "1 more are of characters the model does not know (宬)" in report
    assert "split)" not in report  # image folders have no splits to name


def test_an_image_of_a_word_gets_a_warning_or_with_strict_an_error(tmp_path):
    import numpy as np

    cells = []
    for ch in "你好":
        g, cell = glyph(ch, 64), np.full((70, 70), 255, np.uint8)
        cell[: g.shape[0], : g.shape[1]] = g
        cells.append(cell)
    Image.fromarray(np.concatenate(cells, 1)).save(tmp_path / "word.png")
    Image.fromarray(glyph("一", 64)).save(tmp_path / "one.png")  # wide, but one character
    r = run_cli("predict", tmp_path / "word.png", tmp_path / "one.png")
    assert r.returncode == 0, r.stderr
    assert "1 image(s) look like several characters" in r.stderr and "word.png" in r.stderr
    r = run_cli("predict", tmp_path / "word.png", "--strict")
    assert r.returncode == 2 and "crop each character first" in r.stderr
    (tmp_path / "labelled" / "好").mkdir(parents=True)  # its label says one character: no warning, --strict reads it
    (tmp_path / "word.png").rename(tmp_path / "labelled" / "好" / "1.png")
    r = run_cli("predict", tmp_path / "labelled", "--strict")
    assert r.returncode == 0 and "several" not in r.stderr, r.stderr
    (tmp_path / "labelled" / "好" / "1.png").rename(tmp_path / "word.png")
    with pytest.warns(UserWarning, match="several characters"):
        import hccr

        hccr.load().predict(str(tmp_path / "word.png"))
