"""Image files and image folders (the PNG export layout ``<root>/<char>/<n>.png``)."""

from __future__ import annotations

import functools
import io
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import HccrError, Problem

MAX_PIXELS = 40_000_000  # a scanned A4 page at 600 dpi is 35 M; anything larger is refused before decoding
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"}


def on_paper(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Gray (0-255) with transparency (``alpha`` 0-1) -> gray on paper, as floats. Where the opaque pixels are all
    one shade and cover under half of their bounding box, the drawing is the alpha channel (a canvas's strokes on a
    transparent page: black, white or coloured ink alike) and comes out dark on white; otherwise (an opaque patch
    of paper, a photo) the transparent areas are composited on white."""
    solid = alpha > 0.5
    opaque = gray[solid]
    if opaque.size and float(alpha.max() - alpha.min()) > 0.5 and float(opaque.max() - opaque.min()) < 32:
        rows, cols = np.flatnonzero(solid.any(1)), np.flatnonzero(solid.any(0))
        box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
        if opaque.size < 0.5 * box:  # strokes leave most of their box empty; an opaque patch (a pasted scan) fills it
            return 255.0 * (1.0 - alpha)
    return gray * alpha + 255.0 * (1.0 - alpha)


def float_levels(a: np.ndarray) -> np.ndarray:
    """Float pixels as gray levels: in [0, 1] scaled to 0-255, otherwise as they are (NaN kept; not all NaN)."""
    return a * 255 if float(np.nanmax(a)) <= 1.0 else a


def to_gray(im) -> np.ndarray:
    """A Pillow image -> uint8 gray, dark ink on light paper; transparency as :func:`on_paper` reads it."""

    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info) or \
            (im.mode in ("RGB", "L") and "transparency" in im.info):
        rgba = im.convert("RGBA")
        a = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
        g = np.asarray(rgba.convert("L"), dtype=np.float32)
        return np.rint(on_paper(g, a)).astype(np.uint8)
    if im.mode == "F":  # floats, read as numpy arrays of floats are; NaN is paper
        arr = np.asarray(im, dtype=np.float64)
        arr = float_levels(arr) if arr.size and not np.isnan(arr).all() else arr
        return np.rint(np.clip(np.nan_to_num(arr, nan=255.0), 0, 255)).astype(np.uint8)
    if im.mode == "I;16" or im.mode == "I":
        arr = np.asarray(im, dtype=np.float64)
        hi = arr.max() if arr.size else 1
        return np.rint(arr * (255.0 / max(hi, 1))).astype(np.uint8)
    if im.mode != "L":
        im = im.convert("L")
    return np.asarray(im, dtype=np.uint8)


@functools.cache
def _quiet_size_warning() -> None:
    """Pillow warns of images over its own limit (89 M pixels) while opening them; hccr refuses any over
    ``MAX_PIXELS`` (below it) in its own words. One process-wide filter, set once: ``warnings.catch_warnings``
    around each open is not safe while the server's threads read images side by side."""
    from PIL import Image

    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def load_gray(src: str | os.PathLike | bytes) -> np.ndarray:
    """Read any Pillow-readable image (path or bytes) as uint8 gray, dark ink on white.

    Raises :class:`HccrError` naming the file if it is not a readable image.
    """
    from PIL import Image, UnidentifiedImageError

    name = "<bytes>" if isinstance(src, bytes) else str(src)
    try:
        _quiet_size_warning()
        with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as im:
            if im.width * im.height > MAX_PIXELS:  # read from the header: nothing decoded yet
                raise HccrError(f"{name}: {im.width}×{im.height} pixels is too large for one character image "
                                f"(limit {MAX_PIXELS // 1_000_000} M pixels); crop or downscale it")
            im.load()
            if im.width == 0 or im.height == 0:
                raise HccrError(f"{name}: empty image (0 pixels)")
            gray = to_gray(im)
    except FileNotFoundError:
        raise HccrError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise HccrError(f"{name}: is a folder, not an image (hccr predict reads folders of images)") from None
    except UnidentifiedImageError:
        raise HccrError(f"{name}: not an image Pillow can read") from None
    except Image.DecompressionBombError:  # Pillow refuses the largest ones in open() already
        raise HccrError(f"{name}: too large for one character image (over {MAX_PIXELS // 1_000_000} M pixels); "
                        "crop or downscale it") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise HccrError(f"{name}: corrupt image ({e})") from None
    return gray


def character_image(gray: np.ndarray, name: str) -> np.ndarray:
    """``gray`` if it can hold a character; a blank (one shade) or degenerate (under 2 px) image is
    an :class:`HccrError` naming it, so prediction and conversion count it as unreadable, as the
    server refuses it, instead of answering for nothing."""
    if min(gray.shape) < 2:
        raise HccrError(f"{name}: {gray.shape[1]}×{gray.shape[0]} pixels is too small to hold a character")
    if int(gray.max()) - int(gray.min()) < 16:
        raise HccrError(f"{name}: blank image (no ink: every pixel is nearly the same shade)")
    return gray


@dataclass(frozen=True)
class ImageItem:
    path: str
    char: str


def _class_dirs(root: Path) -> list[Path]:
    """Folders named after one character that hold image files, found at the first depth that has any.

    Accepts ``<root>/<char>/*.png`` as well as the export's ``CASIA-HWDB_Train/Train/<char>/*.png``.
    """
    level = [root]
    for _ in range(4):
        subdirs = sorted(d for p in level for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not subdirs:
            return []
        with_images = [d for d in subdirs if any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir())]
        if with_images:
            return with_images
        level = subdirs
    return []


def scan_image_folder(root: str | os.PathLike, loose_ok: bool = False) -> list[ImageItem]:
    """List ``(path, character)`` of every image under ``root``, sorted by character then file name
    (images beside the ``<char>/`` folders have no label: a warning says they are left out, unless ``loose_ok``,
    for a caller that reads them itself)."""
    root = Path(root)
    if not root.exists():
        raise HccrError(f"{root}: no such file or folder")
    if not root.is_dir():
        raise HccrError(f"{root}: expected a folder of per-character folders")
    dirs = _class_dirs(root)
    loose = [f.name for f in root.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
    if not dirs and loose:
        raise HccrError(f"{root}: {len(loose)} image(s) without labels; a store learns from <root>/<char>/<n>.png "
                        "(one folder per character, named by it); to recognise them: hccr predict")
    if not dirs:
        raise HccrError(f"{root}: no images found (expected <root>/<char>/<n>.png)")
    parents = sorted({d.parent for d in dirs})
    if len(parents) > 1:  # e.g. a dataset's root above its Train/ and Test/ folders: one set, said aloud
        named = ", ".join(str(p.relative_to(root)) for p in parents[:4]) + (", ..." if len(parents) > 4 else "")
        print(f"warning: {root}: the character folders of {len(parents)} folders ({named}) are read as one set; a "
              "training set and a test set are each given on their own", file=sys.stderr)
    if loose and not loose_ok:  # beside the labelled folders: never dropped without a word
        print(f"warning: {root}: {len(loose)} image(s) beside the <char>/ folders (e.g. {loose[0]}) have no label and "
              "are left out", file=sys.stderr)
    bad = [d for d in dirs if len(d.name) != 1]
    if bad:  # all of them at once, not one a run
        raise HccrError(f"{bad[0].parent}: {len(bad)} folder name(s) are not one character (the label): "
                        f"{', '.join(repr(d.name) for d in bad[:5])}{', ...' if len(bad) > 5 else ''}")
    items: list[ImageItem] = []
    for d in dirs:
        files = [f for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
        files.sort(key=lambda f: (len(f.stem), f.stem) if f.stem.isdigit() else (1 << 30, f.name))
        items.extend(ImageItem(str(f), d.name) for f in files)
    return items


def iter_image_folder(root: str | os.PathLike, on_problem: Callable[[Problem], None] | None = None
                      ) -> Iterator[tuple[np.ndarray, str]]:
    """Stream ``(gray image, character)``; unreadable files go to ``on_problem`` (or raise)."""
    for item in scan_image_folder(root):
        try:
            yield load_gray(item.path), item.char
        except HccrError as e:
            if on_problem is None:
                raise
            on_problem(Problem(item.path, str(e).split(": ", 1)[-1]))
