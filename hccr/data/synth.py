"""Synthetic handwriting: simulated writers rendering stroke data (or fonts) as CASIA ``.gnt`` files (learned
writer models write ``.pot`` pen trajectories instead, drawn at conversion like real ones).

A *writer* is a set of style parameters drawn once (slant, rotation, aspect, size, pen width and
ink, stroke displacement, trajectory wobble, speed, hooks, shortening, compression of parts of
the character); each sample then adds its own smaller noise. Trajectories come from the bundled
stroke medians (``hccr.data.strokes``), are smoothed, distorted, given a pressure profile and
rasterised at 3x resolution, then downsampled and tightly cropped like CASIA (background 255).

Everything is numpy + Pillow and deterministic for a given seed: writer ``k`` of seed ``s`` draws
from ``SeedSequence([s, k])`` whatever the number of worker processes.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import HccrError
from .charset import resolve_charset
from .gnt import write_gnt
from .render import crop_to_ink, draw_polylines
from .strokes import char_strokes, has_strokes
from .style import StyleProfile, default_profile

BOX = 1024.0  # stroke data units
SUPERSAMPLE = 3
SHORT_STROKE = 450.0  # strokes shorter than this (stroke units, of 1024) may be simplified towards dots


@dataclass
class WriterStyle:
    """Style parameters of one simulated writer (lengths in 1024-unit stroke space)."""

    size: float  # longer side of a character in output pixels
    slant: float  # horizontal shear (x += slant * y)
    rotation: float  # radians
    aspect: float  # width / height scale
    pen: float  # pen width
    ink: float  # darkest gray of the ink (0 = black)
    jitter: float  # per-stroke displacement
    wobble: float  # smooth trajectory noise amplitude
    speed: float  # 0..1: smoother corners, more joins, more tapering
    hook: float  # probability of a hook at a stroke end
    shorten: float  # mean fraction trimmed (or, when negative, added) at stroke ends
    compress_x: float  # exponent of a monotone warp of x (parts drawn narrower/wider)
    compress_y: float  # exponent of a monotone warp of y
    warp: float  # amplitude of a smooth global displacement field
    warp_phase: tuple[float, ...] = field(default_factory=tuple)
    simplify: float = 0.0  # 0..1: how far short strokes may shrink towards dots (fast, reduced writing)

    @classmethod
    def sample(cls, rng: np.random.Generator, profile: StyleProfile | None = None) -> WriterStyle:
        """One writer drawn from ``profile`` (the default: hccr's calibrated profile)."""
        p = profile or default_profile()
        speed = float(rng.beta(p.speed_a, p.speed_b))
        return cls(
            size=float(p.size_mean * np.exp(rng.normal(0, p.size_sigma))),
            slant=float(rng.normal(p.slant_mu, p.slant_sigma)),
            rotation=float(rng.normal(0, 0.05)),
            aspect=float(np.exp(rng.normal(p.aspect_mu, p.aspect_sigma))),
            pen=float(50 * p.pen_scale * np.exp(rng.normal(0, p.pen_sigma))),
            ink=float(np.clip(p.ink_base + 90 * p.ink_scale * rng.beta(1.2, 3.0), 0, 200)),
            jitter=float(rng.uniform(8, 38) * p.distortion),
            wobble=float(rng.uniform(2, 11) * p.distortion),
            speed=speed,
            hook=float(rng.uniform(0, 0.5) * (0.4 + speed)),
            shorten=float(rng.normal(0.04, 0.06)),
            compress_x=float(np.exp(rng.normal(0, 0.12 * p.distortion * p.proportion))),
            compress_y=float(np.exp(rng.normal(0, 0.15 * p.distortion * p.proportion))),
            warp=float(rng.uniform(0, 35) * p.distortion),
            warp_phase=tuple(float(v) for v in rng.uniform(0, 2 * np.pi, size=6)),
            # Drawn only when the profile asks for it, so profiles without it give the same writers.
            simplify=float(np.clip(p.simplify * (0.5 + speed) * rng.uniform(0.5, 1.5), 0, 0.9))
            if p.simplify > 0 else 0.0,
        )


# ---------------------------------------------------------------------------------------------
# One sample

def distort_strokes(strokes: Sequence[np.ndarray], style: WriterStyle, rng: np.random.Generator, jitter: float,
                    speed: float, spacing: float = 10.0) -> list[np.ndarray]:
    """Every stroke of a character at once (points concatenated, one id per stroke): resampled by
    arclength, smoothed (corners rounded like a fast pen), displaced, scaled and turned about its
    centre, wobbled across its direction of travel, and trimmed or extended at its ends; vectorised
    over all strokes, without a Python loop over them (that loop was most of the generator's time)."""
    raw = [a for a in (np.asarray(s, np.float64).reshape(-1, 2) for s in strokes) if len(a)]
    ns = len(raw)
    lens = np.array([len(a) for a in raw])
    first = np.concatenate([[0], np.cumsum(lens)[:-1]])
    pts = np.concatenate(raw)
    sid = np.repeat(np.arange(ns), lens)

    # Resample: evenly spaced points along each polyline, by arclength, in one interpolation (strokes
    # are kept apart on the arclength axis by a unit gap).
    seg = np.hypot(*np.diff(pts, axis=0).T) if len(pts) > 1 else np.zeros(0)
    seg[first[1:] - 1] = 0.0
    arc = np.concatenate([[0.0], np.cumsum(seg)]) + sid
    length = arc[first + lens - 1] - arc[first]
    ok = (lens >= 2) & (length >= 1e-6)
    n = np.where(ok, np.maximum(2, np.ceil(length / spacing).astype(np.int64) + 1), 1)  # else one point
    q_sid = np.repeat(np.arange(ns), n)
    q_first = np.concatenate([[0], np.cumsum(n)[:-1]])
    local = np.arange(len(q_sid)) - q_first[q_sid]
    step = np.where(n > 1, length / np.maximum(n - 1, 1), 0.0)
    t = arc[first][q_sid] + local * step[q_sid]
    p = np.stack([np.interp(t, arc, pts[:, 0]), np.interp(t, arc, pts[:, 1])], 1)

    # Smooth: moving average of width 2r+1 with the end points repeated, ends kept (strokes of 3+ points).
    r = int(round(speed * 4))
    last_local = (n - 1)[q_sid]
    if r >= 1:
        c = np.concatenate([np.zeros((1, 2)), np.cumsum(p, 0)])
        lo, hi = local - r, local + r
        inside = c[q_first[q_sid] + np.minimum(hi, last_local) + 1] - c[q_first[q_sid] + np.maximum(lo, 0)]
        below, above = np.maximum(0, -lo), np.maximum(0, hi - last_local)
        avg = (inside + below[:, None] * p[q_first[q_sid]] + above[:, None] * p[(q_first + n - 1)[q_sid]]) / (2 * r + 1)
        ends = (local == 0) | (local == last_local)
        p = np.where(((n >= 3)[q_sid] & ~ends)[:, None], avg, p)

    # Displace, scale and turn each stroke about its centre.
    centre = np.add.reduceat(p, q_first, axis=0) / n[:, None]
    ang = rng.normal(0, 0.05, ns)
    scale = np.exp(rng.normal(0, 0.07, ns))
    if style.simplify > 0:  # short strokes reduced towards dots: the shorter, the more
        short = np.clip(1 - length / SHORT_STROKE, 0, 1)
        scale *= 1 - style.simplify * short * rng.uniform(0, 1, ns)
    shift = rng.normal(0, jitter, (ns, 2))
    cos, sin, k = np.cos(ang)[q_sid], np.sin(ang)[q_sid], scale[q_sid]
    d = p - centre[q_sid]
    p = np.stack([d[:, 0] * cos - d[:, 1] * sin, d[:, 0] * sin + d[:, 1] * cos], 1) * k[:, None] \
        + centre[q_sid] + shift[q_sid]

    # Wobble perpendicular to the direction of travel: a smooth random curve per stroke (3+ points).
    nxt = q_first[q_sid] + np.minimum(local + 1, last_local)
    prv = q_first[q_sid] + np.maximum(local - 1, 0)
    dv = p[nxt] - p[prv]
    nrm = np.stack([-dv[:, 1], dv[:, 0]], 1) / (np.hypot(dv[:, 0], dv[:, 1])[:, None] + 1e-9)
    phase = rng.uniform(size=(ns, 3))
    kk = np.arange(1, 4)
    coef = rng.normal(size=(ns, 3)) / kk * (style.wobble / 1.3)
    tt = local / np.maximum(last_local, 1)
    waves = np.sin(2 * np.pi * (1.5 * tt[:, None] * kk + phase[q_sid]))
    p = p + np.where((n > 2)[q_sid], (waves * coef[q_sid]).sum(1), 0.0)[:, None] * nrm

    # Trim (or extend, when negative) a fraction of each stroke's length at each end (3+ points).
    start, end = rng.normal(style.shorten, 0.05, ns), rng.normal(style.shorten, 0.05, ns)
    long = n >= 3
    a = np.where(long, np.rint(np.clip(start, 0, 0.3) * (n - 1)).astype(np.int64), 0)
    b = np.where(long, n - np.rint(np.clip(end, 0, 0.3) * (n - 1)).astype(np.int64), n)
    keep = (local >= a[q_sid]) & (local < b[q_sid])
    head, tail = long & (start < 0), long & (end < 0)
    kept = b - a
    count = kept + head + tail
    o_first = np.concatenate([[0], np.cumsum(count)[:-1]])
    out = np.empty((int(count.sum()), 2))
    out[(o_first + head)[q_sid][keep] + (local - a[q_sid])[keep]] = p[keep]
    f0, f1 = p[q_first[head]], p[q_first[head] + 1]
    out[o_first[head]] = f0 + (f0 - f1) * ((-start[head]) * n[head] * 0.5)[:, None]
    l0, l1 = p[q_first[tail] + n[tail] - 1], p[q_first[tail] + n[tail] - 2]
    out[(o_first + head + kept)[tail]] = l0 + (l0 - l1) * ((-end[tail]) * n[tail] * 0.5)[:, None]
    return np.split(out, o_first[1:])


def simulate(strokes: Sequence[np.ndarray], style: WriterStyle, rng: np.random.Generator
             ) -> tuple[list[np.ndarray], list[np.ndarray], list[float]]:
    """Turn stroke medians into distorted pen trajectories: (points, per-segment widths, ink) per stroke."""
    spacing = 10.0
    # Per-sample variation around the writer's style.
    jitter = style.jitter * np.exp(rng.normal(0, 0.25))
    pen = style.pen * np.exp(rng.normal(0, 0.08))
    speed = float(np.clip(style.speed + rng.normal(0, 0.08), 0, 1))
    out_pts = distort_strokes(strokes, style, rng, jitter, speed, spacing)

    # Hooks and cursive joins towards the next stroke's start.
    extra: list[np.ndarray] = []
    if len(out_pts) > 1:
        ends = np.array([p[-1] for p in out_pts[:-1]])
        gaps = np.array([p[0] for p in out_pts[1:]]) - ends
        dist = np.hypot(gaps[:, 0], gaps[:, 1])
        g = len(gaps)
        join = (dist >= 1e-6) & (rng.uniform(size=g) < speed * 0.65) & (dist < 400)
        hook = (dist >= 1e-6) & ~join & (rng.uniform(size=g) < style.hook)
        bend_k, hook_len = rng.normal(0, 0.2, g), rng.uniform(25, 70, g)
        for i in np.flatnonzero(join | hook):
            end, gap, dst = ends[i], gaps[i], dist[i]
            if join[i]:
                bend = np.array([-gap[1], gap[0]]) * bend_k[i]
                t = np.linspace(0, 1, max(3, int(dst / spacing)))[:, None]
                extra.append(end + gap * t + bend * (4 * t * (1 - t)))
            else:
                extra.append(end + gap / dst * np.array([[0.0], [0.6], [1.0]]) * hook_len[i])

    # Global geometry: monotone warps (proportions), smooth field, slant, rotation, aspect.
    allp = np.concatenate(out_pts + extra) if extra else np.concatenate(out_pts)
    counts = [len(p) for p in out_pts + extra]
    u = np.clip(allp / BOX, 0, 1)
    gx = style.compress_x * np.exp(rng.normal(0, 0.05))
    gy = style.compress_y * np.exp(rng.normal(0, 0.06))
    allp = np.where((allp >= 0) & (allp <= BOX), BOX * u ** np.array([gx, gy]), allp)
    ph = np.asarray(style.warp_phase or (0.0,) * 6) + rng.normal(0, 0.3, size=6)
    a = style.warp * np.exp(rng.normal(0, 0.2))
    x, y = allp[:, 0] / BOX, allp[:, 1] / BOX
    allp = allp + a * np.stack([np.sin(2 * np.pi * y + ph[0]) + 0.5 * np.sin(4 * np.pi * x + ph[1]),
                                np.sin(2 * np.pi * x + ph[2]) + 0.5 * np.sin(4 * np.pi * y + ph[3])], 1)
    slant = style.slant + rng.normal(0, 0.03)
    rot = style.rotation + rng.normal(0, 0.03)
    aspect = style.aspect * np.exp(rng.normal(0, 0.04))
    m = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]]) @ \
        np.array([[aspect, -slant], [0.0, 1.0]])
    allp = (allp - BOX / 2) @ m.T + BOX / 2
    pieces = np.split(allp, np.cumsum(counts)[:-1])

    # Pen pressure: a press at the start, tapering tails for fast writers, per-stroke variation;
    # joins and hooks are a light, thin line. One width per segment, for all pieces at once.
    nseg = np.maximum(np.asarray(counts) - 1, 1)
    piece = np.repeat(np.arange(len(counts)), nseg)
    seg_first = np.concatenate([[0], np.cumsum(nseg)[:-1]])
    t = (np.arange(len(piece)) - seg_first[piece]) / np.maximum(nseg - 1, 1)[piece]
    taper = (0.25 + 0.6 * speed) * rng.uniform(0.3, 1, len(counts))
    press = pen * np.exp(rng.normal(0, 0.12, len(counts)))
    light = pen * rng.uniform(0.3, 0.6, len(counts))
    prof = 1 + 0.25 * np.exp(-t / 0.08) - taper[piece] * np.clip((t - 0.7) / 0.3, 0, 1) ** 1.5
    is_stroke = (np.arange(len(counts)) < len(out_pts))[piece]
    widths = np.split(np.where(is_stroke, press[piece] * prof, light[piece]), seg_first[1:])
    inks = np.clip(style.ink + rng.normal(0, 12, len(counts)), 0, 210).tolist()
    return pieces, widths, inks


def render_sample(strokes: Sequence[np.ndarray], style: WriterStyle, rng: np.random.Generator) -> np.ndarray:
    """One synthetic sample: uint8 H×W, dark ink on 255, tightly cropped."""
    from PIL import Image

    pieces, widths, inks = simulate(strokes, style, rng)
    k = SUPERSAMPLE
    scale = style.size * np.exp(rng.normal(0, 0.05)) * k / BOX
    allp = np.concatenate(pieces)
    lo = allp.min(0)
    margin = style.pen * scale + 2
    shape = tuple(int(v) for v in np.ceil((allp.max(0) - lo) * scale + 2 * margin)[::-1])
    scaled = [(p - lo) * scale + margin for p in pieces]
    big = draw_polylines(scaled, [np.maximum(w * scale, 1.0) for w in widths], shape,  # type: ignore[arg-type]
                         ink=[int(v) for v in inks])
    h, w = big.shape
    small = Image.fromarray(big).resize((max(1, round(w / k)), max(1, round(h / k))), Image.Resampling.BOX)
    return crop_to_ink(np.asarray(small, dtype=np.uint8), threshold=20)


# ---------------------------------------------------------------------------------------------
# Fonts as a second source

GLYPH_PX = 128  # glyphs are rendered at about 2x the output size, then distorted and reduced


@functools.lru_cache(maxsize=16)
def _load_font(font_path: str, px: int):
    """Each font file is opened once per process (a CJK font is 5-20 MB; opening it per glyph is slow)."""
    from PIL import ImageFont

    try:
        return ImageFont.truetype(font_path, px)
    except OSError:
        raise HccrError(f"{font_path}: not a font Pillow can read") from None


def font_glyph(font_path: str, ch: str, px: int = GLYPH_PX) -> np.ndarray | None:
    """A glyph from a TTF/OTF/TTC as uint8, ink high (255) on 0, cropped to the ink with a small
    border; None if the font lacks the character."""
    from PIL import Image, ImageDraw

    font = _load_font(font_path, px)
    if _is_tofu(font, ch):
        return None
    img = Image.new("L", (int(px * 1.5), int(px * 1.5)), 0)
    ImageDraw.Draw(img).text((px // 4, px // 4), ch, fill=255, font=font)
    box = img.getbbox()
    if box is None:
        return None
    pad = px // 8
    return np.pad(np.asarray(img.crop(box), dtype=np.uint8), pad)


@functools.lru_cache(maxsize=16)
def _tofu_box(font) -> tuple | None:
    return font.getmask("\uffff").getbbox()


def _is_tofu(font, ch: str) -> bool:
    try:
        box = font.getmask(ch).getbbox()
    except Exception:
        return True
    return box is None or (font.getlength(ch) == font.getlength("\uffff") and box == _tofu_box(font))


def render_font_sample(glyph: np.ndarray, style: WriterStyle, rng: np.random.Generator) -> np.ndarray:
    """A font glyph with the writer's geometry (proportions, slant, rotation, aspect), pen weight
    and ink: the shape comes from the font, the hand from the writer (no trajectories to vary)."""
    from PIL import Image, ImageFilter

    h, w = glyph.shape
    # Proportions: the same monotone warps of x and y as the stroke path, by index lookup.
    gx = style.compress_x * np.exp(rng.normal(0, 0.05))
    gy = style.compress_y * np.exp(rng.normal(0, 0.06))
    xs = np.clip(np.round((np.linspace(0, 1, w) ** (1 / gx)) * (w - 1)).astype(np.intp), 0, w - 1)
    ys = np.clip(np.round((np.linspace(0, 1, h) ** (1 / gy)) * (h - 1)).astype(np.intp), 0, h - 1)
    im = Image.fromarray(glyph[ys][:, xs])
    # Slant, rotation, aspect: one affine map about the centre (PIL wants output -> input).
    slant = style.slant + rng.normal(0, 0.03)
    rot = style.rotation + rng.normal(0, 0.03)
    aspect = style.aspect * np.exp(rng.normal(0, 0.04))
    m = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]]) @ np.array([[aspect, -slant], [0, 1.0]])
    side = int(max(h, w) * 1.6)
    inv = np.linalg.inv(m)
    c_out = np.array([side / 2, side / 2])
    off = np.array([w / 2, h / 2]) - inv @ c_out
    im = im.transform((side, side), Image.Transform.AFFINE, (inv[0, 0], inv[0, 1], off[0], inv[1, 0], inv[1, 1], off[1]),
                      resample=Image.Resampling.BILINEAR)
    # Pen weight relative to the font's: the writer's pen against a typical one, by morphology.
    weight = int(round((style.pen - 50) / 18 + rng.normal(0, 0.4)))
    for _ in range(min(abs(weight), 2)):
        im = im.filter(ImageFilter.MaxFilter(3) if weight > 0 else ImageFilter.MinFilter(3))
    box = im.getbbox()
    if box is None:
        return np.full((1, 1), 255, np.uint8)
    im = im.crop(box)
    scale = style.size * np.exp(rng.normal(0, 0.05)) / max(im.size)
    im = im.resize((max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale))), Image.Resampling.BOX)
    ink = float(np.clip(style.ink + rng.normal(0, 12), 0, 210))
    arr = 255 - (255 - ink) * (np.asarray(im, dtype=np.float32) / 255)
    return crop_to_ink(np.uint8(np.clip(arr + 0.5, 0, 255)), threshold=20)


# ---------------------------------------------------------------------------------------------
# Writers and the synth command

@dataclass
class SynthConfig:
    chars: str = "gb2312-1"
    writers: int = 10
    seed: int = 0
    size: float | None = None  # mean character size in px; None = the style profile's
    fonts: tuple[str, ...] = ()
    font_fraction: float = 0.0  # share of a writer's samples taken from fonts, when fonts are given
    prefix: str = "synth"
    style: str | None = None  # a style profile JSON; None = hccr's default (calibrated on real handwriting)

    def profile(self) -> StyleProfile:
        from dataclasses import replace

        p = StyleProfile.load(self.style) if self.style else default_profile()
        return replace(p, size_mean=float(self.size)) if self.size else p


def writer_rng(seed: int, writer: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, writer]))


def writer_samples(chars: Sequence[str], writer: int, cfg: SynthConfig,
                   extra: dict[str, list[np.ndarray]] | None = None, profile: StyleProfile | None = None
                   ) -> list[tuple[np.ndarray, str]]:
    """All samples of one writer, one per character, in charset order."""
    rng = writer_rng(cfg.seed, writer)
    style = WriterStyle.sample(rng, profile or cfg.profile())
    extra = extra or {}
    out = []
    for ch in chars:
        strokes_ok = ch in extra or has_strokes(ch)
        glyph = None
        if cfg.fonts and (rng.uniform() < cfg.font_fraction or not strokes_ok):
            # A random font; if it lacks the character, the others in turn, then the strokes.
            first = int(rng.integers(len(cfg.fonts)))
            for k in range(len(cfg.fonts)):
                glyph = font_glyph(cfg.fonts[(first + k) % len(cfg.fonts)], ch)
                if glyph is not None:
                    break
            if glyph is None and not strokes_ok:
                raise HccrError(f"no stroke data for {ch!r} and none of the fonts has it: {', '.join(cfg.fonts)}")
        if glyph is not None:
            out.append((render_font_sample(glyph, style, rng), ch))
        else:
            strokes = extra[ch] if ch in extra else char_strokes(ch)
            out.append((render_sample(strokes, style, rng), ch))
    return out


def writer_path(out: str | os.PathLike, cfg: SynthConfig, writer: int, learned: bool) -> Path:
    """Where a writer is written: PREFIX0000.gnt, or .pot for learned writers (pen trajectories)."""
    return Path(out) / f"{cfg.prefix}{writer:04d}{'.pot' if learned else '.gnt'}"


def _write_writer(args: tuple) -> tuple[str, int]:
    chars, writer, cfg, extra, profile, out = args
    path = writer_path(out, cfg, writer, learned=profile is None)
    if profile is None:  # a learned writer model: pen trajectories, drawn at conversion like real ones
        from ..utils import atomic_path
        from .writers import writer_pot

        with atomic_path(path) as tmp:
            tmp.write_bytes(writer_pot(list(chars), writer, cfg.seed, _model(cfg.style)))
        return str(path), len(chars)
    n = write_gnt(path, writer_samples(chars, writer, cfg, extra, profile))
    return str(path), n


@functools.lru_cache(maxsize=4)
def _model(style: str):
    from .writers import resolve_model

    return resolve_model(style)


def synth(out: str | os.PathLike, cfg: SynthConfig, extra: dict[str, list[np.ndarray]] | None = None,
          workers: int | None = None, progress: bool = True) -> list[Path]:
    """Write ``cfg.writers`` files into ``out`` (``.gnt`` images, or ``.pot`` pen trajectories for learned writers);
    existing complete files are kept (resumable)."""
    from ..utils import output_lock
    from .writers import is_learned

    chars = list(resolve_charset(cfg.chars))
    if not chars:
        raise HccrError(f"--chars {cfg.chars!r} names no characters")
    if cfg.writers < 1:
        raise HccrError(f"--writers {cfg.writers}: give at least 1")
    if cfg.size is not None and not cfg.size > 0:
        raise HccrError(f"--size must be above 0 (px), got {cfg.size:g}; leave it out for the style profile's size")
    if not 0.0 <= cfg.font_fraction <= 1.0:
        raise HccrError(f"--font-fraction must be a share from 0 to 1, got {cfg.font_fraction:g}")
    if workers is not None and workers < 1:
        raise HccrError(f"--workers must be at least 1, got {workers}")
    learned = is_learned(cfg.style)
    out = Path(out)
    _check_same_settings(out, cfg)
    if learned:
        if cfg.fonts:
            raise HccrError("--font draws glyphs as images; learned writers write pen trajectories: use one or the other")
        if cfg.size:  # their trajectories are sized at conversion (hccr convert --size), as real writers' are
            raise HccrError("--size sets the simulated writers' character size; learned writers write pen trajectories "
                            "that hccr convert normalises: leave --size out")
        model = _model(cfg.style)  # read once; a bad model fails here, naming its file
        done = all(writer_path(out, cfg, w, learned).exists() for w in range(cfg.writers))
        if hasattr(model, "prepare") and not done:  # a finished folder (a resumed recipe) needs no cuts
            model.prepare("".join(chars), progress)  # a bank's index and cuts, before the workers fork
    profile = None if learned else cfg.profile()  # read once; a bad profile fails here, before any worker starts
    extra = extra or {}
    missing = [c for c in chars if c not in extra and not has_strokes(c)]
    if missing and not cfg.fonts:
        raise HccrError(f"no stroke data for {len(missing)} character(s), e.g. {''.join(missing[:10])!r}; "
                        "pass --font to render them from a font")
    for f in cfg.fonts:
        if not Path(f).is_file():
            raise HccrError(f"{f}: font file not found")
    with output_lock(out, "synthetic data folder"):  # two runs into one folder would write the same files
        return _synth(out, cfg, chars, extra, profile, workers, progress)


def settings_path(out: str | os.PathLike, prefix: str) -> Path:
    """Where a folder records the settings of one prefix's writers: synth.json (the default prefix) or
    synth-PREFIX.json, so that two generators' writers in one folder each keep their own."""
    return Path(out) / ("synth.json" if prefix == "synth" else f"synth-{prefix}.json")


def settings_records(folder: str | os.PathLike) -> list[Path]:
    """Every prefix's settings record in a folder of synthetic writers, the default prefix's first."""
    return sorted(Path(folder).glob("synth*.json"), key=lambda p: (p.name != "synth.json", p.name))


def _check_same_settings(out: Path, cfg: SynthConfig) -> None:
    """A rerun into a folder resumes it (or adds writers): refuse one whose files would be of other characters or
    another style, since the files already there would be kept as if they were this run's."""
    from ..utils import read_json

    rec = settings_path(out, cfg.prefix)
    old = read_json(rec) if rec.exists() else {}
    if old.get("prefix", cfg.prefix) != cfg.prefix:
        return  # a record an older hccr wrote for another prefix's writers: nothing to compare
    new = asdict(cfg)
    differ = [k for k in ("chars", "seed", "size", "style", "fonts", "font_fraction") if k in old
              and json.dumps(old[k]) != json.dumps(new[k])]
    if differ:
        raise HccrError(f"{out}: holds synthetic writers made with other settings ("
                        + ", ".join(f"{k} {old[k]!r:.40} not {new[k]!r:.40}" for k in differ)
                        + "); a rerun only adds missing writers: choose another folder or --prefix, or remove it")


def _synth(out: Path, cfg: SynthConfig, chars: list[str], extra: dict, profile, workers: int | None,
           progress: bool) -> list[Path]:
    from ..utils import Progress, process_pool, write_json

    out.mkdir(parents=True, exist_ok=True)
    files = [writer_path(out, cfg, w, learned=profile is None) for w in range(cfg.writers)]
    todo = [w for w, f in enumerate(files) if not f.exists()]
    args = [(chars, w, cfg, extra, profile, str(out)) for w in todo]
    workers = workers or min(os.cpu_count() or 1, max(1, len(todo)))
    rec = settings_path(out, cfg.prefix)
    if not rec.exists():  # before the first writer: a run killed half-way is still checked on its rerun
        write_json(rec, {**asdict(cfg), "characters": len(chars)})
    with Progress(cfg.writers, "synth", disable=not progress, unit="writers") as bar:
        bar.update(cfg.writers - len(todo))
        if workers > 1 and len(args) > 1:
            with process_pool(workers) as pool:
                for _ in pool.imap_unordered(_write_writer, args):
                    bar.update(1)
        else:
            for a in args:
                _write_writer(a)
                bar.update(1)
    write_json(rec, {**asdict(cfg), "count": len(chars) * cfg.writers, "characters": len(chars)})
    return files


def compose_top_bottom(top: list[np.ndarray], bottom: list[np.ndarray], split: float = 0.42
                       ) -> list[np.ndarray]:
    """A character from a top component (as placed in some host character) over a bottom one.

    For characters the stroke data lacks, passed to :func:`synth` as ``extra``: e.g. 宬 = the 宀 of 安 over
    成 squeezed below it.
    """
    top_pts = np.concatenate(top)
    y_top = float(top_pts[:, 1].max())
    lo_y = y_top + (BOX - y_top) * 0.02
    b = np.concatenate(bottom)
    b_lo, b_hi = b.min(0), b.max(0)
    sy = (BOX * 0.98 - lo_y) / max(b_hi[1] - b_lo[1], 1)
    sx = min(1.0, sy * 1.1)
    cx = (b_lo[0] + b_hi[0]) / 2
    return [np.asarray(s, float) for s in top] + [
        np.stack([(s[:, 0] - cx) * sx + BOX / 2, (s[:, 1] - b_lo[1]) * sy + lo_y], 1) for s in bottom]


def preview(path: str | os.PathLike, chars: str = "永安家察寒宿", writers: int = 8, seed: int = 0,
            size: float | None = None, style: str | None = None) -> None:
    """A grid: one row per writer, one column per character."""
    from ..preprocess import normalize
    from ..report import save_png

    cfg = SynthConfig(chars=chars, writers=writers, seed=seed, size=size, style=style)
    cs = list(resolve_charset(chars))
    tile = 64
    grid = np.full((writers * (tile + 4), len(cs) * (tile + 4)), 255, np.uint8)
    for w in range(writers):
        for j, (img, _) in enumerate(writer_samples(cs, w, cfg)):
            t = 255 - normalize(img, tile, margin=0.04)
            grid[w * (tile + 4) : w * (tile + 4) + tile, j * (tile + 4) : j * (tile + 4) + tile] = t
    save_png(grid, path)
