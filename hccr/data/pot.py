"""CASIA-OLHWDB online ``.pot`` files and their rendering to offline bitmaps.

Record layout (little-endian)::

    uint16 sample size | 4 bytes tag code (GB bytes, NUL padded) | uint16 stroke count |
    int16 (x, y) points ... ; (-1, 0) ends a stroke, (-1, -1) ends the character
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import HccrError, Problem
from .render import render_trajectory

_HEAD = struct.Struct("<H4sH")


@dataclass
class PotSample:
    char: str
    strokes: list[np.ndarray]  # each (n, 2) int16 x, y; y grows downwards


@dataclass
class PotRecords:
    source: str
    writer: str
    samples: list[PotSample]
    problems: list[Problem] = field(default_factory=list)


def _decode_tag(raw: bytes) -> str:
    ch = raw.rstrip(b"\x00").decode("gbk")
    if len(ch) != 1:
        raise UnicodeDecodeError("gbk", raw, 0, len(raw), "not a single character")
    return ch


def parse_pot(data: bytes, source: str = "<bytes>", writer: str | None = None) -> PotRecords:
    """Parse a whole ``.pot`` buffer; the points of each record are decoded with one numpy view."""
    problems: list[Problem] = []
    samples: list[PotSample] = []
    n, off = len(data), 0
    while off < n:
        where = f"record at offset {off}"
        if off + _HEAD.size > n:
            problems.append(Problem(source, f"truncated record: {n - off} bytes left", where))
            break
        size, tag, nstrokes = _HEAD.unpack_from(data, off)
        if size < _HEAD.size + 4 or off + size > n:
            problems.append(Problem(source, f"truncated or corrupt record: sample size {size}, "
                                    f"{n - off} bytes left", where))
            break
        pts = np.frombuffer(data, dtype="<i2", count=(size - _HEAD.size) // 4 * 2,
                            offset=off + _HEAD.size).reshape(-1, 2)
        off += size
        try:
            ch = _decode_tag(tag)
        except UnicodeDecodeError:
            problems.append(Problem(source, f"undecodable tag code {tag.hex()} (not GBK)", where))
            continue
        ends = np.flatnonzero((pts[:, 0] == -1) & (pts[:, 1] == 0))
        final = np.flatnonzero((pts[:, 0] == -1) & (pts[:, 1] == -1))
        if len(final) == 0:
            problems.append(Problem(source, "record has no (-1, -1) end marker", where))
            continue
        stop = int(final[0])
        bounds = [-1, *[int(e) for e in ends if e < stop]]
        strokes = [pts[a + 1 : b].copy() for a, b in zip(bounds, bounds[1:], strict=False) if b - a > 1]
        if len(strokes) != nstrokes:
            problems.append(Problem(source, f"stroke count {nstrokes} in the header but {len(strokes)} strokes "
                                    "in the data", where))
            continue
        if not strokes:
            problems.append(Problem(source, "record has no points", where))
            continue
        samples.append(PotSample(ch, strokes))
    return PotRecords(source, writer or Path(source).stem, samples, problems)


def read_pot(path: str | os.PathLike) -> PotRecords:
    path = Path(path)
    if not path.is_file():
        raise HccrError(f"{path}: no such file")
    return parse_pot(path.read_bytes(), str(path))


def encode_pot_record(ch: str, strokes: Iterable[np.ndarray]) -> bytes:
    """One ``.pot`` record (used by tests and to export synthetic online data)."""
    tag = ch.encode("gbk").ljust(4, b"\x00")
    body = bytearray()
    strokes = [np.asarray(s, dtype="<i2").reshape(-1, 2) for s in strokes]
    for s in strokes:
        body += s.tobytes() + np.array([-1, 0], dtype="<i2").tobytes()
    body += np.array([-1, -1], dtype="<i2").tobytes()
    size = _HEAD.size + len(body)
    if size > 0xFFFF:
        raise HccrError(f"{ch!r}: {size} bytes do not fit a .pot record (65535 max)")
    return _HEAD.pack(size, tag, len(strokes)) + bytes(body)


def iter_pot(path: str | os.PathLike, size: int = 64, stroke_width: float = 2.0,
             on_problem: Callable[[Problem], None] | None = None) -> Iterator[tuple[np.ndarray, str, str]]:
    """Stream ``(rendered bitmap, character, writer)`` over a ``.pot`` file or folder of them."""
    path = Path(path)
    files = sorted(path.rglob("*.pot")) if path.is_dir() else [path]
    for f in files:
        rec = read_pot(f)
        for p in rec.problems:
            if on_problem is None:
                raise HccrError(str(p))
            on_problem(p)
        for s in rec.samples:
            yield render_trajectory(s.strokes, size=size, stroke_width=stroke_width), s.char, rec.writer
