"""Where samples come from: one protocol for every reader, used by conversion and prediction alike.

A *source* is what a user names: a ``.gnt`` file, folder tree or zip; a ``.pot`` file or folder; a
labelled image folder (``<root>/<char>/<n>.png``, the PNG export) and, where labels are optional
(prediction), single images, flat folders of images, glob patterns and ``-`` (paths on standard
input). :func:`plan_units` splits sources into :class:`Unit` s, picklable pieces of work (one
chunk of a store each); :meth:`Unit.samples` streams a unit as :class:`Sample` s (gray image, dark
ink on white, as the file holds it) and, in their place, a :class:`~hccr.errors.Problem` for each
sample that cannot be read, so every caller applies its own ``--on-error`` policy.

Nothing here imports torch: the torch-free runtime predicts from the same units that
``hccr convert`` packs into a store.
"""

from __future__ import annotations

import glob
import hashlib
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import HccrError, Problem
from .gnt import GntUnit, find_gnt
from .images import IMAGE_SUFFIXES, _class_dirs, character_image, load_gray, scan_image_folder

GNT_PART_BYTES = 48 << 20  # split big .gnt files so both cores work on one file
IMAGES_PER_UNIT = 1000
DATA_SUFFIXES = (".gnt", ".zip", ".pot")


@dataclass(frozen=True)
class Sample:
    id: str  # the image path, or ``FILE#k`` for the k-th record of a .gnt/.pot file
    char: str | None  # the label, None where the source has none
    writer: str
    image: np.ndarray  # uint8 H×W, dark ink on white


@dataclass(frozen=True)
class Unit:
    kind: str  # "gnt" | "pot" | "images"
    path: str
    member: str | None = None
    part: int = 0
    parts: int = 1
    files: tuple[tuple[str, str | None], ...] = ()  # (path, char or None) for "images"

    @property
    def key(self) -> str:
        if self.kind == "images":
            digest = hashlib.sha1("\n".join(p for p, _ in self.files).encode()).hexdigest()[:12]
            return f"images:{self.path}:{digest}"
        return f"{self.kind}:{self.path}:{self.member or ''}:{self.part}/{self.parts}"

    def samples(self, pen=None) -> Iterator[Sample | Problem]:
        """The unit's samples in file order. ``.pot`` trajectories are drawn with ``pen`` (a
        :class:`hccr.data.render.Pen`; default :func:`pot_pen`) and cropped to the ink. Images are
        read one at a time, as they are needed."""
        if self.kind == "gnt":
            g = GntUnit(self.path, self.member)
            rec = g.read()
            n = len(rec)
            for i in range(n * self.part // self.parts, n * (self.part + 1) // self.parts):
                yield Sample(f"{g.name}#{i}", chr(rec.codepoints[i]), rec.writer, rec.image(i))
            if self.part == 0:
                yield from rec.problems
        elif self.kind == "pot":
            from .pot import read_pot
            from .render import crop_to_ink, render_framed

            rec = read_pot(self.path)
            pen = pen or pot_pen()
            drawn = pen.draw([len(s.strokes) for s in rec.samples], rec.writer)
            for k, s, d in zip(rec.records, rec.samples, drawn, strict=True):
                img = crop_to_ink(render_framed(s.strokes, 64, pen, d))
                yield Sample(f"{self.path}#{k}", s.char, rec.writer, img)
            yield from rec.problems
        else:
            for path, ch in self.files:
                try:
                    yield Sample(path, ch, "", character_image(load_gray(path), path))
                except HccrError as e:
                    yield Problem(path, str(e).split(": ", 1)[-1])


def pot_pen(width: float | None = None, spread: float | None = None):
    """The pen ``.pot`` trajectories are drawn with (conversion and prediction alike): hccr's fitted
    pen, or one with another median ``width`` (px at 64 px) or sample-to-sample ``spread``."""
    from .render import Pen

    changes = {k: v for k, v in (("width", width), ("sample_spread", spread)) if v is not None}
    return Pen(**changes)


def plan_units(sources: list[str], labelled: bool = True, stdin=None) -> list[Unit]:
    """What the user named -> units of work, in the order named.

    ``labelled=True`` (conversion) accepts only sources that carry labels. ``labelled=False``
    (prediction) also takes single images, flat folders, glob patterns and ``-``; labels still come
    from ``.gnt``/``.pot`` records and per-character folders where there are any."""
    units: list[Unit] = []
    loose: list[tuple[str, str | None]] = []  # single images, gathered into units of IMAGES_PER_UNIT

    def flush() -> None:
        units.extend(_image_units("<images>", loose))
        loose.clear()

    for src in _expand(sources, labelled, stdin):
        p = Path(src)
        if not p.exists() and not labelled and p.suffix.lower() in IMAGE_SUFFIXES:
            loose.append((str(p), None))  # a missing image is a bad sample like any other: --on-error decides
            continue
        if not p.exists():
            raise HccrError(f"{src}: no such file or folder")
        suffix = p.suffix.lower()
        if p.is_file() and suffix in IMAGE_SUFFIXES:
            if labelled:
                raise HccrError(f"{src}: a single image has no label; convert a folder laid out as "
                                "<root>/<char>/<n>.png")
            loose.append((str(p), None))
            continue
        flush()
        inside = _suffixes(p) if p.is_dir() else set()  # one walk of a folder's tree for every question below
        found = _record_units(p, inside)
        if p.is_dir() and not found:
            found = _image_units(str(p), _folder_images(p, labelled))
        elif inside & IMAGE_SUFFIXES:  # never dropped without a word
            print(f"warning: {src}: a folder holding .gnt/.pot files is read as those; the image files under it are "
                  "not read (give their <char>/ folders' root as a source of its own)", file=sys.stderr)
        if not found:
            if p.is_file() and suffix == ".zip":
                raise HccrError(f"{src}: no .gnt file in this zip (zips are read for .gnt files; unzip image folders "
                                "or .pot files and give the folder)")
            kinds = ".gnt, .pot or image files" if p.is_dir() else "an image, .gnt, .pot or .zip file"
            raise HccrError(f"{src}: no {kinds} found" if p.is_dir() else f"{src}: not {kinds}")
        units += found
    flush()
    return _once(units, writers_matter=labelled)


def _once(units: list[Unit], writers_matter: bool) -> list[Unit]:
    """``units`` with each file read once (a file named twice, or a folder and a file inside it, would put the same
    samples in both training and validation), and, where writers matter (conversion), a word where two files would
    count as one writer."""
    seen: set = set()
    kept: list[Unit] = []
    repeated: list[str] = []
    for u in units:
        if u.kind == "images":  # by absolute path: no file-system call per image
            files = []
            for f in u.files:
                key = ("image", os.path.abspath(f[0]))
                if key in seen:
                    repeated.append(f[0])
                else:
                    seen.add(key)
                    files.append(f)
            if files:
                kept.append(Unit("images", u.path, files=tuple(files)) if len(files) < len(u.files) else u)
            continue
        key = (u.kind, os.path.realpath(u.path), u.member, u.part, u.parts)
        if key in seen:
            repeated.append(u.path)
            continue
        seen.add(key)
        kept.append(u)
    if repeated:
        print(f"warning: {len(set(repeated))} source file(s) named more than once (e.g. {repeated[0]}) are read once",
              file=sys.stderr)
    writers: dict[str, set[str]] = {}
    for u in kept if writers_matter else ():
        if u.kind != "images":
            writers.setdefault(Path(u.member or u.path).stem, set()).add(os.path.realpath(u.path) + (u.member or ""))
    same = sorted(w for w, files in writers.items() if len(files) > 1)
    if same:
        print(f"warning: {len(same)} writer name(s) are shared by several files and count as one writer each (e.g. "
              f"{same[0]}: writers are named by file name), as --split-by-writer, --val-writers and --val-every see "
              "them", file=sys.stderr)
    return kept


def _expand(sources: list[str], labelled: bool, stdin) -> Iterator[str]:
    """``-`` (paths on standard input) and glob patterns, where labels are optional."""
    for src in sources:
        src = str(src)
        if not labelled and src == "-":
            lines = [ln.strip() for ln in (stdin or sys.stdin).read().splitlines() if ln.strip()]
            yield from (ln for ln in lines if ln != "-")
        elif not labelled and not Path(src).exists() and any(ch in src for ch in "*?["):
            matches = sorted(m for m in glob.glob(src, recursive=True) if Path(m).is_file()
                             and Path(m).suffix.lower() in (*IMAGE_SUFFIXES, *DATA_SUFFIXES))
            if not matches:
                raise HccrError(f"{src}: no image file matches this pattern (nor any .gnt or .pot file)")
            yield from matches
        else:
            yield src


def _record_units(p: Path, inside: set[str]) -> list[Unit]:
    """``.gnt`` (plain or zipped) and ``.pot`` files at ``p`` (``inside``: the suffixes of a folder's files), big
    ``.gnt`` files cut in parts."""
    found: list[Unit] = []
    suffix = p.suffix.lower()
    if p.is_file() and suffix in (".gnt", ".zip") or inside & {".gnt", ".zip"}:
        for g in find_gnt(p):
            parts = max(1, math.ceil(_gnt_bytes(g) / GNT_PART_BYTES))
            found += [Unit("gnt", g.path, g.member, k, parts) for k in range(parts)]
    if p.is_file() and suffix == ".pot" or ".pot" in inside:
        files = [p] if p.is_file() else sorted(p.rglob("*.pot"))
        found += [Unit("pot", str(f)) for f in files]
    return found


def _folder_images(p: Path, labelled: bool) -> list[tuple[str, str | None]]:
    """A labelled folder (``<root>/<char>/<n>.png``) or, where labels are optional, a flat one."""
    if not labelled:  # loose images (no label) and <char>/ folders (labelled), both read
        flat = [(str(f), None) for f in sorted(f for f in p.iterdir()
                                               if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)]
        dirs = _class_dirs(p)
        other = [d.name for d in dirs if len(d.name) != 1]
        if flat and other:  # folders beside the images that are no <char>/ folders
            print(f"warning: {p}: its sub-folders are not <char>/ folders (e.g. {other[0]}); only the images "
                  "directly in it are read", file=sys.stderr)
            return flat
        if not dirs:
            if not flat:
                raise HccrError(f"{p}: no images found (expected image files, or <root>/<char>/<n>.png)")
            return flat
        return flat + [(it.path, it.char) for it in scan_image_folder(p, loose_ok=True)]
    return [(it.path, it.char) for it in scan_image_folder(p)]


def _image_units(path: str, items: list[tuple[str, str | None]]) -> list[Unit]:
    return [Unit("images", path, files=tuple(items[i : i + IMAGES_PER_UNIT]))
            for i in range(0, len(items), IMAGES_PER_UNIT)]


def _suffixes(folder: Path) -> set[str]:
    """The suffixes of every file under ``folder`` (lower case)."""
    return {f.suffix.lower() for f in folder.rglob("*")}


def _gnt_bytes(g: GntUnit) -> int:
    if g.member is None:
        return os.path.getsize(g.path)
    import zipfile

    with zipfile.ZipFile(g.path) as zf:
        return zf.getinfo(g.member).file_size
