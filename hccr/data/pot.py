"""CASIA-OLHWDB online ``.pot`` files: a bulk reader and a writer.

Record layout (little-endian), as CASIA ships it::

    uint16 sample size | 4 bytes tag code | uint16 stroke count |
    int16 (x, y) points ... ; (-1, 0) ends a stroke, (-1, -1) ends the character

The tag code holds the character's GB2312 bytes *swapped*: 角 (GB2312 ``BD C7``) is stored as
``C7 BD 00 00``. A one-byte symbol is stored as that byte followed by NULs.

Only the chain of sample sizes is walked record by record; each record's points are one numpy view.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import HccrError, Problem
from .gnt import gbk_code

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
    records: list[int] = field(default_factory=list)  # each sample's record number in the file


def decode_tag(raw: bytes) -> str:
    """A ``.pot`` tag code -> its character (bytes 0 and 1 hold the GB code low byte first)."""
    code = bytes((raw[1], raw[0])) if raw[1] else raw[:1]
    ch = code.decode("gbk")  # raises UnicodeDecodeError
    if len(ch) != 1 or ch == "\x00":
        raise UnicodeDecodeError("gbk", raw, 0, len(raw), "not a single character")
    return ch


def encode_tag(ch: str) -> bytes:
    raw = gbk_code(ch, ".pot")
    if len(raw) == 1:
        return raw + b"\x00\x00\x00"
    return bytes((raw[1], raw[0])) + b"\x00\x00"


def parse_pot(data: bytes, source: str = "<bytes>", writer: str | None = None) -> PotRecords:
    """Parse a whole ``.pot`` buffer; bad records become :class:`Problem` s, the rest are kept."""
    problems: list[Problem] = []
    samples: list[PotSample] = []
    records: list[int] = []
    n, off, k = len(data), 0, -1
    if n == 0:
        problems.append(Problem(source, "empty file"))
    while off < n:
        k += 1
        where = f"record {k} at offset {off}"
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
            ch = decode_tag(tag)
        except UnicodeDecodeError:
            problems.append(Problem(source, f"undecodable tag code {tag.hex()} (not a GB2312/GBK character)", where))
            continue
        pen_up = pts[:, 0] == -1
        final = np.flatnonzero(pen_up & (pts[:, 1] == -1))
        if len(final) == 0:
            problems.append(Problem(source, "record has no (-1, -1) end marker", where))
            continue
        stop = int(final[0])
        ends = np.flatnonzero(pen_up[:stop] & (pts[:stop, 1] == 0))
        bounds = np.concatenate([[-1], ends, [stop]])
        strokes = [pts[a + 1 : b].copy() for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)
                   if b - a > 1]
        if len(strokes) != nstrokes:
            problems.append(Problem(source, f"stroke count {nstrokes} in the header but {len(strokes)} strokes "
                                    "in the data", where))
            continue
        if not strokes:
            problems.append(Problem(source, "record has no points", where))
            continue
        samples.append(PotSample(ch, strokes))
        records.append(k)
    return PotRecords(source, writer or Path(source).stem, samples, problems, records)


def read_pot(path: str | os.PathLike) -> PotRecords:
    path = Path(path)
    if not path.is_file():
        raise HccrError(f"{path}: no such file")
    return parse_pot(path.read_bytes(), str(path))


def encode_pot_record(ch: str, strokes: Iterable[np.ndarray]) -> bytes:
    """One ``.pot`` record in CASIA's layout (used by tests and to export online data)."""
    body = bytearray()
    strokes = [np.asarray(s, dtype="<i2").reshape(-1, 2) for s in strokes]
    for s in strokes:
        body += s.tobytes() + np.array([-1, 0], dtype="<i2").tobytes()
    body += np.array([-1, -1], dtype="<i2").tobytes()
    size = _HEAD.size + len(body)
    if size > 0xFFFF:
        raise HccrError(f"{ch!r}: {size} bytes do not fit a .pot record (65535 max)")
    return _HEAD.pack(size, encode_tag(ch), len(strokes)) + bytes(body)


def iter_pot(path: str | os.PathLike, size: int = 64, on_problem: Callable[[Problem], None] | None = None
             ) -> Iterator[tuple[np.ndarray, str, str]]:
    """Stream ``(rendered bitmap, character, writer)`` over a ``.pot`` file or folder of them,
    drawn with hccr's pen model (:mod:`hccr.data.render`), dark ink on white, cropped."""
    from .render import render_cropped
    from .sources import pot_pen

    path, pen = Path(path), pot_pen()  # the pen conversion and prediction draw .pot files with
    files = sorted(path.rglob("*.pot")) if path.is_dir() else [path]
    for f in files:
        rec = read_pot(f)
        for p in rec.problems:
            if on_problem is None:
                raise HccrError(str(p))
            on_problem(p)
        drawn = pen.draw([len(s.strokes) for s in rec.samples], rec.writer)
        for s, d in zip(rec.samples, drawn, strict=True):
            yield render_cropped(s.strokes, size, pen, d), s.char, rec.writer
