"""Characters drawn from real writers' strokes: a component bank.

Real writers of level-1 characters are aligned to the stroke medians (:func:`hccr.data.writers.align`);
each cleanly aligned sample is kept as its real strokes, mapped into its medians' frame (the writer's
global affine map undone), with which real stroke covers which median. A character nobody wrote
for us is then drawn as real handwriting of the runs of consecutive medians it shares with
characters that were written:

1. **Segmentation** (:meth:`ComponentBank.segment`): the character's medians are cut into runs of
   1-``MAX_RUN`` consecutive strokes; each run is matched, by shape and relative placement (each run
   normalised to its own box), against every run of every written character. A dynamic programme
   picks the cut of least total cost, a run costing its match distance plus ``RUN_COST``: long shared
   components (讠, 口, 宀 ...) are taken whole when they fit, single strokes otherwise.
2. **Drawing** (:meth:`ComponentBank.trajectories`): each run borrows the real strokes of one
   writer's sample of a matching source run, whose stroke boundaries agree with the run's (no
   cursive join crosses it), preferring the synthetic writer's own real writer; the strokes are
   mapped from the source run's medians onto the target's (affine, or a similarity for a run too
   thin to fix an affine map). The real writer's global map (slant, aspect) is put back at the end.

What real writers do inside a component (joins, simplified shapes, proportions, pen pace) comes
from real strokes; where components sit relative to each other comes from the medians. The bank is
made from real data: it lives in a run folder, never in the repository.
Hand-set and named: ``RUN_COST``, ``MATCH_MAX``, ``CHOICES``, ``MIN_SAMPLES``, ``BANK_COST``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import HccrError
from .writers import affine_fit, align, map_files, median_info, normalise, resample_fixed, writer_map

FORMAT = "hccr-component-bank/1"
MAX_RUN = 8  # longest run of medians matched as one component
P = 8  # points per stroke in a run's shape descriptor
RUN_COST = 0.04  # per run: a long shared component beats the same strokes matched one by one
MATCH_MAX = 0.06  # a run of two or more medians matches only this close (mean distance, run units)
CHOICES = 4  # a run borrows from one of its closest source runs (within 0.02 of the best)
SHORTLIST = 64  # runs compared point by point, of those nearest by squared distance
MIN_SAMPLES = 3  # a source run needs this many clean real samples to be lent
BANK_COST = 0.15  # samples aligned worse than this (mean per real stroke) stay out of the bank


def _bank_file(args: tuple) -> dict | None:
    """Align one writer's ``.pot`` file; its cleanly aligned samples as flat arrays."""
    from .pot import read_pot
    from .strokes import has_strokes

    path, chars = args
    rec = read_pot(path)
    out = {"char": [], "affine": [], "cover": [], "n_strokes": [], "n_points": [], "points": []}
    for s in rec.samples:
        if (chars is not None and s.char not in chars) or not has_strokes(s.char):
            continue
        strokes = [np.asarray(x, np.float64) for x in s.strokes if len(x)]
        if not strokes:
            continue
        info = median_info(s.char)
        al = align(strokes, info)
        if al.cost > BANK_COST or any(j < 0 for j, _, _ in al.match):
            continue
        _, _, a = writer_map(al, info)  # medians -> the writer's real (normalised) frame
        if not np.isfinite(a).all() or abs(np.linalg.det(a[:, :2])) < 0.05:
            continue
        inv = np.linalg.inv(a[:, :2])
        norm = normalise(strokes)
        cover = np.full(len(info.strokes), -1, np.int16)
        for i, (j, g, _) in enumerate(al.match):
            cover[j : j + g + 1] = i
        out["char"].append(ord(s.char))
        out["affine"].append(a)
        out["cover"].append(cover)
        out["n_strokes"].append(len(norm))
        out["n_points"] += [len(p) for p in norm]
        out["points"] += [(p - a[:, 2]) @ inv.T for p in norm]
    if not out["char"]:
        return None
    return {"writer": rec.writer, "char": np.array(out["char"], np.int32), "affine": np.array(out["affine"], np.float32),
            "cover": np.concatenate(out["cover"]), "n_strokes": np.array(out["n_strokes"], np.int32),
            "n_points": np.array(out["n_points"], np.int32),
            "points": np.concatenate(out["points"]).astype(np.float16)}


def build_bank(paths: list[str], chars: str | None = None, workers: int | None = None,
               progress: bool = True) -> ComponentBank:
    """Align every writer's file (one process per file) and keep its clean samples: the bank."""
    only = frozenset(chars) if chars else None
    parts = list(map_files(_bank_file, [(p, only) for p in paths], workers, "bank", progress))
    parts = [p for p in parts if p is not None]
    if not parts:
        raise HccrError(f"no cleanly aligned sample in {len(paths)} .pot file(s): nothing to build a bank from")
    writers = [p["writer"] for p in parts]
    cat = {k: np.concatenate([p[k] for p in parts]) for k in ("char", "affine", "cover", "n_strokes", "n_points", "points")}
    cat["writer"] = np.concatenate([np.full(len(p["char"]), w, np.int32) for w, p in enumerate(parts)])
    return ComponentBank(writers=writers, **cat)


@dataclass
class _Source:
    """The bank's samples of one written character, with the cover of each (samples x medians)."""

    samples: np.ndarray  # indices into the bank
    cover: np.ndarray  # (n, m) real stroke covering each median, -1: left out


class ComponentBank:
    """Real writers' strokes of written characters, ready to lend their components (see module doc)."""

    def __init__(self, writers: list[str], char: np.ndarray, writer: np.ndarray, affine: np.ndarray,
                 cover: np.ndarray, n_strokes: np.ndarray, n_points: np.ndarray, points: np.ndarray):
        self.writers, self.char, self.writer, self.affine = list(writers), char, writer, affine
        self.cover, self.n_strokes, self.n_points, self.points = cover, n_strokes, n_points, points
        self.stroke0 = np.concatenate([[0], np.cumsum(n_strokes)])  # sample -> its first stroke
        self.point0 = np.concatenate([[0], np.cumsum(n_points)])  # stroke -> its first point
        m = np.array([len(median_info(chr(c)).strokes) for c in char]) if len(char) else np.zeros(0, int)
        self.cover0 = np.concatenate([[0], np.cumsum(m)])  # sample -> its first median's cover
        self.source = ""
        self._cuts: dict[str, list] = {}  # character -> its runs (segment), made once

    def __len__(self) -> int:
        return len(self.char)

    # -- files ----------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        from ..utils import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, format=np.array(FORMAT), writers=np.array(self.writers), char=self.char, writer=self.writer,
                         affine=self.affine, cover=self.cover, n_strokes=self.n_strokes, n_points=self.n_points,
                         points=self.points)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ComponentBank:
        try:
            with np.load(path) as z:
                if "format" not in z.files or str(z["format"]) != FORMAT:
                    raise HccrError(f"{path}: not an hccr component bank (hccr synth --fit POTS --style-out BANK.npz "
                                    "writes one)")
                d = {k: z[k] for k in z.files if k != "format"}
        except (OSError, ValueError, KeyError) as e:
            raise HccrError(f"{path}: cannot read the component bank ({e})") from None
        bank = cls(writers=d.pop("writers").tolist(), **d)
        bank.source = str(path)
        return bank

    # -- the written characters' runs ----------------------------------------------------------

    def prepare(self, chars: str = "", progress: bool = False) -> None:
        """Index the written characters' runs and cut ``chars`` into runs now, once, before the drawing
        workers fork: they share both (each worker used to cut every character it drew). On a small
        machine in one process: the matrix products already use every core (two processes cutting
        were 0.76x as fast on 2 cores); with more than 4 cores the per-character work dominates, and
        one process a core cuts (each with one BLAS thread where the caller set it so)."""
        import multiprocessing as mp

        from ..utils import Progress, process_pool

        self._index()
        todo = [c for c in dict.fromkeys(chars) if c not in self._cuts]
        cores = os.cpu_count() or 1
        with Progress(len(todo), "cut", disable=not progress or not todo, unit="chars") as bar:
            if cores > 4 and len(todo) > 100 and "fork" in mp.get_all_start_methods():
                global _CUTTING
                _CUTTING = self
                with process_pool(cores) as pool:  # forked: the workers read _CUTTING
                    for ch, runs in pool.imap_unordered(_cut_or_none, todo, chunksize=16):
                        if runs is not None:
                            self._cuts[ch] = runs
                        bar.update(1)
                return
            for ch in todo:
                try:
                    self.segment(ch)
                except HccrError:  # nothing to lend: drawing it raises, naming the character
                    pass
                bar.update(1)

    @lru_cache(maxsize=1)  # noqa: B019 (one bank per process)
    def _sources(self) -> dict[int, _Source]:
        out = {}
        order = np.argsort(self.char, kind="stable")
        bounds = np.flatnonzero(np.diff(self.char[order])) + 1
        for idx in np.split(order, bounds):
            c = int(self.char[idx[0]])
            cov = np.stack([self.cover[self.cover0[i] : self.cover0[i + 1]] for i in idx])
            out[c] = _Source(idx, cov)
        return out

    @lru_cache(maxsize=1)  # noqa: B019
    def _index(self) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per run length k: (shape descriptors (N, k * P * 2), (source char, first median) (N, 2), the
        descriptors' squared norms (N,)) of every run with at least ``MIN_SAMPLES`` clean real samples."""
        desc: dict[int, list] = {k: [] for k in range(1, MAX_RUN + 1)}
        where: dict[int, list] = {k: [] for k in range(1, MAX_RUN + 1)}
        for c, src in self._sources().items():
            shapes = resample_fixed(median_info(chr(c)).strokes, P)
            m = len(shapes)
            for k in range(1, min(MAX_RUN, m) + 1):
                for j in range(m - k + 1):
                    if _clean(src.cover, j, k).sum() >= MIN_SAMPLES:
                        desc[k].append(_descriptor(shapes[j : j + k]))
                        where[k].append((c, j))
        out = {}
        for k in (k for k in desc if desc[k]):
            d = np.array(desc[k], np.float32)
            out[k] = (d, np.array(where[k], np.int64), (d * d).sum(1))
        return out

    def segment(self, ch: str) -> list[tuple[int, int, np.ndarray]]:
        """``ch``'s medians cut into runs: (first median, length, candidate sources (n, 2)) in writing
        order. A character never borrows from its own real samples."""
        if ch not in self._cuts:
            self._cuts[ch] = self._cut(ch)
        return self._cuts[ch]

    def _cut(self, ch: str) -> list[tuple[int, int, np.ndarray]]:
        shapes = resample_fixed(median_info(ch).strokes, P)
        m = len(shapes)
        index = self._index()
        best = np.full(m + 1, np.inf)
        best[0] = 0.0
        back: list[tuple[int, np.ndarray] | None] = [None] * (m + 1)
        options: dict[tuple[int, int], tuple[float, np.ndarray]] = {}
        for k in range(1, min(MAX_RUN, m) + 1):
            if k not in index:
                continue
            d_all, where, d_sq = index[k]
            q = np.stack([_descriptor(shapes[j : j + k]) for j in range(m - k + 1)]).astype(np.float32)
            # shortlist by squared distance (one matrix product), then the mean point distance on it
            sq = (q * q).sum(1)[:, None] + d_sq[None] - 2 * q @ d_all.T
            sq[:, where[:, 0] == ord(ch)] = np.inf
            if sq.shape[1] > SHORTLIST:
                short = np.argpartition(sq, SHORTLIST - 1, axis=1)[:, :SHORTLIST]  # (runs, S)
            else:
                short = np.broadcast_to(np.arange(sq.shape[1]), sq.shape)
            diff = q.reshape(len(q), 1, -1, 2) - d_all[short].reshape(len(q), short.shape[1], -1, 2)
            dist = np.sqrt((diff ** 2).sum(-1)).mean(-1)
            dist[~np.isfinite(np.take_along_axis(sq, short, 1))] = np.inf
            for j in range(m - k + 1):
                lo = float(dist[j].min())
                if not np.isfinite(lo) or (k > 1 and lo > MATCH_MAX):
                    continue
                near = np.argsort(dist[j])[:CHOICES]
                near = near[dist[j, near] <= lo + 0.02]
                options[j, k] = (lo, where[short[j, near]])
        for t in range(1, m + 1):
            for k in range(1, min(MAX_RUN, t) + 1):
                opt = options.get((t - k, k))
                if opt is not None and best[t - k] + opt[0] + RUN_COST < best[t]:
                    best[t] = best[t - k] + opt[0] + RUN_COST
                    back[t] = (k, opt[1])
        if not np.isfinite(best[m]):
            raise HccrError(f"the component bank has no stroke to lend to {ch!r}")
        runs = []
        t = m
        while t:
            k, cands = back[t]
            runs.append((t - k, k, cands))
            t -= k
        return runs[::-1]

    # -- sampling (the interface of hccr.data.writers.WriterModel) ------------------------------

    def sample_writer(self, rng: np.random.Generator) -> dict:
        return {"writer": int(rng.integers(len(self.writers)))}

    def trajectories(self, ch: str, writer: dict, rng: np.random.Generator, units: float = 1000.0) -> list[np.ndarray]:
        target = median_info(ch)
        sources = self._sources()
        parts: list[np.ndarray] = []
        style, style_k = None, 0
        for j, k, cands in self.segment(ch):
            for ci in rng.permutation(len(cands)):
                c, sj = (int(v) for v in cands[ci])
                src = sources[c]
                ok = _clean(src.cover, sj, k)
                if ok.any():
                    break
            rows = np.flatnonzero(ok)
            mine = rows[self.writer[src.samples[rows]] == writer["writer"]]
            row = int(rng.choice(mine if len(mine) else rows))
            sample = int(src.samples[row])
            ids = list(dict.fromkeys(src.cover[row, sj : sj + k].tolist()))  # real strokes, writing order
            s_med = median_info(chr(c)).groups[sj : sj + k, 0].reshape(-1, 2)
            t_med = target.groups[j : j + k, 0].reshape(-1, 2)
            mat = _map(s_med, t_med)
            for i in ids:
                st = self.stroke0[sample] + i
                pts = self.points[self.point0[st] : self.point0[st + 1]].astype(np.float64)
                parts.append(pts @ mat[:, :2].T + mat[:, 2])
            if k > style_k:
                style, style_k = self.affine[sample].astype(np.float64), k
        parts = [p @ style[:, :2].T for p in parts]  # the lending writer's slant and aspect
        return [p * units for p in normalise(parts)]


_CUTTING: ComponentBank | None = None  # the bank a pool of forked cutters reads (ComponentBank.prepare)


def _cut_or_none(ch: str) -> tuple[str, list | None]:
    try:
        return ch, _CUTTING._cut(ch)
    except HccrError:  # nothing to lend: drawing it raises later, naming the character
        return ch, None


def _clean(cover: np.ndarray, j: int, k: int) -> np.ndarray:
    """Samples (rows of ``cover``) whose real strokes cover medians j..j+k-1 exactly: none left out,
    no stroke joined across either end of the run."""
    run = cover[:, j : j + k]
    ok = (run >= 0).all(1)
    if j > 0:
        ok &= cover[:, j - 1] != run[:, 0]
    if j + k < cover.shape[1]:
        ok &= cover[:, j + k] != run[:, -1]
    return ok


def _descriptor(run: np.ndarray) -> np.ndarray:
    """A run of strokes (k, P, 2) in its own box (centred, longer side 1), flattened."""
    pts = run.reshape(-1, 2)
    lo, hi = pts.min(0), pts.max(0)
    return ((pts - (lo + hi) / 2) / max(float((hi - lo).max()), 1e-6)).ravel()


def _map(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 map of ``src`` points onto ``dst``: affine, or a similarity where ``src`` is too thin to
    fix an affine map (a single straight stroke)."""
    c = src - src.mean(0)
    sv = np.linalg.svd(c, compute_uv=False)
    if sv[-1] > 0.2 * sv[0]:
        return affine_fit(src, dst)
    zs = c[:, 0] + 1j * c[:, 1]
    d = dst - dst.mean(0)
    alpha = (np.conj(zs) @ (d[:, 0] + 1j * d[:, 1])) / max(float(np.vdot(zs, zs).real), 1e-12)
    rot = np.array([[alpha.real, -alpha.imag], [alpha.imag, alpha.real]])
    return np.concatenate([rot, (dst.mean(0) - rot @ src.mean(0))[:, None]], 1)
