import json

import numpy as np
import pytest
from conftest import REAL, needs_real, random_samples, run_cli
from PIL import Image

from hccr.data import store as store_mod
from hccr.data.gnt import encode_record, write_gnt
from hccr.data.store import ConvertOptions, Store, convert
from hccr.errors import HccrError
from hccr.preprocess import normalize


def _writers(tmp_path, n_writers=4, per=25):
    for w in range(n_writers):
        write_gnt(tmp_path / "src" / f"{100 + w}-c.gnt", random_samples(per, seed=w))
    return tmp_path / "src"


def test_store_round_trip(tmp_path):
    src = _writers(tmp_path)
    res = convert([str(src)], tmp_path / "st", ConvertOptions(size=32, val_fraction=0.5, split_by_writer=True),
                  progress=False)
    s = Store(res.path)
    assert len(s) == 100 and s.size == 32
    assert s.writer_names == ["100-c", "101-c", "102-c", "103-c"]
    assert set(np.unique(s.writers[s.split == 1])).isdisjoint(np.unique(s.writers[s.split == 0]))
    img, ch = random_samples(25, seed=2)[7]
    i = np.flatnonzero(s.writers == 2)[7]
    assert s.charset[int(s.labels[i])] == ch
    np.testing.assert_array_equal(s.images[i], normalize(img, 32))
    assert tuple(s.sizes[i]) == img.shape
    assert s.manifest["count"] == 100 and s.manifest["classes"] == len(s.charset)


@pytest.mark.parametrize("opts, what", [
    (dict(split_by_writer=True), "--split-by-writer holds out a fraction of the writers: give it with --val-fraction"),
    (dict(val_writers=("101-c",), val_fraction=0.5), "--val-writers and --val-fraction: give one way"),
    (dict(val_every=2, val_writers=("101-c",)), "--val-writers and --val-every: give one way"),
])
def test_split_options_that_would_do_something_else_are_refused(tmp_path, opts, what):
    """--split-by-writer alone held out nobody (training then split samples at random, mixing writers); one rule
    silently overrode another."""
    with pytest.raises(HccrError, match=what):
        convert([str(_writers(tmp_path))], tmp_path / "st", ConvertOptions(size=32, **opts), progress=False)
    assert not (tmp_path / "st").exists()


def test_normalize_keeps_aspect_and_inverts():
    img = np.full((40, 20), 255, np.uint8)
    img[1:-1, 1:-1] = 0  # a tall block of ink on white paper
    out = normalize(img, 32)
    assert out.shape == (32, 32)
    assert out[:, 16].min() > 200 and out[16, 0] == 0 and out[16, -1] == 0  # ink high, padded left/right


def test_charset_filter_and_limit(tmp_path):
    src = _writers(tmp_path, 2)
    res = convert([str(src)], tmp_path / "st", ConvertOptions(charset="安宁家", limit=5), progress=False)
    s = Store(res.path)
    assert list(s.charset) == ["安", "宁", "家"] and len(s) == 5
    assert s.manifest["skipped"]["not in charset"] > 0


def test_a_conversion_stopped_at_its_last_step_is_moved_into_place_on_rerun(tmp_path, capsys):
    """Killed while the finished store replaced the old one (old manifest gone, the new store complete in
    OUT.partial): every command refused the path, --overwrite too, and the new store was stranded. Killed at the last
    rename: the rerun said "begun by another hccr version" and --overwrite converted everything again."""
    import shutil

    src = _writers(tmp_path, 3)
    out = tmp_path / "st"
    first = convert([str(src)], out, workers=1, progress=False)
    shutil.copytree(out, tmp_path / "st.partial")  # the new store, complete
    (out / "manifest.json").unlink()  # the old one half removed
    again = convert([str(src)], out, workers=1, progress=False, overwrite=True)
    assert "now in place" in capsys.readouterr().err and not (tmp_path / "st.partial").exists()
    assert again.count == first.count == len(Store(out))
    shutil.move(out, tmp_path / "st.partial")  # killed at the last rename: nothing at OUT yet
    assert convert([str(src)], out, workers=1, progress=False).count == first.count  # no --overwrite needed
    assert len(Store(out)) == first.count


def test_a_disk_too_full_for_the_store_is_said_before_its_images_are_written(tmp_path, monkeypatch):
    """The images are written through a memory map, and a disk that filled under it killed convert with "Bus error"
    and nothing printed; the rerun after freeing space resumes from the converted chunks."""
    import shutil
    from collections import namedtuple

    src = _writers(tmp_path, 3)
    usage, real = namedtuple("usage", "total used free"), shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(HccrError, match=r"images.npy: the store's images need .* MB and the disk has 0.0 MB free"):
        convert([str(src)], tmp_path / "st", workers=1, progress=False)
    monkeypatch.setattr(shutil, "disk_usage", real)
    res = convert([str(src)], tmp_path / "st", workers=1, progress=False)
    assert res.count == len(Store(tmp_path / "st")) > 0


def test_interrupted_conversion_resumes(tmp_path, monkeypatch):
    src = _writers(tmp_path, 5)
    out = tmp_path / "st"
    real_run = store_mod.run_unit
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed half-way
        return real_run(*a, **k)

    monkeypatch.setattr(store_mod, "run_unit", flaky)
    with pytest.raises(KeyboardInterrupt):
        convert([str(src)], out, workers=1, progress=False)
    assert not (out / "manifest.json").exists()  # nothing that looks complete
    with pytest.raises(HccrError, match="unfinished conversion"):
        Store(out)
    with pytest.raises(HccrError, match="with other size"):  # what differs, not "rerun with the same arguments"
        convert([str(src)], out, ConvertOptions(size=32), workers=1, progress=False)
    write_gnt(src / "199-c.gnt", random_samples(3, seed=9))
    with pytest.raises(HccrError, match="the files in its sources have changed since"):
        convert([str(src)], out, workers=1, progress=False)
    (src / "199-c.gnt").unlink()
    calls["n"] = -100
    res = convert([str(src)], out, workers=1, progress=False)
    assert calls["n"] == -100 + 3  # only the 3 missing units were converted again
    ref = convert([str(src)], tmp_path / "ref", workers=1, progress=False)
    a, b = Store(res.path), Store(ref.path)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not out.with_name("st.partial").exists()


def test_bad_samples_skipped_or_stopped(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    good = b"".join(encode_record(i, c) for i, c in random_samples(6))
    (src / "1-c.gnt").write_bytes(good + b"\x05\x00")  # trailing garbage: truncated record
    res = convert([str(src)], tmp_path / "a", progress=False)
    assert res.count == 6
    mf = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert mf["skipped"] == {"truncated record": 1}
    assert "1-c.gnt" in mf["problems"][0]["path"]
    with pytest.raises(HccrError, match="truncated record.*stopped"):
        convert([str(src)], tmp_path / "b", ConvertOptions(on_error="stop"), progress=False)


def test_nothing_usable_exits_nonzero(tmp_path):
    (tmp_path / "imgs" / "安").mkdir(parents=True)
    (tmp_path / "imgs" / "安" / "1.png").write_text("garbage")
    r = run_cli("convert", tmp_path / "imgs", tmp_path / "out")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "1.png: not an image" in r.stderr
    assert "no usable samples" in r.stderr.splitlines()[-1]
    (tmp_path / "empty").mkdir()
    r = run_cli("convert", tmp_path / "empty", tmp_path / "out2")
    assert r.returncode != 0 and "no images found" in r.stderr and "Traceback" not in r.stderr


def test_image_folder_with_a_corrupt_file(tmp_path):
    for ch in "安宁":
        (tmp_path / "imgs" / ch).mkdir(parents=True)
        for k in range(3):
            img = np.full((30, 20), 255 - 40 * k, np.uint8)
            img[14:16, 2:18] = 0  # a stroke: blank images are skipped as such
            Image.fromarray(img).save(tmp_path / "imgs" / ch / f"{k}.png")
    (tmp_path / "imgs" / "安" / "9.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    res = convert([str(tmp_path / "imgs")], tmp_path / "st", progress=False)
    assert res.count == 6 and sum(res.skipped.values()) == 1
    # Each sample names the file it came from (the audit points users to it); the broken one is gone.
    s = Store(res.path)
    ids = s.sample_ids()
    assert len(ids) == 6 and not any(i.endswith("9.png") for i in ids)
    for i, sid in enumerate(ids):
        assert s.charset[int(s.labels[i])] == sid.split("/")[-2]
        assert tuple(s.sizes[i]) == (30, 20)


def test_sample_sources_stay_aligned_when_samples_are_filtered(tmp_path):
    src = _writers(tmp_path, 2)
    s = Store(convert([str(src)], tmp_path / "st", ConvertOptions(charset="安宁家"), progress=False).path)
    ids = s.sample_ids()
    assert len(ids) == len(s) > 0
    for i, sid in enumerate(ids):  # FILE#k: the k-th record of that .gnt file holds this label
        path, k = sid.rsplit("#", 1)
        assert random_samples(25, seed=int(path[-9:-6]) - 100)[int(k)][1] == s.charset[int(s.labels[i])]
    (s.path / "ids.txt").unlink()  # a store made before sources were kept still opens
    assert Store(s.path).sample_ids() is None


@needs_real
@pytest.mark.realdata
def test_cli_convert_and_info_on_real_data(tmp_path):
    r = run_cli("convert", REAL / "CASIA-HWDB_Train" / "Train", tmp_path / "st")
    assert r.returncode == 0, r.stderr
    r = run_cli("info", tmp_path / "st")
    assert "samples    11154" in r.stdout and "classes    22" in r.stdout
    r = run_cli("show", tmp_path / "st", "--out", tmp_path / "g.png", "--n", "9")
    assert r.returncode == 0 and Image.open(tmp_path / "g.png").size[0] > 100


def test_val_every_and_val_writers_hold_out_exactly_the_writers_they_name(tmp_path):
    """The shipped model's validation rule (every N-th writer by name) and a named list; `hccr info` reports them."""
    src = _writers(tmp_path, n_writers=6, per=10)  # writers 100-c ... 105-c
    r = run_cli("convert", src, tmp_path / "every", "--size", "32", "--val-every", "3")
    assert r.returncode == 0, r.stderr
    s = Store(tmp_path / "every")
    assert sorted({s.writer_names[w] for w in np.unique(s.writers[s.split == 1])}) == ["102-c", "105-c"]
    r = run_cli("info", tmp_path / "every")
    assert "samples    60" in r.stdout and "train 40" in r.stdout and "val 20" in r.stdout, r.stdout
    s = Store(convert([str(src)], tmp_path / "named", ConvertOptions(size=32, val_writers=("101-c", "104-c")),
                      progress=False).path)
    assert sorted({s.writer_names[w] for w in np.unique(s.writers[s.split == 1])}) == ["101-c", "104-c"]


def test_a_conversion_stopped_by_a_bad_image_resumes_with_on_error_skip(tmp_path):
    src = tmp_path / "png" / "永"
    src.mkdir(parents=True)
    img = np.full((20, 20), 255, np.uint8)
    img[8:12, 2:18] = 0
    Image.fromarray(img).save(src / "1.png")
    (src / "2.png").write_bytes(b"broken")
    with pytest.raises(HccrError, match="2.png"):
        convert([str(tmp_path / "png")], tmp_path / "out", ConvertOptions(on_error="stop"), workers=1, progress=False)
    res = convert([str(tmp_path / "png")], tmp_path / "out", ConvertOptions(on_error="skip"), workers=1,
                  progress=False)
    assert len(Store(res.path)) == 1 and sum(res.skipped.values()) == 1


def test_a_conversion_stopped_by_a_mistaken_split_option_resumes_with_it_corrected(tmp_path):
    """--val-writers naming nobody fails after the drawing; the rerun with the option corrected (or without it) keeps
    the converted samples instead of refusing the unfinished conversion as one of other options."""
    write_gnt(tmp_path / "w1.gnt", random_samples(6, seed=1))
    write_gnt(tmp_path / "w2.gnt", random_samples(6, seed=2))
    with pytest.raises(HccrError, match=r"no writer named nobody .*e\.g\. w1, w2"):
        convert([str(tmp_path)], tmp_path / "out", ConvertOptions(val_writers=("nobody",)), workers=1, progress=False)
    res = convert([str(tmp_path)], tmp_path / "out", ConvertOptions(val_writers=("w2",)), workers=1,
                  progress=False)
    assert len(Store(res.path)) == 12 and int(Store(res.path).split.sum()) == 6


def test_limit_keeps_the_characters_of_the_samples_it_keeps(tmp_path):
    """--limit 4 of a file of 12 characters: a store of 4 samples knows their characters only (a model trained on it
    would otherwise get an output for every character converted and thrown away)."""
    write_gnt(tmp_path / "w1.gnt", random_samples(12, seed=3, chars="永安家察寒宿它守完宏国人"))
    res = convert([str(tmp_path / "w1.gnt")], tmp_path / "st", ConvertOptions(limit=4), workers=1, progress=False)
    st = Store(res.path)
    assert len(st) == 4 and res.classes == len(st.charset) == 4 and "".join(st.charset) == "".join(sorted("永安家察"))


def test_charset_draws_only_its_characters_and_each_as_without_it(tmp_path, monkeypatch):
    """--charset leaves other characters out before they are drawn (converting a few characters of CASIA's files
    costs a few characters' drawing), and every kept sample is the image a full conversion gives it."""
    from pathlib import Path

    pot = Path(__file__).parent / "data" / "1001-c.pot"
    write_gnt(tmp_path / "w1.gnt", random_samples(12, seed=4, chars="永安家察寒宿它守完宏国人"))
    full = Store(convert([str(pot), str(tmp_path / "w1.gnt")], tmp_path / "full", ConvertOptions(), workers=1,
                         progress=False).path)
    chars = "".join(sorted({full.charset[int(c)] for c in full.labels[:3]} | {"永", "安"}))
    from hccr.data import render

    drawn, draw = [], render.render_framed
    monkeypatch.setattr(render, "render_framed", lambda *a, **k: drawn.append(1) or draw(*a, **k))
    res = convert([str(pot), str(tmp_path / "w1.gnt")], tmp_path / "some", ConvertOptions(charset=chars), workers=1,
                  progress=False)
    some = Store(res.path)
    assert len(drawn) == sum(".pot#" in i for i in some.sample_ids())  # no trajectory of another character drawn
    assert res.skipped["not in charset"] == len(full) - len(some) > 0
    ids = full.sample_ids()
    where = {i: k for k, i in enumerate(ids)}
    for k, sid in enumerate(some.sample_ids()):
        assert (np.asarray(some.images[k]) == np.asarray(full.images[where[sid]])).all(), sid
    assert {some.charset[int(c)] for c in some.labels} == set(chars)


def test_convert_reads_each_file_once_and_says_what_it_could_not_do(tmp_path):
    """A data engineer's slips, each said in one line: the same file named twice (its samples would sit in training
    and validation both), two files of one writer name, images beside .gnt files, a zip of PNGs, a mistyped charset
    name, a huge --size, pen options on images, a validation share that rounds to nothing."""
    import shutil
    import zipfile

    src = _writers(tmp_path, n_writers=2, per=10)
    one = src / "100-c.gnt"
    r = run_cli("convert", one, src, tmp_path / "twice")  # a file, and the folder that holds it
    assert r.returncode == 0 and "1 source file(s) named more than once" in r.stderr, r.stderr
    assert len(Store(tmp_path / "twice")) == 20
    shutil.copytree(src, tmp_path / "copy")
    r = run_cli("convert", src, tmp_path / "copy", tmp_path / "both", "--val-fraction", "0.5", "--split-by-writer")
    assert r.returncode == 0 and "2 writer name(s) are shared by several files" in r.stderr, r.stderr
    assert "40 samples (20 training, 20 validation)" in r.stdout, r.stdout
    (src / "一").mkdir()
    Image.new("L", (32, 32), 255).save(src / "一" / "1.png")
    r = run_cli("convert", src, tmp_path / "mixed")
    assert r.returncode == 0 and "the image files under it are not read" in r.stderr, r.stderr
    with zipfile.ZipFile(tmp_path / "pngs.zip", "w") as z:
        z.write(src / "一" / "1.png", "一/1.png")
    cases = [
        (["convert", tmp_path / "pngs.zip", tmp_path / "z"], "no .gnt file in this zip"),
        (["convert", src, tmp_path / "c", "--charset", "gb2312-3"], "charset 'gb2312-3': not a known name"),
        (["convert", src, tmp_path / "s", "--size", "5000"], "--size must be in [8, 512]"),
    ]
    for args, fragment in cases:
        r = run_cli(*args)
        assert r.returncode == 2 and fragment in r.stderr, (args, r.stderr)
    (tmp_path / "pngs" / "一").mkdir(parents=True)
    for n in range(3):
        Image.fromarray(np.roll(np.pad(np.zeros((8, 20), np.uint8), 6, constant_values=255), n, 0)).save(
            tmp_path / "pngs" / "一" / f"{n}.png")
    Image.new("L", (1, 1)).save(tmp_path / "pngs" / "一" / "dot.png")
    r = run_cli("convert", tmp_path / "pngs", tmp_path / "p", "--pen-width", "3", "--val-fraction", "0.05")
    assert r.returncode == 0, r.stderr
    assert "--pen-width draw .pot trajectories" in r.stderr and "--val-fraction 0.05 held out no sample" in r.stderr
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert manifest["options"]["pen_width"] is None  # not recorded as how these images were drawn
    assert manifest["skipped"] == {"N×N pixels is too small to hold a character": 1}, manifest["skipped"]
