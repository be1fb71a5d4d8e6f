"""Images as users have them: every form gives the answer the plain gray image gives."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import hccr
from hccr.data.synth import SynthConfig, writer_samples
from hccr.errors import HccrError
from hccr.inputs import as_gray, as_gray_list


@pytest.fixture(scope="module")
def rec():
    return hccr.load()


def _read_right(rec, ch: str) -> np.ndarray:
    """A synthetic sample of ``ch`` the shipped model reads right (the first of ten writers): these
    tests are about input forms; accuracy has its own tests (tests/test_shipped.py)."""
    for w in range(10):
        img = writer_samples([ch], w, SynthConfig(chars=ch, writers=1, seed=21))[0][0]
        if rec.predict(img, topk=1)[0][0][0] == ch:
            return img
    raise AssertionError(f"the shipped model misread {ch} from ten synthetic writers")


@pytest.fixture(scope="module")
def gray(rec):
    return _read_right(rec, "读")


def test_every_input_form_gives_the_same_answer(rec, gray, tmp_path):
    expected = rec.predict(gray, topk=1)[0][0]
    assert expected[0] == "读"
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    Image.fromarray(gray).save(tmp_path / "c.png")
    forms = {
        "H×W×3 (as cv2.imread gives it)": (rgb, {"bgr": True}),
        "H×W×1": (gray[:, :, None], {}),
        "float in [0, 1]": (gray.astype(np.float32) / 255, {}),
        "PIL image": (Image.fromarray(gray), {}),
        "path": (str(tmp_path / "c.png"), {}),
        "bytes": ((tmp_path / "c.png").read_bytes(), {}),
        "light ink on dark": (255 - gray, {}),
        "RGBA with a transparent background": (np.dstack([np.zeros_like(gray)] * 3 + [255 - gray]), {}),
        "gray + alpha (Pillow's LA)": (np.dstack([gray, np.full_like(gray, 255)]), {}),
        # a canvas's export: strokes of one colour on a transparent page (white ink was read as a blank image)
        "white strokes on a transparent canvas": (np.dstack([np.full_like(gray, 255)] * 3 + [255 - gray]), {}),
        "white strokes on a transparent canvas, as a PIL image": (
            Image.fromarray(np.dstack([np.full_like(gray, 255)] * 3 + [255 - gray]), "RGBA"), {}),
        "red strokes on a transparent canvas": (np.dstack([np.full_like(gray, 200), np.zeros_like(gray),
                                                           np.zeros_like(gray), 255 - gray]), {}),
        "bytearray": (bytearray((tmp_path / "c.png").read_bytes()), {}),
        "memoryview": (memoryview((tmp_path / "c.png").read_bytes()), {}),
        "PIL float image in [0, 1]": (Image.fromarray(gray.astype(np.float32) / 255), {}),
        "PIL float image in [0, 1], one pixel NaN": (Image.fromarray(_nan_corner(gray.astype(np.float32) / 255)), {}),
        # a faint scan pasted on a canvas with a transparent margin: the opaque patch is paper, not a stroke
        "a faint scan on an opaque patch, transparent around it": (_pasted(gray), {}),
    }
    for name, (img, kw) in forms.items():
        out = rec.predict(img, topk=1, **kw)
        assert len(out) == 1, name  # one image, one answer (not one per row)
        assert out[0][0][0] == expected[0], name


def _nan_corner(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a[0, 0] = np.nan
    return a


def _pasted(gray: np.ndarray) -> np.ndarray:
    """``gray`` made faint (its darkest ink 226 on paper 255: every opaque pixel within 32 shades of the others) on
    an opaque RGBA patch with a 20 px transparent margin."""
    faint = (255 - (255 - gray.astype(np.float32)) * (29 / 255)).astype(np.uint8)
    h, w = faint.shape
    out = np.zeros((h + 40, w + 40, 4), np.uint8)
    out[20:20 + h, 20:20 + w, :3] = faint[..., None]
    out[20:20 + h, 20:20 + w, 3] = 255
    return out


def test_bgr_arrays_are_read_in_opencv_channel_order():
    """Blue ink on yellow paper as OpenCV holds it (B, G, R): with bgr=True hccr sees the same gray image as
    from the RGB array; read as RGB, the blue channel is weighted as red and the shades change."""
    from hccr.inputs import as_gray

    ink = np.zeros((40, 40), bool)
    ink[8:32, 18:22] = True
    rgb = np.where(ink[..., None], np.array([20, 40, 220], np.uint8), np.array([250, 230, 120], np.uint8))
    bgr = rgb[..., ::-1].copy()
    assert np.array_equal(as_gray(bgr, bgr=True), as_gray(rgb))
    assert not np.array_equal(as_gray(bgr), as_gray(rgb))


def test_a_list_mixes_forms_and_keeps_its_order(rec, gray):
    other = _read_right(rec, "国")
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format="PNG")
    out = rec.predict([Image.fromarray(gray), other, buf.getvalue()], topk=1)
    assert [o[0][0] for o in out] == ["读", "国", "读"]


@pytest.mark.parametrize("bad, message", [
    (12345, "expected a path, bytes, a PIL image or a numpy array, got int"),
    (np.zeros((4, 5, 7), np.uint8), "got shape (4, 5, 7)"),
    (np.zeros((0, 5), np.uint8), "got shape (0, 5)"),
    (np.array([["a"]]), "unsupported array dtype"),
    (np.full((64, 64), 255, np.uint8), "blank image (no ink"),  # the API refuses it as the CLI and the server do
    (np.zeros((1, 30), np.uint8), "too small to hold a character"),
    (np.full((40, 40), np.nan, np.float32), "every pixel is NaN"),  # said, with no numpy warning before it
])
def test_unusable_inputs_are_named_errors(bad, message):
    with pytest.raises(HccrError, match=message.replace("(", r"\(").replace(")", r"\)")):
        as_gray(bad)
    for shape in ((2, 3, 4, 5), (60, 60, 5)):  # four axes; five "channels" (not 60 images of 60×5 pixels)
        with pytest.raises(HccrError, match=r"is neither an image .* nor a batch of gray images \(N×H×W\)"):
            as_gray_list(np.zeros(shape, np.uint8))
    stack = np.full((3, 40, 40), 255, np.uint8)
    stack[:, 10:30, 18:22] = 0
    assert len(as_gray_list(stack)) == 3  # an N×H×W batch is still read as N images


def test_a_folder_given_as_an_image_is_named_as_a_folder(tmp_path):
    with pytest.raises(HccrError, match="is a folder, not an image"):
        as_gray(str(tmp_path))


def test_polarity_and_dtypes():
    img = np.full((20, 20), 255, np.uint8)
    img[5:15, 9:11] = 0
    assert (as_gray(255 - img) == img).all()  # inverted back
    assert (as_gray(img.astype(np.uint16) * 257) == img).all()  # 16-bit scaled to 8
    assert (as_gray(img.astype(bool)) == img).all()


def _character() -> np.ndarray:
    """A cross touching every edge: a tight crop, as CASIA stores characters."""
    img = np.full((50, 40), 255, np.uint8)
    img[:, 18:23] = 30
    img[20:25, :] = 30
    return img


def test_a_character_on_a_large_page_normalises_like_the_tight_crop():
    from hccr.preprocess import normalize

    tight = _character()
    page = np.full((300, 260), 255, np.uint8)
    page[170:220, 31:71] = tight
    page[5, 250] = 0  # one speck of dust far away must not stretch the box
    np.testing.assert_array_equal(normalize(page, 32), normalize(tight, 32))


def test_gray_unevenly_lit_paper_becomes_white_and_clean_images_are_untouched():
    from hccr.preprocess import clean

    tight = _character()
    np.testing.assert_array_equal(clean(tight), tight)  # nothing to do on a clean, tight crop
    ramp = np.linspace(170, 230, tight.shape[1], dtype=np.float32)[None, :]  # lighting gradient on gray paper
    photo = (tight.astype(np.float32) / 255 * ramp).astype(np.uint8)
    out = clean(photo)
    paper = out[tight == 255] if out.shape == tight.shape else out[out > 128]
    assert np.median(paper) >= 250 and out[tight.shape[0] // 2, 20] < 80  # white paper, ink still dark


def test_grainy_gray_paper_leaves_no_gray_fog_after_flattening():
    """Sensor grain on gray paper: the paper must come out white, not the light gray that made a
    real-handwriting model lose 8 points on photographed characters."""
    from hccr.preprocess import normalize

    rng = np.random.default_rng(0)
    page = np.full((120, 120), 255, np.uint8)
    page[20:100, 20:100] = _character_at(80)
    photo = np.clip(page.astype(np.float32) / 255 * 215 + rng.normal(0, 6, page.shape), 0, 255).astype(np.uint8)
    ref, out = normalize(page, 64), normalize(photo, 64)
    fog = out[ref == 0].astype(np.float32)
    assert fog.mean() < 4, fog.mean()  # ink-high: paper near 0, as in the clean image
    assert out.max() > 180 and abs(out.astype(float).sum() / ref.sum() - 1) < 0.25  # the strokes stay dark ink


def _character_at(side: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(_character()).resize((side, side), Image.Resampling.NEAREST))
