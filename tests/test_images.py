import shutil

import numpy as np
import pytest
from conftest import REAL, needs_real, run_cli
from PIL import Image

from hccr.data.images import load_gray, scan_image_folder
from hccr.errors import HccrError


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black ...
    rgba[1, 1] = (0, 0, 0, 255)  # ... except one opaque black pixel
    rgba[2, 2] = (0, 0, 0, 128)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    g = load_gray(tmp_path / "a.png")
    assert g.dtype == np.uint8 and g.shape == (4, 4)
    assert g[0, 0] == 255 and g[1, 1] == 0 and 120 <= g[2, 2] <= 135


def test_other_formats_read(tmp_path):
    Image.fromarray(np.full((5, 6, 3), 10, np.uint8)).save(tmp_path / "x.jpg")
    assert load_gray(tmp_path / "x.jpg").shape == (5, 6)


def test_bad_images_name_the_file(tmp_path):
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(HccrError, match="text.png: not an image"):
        load_gray(tmp_path / "text.png")
    Image.fromarray(np.zeros((50, 50), np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "ok.png").read_bytes()[:60])
    with pytest.raises(HccrError, match="cut.png: corrupt image"):
        load_gray(tmp_path / "cut.png")


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HccrError, match="no images found"):
        scan_image_folder(tmp_path / "empty")
    with pytest.raises(HccrError, match="no such file or folder"):
        scan_image_folder(tmp_path / "missing")


def test_bad_folder_names_are_listed_together_and_hidden_folders_ignored(tmp_path):
    for name in (".git", "ab", "安 ", "宴"):
        (tmp_path / "d" / name).mkdir(parents=True)
        Image.new("L", (8, 8)).save(tmp_path / "d" / name / "1.png")
    with pytest.raises(HccrError, match=r"2 folder name\(s\) are not one character \(the label\): 'ab', '安 '"):
        scan_image_folder(tmp_path / "d")
    for name in ("ab", "安 "):
        shutil.rmtree(tmp_path / "d" / name)
    assert [it.char for it in scan_image_folder(tmp_path / "d")] == ["宴"]  # .git is not a character


def test_a_root_above_train_and_test_folders_is_said_to_merge_them(tmp_path, capsys):
    for part in ("Train", "Test"):
        (tmp_path / "data" / part / "安").mkdir(parents=True)
        Image.new("L", (8, 8)).save(tmp_path / "data" / part / "安" / "1.png")
    items = scan_image_folder(tmp_path / "data")
    assert len(items) == 2  # both are read, as asked, but never without a word: a test set inside a training store
    err = capsys.readouterr().err
    assert "the character folders of 2 folders (Test, Train) are read as one set" in err, err
    scan_image_folder(tmp_path / "data" / "Train")
    assert capsys.readouterr().err == ""


@needs_real
@pytest.mark.realdata
def test_real_png_export_layout():
    train = scan_image_folder(REAL / "CASIA-HWDB_Train")  # finds Train/<char>/ one level down
    test = scan_image_folder(REAL / "CASIA-HWDB_Test" / "Test")
    assert len(train) == 11154 and len(test) == 2674
    assert len({it.char for it in train}) == 22 == len({it.char for it in test})
    modes = {Image.open(it.path).mode for it in train[::97]}
    assert {"RGBA", "L"} <= modes  # the export mixes both
    for it in train[::1500]:
        g = load_gray(it.path)
        assert g.dtype == np.uint8 and g.ndim == 2
        assert np.median(g) > 200  # white background after compositing, not black


def test_a_huge_image_is_refused_with_its_name_not_a_traceback(tmp_path):
    Image.new("L", (8000, 6000), 255).save(tmp_path / "scan.png")  # 48 M pixels: over hccr's limit
    with pytest.raises(HccrError, match=r"scan.png: 8000×6000 pixels is too large .* crop or downscale"):
        load_gray(tmp_path / "scan.png")
    r = run_cli("predict", tmp_path / "scan.png")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "scan.png" in r.stderr


def _png_header_only(path, width, height):
    """A PNG whose header claims width x height gray pixels (no image data: only the header is ever read)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def test_an_image_over_pillows_own_limit_gets_hccrs_line_and_no_pillow_warning(tmp_path):
    _png_header_only(tmp_path / "poster.png", 10_000, 10_000)  # 100 M pixels: Pillow warns while opening
    r = run_cli("predict", tmp_path / "poster.png", env={"PYTHONWARNINGS": "default"})
    assert r.returncode == 2 and "poster.png: 10000×10000 pixels is too large" in r.stderr, r.stderr
    assert "DecompressionBomb" not in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_huge_array_or_pil_image_is_refused_before_it_is_copied():
    from hccr.inputs import as_gray

    page = np.broadcast_to(np.uint8(255), (20_000, 20_000))  # 400 M pixels that take no memory until copied
    with pytest.raises(HccrError, match=r"image: 20000×20000 pixels is too large .* crop or downscale"):
        as_gray(page)  # before the limit, a 1.6 GB float copy was made and then refused as blank
    with pytest.raises(HccrError, match=r"8000×6000 pixels is too large"):
        as_gray(Image.new("L", (8000, 6000), 255))
