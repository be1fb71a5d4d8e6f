"""A writer model learned from real pen trajectories, for characters nobody wrote for us.

Real writers of level-1 characters (CASIA-OLHWDB ``.pot`` files) are aligned to the stroke
medians hccr has for every character (:func:`align`): which real stroke covers which medians (in
writing order; one real stroke often covers two to six medians: a cursive join), in which
direction, and which medians were left out. From the aligned samples :func:`fit` estimates, with
nothing set by hand but the few alignment costs named below:

- each writer's global style: aspect, slant, rotation and scale of the character (an affine map
  from medians to the real trajectory), as a distribution across writers and around each writer;
- per-stroke deformation by stroke kind (dot, horizontal, vertical, left- and right-falling,
  rising, turning) and position (3 x 3 cells): shift, scale, turn and the stroke's own shape
  (principal components of what is left);
- cursive joins: how likely consecutive strokes are joined, by the two strokes' kinds and the
  gap between them, with each writer's own propensity; and the bend of the joining line;
- strokes left out, by kind; the pen's speed along a stroke and the writer's sampling density.

:class:`WriterModel` samples new writers for any character with medians (``hccr synth --style
learned``); they come out as pen trajectories (``.pot``), drawn by the same pen as real
trajectories when converted. Everything is vectorised over the strokes of a sample.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import HccrError

K = 24  # points per resampled stroke (or group of strokes) in alignment and fitting
MAX_GROUP = 6  # medians one real stroke may cover
KINDS = ("dot", "horizontal", "vertical", "left-falling", "right-falling", "rising", "turning", "other")
GAP_BINS = (0.15, 0.35)  # gap between consecutive strokes, as a fraction of the character's size
# The alignment's costs (mean distance in character units). Named, hand-set, their effect measured
# (docs/notebook/unseen-characters.md): a join costs a little, so one-to-one is preferred when it fits.
JOIN_COST = 0.01  # per extra median a real stroke covers
DROP_COST = 0.15  # a median left out
EXTRA_COST = 0.2  # a real stroke matching no median (a stray mark, a split stroke)
FIT_COST = 0.1  # samples aligned worse than this (mean per stroke) do not enter the fit


# ---------------------------------------------------------------------------------------------
# Geometry

def normalise(strokes: list[np.ndarray]) -> list[np.ndarray]:
    """Strokes in a unit box: centred, the longer side 1 (y down)."""
    pts = np.concatenate(strokes).astype(np.float64)
    lo, hi = pts.min(0), pts.max(0)
    side = max(float((hi - lo).max()), 1e-9)
    return [(np.asarray(s, np.float64) - (lo + hi) / 2) / side for s in strokes]


def resample_fixed(lines: list[np.ndarray], k: int = K) -> np.ndarray:
    """Each polyline as ``k`` points evenly spaced by arc length: (len(lines), k, 2), all at once."""
    lens = np.array([len(p) for p in lines])
    pts = np.concatenate(lines)
    first = np.cumsum(lens) - lens
    seg = np.hypot(*np.diff(pts, axis=0).T)
    seg[first[1:] - 1] = 0.0  # no length between one polyline and the next
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    start, length = arc[first], arc[first + lens - 1] - arc[first]
    sid = np.repeat(np.arange(len(lines)), lens)
    key = arc + sid * (1.0 + arc[-1])  # strictly separated per polyline, increasing within one
    key_eps = key + np.arange(len(key)) * 1e-12  # repeated points: still increasing
    t = start[:, None] + length[:, None] * np.linspace(0, 1, k)[None]
    q = (t + (np.arange(len(lines)) * (1.0 + arc[-1]))[:, None]).ravel()
    out = np.stack([np.interp(q, key_eps, pts[:, 0]), np.interp(q, key_eps, pts[:, 1])], -1)
    return out.reshape(len(lines), k, 2)


def stroke_kind(strokes: list[np.ndarray]) -> np.ndarray:
    """Kind (index into :data:`KINDS`) of each median stroke of a normalised character."""
    kinds = np.empty(len(strokes), np.int64)
    for i, s in enumerate(strokes):
        d = np.diff(s, axis=0)
        length = float(np.hypot(*d.T).sum()) if len(s) > 1 else 0.0
        chord = s[-1] - s[0]
        c = float(np.hypot(*chord))
        ang = np.degrees(np.arctan2(chord[1], chord[0]))  # y down: 90 = straight down
        if length < 0.12:
            kinds[i] = 0
        elif length > 1.25 * max(c, 1e-9):
            kinds[i] = 6
        elif -25 <= ang <= 20:
            kinds[i] = 1
        elif 70 <= ang <= 110:
            kinds[i] = 2
        elif 110 < ang <= 180:
            kinds[i] = 3
        elif 20 < ang < 70:
            kinds[i] = 4
        elif -80 <= ang < -25:
            kinds[i] = 5
        else:
            kinds[i] = 7
    return kinds


def cells(strokes: list[np.ndarray]) -> np.ndarray:
    """3 x 3 position cell (0-8, row-major) of each stroke's centre in the unit box."""
    c = np.array([s.mean(0) for s in strokes])
    ij = np.clip(((c + 0.5) * 3).astype(np.int64), 0, 2)
    return ij[:, 1] * 3 + ij[:, 0]


@dataclass
class MedianInfo:
    """What alignment and sampling need of one character's medians (cached per character)."""

    strokes: list[np.ndarray]  # normalised
    groups: np.ndarray  # (M, MAX_GROUP, K, 2): medians j..j+g joined in writing order, resampled
    valid: np.ndarray  # (M, MAX_GROUP) bool: j + g < M
    kinds: np.ndarray  # (M,)
    cells: np.ndarray  # (M,)
    gaps: np.ndarray  # (M - 1,) distance from the end of stroke j to the start of j + 1


@lru_cache(maxsize=8192)
def median_info(ch: str) -> MedianInfo:
    from .strokes import char_strokes

    med = normalise(char_strokes(ch))
    m = len(med)
    lines, where = [], []
    for j in range(m):
        for g in range(min(MAX_GROUP, m - j)):
            lines.append(np.concatenate(med[j : j + g + 1]))
            where.append((j, g))
    res = resample_fixed(lines)
    groups = np.zeros((m, MAX_GROUP, K, 2))
    valid = np.zeros((m, MAX_GROUP), bool)
    for (j, g), r in zip(where, res, strict=True):
        groups[j, g], valid[j, g] = r, True
    gaps = np.array([float(np.hypot(*(med[j + 1][0] - med[j][-1]))) for j in range(m - 1)])
    return MedianInfo(med, groups, valid, stroke_kind(med), cells(med), gaps)


# ---------------------------------------------------------------------------------------------
# Alignment

@dataclass
class Alignment:
    """Which real stroke covers which medians. ``match[i] = (j, g, reversed)``: real stroke ``i``
    covers medians ``j..j+g``; ``j = -1`` for a real stroke matching none."""

    match: list[tuple[int, int, bool]]
    dropped: list[int]
    cost: float  # mean distance per real stroke, character units
    real: np.ndarray  # (R, K, 2) the real strokes, normalised and resampled

    @property
    def status(self) -> str:
        if any(j < 0 for j, _, _ in self.match):
            return "extra stroke"
        if self.dropped:
            return "dropped stroke"
        if any(g > 0 for _, g, _ in self.match):
            return "joined"
        if any(r for _, _, r in self.match):
            return "reversed"
        return "one to one"


def align(real: list[np.ndarray], info: MedianInfo, passes: int = 2) -> Alignment:
    """Dynamic programming over (real strokes done, medians done), writing order kept. The second
    pass aligns again after undoing the writer's global affine map (slant, aspect, ...) fitted on the
    first pass's matches, so a slanted writer's strokes meet their medians."""
    r_pts = resample_fixed(normalise(real))
    al = _align_once(r_pts, info)
    for _ in range(passes - 1):
        pairs = [(i, j, g, rv) for i, (j, g, rv) in enumerate(al.match) if j >= 0]
        if len(pairs) < 2:
            break
        med = np.stack([info.groups[j, g] for _, j, g, _ in pairs]).reshape(-1, 2)
        real_m = np.stack([r_pts[i][::-1] if rv else r_pts[i] for i, _, _, rv in pairs]).reshape(-1, 2)
        a = affine_fit(real_m, med)  # real -> the medians' frame
        if not np.isfinite(a).all() or abs(np.linalg.det(a[:, :2])) < 0.05:
            break
        again = _align_once(r_pts @ a[:, :2].T + a[:, 2], info)
        again.real = r_pts
        if again.cost >= al.cost:
            break
        al = again
    return al


@lru_cache(maxsize=64)
def _skew(m: int) -> tuple[np.ndarray, np.ndarray]:
    """For DP column t and group size g + 1: the column it is reached from (t - g - 1), and whether it exists."""
    start = np.arange(m + 1)[:, None] - np.arange(MAX_GROUP)[None] - 1
    return np.maximum(start, 0), start >= 0


def _align_once(r_pts: np.ndarray, info: MedianInfo) -> Alignment:
    m, big = len(info.strokes), 1e9
    n_r = len(r_pts)
    # cost[i, j, g]: real stroke i against medians j..j+g, forwards or backwards
    d = r_pts[:, None, None] - info.groups[None]
    diff_f = np.sqrt((d ** 2).sum(-1)).mean(-1)
    d = r_pts[:, None, None, ::-1] - info.groups[None]
    diff_b = np.sqrt((d ** 2).sum(-1)).mean(-1)
    rev = diff_b < diff_f
    cost = np.where(info.valid[None], np.minimum(diff_f, diff_b) + JOIN_COST * np.arange(MAX_GROUP), big)
    start, ok = _skew(m)
    skew = np.where(ok[None], cost[:, np.maximum(start, 0), np.arange(MAX_GROUP)[None]], big)  # (R, m + 1, G)
    # Rows of the DP table are real strokes done; within a row, dropping medians is a running
    # minimum, and moving to the next row (a match or an extra stroke) is one vector step per group size.
    best = np.full((n_r + 1, m + 1), big)
    src_i = np.zeros((n_r + 1, m + 1), np.int64)
    src_j = np.zeros((n_r + 1, m + 1), np.int64)
    best[0, 0] = 0.0
    cols = np.arange(m + 1)
    for i in range(n_r + 1):
        row = best[i]
        adj = row - DROP_COST * cols
        run = np.minimum.accumulate(adj)
        from_left = np.maximum.accumulate(np.where(adj <= run, cols, 0))
        moved = from_left != cols
        src_i[i, moved], src_j[i, moved] = i, from_left[moved]
        best[i] = row = run + DROP_COST * cols
        if i == n_r:
            break
        nxt = best[i + 1]
        extra = row + EXTRA_COST
        better = extra < nxt
        nxt[better], src_i[i + 1, better], src_j[i + 1, better] = extra[better], i, cols[better]
        vals = row[start] + skew[i]  # (m + 1, MAX_GROUP): arriving at column t from t - g - 1
        g = vals.argmin(1)
        v = vals[cols, g]
        better = v < nxt
        nxt[better], src_i[i + 1, better], src_j[i + 1, better] = v[better], i, start[cols, g][better]
    match: list[tuple[int, int, bool]] = [(-1, 0, False)] * n_r
    dropped = []
    i, j = n_r, m
    while i or j:
        pi, pj = int(src_i[i, j]), int(src_j[i, j])
        if pi == i:
            dropped += list(range(pj, j))
        elif pj != j:
            match[pi] = (pj, j - pj - 1, bool(rev[pi, pj, j - pj - 1]))
        i, j = pi, pj
    return Alignment(match, sorted(dropped), float(best[n_r, m]) / max(n_r, 1), r_pts)


def writer_map(al: Alignment, info: MedianInfo) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For an alignment with every real stroke matched: the matched medians and real strokes (R, K, 2),
    real strokes turned to the medians' direction, and the writer's affine map medians -> real (2, 3)."""
    med = np.stack([info.groups[j, g] for j, g, _ in al.match])
    real = np.stack([al.real[i][::-1] if rv else al.real[i] for i, (_, _, rv) in enumerate(al.match)])
    return med, real, affine_fit(med.reshape(-1, 2), real.reshape(-1, 2))


def map_files(func, args: list, workers: int | None, label: str, progress: bool = True):
    """``func`` over ``args`` (one per file), in ``workers`` processes (default: all cores), results
    in order, with a progress bar."""
    from ..utils import Progress, process_pool

    workers = workers or min(os.cpu_count() or 1, len(args))
    with Progress(len(args), label, disable=not progress, unit="writers") as bar:
        if workers > 1:
            with process_pool(workers) as pool:
                for out in pool.imap(func, args):
                    bar.update(1)
                    yield out
        else:
            for a in args:
                out = func(a)
                bar.update(1)
                yield out


# ---------------------------------------------------------------------------------------------
# Fitting

def affine_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2x3 affine map of (n, 2) ``src`` points onto ``dst``."""
    a = np.concatenate([src, np.ones((len(src), 1))], 1)
    sol, *_ = np.linalg.lstsq(a, dst, rcond=None)
    return sol.T  # (2, 3)


def decompose(m: np.ndarray) -> np.ndarray:
    """A 2x2 map as (log scale, log aspect, slant, rotation): m = s * Rot(rot) @ [[aspect, -slant], [0, 1]]."""
    q, r = np.linalg.qr(m)
    sign = np.sign(np.diag(r))
    sign[sign == 0] = 1
    q, r = q * sign, (r.T * sign).T
    rot = float(np.arctan2(q[1, 0], q[0, 0]))
    s = max(float(r[1, 1]), 1e-6)
    return np.array([np.log(s), np.log(max(float(r[0, 0]), 1e-6) / s), -float(r[0, 1]) / s, rot])


def compose(p: np.ndarray) -> np.ndarray:
    log_s, log_a, slant, rot = p
    c, s = np.cos(rot), np.sin(rot)
    return np.exp(log_s) * np.array([[c, -s], [s, c]]) @ np.array([[np.exp(log_a), -slant], [0.0, 1.0]])


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, float, float, np.ndarray]:
    """Shift, log scale and turn that best map ``src`` (K, 2) onto ``dst`` about src's centre, and
    what remains (K, 2) in the stroke's own frame (before the similarity)."""
    cs, cd = src.mean(0), dst.mean(0)
    a, b = src - cs, dst - cd
    z_a, z_b = a[:, 0] + 1j * a[:, 1], b[:, 0] + 1j * b[:, 1]
    denom = float((np.abs(z_a) ** 2).sum())
    w = (np.conj(z_a) * z_b).sum() / denom if denom > 1e-12 else 1.0 + 0j
    scale, turn = float(np.abs(w)), float(np.angle(w))
    fitted = z_a * w
    resid = (z_b - fitted) / (w if abs(w) > 1e-6 else 1.0)
    return cd - cs, float(np.log(max(scale, 1e-6))), turn, np.stack([resid.real, resid.imag], -1)


@dataclass
class Collector:
    """Sufficient statistics gathered while aligning one or many writers (merge with ``+``)."""

    status: dict = field(default_factory=dict)
    samples: int = 0
    equal_count: int = 0
    global_params: list = field(default_factory=list)  # (writer, log s, log aspect, slant, rot)
    local: list = field(default_factory=list)  # (kind, cell, dx, dy, log s, turn)
    shapes: dict = field(default_factory=dict)  # kind -> list of (2K,) residual shapes (capped)
    joins: np.ndarray = field(default_factory=lambda: np.zeros((len(KINDS), len(KINDS), 3, 2)))
    writer_joins: dict = field(default_factory=dict)  # writer -> [joined, pairs]
    bends: list = field(default_factory=list)
    drops: np.ndarray = field(default_factory=lambda: np.zeros((len(KINDS), 2)))
    speed: np.ndarray = field(default_factory=lambda: np.zeros((10, 2)))
    density: dict = field(default_factory=dict)  # writer -> [points, length] (per unit of character size)

    def __add__(self, o: Collector) -> Collector:
        out = Collector()
        out.samples, out.equal_count = self.samples + o.samples, self.equal_count + o.equal_count
        out.status = {k: self.status.get(k, 0) + o.status.get(k, 0) for k in {*self.status, *o.status}}
        out.global_params, out.local, out.bends = self.global_params + o.global_params, self.local + o.local, \
            self.bends + o.bends
        out.shapes = {k: self.shapes.get(k, []) + o.shapes.get(k, []) for k in {*self.shapes, *o.shapes}}
        out.joins, out.drops, out.speed = self.joins + o.joins, self.drops + o.drops, self.speed + o.speed
        out.writer_joins = {**self.writer_joins, **o.writer_joins}
        out.density = {**self.density, **o.density}
        return out


SHAPES_PER_KIND = 4000  # per writer file: enough for a few principal components


def collect(samples: list, writer: str) -> Collector:
    """Align every sample ``(char, strokes)`` of one writer and gather what :func:`fit` needs."""
    from .strokes import has_strokes

    col = Collector()
    wj = [0, 0]
    dens = [0.0, 0.0]
    for ch, strokes in samples:
        if not has_strokes(ch):
            continue
        info = median_info(ch)
        strokes = [np.asarray(s, np.float64) for s in strokes if len(s)]
        if not strokes:
            continue
        al = align(strokes, info)
        col.samples += 1
        col.equal_count += len(strokes) == len(info.strokes)
        col.status[al.status] = col.status.get(al.status, 0) + 1
        for k in info.kinds[al.dropped]:
            col.drops[k, 1] += 1
        for j in set(range(len(info.strokes))) - set(al.dropped):
            col.drops[info.kinds[j], 0] += 1
        norm = normalise(strokes)
        for s in norm:  # speed along a stroke: segment length by position, relative to the stroke's mean
            if len(s) > 4:
                d = np.hypot(*np.diff(s, axis=0).T)
                if d.sum() > 0:
                    b = np.minimum((np.arange(len(d)) + 0.5) / len(d) * 10, 9).astype(int)
                    np.add.at(col.speed, (b, 0), d / d.mean())
                    np.add.at(col.speed, (b, 1), 1)
                dens[0] += len(s)
                dens[1] += float(d.sum())
        if al.cost > FIT_COST or any(j < 0 for j, _, _ in al.match):
            continue
        pairs = [(i, j, g, rv) for i, (j, g, rv) in enumerate(al.match)]
        med, real, a = writer_map(al, info)
        col.global_params.append((writer, *decompose(a[:, :2])))
        mapped = med @ a[:, :2].T + a[:, 2]
        for (_, j, g, _), mp, rl in zip(pairs, mapped, real, strict=True):
            if g == 0:
                shift, log_s, turn, resid = similarity(mp, rl)
                kind, cell = int(info.kinds[j]), int(info.cells[j])
                col.local.append((kind, cell, shift[0], shift[1], log_s, turn))
                lst = col.shapes.setdefault(kind, [])
                if len(lst) < SHAPES_PER_KIND:
                    lst.append(resid.ravel())
            else:  # the bend of each join inside this real stroke, relative to its gap
                lens = [float(np.hypot(*np.diff(info.strokes[q], axis=0).T).sum()) for q in range(j, j + g + 1)]
                gaps = info.gaps[j : j + g]
                total = sum(lens) + float(gaps.sum())
                pos = 0.0
                for q in range(g):
                    pos += lens[q]
                    mid = (pos + gaps[q] / 2) / max(total, 1e-9)
                    pos += gaps[q]
                    idx = int(round(mid * (K - 1)))
                    gv = info.strokes[j + q + 1][0] - info.strokes[j + q][-1]
                    gl = float(np.hypot(*gv))
                    if gl > 0.05:
                        gv_m = a[:, :2] @ gv
                        nrm = np.array([-gv_m[1], gv_m[0]]) / max(float(np.hypot(*gv_m)), 1e-9)
                        col.bends.append(float((rl[idx] - mp[idx]) @ nrm) / max(float(np.hypot(*gv_m)), 1e-9))
        covered = {}
        for i, j, g, _ in pairs:
            for q in range(j, j + g + 1):
                covered[q] = i
        for q in range(len(info.strokes) - 1):
            if q in covered and q + 1 in covered:
                joined = covered[q] == covered[q + 1]
                gb = int(np.searchsorted(GAP_BINS, info.gaps[q]))
                col.joins[info.kinds[q], info.kinds[q + 1], gb, int(joined)] += 1
                wj[0] += joined
                wj[1] += 1
    col.writer_joins[writer] = wj
    col.density[writer] = dens
    return col


@dataclass
class WriterModel:
    """The fitted parameters (a JSON file); :meth:`sample_writer` and :meth:`trajectories` draw from them."""

    global_mean: list  # (4,) log scale, log aspect, slant, rotation: the mean writer
    global_between: list  # (4, 4) covariance of writers' means
    global_within: list  # (4,) std of one writer's samples around the writer's mean
    local_mean: list  # [kind][cell] -> (4,) shift x, shift y, log scale, turn
    local_std: list  # [kind] -> (4,)
    shape_pcs: list  # [kind] -> (P, 2K) principal components, scaled by their std
    join_p: list  # [kind][kind][gap bin] probability of a join
    join_writer_std: float  # std of a writer's join propensity (logit)
    bend_mean: float
    bend_std: float
    drop_p: list  # [kind]
    speed_profile: list  # (10,) relative pen speed along a stroke
    density: float  # points per unit of character size
    source: str = ""
    zero: bool = False  # the control: medians as they are (no learned deformation, join or drop)

    def save(self, path: str | os.PathLike) -> Path:
        from dataclasses import asdict

        from ..utils import write_json

        write_json(path, {"format": "hccr-writer-model/1", **asdict(self)})
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> WriterModel:
        from dataclasses import fields

        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise HccrError(f"{path}: cannot read the writer model ({e})") from None
        if not isinstance(d, dict) or d.get("format") != "hccr-writer-model/1":
            raise HccrError(f"{path}: not an hccr writer model (hccr synth --fit POTS --style-out M.json writes one)")
        names = {f.name for f in fields(cls)}
        missing = names - set(d) - {"source", "zero"}
        if missing:
            raise HccrError(f"{path}: bad writer model: missing {', '.join(sorted(missing))}")
        return cls(**{k: v for k, v in d.items() if k in names})

    def zeroed(self) -> WriterModel:
        from dataclasses import replace

        return replace(self, zero=True, source=self.source + " (learned deformations zeroed)")

    # -- sampling -----------------------------------------------------------------------------

    def sample_writer(self, rng: np.random.Generator) -> dict:
        mean = np.asarray(self.global_mean)
        between = np.asarray(self.global_between)
        g = rng.multivariate_normal(mean, between) if not self.zero else np.zeros(4)
        return {"global": g, "join": float(rng.normal(0, self.join_writer_std)),
                "density": self.density * float(np.exp(rng.normal(0, 0.15)))}

    def trajectories(self, ch: str, writer: dict, rng: np.random.Generator, units: float = 1000.0) -> list[np.ndarray]:
        """One sample of ``ch`` by ``writer`` (from :meth:`sample_writer`): strokes as (n, 2) int16
        tablet-like coordinates (the character about ``units`` across)."""
        info = median_info(ch)
        strokes = [s.copy() for s in info.strokes]
        m = len(strokes)
        base = resample_fixed(strokes)  # (M, K, 2)
        if not self.zero:
            lm, ls = np.asarray(self.local_mean), np.asarray(self.local_std)
            p = lm[info.kinds, info.cells] + rng.normal(size=(m, 4)) * ls[info.kinds]
            out = []
            for q in range(m):
                pts = base[q]
                c = pts.mean(0)
                z = ((pts - c)[:, 0] + 1j * (pts - c)[:, 1])
                pcs = np.asarray(self.shape_pcs[int(info.kinds[q])])
                if len(pcs):
                    resid = (rng.normal(size=len(pcs)) @ pcs).reshape(K, 2)
                    z = z + resid[:, 0] + 1j * resid[:, 1]
                z = z * np.exp(p[q, 2] + 1j * p[q, 3])
                out.append(np.stack([z.real, z.imag], -1) + c + p[q, :2])
            strokes = out
            keep = rng.uniform(size=m) >= np.asarray(self.drop_p)[info.kinds]
            if not keep.any():
                keep[int(np.argmax([len(s) for s in strokes]))] = True
        else:
            strokes = list(base)
            keep = np.ones(m, bool)
        # cursive joins, in writing order
        pieces: list[np.ndarray] = []
        prev = -1
        jp = np.asarray(self.join_p)
        for q in range(m):
            if not keep[q]:
                continue
            s = strokes[q]
            if pieces and prev == q - 1 and not self.zero:
                gb = int(np.searchsorted(GAP_BINS, info.gaps[q - 1]))
                pj = float(jp[info.kinds[q - 1], info.kinds[q], gb])
                logit = np.log(max(pj, 1e-4) / max(1 - pj, 1e-4)) + writer["join"]
                if rng.uniform() < 1 / (1 + np.exp(-logit)):
                    a, b = pieces[-1][-1], s[0]
                    gap = b - a
                    bend = np.array([-gap[1], gap[0]]) * rng.normal(self.bend_mean, self.bend_std)
                    t = np.linspace(0, 1, 6)[1:-1, None]
                    pieces[-1] = np.concatenate([pieces[-1], a + gap * t + bend * (4 * t * (1 - t)), s])
                    prev = q
                    continue
            pieces.append(s)
            prev = q
        g = writer["global"] + (rng.normal(size=4) * np.asarray(self.global_within) if not self.zero else 0)
        mat = compose(g)
        pieces = [p @ mat.T for p in pieces]
        return [self._pen_points(p, writer["density"]) * units for p in normalise(pieces)]

    def _pen_points(self, line: np.ndarray, density: float) -> np.ndarray:
        """Resample a stroke as a tablet would: points at the pen's pace (slow at the ends)."""
        d = np.hypot(*np.diff(line, axis=0).T)
        length = float(d.sum())
        n = max(2, int(round(length * density)) + 1)
        prof = np.asarray(self.speed_profile)
        # positions: cumulative speed along the stroke (slow at both ends where the profile is low)
        u = np.linspace(0, 1, n)
        sp = np.interp(u, (np.arange(10) + 0.5) / 10, prof)
        pos = np.concatenate([[0.0], np.cumsum((sp[1:] + sp[:-1]) / 2)])
        pos = pos / max(pos[-1], 1e-9) * length
        arc = np.concatenate([[0.0], np.cumsum(d)]) + np.arange(len(line)) * 1e-12
        return np.stack([np.interp(pos, arc, line[:, 0]), np.interp(pos, arc, line[:, 1])], -1)


def fit(col: Collector, source: str = "", components: int = 4) -> WriterModel:
    """A :class:`WriterModel` from gathered statistics (see the module doc)."""
    if len(col.global_params) < 20:
        raise HccrError(f"too few aligned samples to fit a writer model ({len(col.global_params)})")
    writers = np.array([g[0] for g in col.global_params])
    gp = np.array([g[1:] for g in col.global_params], np.float64)
    # Robust throughout: a few misaligned samples must not widen the writers (clip to the 5-95% range).
    gp = np.clip(gp, *np.percentile(gp, [5, 95], axis=0))
    names = sorted(set(writers))
    wmeans = np.array([gp[writers == w].mean(0) for w in names])
    within = np.sqrt(np.mean([gp[writers == w].var(0) for w in names], 0))
    between = np.cov(wmeans.T) if len(names) > 1 else np.diag(within ** 2)
    loc = np.array(col.local, np.float64)
    local_mean = np.zeros((len(KINDS), 9, 4))
    local_std = np.zeros((len(KINDS), 4))
    shape_pcs = []
    for k in range(len(KINDS)):
        rows = loc[loc[:, 0] == k] if len(loc) else np.zeros((0, 6))
        kind_mean = np.median(rows[:, 2:], 0) if len(rows) else np.zeros(4)
        local_std[k] = _robust_std(rows[:, 2:]) if len(rows) > 1 else 0.0
        for c in range(9):
            sel = rows[rows[:, 1] == c]
            # a cell with few strokes leans on its kind's median (shrinkage by count)
            w = len(sel) / (len(sel) + 30)
            local_mean[k, c] = w * (np.median(sel[:, 2:], 0) if len(sel) else 0) + (1 - w) * kind_mean
        shapes = np.array(col.shapes.get(k, []), np.float64)
        if len(shapes) > 2 * components:
            norm = np.linalg.norm(shapes, axis=1)
            shapes = shapes[norm <= np.percentile(norm, 80)]  # the misaligned tail is not a writer's shape
            shapes = shapes - shapes.mean(0)
            _, s, vt = np.linalg.svd(shapes, full_matrices=False)
            std = s[:components] / np.sqrt(len(shapes) - 1)
            shape_pcs.append((vt[:components] * std[:, None]).tolist())
        else:
            shape_pcs.append([])
    j = col.joins
    join_p = (j[..., 1] + 1) / (j.sum(-1) + 2)  # Laplace: an unseen pair of kinds joins half the time at worst
    rates = np.array([v[0] / v[1] for v in col.writer_joins.values() if v[1] > 50])
    logit = np.log(np.clip(rates, 1e-3, 1 - 1e-3) / (1 - np.clip(rates, 1e-3, 1 - 1e-3)))
    join_writer_std = float(np.std(logit)) if len(rates) > 1 else 0.0
    bends = np.clip(np.array(col.bends) if col.bends else np.zeros(1), -2, 2)
    drop_p = (col.drops[:, 1]) / np.maximum(col.drops.sum(1), 1)
    speed = col.speed[:, 0] / np.maximum(col.speed[:, 1], 1)
    dens = np.array([v[0] / v[1] for v in col.density.values() if v[1] > 0])
    return WriterModel(global_mean=wmeans.mean(0).tolist(), global_between=np.atleast_2d(between).tolist(),
                       global_within=within.tolist(), local_mean=local_mean.tolist(), local_std=local_std.tolist(),
                       shape_pcs=shape_pcs, join_p=join_p.tolist(), join_writer_std=join_writer_std,
                       bend_mean=float(np.median(bends)), bend_std=float(_robust_std(bends[:, None])[0]),
                       drop_p=drop_p.tolist(), speed_profile=(speed / max(speed.mean(), 1e-9)).tolist(),
                       density=float(np.median(dens)) if len(dens) else 40.0, source=source)


def _robust_std(x: np.ndarray) -> np.ndarray:
    """1.4826 x the median absolute deviation, per column: the std of the bulk, not of the outliers."""
    return 1.4826 * np.median(np.abs(x - np.median(x, 0)), 0)


def collect_file(path: str, chars: frozenset[str] | None = None) -> Collector:
    """Align one ``.pot`` file (one writer), only its samples of ``chars`` if given: the unit of
    work of :func:`fit_files`."""
    from .pot import read_pot

    rec = read_pot(path)
    return collect([(s.char, s.strokes) for s in rec.samples if chars is None or s.char in chars], rec.writer)


def _collect_star(args: tuple) -> Collector:
    return collect_file(*args)


def fit_files(paths: list[str], chars: str | None = None, workers: int | None = None, progress: bool = True
              ) -> tuple[WriterModel, Collector]:
    """Align every writer's file (one process per file) and fit the model; ``chars``: learn only
    from the samples of these characters (e.g. those whose real samples a protocol may use)."""
    only = frozenset(chars) if chars else None
    total = Collector()
    for col in map_files(_collect_star, [(p, only) for p in paths], workers, "align", progress):
        total = total + col
    what = f"{len(only)} characters of " if only else ""
    return fit(total, source=f"fitted on {what}{len(paths)} writers' .pot files ({total.samples} samples)"), total


# ---------------------------------------------------------------------------------------------
# Synthesis: simulated writers as .pot files

LEARNED = Path(__file__).resolve().parents[1] / "assets" / "writers-learned.json"


def resolve_model(style: str):
    """``learned`` (the model fitted on CASIA-OLHWDB1.1's training writers, shipped), ``learned-zero``
    (the control: its learned deformations zeroed), a writer model JSON (``hccr synth --fit``) or
    ``components:BANK.npz`` (real writers' components, :mod:`hccr.data.components`)."""
    name, _, rest = style.partition(":")
    if name == "components" or style.endswith(".npz"):
        from .components import ComponentBank

        path = Path(rest or style)
        if not path.is_file():
            raise HccrError(f"{path}: no component bank there; build one with hccr synth --fit POT_FOLDER "
                            "--style-out BANK.npz")
        return ComponentBank.load(path)
    if name in ("learned", "learned-zero"):
        path = Path(rest) if rest else LEARNED
        if not path.is_file():
            raise HccrError(f"{path}: no writer model there; fit one with hccr synth --fit POT_FOLDER --style-out M.json")
        model = WriterModel.load(path)
        return model.zeroed() if name == "learned-zero" else model
    return WriterModel.load(style)


def is_learned(style: str | None) -> bool:
    if not style:
        return False
    if style.split(":")[0] in ("learned", "learned-zero", "components") or style.endswith(".npz"):
        return True
    try:
        with open(style, encoding="utf-8") as f:
            return '"hccr-writer-model/1"' in f.read(200)
    except OSError:
        return False


def writer_pot(chars: list[str], writer: int, seed: int, model) -> bytes:
    """One simulated writer's samples of ``chars`` as a ``.pot`` file's bytes (``model``: a
    :class:`WriterModel` or a :class:`~hccr.data.components.ComponentBank`)."""
    from .pot import encode_pot_record
    from .synth import writer_rng

    rng = writer_rng(seed, writer)
    w = model.sample_writer(rng)
    out = bytearray()
    for ch in chars:
        # tablet coordinates are positive: (-1, 0) and (-1, -1) are the format's pen-up markers
        strokes = [np.clip(np.rint(s + 2000), 0, 32000).astype(np.int16) for s in model.trajectories(ch, w, rng)]
        out += encode_pot_record(ch, strokes)
    return bytes(out)
