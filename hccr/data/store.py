"""The packed store: every sample normalised once into a memory-mapped uint8 array.

Layout of a store folder::

    manifest.json   sources, counts, skipped samples with reasons, normalisation, split
    images.npy      uint8 (N, S, S), ink high (255) on 0, aspect kept, padded square
    labels.npy      int32 class ids into charset.txt
    writers.npy     int32 index into writers.txt (-1: unknown, e.g. the PNG export)
    sizes.npy       uint16 (N, 2) original height and width
    split.npy       uint8 0 = train, 1 = validation
    charset.txt     one character per line (class id = line number)
    writers.txt     one writer name per line
    ids.txt         where each sample came from, one per line: the image path, or FILE#k for the
                    k-th record of a .gnt/.pot file (stores made before it have none)

``convert`` works in ``OUT.partial/``: one chunk file per unit of input (a ``.gnt`` file or part
of it, a ``.pot`` file, a batch of images), written atomically, so a killed conversion resumes
where it stopped. The folder is renamed to ``OUT`` only when the store is complete.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import ErrorPolicy, HccrError, Problem
from ..preprocess import InputSpec
from ..utils import Progress, count, process_pool, read_json, write_json
from .charset import Charset, resolve_charset
from .render import RENDER_VERSION
from .sources import Unit, plan_units, pot_pen  # noqa: F401  (Unit re-exported)

FORMAT = "hccr-store/1"


def run_unit(unit: Unit, size: int, margin: float, pen=None, keep: frozenset[str] | None = None,
             jitter: float = 0.0) -> dict:
    """Read and normalise one unit; returns arrays plus the problems met (never raises on bad samples).
    ``pen``: the :class:`hccr.data.render.Pen` that draws ``.pot`` trajectories (default: hccr's); ``keep``: only
    samples of these characters are normalised (``--charset``: the others are counted, never drawn); ``jitter``:
    each ``.pot`` stroke moved on its own by about this fraction of the character (``--stroke-jitter``)."""
    if unit.kind == "pot":
        return _run_pot_unit(unit, size, margin, pen, keep, jitter)
    problems: list[Problem] = []
    images, chars, sizes, writers, ids = [], [], [], [], []
    others = 0
    if keep is not None and unit.kind == "images":  # files of other characters are never read
        files = tuple(f for f in unit.files if f[1] is None or f[1] in keep)
        unit, others = replace(unit, files=files), len(unit.files) - len(files)
    spec = InputSpec(size, margin=margin)  # the framing prediction gives files (hccr.preprocess)
    for item in unit.samples(pen):
        if isinstance(item, Problem):
            problems.append(item)
            continue
        if keep is not None and item.char not in keep:  # a .gnt record: decoded, never normalised
            others += 1
            continue
        images.append(spec.normalize(item.image, size))
        chars.append(ord(item.char))
        sizes.append(item.image.shape)
        writers.append(item.writer)
        ids.append(item.id)
    return _unit_result(images, chars, sizes, writers, ids, problems, size, others)


def _run_pot_unit(unit: Unit, size: int, margin: float, pen, keep: frozenset[str] | None = None,
                  jitter: float = 0.0) -> dict:
    """A ``.pot`` file drawn straight into the framed square: clean trajectories need no paper
    flattening, no crop and no second resize (the fast path of conversion)."""
    from .pot import read_pot
    from .render import jitter_strokes, render_framed

    rec = read_pot(unit.path)
    pen = pen or pot_pen()
    drawn = pen.draw([len(s.strokes) for s in rec.samples], rec.writer)  # every sample's pen, kept or not
    sel = [i for i, s in enumerate(rec.samples) if keep is None or s.char in keep]
    samples = [rec.samples[i] for i in sel]
    shapes = [s.strokes for s in rec.samples]
    if jitter > 0:  # every sample's moves drawn, kept or not (as its pen): the same image whatever --charset keeps,
        # and one stream per writer, so a resumed conversion draws the same images
        rng = pen.stream(rec.writer, 1)
        shapes = [jitter_strokes(s, jitter, rng) for s in shapes]
    images = [255 - render_framed(shapes[i], size, pen, drawn[i], margin) for i in sel]
    # sizes: the drawn trajectory's extent in tablet units (its aspect is the character's)
    sizes = [np.ptp(np.concatenate(shapes[i]), axis=0)[::-1].clip(1, 65535) for i in sel]
    return _unit_result(images, [ord(s.char) for s in samples], sizes, [rec.writer] * len(images),
                        [f"{unit.path}#{rec.records[i]}" for i in sel], list(rec.problems), size,
                        len(rec.samples) - len(sel))


def _unit_result(images: list, chars: list, sizes: list, writers: list, ids: list, problems: list[Problem],
                 size: int, others: int = 0) -> dict:
    return {
        "others": others,  # samples of characters outside --charset, never drawn
        "images": np.stack(images) if images else np.zeros((0, size, size), np.uint8),
        "chars": np.asarray(chars, dtype=np.int32),
        "sizes": np.asarray(sizes, dtype=np.uint16).reshape(-1, 2),
        "writers": np.asarray(writers, dtype=str),
        "ids": np.asarray(ids, dtype=str),
        "problems": problems,
    }


def _run_unit_star(args: tuple) -> dict:
    return run_unit(*args)


# ---------------------------------------------------------------------------------------------
# Conversion

MAX_SIZE = 512  # px a side: a store of 1 M samples at 512 px is 262 GB already


@dataclass
class ConvertOptions:
    size: int = 64
    charset: str | None = None
    val_fraction: float = 0.0
    split_by_writer: bool = False
    val_every: int = 0  # hold out every N-th writer, by name order (a fixed rule, no seed)
    val_writers: tuple[str, ...] = ()  # hold out these writers (by name) for validation
    limit: int | None = None
    margin: float = 0.0
    pen_width: float | None = None  # median pen width for .pot trajectories, px at 64 (None: hccr's fitted pen)
    pen_spread: float | None = None  # log-normal sigma of the pen from one sample to the next (None: hccr's pen)
    stroke_jitter: float = 0.0  # each .pot stroke moved on its own by about this fraction of the character
    seed: int = 0
    on_error: str = "skip"
    exclude: tuple[str, ...] = ()  # sample ids to leave out (as ids.txt and hccr audit name them)


@dataclass
class ConvertResult:
    path: Path
    count: int
    classes: int
    skipped: dict[str, int] = field(default_factory=dict)
    val: int = 0  # samples in the validation split


def convert(sources: list[str], out: str | os.PathLike, opts: ConvertOptions | None = None,
            workers: int | None = None, overwrite: bool = False, progress: bool = True) -> ConvertResult:
    """Convert CASIA ``.gnt``/``.pot`` files or image folders into a packed store at ``out``
    (locked for the whole run: a second conversion into the same store is refused). ``out`` may be an
    empty folder, or a symlink: the store is written where the link leads, and the link stays."""
    from ..utils import output_lock

    out = Path(out)
    if out.is_symlink():
        out = Path(os.path.realpath(out))
    with output_lock(out, "store"):
        return _convert(sources, out, opts, workers, overwrite, progress)


def _convert(sources: list[str], out: Path, opts: ConvertOptions | None, workers: int | None, overwrite: bool,
             progress: bool) -> ConvertResult:
    opts = opts or ConvertOptions()
    if not 0 <= opts.val_fraction < 1:
        raise HccrError(f"--val-fraction must be in [0, 1), got {opts.val_fraction}")
    rules = [name for name, on in (("--val-writers", bool(opts.val_writers)), ("--val-every", bool(opts.val_every)),
                                   ("--val-fraction", opts.val_fraction > 0)) if on]
    if len(rules) > 1:
        raise HccrError(f"{' and '.join(rules)}: give one way of choosing the validation samples")
    if opts.split_by_writer and opts.val_fraction <= 0:
        raise HccrError("--split-by-writer holds out a fraction of the writers: give it with --val-fraction (e.g. "
                        "0.05), or name them with --val-writers, or take every N-th with --val-every")
    if not 8 <= opts.size <= MAX_SIZE:
        raise HccrError(f"--size must be in [8, {MAX_SIZE}] px (hccr's models read 64-256), got {opts.size}")
    # options that would otherwise fail only after the whole conversion (or in every worker)
    if not 0.0 <= opts.margin < 0.5:
        raise HccrError(f"--margin must be a fraction of the side in [0, 0.5), got {opts.margin}")
    if opts.val_every and opts.val_every < 2:
        raise HccrError(f"--val-every must be at least 2, got {opts.val_every}")
    if opts.limit is not None and opts.limit < 1:
        raise HccrError(f"--limit must be at least 1, got {opts.limit}")
    if workers is not None and workers < 1:
        raise HccrError(f"--workers must be at least 1, got {workers}")
    if opts.pen_width is not None and not opts.pen_width > 0:
        raise HccrError(f"--pen-width must be above 0 (px at 64 px), got {opts.pen_width}")
    if opts.pen_spread is not None and not opts.pen_spread >= 0:
        raise HccrError(f"--pen-spread must be 0 or more (a log-normal sigma), got {opts.pen_spread}")
    if not 0.0 <= opts.stroke_jitter <= 0.2:
        raise HccrError(f"--stroke-jitter must be in [0, 0.2] (a fraction of the character's size), "
                        f"got {opts.stroke_jitter}")
    if out.exists() and not out.is_dir():
        raise HccrError(f"{out}: is a file; the store is a folder: choose another OUT")
    if os.path.ismount(out):  # the store is made beside it and renamed onto it, which a mount point refuses
        raise HccrError(f"{out}: is a mount point; give a folder inside it as OUT (e.g. {out / 'store'})")
    done = _finish_move(out, opts)
    if done is not None:
        return done
    if (out / "manifest.json").exists():
        if not overwrite:
            raise HccrError(f"{out}: a store already exists there (use --overwrite to replace it)")
    elif out.exists() and any(out.iterdir()):
        raise HccrError(f"{out}: folder exists and is not an hccr store; choose another output path")
    policy = ErrorPolicy(opts.on_error)
    charset = resolve_charset(opts.charset) if opts.charset else None
    units = plan_units([str(s) for s in sources])
    drawing = [k for k, v in (("--pen-width", opts.pen_width), ("--pen-spread", opts.pen_spread),
                              ("--stroke-jitter", opts.stroke_jitter or None)) if v is not None]
    if drawing and not any(u.kind == "pot" for u in units):  # they draw trajectories: nothing here has any
        print(f"note: {', '.join(drawing)} draw .pot trajectories; these sources hold images, which are kept as they "
              "are (the options are not applied, nor recorded)", file=sys.stderr)
        opts = replace(opts, pen_width=None, pen_spread=None, stroke_jitter=0.0)

    work = partial_of(out)
    # What finished chunks depend on: the drawing (size, margin, pen) and the characters drawn (--charset), not
    # what assembly does with them (the split, --limit, --exclude, --on-error), so a conversion stopped by a bad
    # sample or by a mistaken split option resumes with the option corrected.
    options = {k: v for k, v in asdict(opts).items() if k in ("size", "margin", "pen_width", "pen_spread", "charset")}
    if opts.stroke_jitter:  # named only when used: conversions planned before the option resume as they were
        options["stroke_jitter"] = opts.stroke_jitter
    plan = json.loads(json.dumps({"format": FORMAT, "render_version": RENDER_VERSION,
                                  "sources": [str(s) for s in sources], "options": options,
                                  "units": [u.key for u in units]}))  # as plan.json reads back (lists, not tuples)
    if work.exists():
        old = read_json(work / "plan.json") if (work / "plan.json").exists() else None
        if old != plan and overwrite:
            shutil.rmtree(work)
        elif old != plan:
            raise HccrError(f"{work}: an unfinished conversion is there, {_plan_change(old, plan)}; add --overwrite "
                            "to start over")
    (work / "chunks").mkdir(parents=True, exist_ok=True)
    write_json(work / "plan.json", plan)

    chunk_paths = [work / "chunks" / f"{i:06d}.npz" for i in range(len(units))]
    for stale in (work / "chunks").glob("*.tmp.npz"):  # a write cut short (disk full, killed): never kept
        stale.unlink(missing_ok=True)
    done_samples = 0
    for p in chunk_paths:
        if p.exists():
            n = _chunk_len(p)
            if n < 0:  # damaged: say so and convert that unit again
                print(f"warning: {p} is damaged (not a chunk hccr wrote); converting its unit again", file=sys.stderr)
                p.unlink()
            else:
                done_samples += n
    todo = [i for i, p in enumerate(chunk_paths) if not p.exists()]
    if len(todo) < len(units):
        print(f"resuming {work}: {len(units) - len(todo)} of {len(units)} units already converted")

    t0 = time.perf_counter()
    n_new = 0
    workers = workers or min(os.cpu_count() or 1, max(1, len(todo)))
    pen = pot_pen(opts.pen_width, opts.pen_spread)
    keep = frozenset(charset) if charset is not None else None  # other characters are never drawn
    args = [(units[i], opts.size, opts.margin, pen, keep, opts.stroke_jitter) for i in todo]
    with Progress(len(units), "convert", disable=not progress, unit="units") as bar:
        bar.update(len(units) - len(todo))
        for i, res in zip(todo, _map(args, workers), strict=True):
            for p in res["problems"]:
                policy.report(p)
            tmp = chunk_paths[i].with_suffix(".tmp.npz")
            try:
                np.savez(tmp, images=res["images"], chars=res["chars"], sizes=res["sizes"], writers=res["writers"],
                         ids=res["ids"], problems=np.asarray([json.dumps(asdict(p)) for p in res["problems"]], dtype=str),
                         others=np.asarray(res["others"]))
                os.replace(tmp, chunk_paths[i])
            except BaseException as e:
                tmp.unlink(missing_ok=True)  # nothing half-written stays behind
                if isinstance(e, OSError):
                    raise HccrError(f"{work}: cannot write a chunk ({e.strerror or e}); finished chunks are kept: "
                                    "free space and rerun the same command to resume") from None
                raise
            n_new += len(res["chars"])
            done_samples += len(res["chars"])
            bar.update(1, samples=done_samples)
            if opts.limit is not None and done_samples >= opts.limit:
                break
    elapsed = time.perf_counter() - t0
    result = _assemble(work, out, units, chunk_paths, charset, opts, overwrite)
    if progress:
        rate = n_new / elapsed if elapsed > 0 else float("nan")
        cut = f"; --limit kept the first {opts.limit:,} in file order" if opts.limit is not None else ""
        held = f" ({result.count - result.val:,} training, {result.val:,} validation)" if result.val else ""
        print(f"wrote {out}: {count(result.count, 'sample')}{held}, {count(result.classes, 'class')} "
              f"({n_new:,} read and drawn in {elapsed:.1f}s, {rate:,.0f} samples/s{cut})")
    if not result.val and (opts.val_fraction or opts.val_every):  # asked for, and nothing came of it
        rule = f"--val-fraction {opts.val_fraction:g}" if opts.val_fraction else f"--val-every {opts.val_every}"
        print(f"warning: {rule} held out no sample: " + ("there are too few writers for it" if opts.split_by_writer
              or opts.val_every else "each character has too few samples for it (it holds out that share of each "
              "character's samples, rounded)") + "; give a larger share, or name writers with --val-writers",
              file=sys.stderr)
    return result


def partial_of(out: Path) -> Path:
    """Where a conversion into ``out`` builds its store until it is complete: ``OUT.partial`` (a name too long for
    that is shortened as working files' names are)."""
    from ..utils import NAME_MAX, working_name

    name = f"{out.name}.partial"
    if len(os.fsencode(name)) > NAME_MAX:
        name = working_name(out, "partial")[1:]  # not hidden: a user resumes it
    return out.with_name(name)


def _finish_move(out: Path, opts: ConvertOptions) -> ConvertResult | None:
    """A conversion stopped at its last step (its store complete in ``OUT.partial``, not yet moved in, or the store it
    replaced half removed): the store is moved into place. Its result when it was converted with these options
    (this rerun has nothing left to do), else None (the usual checks follow: it is a store of other options)."""
    from ..utils import read_json

    work = partial_of(out)
    if not (work / "manifest.json").exists() or (out / "manifest.json").exists():
        return None
    if out.exists():
        shutil.rmtree(out)  # what is left of the store it was replacing
    os.replace(work, out)
    m = read_json(out / "manifest.json")
    print(f"note: {out}: a conversion stopped after its store was complete; it is now in place", file=sys.stderr)
    if m.get("options") != json.loads(json.dumps(asdict(opts))):
        return None
    return ConvertResult(out, m["count"], m["classes"], m.get("skipped", {}), m.get("val", 0))


def _plan_change(old: dict | None, new: dict) -> str:
    """What differs between an interrupted conversion's plan and this one's, in a user's words."""
    if not isinstance(old, dict) or old.get("render_version") != new["render_version"]:
        return "begun by another hccr version"
    if old.get("sources") != new["sources"]:
        return "of other sources (rerun with the same sources to resume it)"
    changed = sorted(k for k in {*old.get("options", {}), *new["options"]}
                     if old.get("options", {}).get(k) != new["options"].get(k))
    if changed:
        return f"with other {', '.join(changed)} (rerun with the same options to resume it)"
    return "and the files in its sources have changed since (added, removed or renamed)"


def _map(args: list[tuple], workers: int) -> Iterator[dict]:
    if workers <= 1 or len(args) <= 1:
        yield from (run_unit(*a) for a in args)
        return
    with process_pool(workers) as pool:
        yield from pool.imap(_run_unit_star, args, chunksize=1)


CHUNK_KEYS = ("images", "chars", "sizes", "writers", "ids", "problems")


def _chunk_len(path: Path) -> int:
    """Samples in a finished chunk, or -1 if it is not one hccr wrote (damaged, truncated, pickled:
    chunks are read without pickle, so nothing in one is ever executed)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if not set(CHUNK_KEYS) <= set(z.files):
                return -1
            n = len(z["chars"])
            if any(len(z[k]) != n for k in ("images", "sizes", "writers", "ids")) or z["images"].dtype != np.uint8:
                return -1
            return n
    except Exception:  # zipfile, pickle and format errors alike: a chunk to convert again
        return -1


def _assemble(work: Path, out: Path, units: list[Unit], chunk_paths: list[Path], charset: Charset | None,
              opts: ConvertOptions, overwrite: bool) -> ConvertResult:
    present = [p for p in chunk_paths if p.exists()]
    skipped: Counter[str] = Counter()
    problems: list[dict] = []
    chars_all, writers_all, ids_all = [], [], []
    for p in present:
        with np.load(p) as z:
            chars_all.append(z["chars"])
            writers_all.append(z["writers"])
            # chunks written before ids were kept (a conversion resumed across versions) have none
            ids_all.append(z["ids"] if "ids" in z.files else np.full(len(z["chars"]), "", dtype=str))
            problems += [json.loads(s) for s in z["problems"].tolist()]
            if "others" in z.files and int(z["others"]):  # left out before drawing (--charset)
                skipped["not in charset"] += int(z["others"])
    chars = np.concatenate(chars_all) if chars_all else np.zeros(0, np.int32)
    writer_names = np.concatenate(writers_all) if writers_all else np.zeros(0, str)
    for pr in problems:
        skipped[_reason(pr["message"])] += 1

    uniq, inv = np.unique(chars, return_inverse=True)

    def labels_in(cs: Charset) -> np.ndarray:  # each sample's class in ``cs``, -1 where ``cs`` lacks its character
        lut = {ord(ch): i for i, ch in enumerate(cs)}
        return np.array([lut.get(c, -1) for c in uniq.tolist()], dtype=np.int32)[inv]

    inferred = charset is None
    if inferred:
        charset = Charset(sorted({chr(c) for c in uniq.tolist()}))
    ids = labels_in(charset)
    keep = ids >= 0
    if (~keep).any():
        skipped["not in charset"] += int((~keep).sum())
    sample_ids = np.concatenate(ids_all) if ids_all else np.zeros(0, str)
    if opts.exclude:
        drop = excluded(sample_ids, opts.exclude)
        if not drop.any():
            raise HccrError(f"--exclude: none of its {len(opts.exclude)} sample ids is among these sources' samples "
                            "(ids are what hccr audit lists: the image path, or FILE#k for the k-th record of a "
                            ".gnt/.pot file); check that it was made from the same files")
        if int(drop.sum()) < len(set(opts.exclude)):
            print(f"--exclude: {int(drop.sum())} of its {len(set(opts.exclude))} sample ids found and left out")
        skipped["excluded (--exclude)"] += int((drop & keep).sum())
        keep &= ~drop
    if opts.limit is not None:
        over = np.flatnonzero(keep)[opts.limit:]
        keep[over] = False
    if inferred and not keep.all():  # the characters of the samples kept, not of every one converted
        charset = Charset(sorted({chr(c) for c in np.unique(chars[keep]).tolist()}))
        ids = labels_in(charset)
    n = int(keep.sum())
    if n == 0:
        shutil.rmtree(work, ignore_errors=True)
        detail = f" ({sum(skipped.values())} skipped: {dict(skipped)})" if skipped else ""
        paths = list(dict.fromkeys(str(u.path) for u in units))  # a file read in parts is one file
        more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        raise HccrError(f"no usable samples in {', '.join(paths[:3])}{more}{detail}")

    wnames, widx = np.unique(writer_names, return_inverse=True)
    has_writer = wnames != ""
    wmap = np.cumsum(has_writer) - 1
    writer_ids = np.where(has_writer[widx], wmap[widx], -1).astype(np.int32)
    wnames = [str(w) for w in wnames[has_writer]]

    S = opts.size
    target = work / "images.npy"  # written through a memory map: a disk that fills kills the process (SIGBUS)
    free = shutil.disk_usage(work).free + (target.stat().st_size if target.exists() else 0)
    if free < n * S * S + (1 << 20):
        raise HccrError(f"{target}: the store's images need {n * S * S / 1e6:,.1f} MB and the disk has {free / 1e6:,.1f} "
                        "MB free; free space and rerun the same command (the converted chunks are kept)")
    images = np.lib.format.open_memmap(target, mode="w+", dtype=np.uint8, shape=(n, S, S))
    sizes = np.zeros((n, 2), np.uint16)
    pos, src = 0, 0
    for p in present:
        with np.load(p) as z:
            m = len(z["chars"])
            sel = np.flatnonzero(keep[src : src + m])
            if len(sel):
                images[pos : pos + len(sel)] = z["images"][sel]
                sizes[pos : pos + len(sel)] = z["sizes"][sel]
            pos += len(sel)
            src += m
    images.flush()
    del images
    labels = ids[keep]
    writer_ids = writer_ids[keep]
    sample_ids = sample_ids[keep]
    if opts.val_writers:
        unknown = sorted(set(opts.val_writers) - set(wnames))
        if unknown:
            named = [w for w in wnames if w]
            raise HccrError(f"--val-writers: no writer named {', '.join(unknown[:5])} in these sources "
                            + (f"(writers are file names without suffix, e.g. {', '.join(named[:3])})" if named else
                               "(they carry no writer names, as a PNG export: use --val-fraction)")
                            + (f"; --limit kept only the first {opts.limit:,} samples" if opts.limit else "")
                            + "; the converted samples are kept: rerun with the option corrected")
        split = np.isin(writer_ids, [wnames.index(w) for w in opts.val_writers]).astype(np.uint8)
    elif opts.val_every:
        split = every_nth_writer(writer_ids, wnames, opts.val_every)
    else:
        split = make_split(labels, writer_ids, opts.val_fraction, opts.split_by_writer, opts.seed)
    np.save(work / "labels.npy", labels)
    np.save(work / "writers.npy", writer_ids)
    np.save(work / "sizes.npy", sizes)
    np.save(work / "split.npy", split)
    charset.save(work / "charset.txt")
    (work / "writers.txt").write_text("".join(w + "\n" for w in wnames), encoding="utf-8")
    (work / "ids.txt").write_text("".join(_one_line(i) + "\n" for i in sample_ids.tolist()), encoding="utf-8")
    counts = np.bincount(labels, minlength=len(charset))
    manifest = {
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sources": [str(u) for u in dict.fromkeys(u.path for u in units)],
        "count": n,
        "train": int((split == 0).sum()),
        "val": int((split == 1).sum()),
        "classes": len(charset),
        "classes_present": int((counts > 0).sum()),
        "writers": len(wnames),
        "normalization": {"size": S, "ink": "high", "aspect": "kept", "pad": "square, centred",
                          "margin": opts.margin, "resample": "bilinear (antialiased when shrinking)"},
        "options": asdict(opts),
        "render_version": RENDER_VERSION,  # how trajectories (.pot) were drawn: hccr.data.render
        "skipped": dict(skipped),
        "problems": problems[:1000],
    }
    for p in chunk_paths:
        p.unlink(missing_ok=True)
    shutil.rmtree(work / "chunks", ignore_errors=True)
    (work / "plan.json").unlink(missing_ok=True)
    write_json(work / "manifest.json", manifest)  # the last file: its presence marks a complete store
    if out.exists() and (out.is_file() or any(out.iterdir())):  # an empty folder is simply taken
        if not overwrite:
            raise HccrError(f"{out}: appeared during conversion; not overwriting it")
        if out.is_file():
            out.unlink()
        else:
            shutil.rmtree(out)
    os.replace(work, out)
    return ConvertResult(out, n, len(charset), dict(skipped), int((split == 1).sum()))


def _canonical(sample_id: str, cache: dict[str, str]) -> str:
    """``PATH`` or ``PATH#k`` with PATH made absolute, so ids match whatever directory they were named from."""
    path, sep, rec = sample_id.rpartition("#")
    if not (sep and rec.isdigit()):  # an image path: no record number
        path, sep, rec = sample_id, "", ""
    if path not in cache:
        cache[path] = os.path.realpath(path)
    return cache[path] + sep + rec


def excluded(sample_ids: np.ndarray, exclude: tuple[str, ...]) -> np.ndarray:
    """Boolean mask of the samples whose id is in ``exclude``."""
    cache: dict[str, str] = {}
    wanted = {_canonical(e, cache) for e in exclude}
    return np.fromiter((_canonical(i, cache) in wanted for i in sample_ids.tolist()), bool, len(sample_ids))


def read_exclude_list(path: str | os.PathLike) -> tuple[str, ...]:
    """Sample ids to leave out: an ``audit.json`` from hccr audit (its suspect samples) or a text file
    with one id per line (a line starting with ``#``, or the rest of a line after two spaces and ``#``,
    is a comment), e.g. the audit's list after a person checked it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise HccrError(f"{path}: cannot read the exclude list ({e.strerror or e})") from None
    if path.suffix == ".json":
        try:
            samples = json.loads(text).get("mislabelled", [])
        except (ValueError, AttributeError):
            raise HccrError(f"{path}: not an audit.json from hccr audit (expected a 'mislabelled' list)") from None
        ids = [s["source"] for s in samples if isinstance(s, dict) and s.get("source")]
        if samples and not ids:
            raise HccrError(f"{path}: its samples carry no source file (the store predates ids.txt): "
                            "convert the data again, rerun hccr audit, then exclude")
    else:
        ids = [ln.split("  #")[0].strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not ids and path.suffix == ".json":  # an audit that flagged nothing: a script passes it on all the same
        print(f"note: {path}: the audit flagged no sample; nothing is excluded", file=sys.stderr)
    elif not ids:
        raise HccrError(f"{path}: lists no sample to exclude")
    return tuple(ids)


def _one_line(sample_id: str) -> str:
    return sample_id.replace("\n", " ").replace("\r", " ")


def _reason(message: str) -> str:
    """A problem's kind, for counting: its message's head with every number as N ("N×N pixels is too small ...")."""
    head = message.split(":")[0].split("(")[0]
    return re.sub(r"\d+(\.\d+)?", "N", head).strip()


def every_nth_writer(writer_ids: np.ndarray, names: list[str], n: int) -> np.ndarray:
    """0 = train, 1 = validation: the writers at positions n, 2n, ... of the name-sorted list."""
    if n < 2:
        raise HccrError(f"--val-every must be at least 2, got {n}")
    order = sorted(range(len(names)), key=lambda i: names[i])
    held = [order[i] for i in range(n - 1, len(order), n)]
    if not held:
        raise HccrError(f"--val-every {n}: the data has only {len(names)} writers; nobody would be held out (the "
                        "converted samples are kept: rerun with the option corrected)")
    return np.isin(writer_ids, held).astype(np.uint8)


def make_split(labels: np.ndarray, writers: np.ndarray, val_fraction: float, by_writer: bool,
               seed: int) -> np.ndarray:
    """0 = train, 1 = validation; per sample (stratified by class) or by whole writers."""
    split = np.zeros(len(labels), np.uint8)
    if val_fraction <= 0:
        return split
    rng = np.random.default_rng(seed)
    if by_writer:
        known = np.unique(writers[writers >= 0])
        if len(known) < 2:
            raise HccrError("--split-by-writer needs writer ids (from .gnt/.pot file names); "
                            "this data has fewer than two writers, use --val-fraction alone")
        n_val = max(1, int(round(len(known) * val_fraction)))
        val_writers = rng.permutation(known)[:n_val]
        split[np.isin(writers, val_writers)] = 1
        return split
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = int(round(len(idx) * val_fraction))
        split[rng.permutation(idx)[:k]] = 1
    return split


# ---------------------------------------------------------------------------------------------
# Reading

class Store:
    """A packed store opened read-only; ``images`` is a memory map."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        mf = self.path / "manifest.json"
        if not mf.exists():
            partial = partial_of(self.path)
            if partial.exists():
                raise HccrError(f"{self.path}: not an hccr store (no manifest.json) (an unfinished conversion is in "
                                f"{partial}; rerun hccr convert to finish it)")
            if not self.path.exists():
                raise HccrError(f"{self.path}: no such store (no file or folder there)")
            from ..zoo import is_model_path

            if is_model_path(self.path):
                raise HccrError(f"{self.path}: a model, not a store of samples (`hccr model-card --model "
                                f"{self.path} --out CARD.md` describes a model)")
            raise HccrError(f"{self.path}: not an hccr store (no manifest.json) (images, .gnt or .pot files are "
                            f"packed into one by `hccr convert {self.path} STORE`)")
        try:
            self.manifest = json.loads(mf.read_text(encoding="utf-8"))  # a damaged one: "convert it again" below
            if not isinstance(self.manifest, dict) or self.manifest.get("format") != FORMAT:
                raise HccrError(f"{self.path}: unknown store format "
                                f"{self.manifest.get('format') if isinstance(self.manifest, dict) else None!r}")
            self.images = np.load(self.path / "images.npy", mmap_mode="r")
            self.labels = np.load(self.path / "labels.npy")
            self.writers = np.load(self.path / "writers.npy")
            self.sizes = np.load(self.path / "sizes.npy")
            self.split = np.load(self.path / "split.npy")
            self.charset = Charset.load(self.path / "charset.txt")
            self.writer_names = (self.path / "writers.txt").read_text(encoding="utf-8").splitlines()
        except (OSError, ValueError, EOFError, UnicodeDecodeError) as e:
            raise HccrError(f"{self.path}: damaged store ({getattr(e, 'filename', None) or ''} "
                            f"{str(e).splitlines()[0][:120]}); convert it again") from None
        n = len(self.labels)
        if self.images.ndim != 3 or any(len(a) != n for a in (self.images, self.writers, self.sizes, self.split)):
            raise HccrError(f"{self.path}: damaged store (arrays of different lengths); convert it again")
        if n and int(self.labels.max()) >= len(self.charset):
            raise HccrError(f"{self.path}: damaged store (labels beyond its {len(self.charset)} characters); "
                            "convert it again")

    def __len__(self) -> int:
        return len(self.labels)

    def sample_ids(self) -> list[str] | None:
        """Where each sample came from (``ids.txt``), or None for a store made before it was kept."""
        f = self.path / "ids.txt"
        if not f.exists():
            return None
        ids = f.read_text(encoding="utf-8").splitlines()
        return ids if len(ids) == len(self) else None

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    def with_charset(self, charset: Charset) -> Store:
        """The same samples labelled in ``charset`` (a superset of this store's characters), in memory."""
        missing = [c for c in self.charset if c not in charset]
        if missing:
            raise HccrError(f"{self.path}: {len(missing)} of its characters are not in the new charset "
                            f"({''.join(missing[:20])})")
        view = copy.copy(self)
        view.labels = np.array([charset.index[c] for c in self.charset], np.int64)[self.labels]
        view.charset = charset
        return view

    def indices(self, split: str = "all") -> np.ndarray:
        if split == "all":
            return np.arange(len(self))
        if split not in ("train", "val"):
            raise HccrError(f"unknown split {split!r}: a store has all, train and val")
        return np.flatnonzero(self.split == {"train": 0, "val": 1}[split])

    def __repr__(self) -> str:
        return f"Store({self.path}, {len(self)} samples, {len(self.charset)} classes, {self.size}px)"


def store_view(src: str | os.PathLike, dst: str | os.PathLike, split: np.ndarray) -> Path:
    """A store sharing ``src``'s arrays (symlinks) with its own split: 0 train, 1 validation, any other
    value left out. For folds, few-shot subsets and re-splits without copying images. ``manifest.json``,
    which marks a complete store, is written last, so an interrupted call leaves no half-made store."""
    src, dst = Path(src), Path(dst)
    if len(split) != len(Store(src)):
        raise HccrError(f"{src}: split of {len(split)} samples for a store of {len(Store(src))}")
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "manifest.json").unlink(missing_ok=True)
    for f in src.iterdir():
        if (f.suffix == ".npy" and f.name != "split.npy") or f.name == "ids.txt":
            (dst / f.name).unlink(missing_ok=True)
            os.symlink(f.resolve(), dst / f.name)
        elif f.is_file() and f.name not in ("split.npy", "manifest.json"):
            shutil.copy(f, dst / f.name)
    np.save(dst / "split.npy", np.asarray(split, np.uint8))
    manifest = read_json(src / "manifest.json")
    manifest.update(train=int((split == 0).sum()), val=int((split == 1).sum()))
    write_json(dst / "manifest.json", manifest)
    return dst
