"""Rasterise pen trajectories into offline bitmaps (anti-aliased by supersampling).

Real pen trajectories (``.pot`` files, the drawing page, the JSON strokes API) are drawn by one
renderer, :func:`render_framed`, with one :class:`Pen` model, so that what the recognizer learns
from online data and what it is shown online look alike, and look like scans:

- a pen width per writer (log-normal around the median width of real scans at 64 px), varied per
  sample and per stroke;
- along each stroke: heavier where the pen lands, thinner where it moves fast (sample spacing is
  the pen's speed: tablets sample at a fixed rate) and towards a lifted end;
- an ink darkness per writer (scanned ink is grey, not black);
- the character drawn straight into the model's framed square (longer side = the square minus the
  margin, centred: what :func:`hccr.preprocess.frame` gives a cropped image), at 2x, box-filtered
  down. Clean trajectories need no paper flattening and no second resize.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Bumped whenever render_framed draws a trajectory differently (2: round joints), so that stores of drawn
# trajectories record how they were drawn and caches of them are redrawn (benchmarks' convert_once).
RENDER_VERSION = 2


def crop_to_ink(img: np.ndarray, background: int = 255, threshold: int = 8) -> np.ndarray:
    """Tight crop to the pixels that differ from ``background`` by more than ``threshold``."""
    mask = np.abs(img.astype(np.int16) - background) > threshold
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if len(rows) == 0:
        return img[:1, :1]
    return img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def draw_polylines(strokes: Sequence[np.ndarray], widths: Sequence[float | np.ndarray], shape: tuple[int, int],
                   ink: Sequence[int] | int = 0) -> np.ndarray:
    """Draw strokes (arrays of (x, y) in pixel units) on a white canvas with round joints and caps.

    ``widths[i]`` is a pen width for the whole stroke or one per segment (variable pressure).
    """
    from PIL import Image, ImageDraw

    h, w = shape
    canvas = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(canvas)
    inks = [ink] * len(strokes) if isinstance(ink, int) else list(ink)
    for pts, width, value in zip(strokes, widths, inks, strict=True):
        pts = np.asarray(pts, dtype=np.float64)
        if len(pts) == 0:
            continue
        per_segment = np.ndim(width) > 0
        if len(pts) == 1 or not per_segment:
            wd = float(np.mean(width)) if per_segment else float(width)
            _stroke(draw, pts, wd, int(value))
            continue
        wseg = np.asarray(width, dtype=np.float64)
        # Runs of similar width are drawn as one polyline (few C calls); caps only at the stroke's ends.
        q = np.maximum(np.rint(wseg), 1)
        cuts = np.flatnonzero(np.diff(q)) + 1
        bounds = [0, *cuts.tolist(), len(q)]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            draw.line(pts[a : b + 1].reshape(-1).tolist(), fill=int(value), width=int(q[a]))
        for (x, y), wd in ((pts[0], q[0]), (pts[-1], q[-1])):
            r = wd / 2
            draw.ellipse([x - r, y - r, x + r, y + r], fill=int(value))
    return np.asarray(canvas, dtype=np.uint8)


def _stroke(draw, pts: np.ndarray, width: float, value: int) -> None:
    width = max(width, 1.0)
    r = width / 2
    flat = pts.reshape(-1).tolist()
    if len(pts) > 1:
        draw.line(flat, fill=value, width=max(1, int(round(width))), joint="curve")
    for x, y in (pts[0], pts[-1]):  # round caps
        draw.ellipse([x - r, y - r, x + r, y + r], fill=value)


def render_trajectory(strokes: Sequence[np.ndarray], size: int = 64, stroke_width: float = 2.0,
                      supersample: int = 4) -> np.ndarray:
    """Online strokes (any units, y down) -> a tightly cropped offline bitmap, ink dark on 255.

    The longer side of the character becomes ``size`` pixels; ``stroke_width`` is in output pixels.
    """
    from PIL import Image

    strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes if len(s)]
    if not strokes:
        raise ValueError("no points to render")
    allpts = np.concatenate(strokes)
    lo, hi = allpts.min(0), allpts.max(0)
    extent = max(float((hi - lo).max()), 1e-6)
    k = supersample
    inner = (size - stroke_width) * k
    scale = inner / extent
    pad = stroke_width * k
    h = int(np.ceil((hi[1] - lo[1]) * scale + 2 * pad)) + 1
    w = int(np.ceil((hi[0] - lo[0]) * scale + 2 * pad)) + 1
    scaled = [(s - lo) * scale + pad for s in strokes]
    big = draw_polylines(scaled, [stroke_width * k] * len(scaled), (h, w))
    small = Image.fromarray(big).resize((max(1, round(w / k)), max(1, round(h / k))), Image.Resampling.BOX)
    return crop_to_ink(np.asarray(small, dtype=np.uint8))


# ---------------------------------------------------------------------------------------------
# The pen model for real trajectories

@dataclass(frozen=True)
class Pen:
    """How a trajectory becomes ink. Widths are in pixels of the 64 px framed character.

    The medians (``width``, ``ink``) are fitted to real scans (:func:`fit_pen`, on the features
    ``hccr synth --compare`` measures); the spreads and the along-stroke shape are the model's
    assumptions, their effect measured in docs/benchmarks.md."""

    width: float = 3.2  # median pen width (fitted: drawn strokes measure 2.3 px, as casia-hwdb-22's scans)
    writer_spread: float = 0.2  # log-normal sigma of a writer's pen around the median
    sample_spread: float = 0.08  # and of one sample around its writer's pen
    stroke_spread: float = 0.1  # and of one stroke around its sample's
    ink: float = 0.64  # median ink darkness, 1 = black (fitted: scanned ink is grey)
    ink_spread: float = 0.25  # uniform +- around it, per writer
    press: float = 0.15  # extra width where the pen lands, fading over the first tenth of the stroke
    speed: float = 0.35  # thinning where the pen moves fast (segment length / the sample's median)
    taper: float = 0.25  # thinning over the last fifth of a stroke
    seed: int = 0

    def draw(self, stroke_counts: Sequence[int], writer: str = "") -> list[PenDraw]:
        """One pen per sample of one writer (``stroke_counts[i]`` strokes in sample ``i``): the same
        for the same writer name, seed and counts, so a resumed conversion draws the same images."""
        rng = self.stream(writer)
        n = len(stroke_counts)
        if n == 0:  # a file with no readable record: nothing to draw (np.split would still give one piece)
            return []
        w_writer = self.width * np.exp(rng.normal(0, self.writer_spread))
        ink_writer = float(np.clip(self.ink + rng.uniform(-self.ink_spread, self.ink_spread), 0.2, 1.0))
        widths = w_writer * np.exp(rng.normal(0, self.sample_spread, n))
        per_stroke = np.exp(rng.normal(0, self.stroke_spread, int(np.sum(stroke_counts))))
        cuts = np.cumsum(stroke_counts)[:-1]
        return [PenDraw(float(w), ink_writer, s) for w, s in zip(widths, np.split(per_stroke, cuts), strict=True)]

    def stream(self, writer: str, *tag: int) -> np.random.Generator:
        """The random stream of one writer under this pen's seed (``tag``: another stream of the same writer)."""
        return np.random.default_rng([self.seed, zlib.crc32(writer.encode("utf-8")), *tag])

    def typical(self) -> PenDraw:
        """The median pen, with no randomness (the drawing page and the strokes API)."""
        return PenDraw(self.width, self.ink, None)


def jitter_strokes(strokes: Sequence[np.ndarray], amount: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Each stroke moved on its own around its centre (the mean of its points): shifted by a normal of
    sigma ``amount`` x the character's longer side, turned by one of sigma ``2 * amount`` radians and
    scaled by ``exp`` of one of sigma ``2 * amount``. Real writers place and size a character's strokes
    and components differently from one another; a whole-image warp, as training's augmentation draws,
    moves them only together."""
    strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes]
    if amount <= 0 or not strokes:
        return strokes
    n = len(strokes)
    counts = np.array([len(s) for s in strokes])
    pts = np.concatenate(strokes)
    extent = float(np.ptp(pts, axis=0).max()) if len(pts) else 0.0
    shift = rng.normal(0, amount * extent, (n, 2))
    turn = rng.normal(0, 2 * amount, n)
    grow = np.exp(rng.normal(0, 2 * amount, n))
    if not len(pts):
        return strokes
    which = np.repeat(np.arange(n), counts)  # every point's stroke
    centre = np.stack([np.bincount(which, pts[:, k], n) for k in (0, 1)], 1) / np.maximum(counts, 1)[:, None]
    d = pts - centre[which]
    cos, sin = (grow * np.cos(turn))[which], (grow * np.sin(turn))[which]
    moved = np.stack([cos * d[:, 0] - sin * d[:, 1], sin * d[:, 0] + cos * d[:, 1]], 1) + centre[which] + shift[which]
    return np.split(moved, np.cumsum(counts)[:-1])


@dataclass(frozen=True)
class PenDraw:
    width: float  # px at 64 px
    ink: float  # darkness, 1 = black
    stroke_scale: np.ndarray | None = None  # a width factor per stroke


def _segment_widths(pts: np.ndarray, starts: np.ndarray, pen: Pen, stroke_scale: np.ndarray | None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Relative width of every segment ``pts[j] -> pts[j + 1]`` of a sample whose strokes begin at
    ``starts``, and whether it is a segment at all (not the jump from one stroke to the next)."""
    d = np.hypot(*np.diff(pts, axis=0).T)
    valid = np.ones(len(d), bool)
    valid[starts[1:] - 1] = False
    d = np.where(valid, d, 0.0)
    stroke = np.zeros(len(pts), np.int64)
    stroke[starts[1:]] = 1
    stroke = np.cumsum(stroke)[:-1]  # the stroke of each segment's first point
    typical = max(float(d.sum()) / max(int(valid.sum()), 1), 1e-9)  # the sample's mean speed
    cum = np.cumsum(d)
    base = np.concatenate([[0.0], cum])[starts]  # arc length before each stroke
    ends = np.concatenate([starts[1:] - 1, [len(pts) - 1]])
    length = np.concatenate([[0.0], cum])[ends] - base
    t = (cum - d / 2 - base[stroke]) / np.maximum(length[stroke], 1e-9)  # arc-length fraction
    v = (np.convolve(d, np.ones(5) / 5, mode="same") if len(d) >= 5 else d) / typical  # speed, smoothed
    w = (1 + pen.press * np.exp(-t / 0.1)) * (1 - pen.taper * np.clip((t - 0.8) / 0.2, 0, 1))
    w /= np.sqrt(1 + pen.speed * np.maximum(v - 1, 0))
    if stroke_scale is not None:
        w *= stroke_scale[stroke]
    return w, valid


def render_framed(strokes: Sequence[np.ndarray], size: int, pen: Pen | None = None, drawn: PenDraw | None = None,
                  margin: float = 0.0, supersample: int = 2) -> np.ndarray:
    """Online strokes (any units, y down) -> ``size`` x ``size`` uint8, dark ink on 255, framed as
    :func:`hccr.preprocess.frame` frames a cropped image: the ink's longer side spans the square
    less ``margin`` on each side, centred. ``drawn``: one of :meth:`Pen.draw` (default: the
    typical pen)."""
    from PIL import Image, ImageDraw

    pen = pen or Pen()
    drawn = drawn or pen.typical()
    strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes]
    counts = np.array([len(s) for s in strokes])
    if counts.sum() == 0:
        raise ValueError("no points to render")
    scale_per_stroke = drawn.stroke_scale[counts > 0] if drawn.stroke_scale is not None else None
    counts = counts[counts > 0]
    pts = np.concatenate(strokes)
    starts = np.cumsum(counts) - counts
    rel, valid = _segment_widths(pts, starts, pen, scale_per_stroke)
    k = supersample
    pen_px = drawn.width * size / 64.0 * k  # widths are given at 64 px
    lo, hi = pts.min(0), pts.max(0)
    extent = float((hi - lo).max())
    wmax = pen_px * (float(rel[valid].max()) if valid.any() else 1.0)
    inner = size * (1 - 2 * margin) * k
    scale = max(inner - wmax, k) / extent if extent > 0 else 0.0
    xy = ((pts - (lo + hi) / 2) * scale + size * k / 2).ravel().tolist()
    w = np.maximum(rel * pen_px, 1.0)
    q = np.rint(w).astype(np.int64)
    # Runs: consecutive segments of one stroke drawn with the same whole-pixel width (one C call each).
    cut = np.flatnonzero((q[1:] != q[:-1]) | ~valid[1:] | ~valid[:-1]) + 1
    value = int(round(255 * (1 - drawn.ink)))
    canvas = Image.new("L", (size * k, size * k), 255)
    core = ImageDraw.Draw(canvas).draw  # PIL's core object: its Python wrapper costs more than the drawing
    for a, b in zip([0, *cut.tolist()], [*cut.tolist(), len(q)], strict=True):
        if valid[a]:
            core.draw_lines(xy[2 * a : 2 * b + 2], value, int(q[a]))
    # A round pen leaves round ends and round joints. PIL's wide polylines have neither: where a stroke
    # turns sharply their segment ends stick out as spikes (worst for a thick pen over sparse points).
    # So a disc, as wide as the wider of its two segments, on every point where a turn would show one.
    ends = np.concatenate([starts[1:] - 1, [len(pts) - 1]])
    seg_first = np.minimum(starts, len(w) - 1) if len(w) else starts
    cap = np.concatenate([w[seg_first], w[np.maximum(ends - 1, 0)]]) if len(w) else np.full(2 * len(starts), pen_px)
    where = np.concatenate([starts, ends])
    if len(w) > 1:
        inner = np.flatnonzero(valid[:-1] & valid[1:]) + 1  # points inside a stroke
        joint = np.maximum(w[inner - 1], w[inner])
        inner, joint = inner[joint >= 3], joint[joint >= 3]  # at 1-2 px a join shows no corner
        where, cap = np.concatenate([where, inner]), np.concatenate([cap, joint])
    for p, wd in zip(where.tolist(), cap.tolist(), strict=True):
        r = (max(wd, 1.0) - 1) / 2  # PIL's ellipse includes both edges: this one is wd pixels across
        x, y = xy[2 * p], xy[2 * p + 1]
        core.draw_ellipse((x - r, y - r, x + r, y + r), value, 1)
    if k > 1:
        canvas = canvas.resize((size, size), Image.Resampling.BOX)
    return np.asarray(canvas, dtype=np.uint8)


def render_cropped(strokes: Sequence[np.ndarray], size: int = 64, pen: Pen | None = None,
                   drawn: PenDraw | None = None) -> np.ndarray:
    """:func:`render_framed`, cropped to the ink: an image as a scan would give it (dark on white)."""
    return crop_to_ink(render_framed(strokes, size, pen, drawn))
