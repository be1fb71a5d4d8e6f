"""CASIA-HWDB offline ``.gnt`` files: a bulk numpy parser, a streaming reader and a writer.

A ``.gnt`` file holds one writer's samples back to back, little-endian::

    uint32 sample size (= 10 + W*H) | 2 bytes tag code (GBK) | uint16 W | uint16 H | W*H uint8 bitmap

Only the chain of sample sizes is walked record by record (each record's start depends on the
previous one); every field is then read for all records at once through numpy views.
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import HccrError, Problem

HEADER = 10
_U32 = struct.Struct("<I")


def decode_tag(b0: int, b1: int) -> str:
    """GBK tag code -> character; one-byte symbols are stored as the byte followed by NUL."""
    raw = bytes((b0,)) if b1 == 0 else bytes((b0, b1))
    ch = raw.decode("gbk")  # raises UnicodeDecodeError
    if len(ch) != 1:
        raise UnicodeDecodeError("gbk", raw, 0, len(raw), "not a single character")
    return ch


@lru_cache(maxsize=1)
def _gbk_table() -> np.ndarray:
    """Tag code (b0 << 8 | b1) -> Unicode code point, -1 where undecodable; built once per process."""
    lut = np.full(65536, -1, dtype=np.int32)
    for code in [*range(0x01, 0x80), *(b0 << 8 | b1 for b0 in range(0x81, 0xFF) for b1 in range(0x40, 0xFF))]:
        try:
            lut[code << 8 if code < 0x80 else code] = ord(decode_tag(*((code, 0) if code < 0x80 else divmod(code, 256))))
        except UnicodeDecodeError:
            pass
    return lut


def gbk_code(ch: str, fmt: str) -> bytes:
    """``ch``'s one or two GBK bytes; an error naming the file format (``fmt``) that cannot store it."""
    try:
        raw = ch.encode("gbk")
    except UnicodeEncodeError:
        raise HccrError(f"character {ch!r} (U+{ord(ch):04X}) has no GBK code; {fmt} cannot store it") from None
    if len(raw) > 2:
        raise HccrError(f"character {ch!r} needs {len(raw)} GBK bytes; {fmt} tag codes hold 2")
    return raw


def encode_tag(ch: str) -> bytes:
    raw = gbk_code(ch, ".gnt")
    return raw + b"\x00" if len(raw) == 1 else raw


@dataclass
class GntRecords:
    """The good records of one ``.gnt`` buffer plus the problems found in it."""

    source: str
    buf: np.ndarray  # the whole file as uint8
    starts: np.ndarray  # int64 offset of each good record's bitmap
    heights: np.ndarray  # int32
    widths: np.ndarray  # int32
    codepoints: np.ndarray  # int32 Unicode code point of each record's character
    writer: str
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def chars(self) -> list[str]:
        return [chr(c) for c in self.codepoints.tolist()]

    def image(self, i: int) -> np.ndarray:
        """Bitmap ``i`` as an H×W uint8 view into the file buffer (background 255)."""
        return np.ndarray((int(self.heights[i]), int(self.widths[i])), np.uint8, self.buf, int(self.starts[i]))

    def __iter__(self) -> Iterator[tuple[np.ndarray, str]]:
        buf = self.buf
        for s, h, w, c in zip(self.starts.tolist(), self.heights.tolist(), self.widths.tolist(),
                              self.codepoints.tolist(), strict=True):
            yield np.ndarray((h, w), np.uint8, buf, s), chr(c)


_HDR = struct.Struct("<I2sHH")  # size, tag code, width, height


def _valid_at(buf: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Offsets in [lo, hi) where a plausible record header starts: its size is 10 + W*H with
    0 < W, H <= 4096 (the tag is checked later, like every record's). Vectorised over the window."""
    n = len(buf)
    hi = min(hi, n - HEADER + 1)
    if hi <= lo:
        return np.zeros(0, np.int64)
    win = buf[lo : hi + HEADER - 1].astype(np.int64)
    m = hi - lo
    size = win[0:m] | win[1 : m + 1] << 8 | win[2 : m + 2] << 16 | win[3 : m + 3] << 24
    w = win[6 : m + 6] | win[7 : m + 7] << 8
    h = win[8 : m + 8] | win[9 : m + 9] << 8
    ok = (w > 0) & (h > 0) & (w <= 4096) & (h <= 4096) & (size == HEADER + w * h)
    return lo + np.flatnonzero(ok)


def _resync(buf: np.ndarray, start: int, window: int = 1 << 20) -> int | None:
    """The first offset after ``start`` where two consecutive records (or one ending exactly at the
    end of the file) have plausible headers: where reading can safely go on after a bad record."""
    n = len(buf)
    lo = start + 1
    while lo < n - HEADER:
        for p in _valid_at(buf, lo, lo + window).tolist():
            size = int(_U32.unpack_from(memoryview(buf), p)[0])
            nxt = p + size
            if nxt == n or (nxt < n - HEADER and len(_valid_at(buf, nxt, nxt + 1))):
                return p
        lo += window
    return None


def _walk_offsets(buf: np.ndarray, source: str, problems: list[Problem]) -> np.ndarray:
    """Record start offsets, following the chain of sample sizes (the one sequential step).

    Each header is checked as the chain is walked (size = 10 + W*H, W and H > 0); after a bad one
    the reader resynchronises on the next pair of plausible records, so one damaged record costs
    only itself (and the bytes up to the next good record), not the rest of the file.
    """
    n = len(buf)
    mv = memoryview(buf)
    unpack = _HDR.unpack_from
    offsets: list[int] = []
    append = offsets.append
    off = 0
    while off < n:
        if n - off < HEADER:
            problems.append(Problem(source, f"truncated record: {n - off} bytes left, a header needs {HEADER}",
                                    f"record at offset {off}"))
            break
        size, _tag, w, h = unpack(mv, off)
        if w > 0 and h > 0 and size == HEADER + w * h:
            if off + size > n:
                problems.append(Problem(source, f"truncated record: sample size {size} but only {n - off} "
                                        "bytes left", f"record at offset {off}"))
                break
            append(off)
            off += size
            continue
        nxt = _resync(buf, off)
        skipped = (nxt if nxt is not None else n) - off
        what = (f"zero width or height ({w}x{h})" if w == 0 or h == 0 else
                f"sample size {size} disagrees with 10 + W*H = {HEADER + w * h} (W={w}, H={h})")
        problems.append(Problem(source, what + (f"; skipped {skipped} bytes to the next good record" if nxt is not None
                                                else "; no good record after it"), f"record at offset {off}"))
        if nxt is None:
            break
        off = nxt
    return np.asarray(offsets, dtype=np.int64)


def _u16_at(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Little-endian uint16 at arbitrary byte positions, via two aligned views (no per-record loop)."""
    n = len(buf)
    even = buf[: n - n % 2].view("<u2")
    odd = buf[1 : n - (n - 1) % 2].view("<u2")
    return np.where(pos % 2 == 0, even[np.minimum(pos // 2, len(even) - 1)],
                    odd[np.minimum(pos // 2, len(odd) - 1)]).astype(np.int32)


def parse_gnt(data: bytes | np.ndarray, source: str = "<bytes>", writer: str | None = None) -> GntRecords:
    """Parse a whole ``.gnt`` buffer; bad records are left out and described in ``.problems``."""
    # A plain ndarray view: indexing an np.memmap subclass is several times slower.
    buf = data.view(np.ndarray) if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
    problems: list[Problem] = []
    offs = _walk_offsets(buf, source, problems)
    # Every header field of every record at once, through little-endian uint16 views of the buffer
    # (one per byte alignment). The walk has checked sizes and dimensions; tags are checked here.
    w, h = _u16_at(buf, offs + 6), _u16_at(buf, offs + 8)
    codes = buf[offs + 4].astype(np.int32) << 8 | buf[offs + 5]
    ok = np.ones(len(offs), dtype=bool)

    lut = _gbk_table()
    cps = lut[codes]
    for i in np.flatnonzero((cps < 0) & ok):
        problems.append(Problem(source, f"undecodable tag code 0x{codes[i]:04X} (not GBK)", f"record at offset {offs[i]}"))
        ok[i] = False
    problems.sort(key=lambda p: int(p.where.rsplit(" ", 1)[-1]) if p.where else 0)

    keep = np.flatnonzero(ok) if not ok.all() else slice(None)
    if writer is None:
        writer = Path(source).stem
    return GntRecords(source, buf, offs[keep] + HEADER, h[keep], w[keep], cps[keep], writer, problems)


def read_gnt(path: str | os.PathLike) -> GntRecords:
    path = Path(path)
    if not path.is_file():
        raise HccrError(f"{path}: no such file")
    if path.stat().st_size == 0:
        return GntRecords(str(path), np.zeros(0, np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int32),
                          np.zeros(0, np.int32), [], path.stem, [Problem(str(path), "empty file")])
    # A read-only memory map: pages are shared between worker processes reading parts of one file.
    return parse_gnt(np.memmap(path, dtype=np.uint8, mode="r"), str(path))


# ---------------------------------------------------------------------------------------------
# Finding .gnt data: a file, a folder tree, or a .zip (CASIA ships HWDB1.x as zips of .gnt files)

@dataclass(frozen=True)
class GntUnit:
    """One ``.gnt`` file to read, possibly inside a zip; picklable for worker processes."""

    path: str
    member: str | None = None

    @property
    def name(self) -> str:
        return f"{self.path}!{self.member}" if self.member else self.path

    @property
    def writer(self) -> str:
        return Path(self.member or self.path).stem

    def read(self) -> GntRecords:
        if self.member is None:
            return read_gnt(self.path)
        with zipfile.ZipFile(self.path) as zf:
            data = zf.read(self.member)
        return parse_gnt(data, self.name, writer=self.writer)


def find_gnt(path: str | os.PathLike) -> list[GntUnit]:
    """Every ``.gnt`` under ``path`` (file, folder tree or zip), sorted for a stable order."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                names = sorted(n for n in zf.namelist() if n.lower().endswith(".gnt"))
        except zipfile.BadZipFile:
            raise HccrError(f"{path}: not a readable zip file") from None
        return [GntUnit(str(path), n) for n in names]
    if path.is_file():
        return [GntUnit(str(path))]
    if path.is_dir():
        units: list[GntUnit] = []
        for p in sorted(path.rglob("*")):
            if p.suffix.lower() == ".gnt":
                units.append(GntUnit(str(p)))
            elif p.suffix.lower() == ".zip":
                units.extend(find_gnt(p))
        return units
    raise HccrError(f"{path}: no such file or folder")


def iter_gnt(path: str | os.PathLike, on_problem: Callable[[Problem], None] | None = None
             ) -> Iterator[tuple[np.ndarray, str, str]]:
    """Stream ``(image, character, writer)`` over a ``.gnt`` file, a folder tree of them or a zip. A damaged record
    goes to ``on_problem``, or without one raises :class:`HccrError` naming the file and offset (as ``iter_pot``)."""
    for unit in find_gnt(path):
        records = unit.read()
        for p in records.problems:
            if on_problem is None:
                raise HccrError(str(p))
            on_problem(p)
        for img, ch in records:
            yield img, ch, records.writer


# ---------------------------------------------------------------------------------------------
# Writing

def encode_record(image: np.ndarray, ch: str) -> bytes:
    """One CASIA record, byte-identical to the format the readers expect."""
    img = np.ascontiguousarray(image, dtype=np.uint8)
    if img.ndim != 2 or img.shape[0] == 0 or img.shape[1] == 0:
        raise HccrError(f"cannot write {ch!r}: image must be a non-empty 2-D array, got shape {img.shape}")
    h, w = img.shape
    if h > 0xFFFF or w > 0xFFFF:
        raise HccrError(f"cannot write {ch!r}: {w}x{h} exceeds the 65535-pixel limit of .gnt")
    return _U32.pack(HEADER + w * h) + encode_tag(ch) + struct.pack("<HH", w, h) + img.tobytes()


def write_gnt(path: str | os.PathLike, samples: Iterable[tuple[np.ndarray, str]]) -> int:
    """Write ``(image, character)`` pairs as a ``.gnt`` file (atomically); returns the count."""
    from ..utils import atomic_path

    n = 0
    with atomic_path(path) as tmp, open(tmp, "wb", buffering=1 << 20) as f:
        for img, ch in samples:
            f.write(encode_record(img, ch))
            n += 1
    return n
