"""The ``hccr`` command line: parses arguments and calls the library, nothing more."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .errors import HccrError
from .utils import count

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Offline handwritten Chinese character recognition (CASIA-HWDB, CharNet ensembles).")

def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"hccr {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """Offline handwritten Chinese character recognition (CASIA-HWDB, CharNet ensembles)."""


class OnErrorChoice(StrEnum):  # choices listed in --help and checked by the parser
    skip = "skip"
    stop = "stop"


class SplitChoice(StrEnum):
    all = "all"
    train = "train"
    val = "val"


class FormatChoice(StrEnum):
    table = "table"
    jsonl = "jsonl"
    csv = "csv"


OnError = Annotated[OnErrorChoice, typer.Option(help="What to do with a bad sample: skip (count it) or stop.")]
Split = Annotated[SplitChoice, typer.Option(help="Which part of a store.")]


@app.command()
def convert(
    sources: Annotated[list[Path], typer.Argument(help="Inputs (.gnt/.pot files, folders, zips of .gnt files, image folders) then OUT.")],
    size: Annotated[int, typer.Option(help="Side of the normalised square images.")] = 64,
    charset: Annotated[str | None, typer.Option(help="gb2312-1, gb2312-2, gb2312, a charset file, or a string of characters.")] = None,
    val_fraction: Annotated[float, typer.Option(help="Fraction held out for validation.")] = 0.0,
    split_by_writer: Annotated[bool, typer.Option(help="With --val-fraction: hold out that fraction of whole writers, "
                                                       "not of samples.")] = False,
    limit: Annotated[int | None, typer.Option(help="Stop after this many samples.")] = None,
    margin: Annotated[float, typer.Option(help="Blank border as a fraction of the side.")] = 0.0,
    pen_width: Annotated[float | None, typer.Option("--pen-width", "--stroke-width",
                                                    help="Median pen width (px at 64 px) for drawing .pot "
                                                    "trajectories (default: hccr's pen, fitted to real scans).")] = None,
    pen_spread: Annotated[float | None, typer.Option(help="How much the pen width varies from one .pot sample to the "
                                                     "next (log-normal sigma; default 0.08). A wider spread shows "
                                                     "a model every writer with thin and thick pens.")] = None,
    stroke_jitter: Annotated[float, typer.Option(help="Move each .pot stroke on its own around its centre, as "
                                                 "writers place strokes differently: shift sigma A x the character's "
                                                 "longer side, turn sigma 2A radians, log-size sigma 2A; A in [0, "
                                                 "0.2], e.g. 0.04. Default 0: as written.")] = 0.0,
    val_every: Annotated[int, typer.Option(help="Hold out every N-th writer (by name order) for validation, "
                                           "e.g. 22: writers 22, 44, ... of the sorted list.")] = 0,
    val_writers: Annotated[str | None, typer.Option(help="Hold out these writers for validation: names separated "
                                                    "by commas (file names without suffix, e.g. 1023-c).")] = None,
    seed: int = 0,
    on_error: OnError = OnErrorChoice.skip,
    exclude: Annotated[Path | None, typer.Option(help="Leave out these samples: hccr audit's audit.json, or a text "
                                                  "file of sample ids (image path, or FILE#k for a .gnt/.pot record).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: all cores).")] = None,
    overwrite: bool = False,
) -> None:
    """Convert CASIA .gnt/.pot files or a PNG export (<root>/<char>/<n>.png) into a packed store."""
    from .data.store import ConvertOptions, read_exclude_list
    from .data.store import convert as run

    if len(sources) < 2:
        raise HccrError("convert needs at least one source and the output folder: hccr convert SRC... OUT")
    opts = ConvertOptions(size=size, charset=charset, val_fraction=val_fraction, split_by_writer=split_by_writer,
                          limit=limit, margin=margin, pen_width=pen_width, pen_spread=pen_spread,
                          stroke_jitter=stroke_jitter,
                          val_every=val_every,
                          val_writers=tuple(w.strip() for w in val_writers.split(",") if w.strip()) if val_writers else (),
                          seed=seed, on_error=on_error.value,
                          exclude=read_exclude_list(exclude) if exclude else ())
    res = run([str(s) for s in sources[:-1]], sources[-1], opts, workers=workers, overwrite=overwrite)
    if res.skipped:
        print("skipped: " + ", ".join(f"{k}: {v}" for k, v in res.skipped.items()))


@app.command()
def info(store: Path) -> None:
    """Print a store's counts, classes, sizes and a few sample characters."""
    from .data.store import Store
    from .report import store_summary

    print(store_summary(Store(store)))


@app.command()
def show(
    store: Path,
    out: Annotated[Path, typer.Option(help="Where to write the PNG grid.")] = Path("grid.png"),
    n: Annotated[int, typer.Option(help="How many samples.")] = 64,
    split: Split = SplitChoice.all,
    seed: int = 0,
) -> None:
    """Draw a labelled grid of samples from a store."""
    from .data.store import Store
    from .report import sample_grid

    if n < 1:
        raise HccrError(f"--n must be at least 1, got {n}")
    s = Store(store)
    if len(s.indices(split.value)) == 0:
        raise HccrError(f"{store}: no samples in split {split.value!r}")
    sample_grid(s, out, n=n, split=split.value, seed=seed)
    print(f"wrote {out}")


@app.command()
def synth(
    out: Annotated[Path | None, typer.Argument(help="Folder for the writer files (.gnt; .pot for learned writers).")] = None,
    chars: Annotated[str, typer.Option(help="gb2312-1, gb2312-2, gb2312, a charset file, or a string of characters.")] = "gb2312-1",
    writers: Annotated[int, typer.Option(help="Number of simulated writers (one .gnt file each).")] = 10,
    seed: int = 0,
    prefix: Annotated[str, typer.Option(help="Writer file names: PREFIX0000.gnt, ... (two generators' writers in one "
                                        "store need different prefixes).")] = "synth",
    size: Annotated[float | None, typer.Option(help="Mean character size in pixels (default: the style profile's).")] = None,
    style: Annotated[str | None, typer.Option(help="Style profile JSON (default: hccr's, calibrated on real handwriting); "
                                             "'learned': writers learned from real pen trajectories (written as .pot); "
                                             "'learned-zero': the same with its learned deformations zeroed (a control); "
                                             "a writer model JSON from --fit; or 'components:BANK.npz': real "
                                             "writers' components lent to any character (a bank from --fit).")] = None,
    font: Annotated[list[Path] | None, typer.Option(help="TTF/OTF font to render glyphs from (repeatable).")] = None,
    font_fraction: Annotated[float, typer.Option(help="Share of samples drawn from the fonts.")] = 0.5,
    preview: Annotated[Path | None, typer.Option(help="Write a PNG grid of samples from several writers.")] = None,
    compare: Annotated[Path | None, typer.Option(help="A store of real handwriting: print how the synthetic writers differ from it.")] = None,
    plot: Annotated[Path | None, typer.Option(help="With --compare: histograms of the features (PNG).")] = None,
    against: Annotated[Path | None, typer.Option(help="With --compare: a second store (e.g. real trajectories drawn by "
                                                 "hccr's pen) compared with the first instead of synthetic writers.")] = None,
    calibrate: Annotated[Path | None, typer.Option(help="A store of real handwriting (any characters): fit the style profile to it.")] = None,
    fit: Annotated[list[Path] | None, typer.Option(help="Real pen trajectories (.pot files or folders): fit a writer model "
                                                   "to them (--style-out M.json; use it with --style M.json), or "
                                                   "keep their components (--style-out BANK.npz).")] = None,
    style_out: Annotated[Path, typer.Option(help="With --calibrate or --fit: where to write the profile or model.")] = Path("style.json"),
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: all cores).")] = None,
) -> None:
    """Generate synthetic handwriting as CASIA .gnt files (one per simulated writer); compare it with
    real handwriting (--compare) or calibrate the writers' style to it (--calibrate)."""
    from .data import style as st
    from .data import synth as sy
    from .data.charset import resolve_charset
    from .data.writers import is_learned

    analysis = next((k for k, v in (("--fit", fit), ("--calibrate", calibrate), ("--compare", compare)) if v), None)
    if analysis and (out is not None or preview is not None):  # it returns before writing either: said, not skipped
        raise HccrError(f"{analysis} writes no handwriting, so {'OUT' if out is not None else '--preview'} would not be "
                        "written: run it alone, then generate (or preview) in a second command")
    if fit:
        from .data.writers import fit_files

        pots = sorted(str(f) for p in fit for f in ([p] if p.is_file() else sorted(p.rglob("*.pot"))))
        if not pots:
            raise HccrError(f"--fit: no .pot file in {', '.join(map(str, fit))}")
        import time

        t = time.perf_counter()
        if style_out.suffix == ".npz":  # a component bank: the real writers' strokes themselves
            from .data.components import MIN_SAMPLES, build_bank

            if len(pots) < MIN_SAMPLES:  # said before minutes of alignment, not by every later synth
                raise HccrError(f"--fit: a component bank lends a stroke only where {MIN_SAMPLES} real writers wrote "
                                f"it cleanly; {len(pots)} .pot file(s) cannot give that: fit at least {MIN_SAMPLES}")
            bank = build_bank(pots, "".join(resolve_charset(chars)), workers=workers)
            bank.save(style_out)
            print(f"kept {len(bank)} cleanly aligned samples of {len(bank.writers)} writers in "
                  f"{time.perf_counter() - t:.0f} s\nwrote {style_out} (use it with --style components:{style_out})")
            return
        model, col = fit_files(pots, "".join(resolve_charset(chars)), workers=workers)
        model.save(style_out)
        share = {k: f"{v / max(col.samples, 1):.1%}" for k, v in sorted(col.status.items(), key=lambda kv: -kv[1])}
        print(f"aligned {col.samples} samples of {len(pots)} writers in {time.perf_counter() - t:.0f} s: "
              f"stroke count equal to the medians' in {col.equal_count / max(col.samples, 1):.1%}; {share}")
        print(f"wrote {style_out}")
        return
    if against is not None:
        if compare is None:
            raise HccrError("--against needs --compare REAL_STORE")
        res = st.compare_stores(compare, against)
        _print_comparison(res, f"{compare} ({res['real_count']} images) vs {against} ({res['other_count']} images, "
                          "characters of both):", "first vs second", plot, (compare.name, against.name))
        return
    learned = is_learned(style)
    if learned and (calibrate is not None or compare is not None or preview is not None):
        given = "--preview" if preview is not None else "--calibrate" if calibrate is not None else "--compare"
        raise HccrError(f"{given} is not available with --style {style}: it writes pen trajectories (.pot); convert "
                        "them (hccr convert SYNTH STORE), then `hccr show STORE` draws a grid and `hccr synth --compare "
                        "REAL --against STORE` compares them")
    profile = st.StyleProfile.load(style) if style and not learned else st.default_profile()
    if calibrate is not None:
        prof = st.calibrate_store(calibrate, profile)
        prof.save(style_out)
        print(f"wrote {style_out}: " + ", ".join(f"{k} {v:.3g}" for k, v in prof.__dict__.items()
                                                    if isinstance(v, float)))
        return
    if compare is not None:
        res = st.compare_store(compare, profile, writers=writers)
        _print_comparison(res, f"real {compare} ({res['real_count']} images) vs synthetic ({res['synthetic_count']} "
                          f"images, profile: {style or 'default'}):", "real vs synthetic", plot, ("real", "synthetic"))
        return
    if preview is not None:
        sample_chars = {"gb2312-1": "永安家察寒宿它守完宏", "gb2312": "永安家察寒宿它守完宏",
                        "gb2312-2": "".join(resolve_charset("gb2312-2").chars[::300])}.get(chars, chars)
        sy.preview(preview, chars=sample_chars, writers=min(writers, 12), seed=seed, size=size,
                   style=str(style) if style else None)
        print(f"wrote {preview}")
        if out is None:
            return
    if out is None:
        raise HccrError("synth needs an output folder (or --preview PNG, --compare STORE, --calibrate STORE)")
    if not prefix or any(c in prefix for c in "/\\"):
        raise HccrError(f"--prefix {prefix!r}: give a file name prefix without folders (e.g. builtin)")
    if not 0.0 <= font_fraction <= 1.0:  # checked with or without --font: a typo is said either way
        raise HccrError(f"--font-fraction must be a share from 0 to 1, got {font_fraction:g}")
    fonts = tuple(str(f) for f in font or ())
    cfg = sy.SynthConfig(chars=chars, writers=writers, seed=seed, size=size, fonts=fonts,
                         font_fraction=font_fraction if fonts else 0.0, style=str(style) if style else None,
                         prefix=prefix)
    import time

    kept = sum(sy.writer_path(out, cfg, w, learned).exists() for w in range(writers))  # a resumed run keeps them
    t = time.perf_counter()
    files = sy.synth(out, cfg, workers=workers)
    dt = time.perf_counter() - t
    per = len(resolve_charset(chars))
    n = (len(files) - kept) * per
    print(f"wrote {count(len(files) - kept, Path(files[0]).suffix + ' file')} to {out}: {count(n, 'sample')} of "
          f"{count(per, 'character')} ({dt:.1f}s, {n / dt:.0f} samples/s)"
          + (f"; {kept} written before were kept" if kept else ""))


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="Packed store made by hccr convert.")],
    out: Annotated[Path, typer.Option(help="Run folder for checkpoints and metrics.")],
    preset: Annotated[str | None, typer.Option(help="paper-1..3, fast-1..3, gb2312 or gb2312-synth (see hccr presets; "
                                               "default fast-1).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the preset's epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override the preset's batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Override the preset's learning rate.")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the preset's seed.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Any config field: key=value (repeatable).")] = None,
    init: Annotated[str | None, typer.Option(help="Start from this model (gb2312, a run folder or a checkpoint): "
                                             "fine-tuning; classifier rows are carried over by character.")] = None,
    freeze_epochs: Annotated[int | None, typer.Option(help="With --init: train only the classifier for this many epochs.")] = None,
    keep_classes: Annotated[bool, typer.Option(help="With --init: keep every character the model reads and add the "
                                               "store's; only the store's characters' rows learn (teach it a few "
                                               "characters without losing the rest).")] = False,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out where it stopped (its last resume point, mid-epoch included).")] = False,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 (default: the GPU if any).")] = None,
) -> None:
    """Train a model (single process, or many under torchrun --nproc-per-node N); --init fine-tunes one."""
    from .config import apply_overrides
    from .train import fit

    cfg, _ = _run_config(out, resume, preset)
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr), ("seed", seed), ("init", init),
                       ("freeze_epochs", freeze_epochs), ("init_keep_classes", keep_classes or None)):
        if value is not None:
            setattr(cfg, key, value)
    cfg = apply_overrides(cfg, set_ or [])
    fit(cfg, data, out, resume=resume, device=device)


def _check_npz_out(out: Path) -> None:
    """evaluate, ensemble and calibrate tell a prediction file by its name."""
    if out.suffix != ".npz":
        raise HccrError(f"--out {out}: a prediction file's name ends in .npz (e.g. {out.with_suffix('.npz').name})")


def _check_split(split: str, inputs: list[Path]) -> None:
    """``--split`` other than all names part of one store: refused for any other inputs (it was ignored)."""
    if split != "all" and not (len(inputs) == 1 and (Path(inputs[0]) / "manifest.json").exists()):
        raise HccrError(f"--split {split} picks part of one store; these inputs have no splits (give a store alone, "
                        "or leave --split out)")


def _check_stem_free(stem: Path, overwrite: bool, verb: str = "") -> None:
    """A model's files at ``stem`` (a calibrated model among them) are replaced only with --overwrite."""
    from .checkpoint import MODEL_SUFFIXES, model_stem

    there = [p for p in (Path(f"{model_stem(stem)}{s}") for s in MODEL_SUFFIXES) if p.exists()]
    if there and not overwrite:
        raise HccrError(f"{there[0]}: a model is already {verb}there; --overwrite replaces it, or give another --out")


def _run_config(out: Path, resume: bool, preset: str | None):
    """(config, resumed): the run's own config when resuming it, else the preset's (default fast-1)."""
    from .config import config_from_dict, get_preset
    from .utils import read_json

    if resume and (out / "config.json").exists():
        cfg = config_from_dict(read_json(out / "config.json")["config"])
        if preset is not None and cfg.preset and preset != cfg.preset:  # the same preset, as scripts rerun: fine
            raise HccrError(f"--resume continues {out}, a {cfg.preset} run, with the recipe it began with: --preset "
                            f"{preset} would not change it (leave --preset out, or start a new --out)")
        return cfg, True
    return get_preset(preset or "fast-1"), False


def _print_comparison(res: dict, title: str, what: str, plot: Path | None, labels: tuple[str, str]) -> None:
    """The feature table of ``hccr synth --compare`` (with or without ``--against``), and its histograms."""
    from .data.style import plot_histograms

    print(title)
    print(f"{'feature':14s} {'median':>12s} {'IQR':>12s} {'median':>12s} {'IQR':>12s}")
    for r in res["rows"]:
        print(f"{r['feature']:14s} {r['real_median']:12.3g} {r['real_iqr']:>12s} {r['synthetic_median']:12.3g} "
              f"{r['synthetic_iqr']:>12s}")
    if res.get("domain_accuracy") is None:  # too few images for a held-out figure: the table stands alone
        from .data.style import DOMAIN_MIN

        print(f"domain classifier ({what}): not run, it needs at least {DOMAIN_MIN} images on each side")
    else:
        print(f"domain classifier ({what}, held out): {res['domain_accuracy']:.3f} (0.5 = indistinguishable)")
    if plot:
        plot_histograms(res["real"], res["synthetic"], plot, labels)
        print(f"wrote {plot}")


@app.command()
def distill(
    data: Annotated[Path, typer.Option(help="Packed store to train the student on.")],
    out: Annotated[Path, typer.Option(help="Run folder for the student.")],
    teacher: Annotated[list[Path] | None, typer.Option(help="A teacher checkpoint or run folder (repeat for an "
                                                       "ensemble; with --resume the run's own).")] = None,
    preset: Annotated[str | None, typer.Option(help="The student's recipe (see hccr presets; default fast-1).")] = None,
    weights: Annotated[str | None, typer.Option(help="Teacher weights, comma-separated (default 0.3,0.2,0.5 for three, else equal).")] = None,
    temperature: Annotated[float, typer.Option(help="Softening temperature of the teachers' and student's logits.")] = 2.0,
    alpha: Annotated[float, typer.Option(help="Weight of the soft targets; 1 - alpha goes to the hard labels.")] = 0.7,
    teacher_crops: Annotated[int, typer.Option(help="Crops per view for the teachers (5: as the ensemble predicts).")] = 5,
    epochs: Annotated[int | None, typer.Option(help="Override the preset's epochs.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Any config field: key=value (repeatable).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out.")] = False,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 (default: the GPU if any).")] = None,
) -> None:
    """Train one student on the soft five-crop predictions of an ensemble of teachers."""
    from .config import apply_overrides
    from .train import fit

    cfg, resumed = _run_config(out, resume, preset)
    if resumed and teacher:
        raise HccrError(f"--resume continues {out} with the teachers it began with: leave --teacher out")
    if not resumed:
        if not teacher:
            raise HccrError("distill needs --teacher (a checkpoint or run folder; repeat it for an ensemble)")
        cfg.teachers = tuple(str(t) for t in teacher)
        cfg.teacher_weights = tuple(_weights(weights)) if weights else ()
        cfg.distill_temperature, cfg.distill_alpha, cfg.teacher_crops = temperature, alpha, teacher_crops
        if epochs is not None:
            cfg.epochs = epochs
    cfg = apply_overrides(cfg, set_ or [])
    fit(cfg, data, out, resume=resume, device=device)


@app.command()
def audit(
    store: Annotated[Path, typer.Argument(help="The packed store to check.")],
    out: Annotated[Path, typer.Option(help="Folder for audit.md, audit.json and the tile sheets.")] = Path("audit"),
    model: Annotated[str | None, typer.Option("--model", "-m", help="Use this model's answers and features "
                                              "instead of training out-of-fold models (faster, see docs).")] = None,
    folds: Annotated[int, typer.Option(help="Out-of-fold models to train (each on the other folds).")] = 2,
    epochs: Annotated[int, typer.Option(help="Epochs per out-of-fold model.")] = 10,
    preset: Annotated[str, typer.Option(help="Recipe of the out-of-fold models.")] = "fast-1",
    threshold: Annotated[float, typer.Option(help="Flag a sample read as another class with at least this confidence.")] = 0.9,
    seed: int = 0,
) -> None:
    """Find likely label faults: samples read confidently as another class, classes holding two characters."""
    from .audit import audit as run
    from .utils import use_all_cores

    use_all_cores()
    r = run(store, out, model=model, folds=folds, epochs=epochs, threshold=threshold, preset=preset, seed=seed)
    print(f"{len(r['mislabelled'])} of {r['samples']} samples read as another class with confidence >= {threshold}")
    for c in r["two_character_classes"]:
        print(f"class {c['char']} looks like two characters: groups of {c['groups'][0]} and {c['groups'][1]} "
              f"(separation {c['separation']}, {c['ratio']}x the median class); see {out / ('class-' + c['char'] + '.png')}")
    if not r["two_character_classes"]:
        print("no class looks like two characters")
    print(f"report: {out / 'audit.md'}")


@app.command("presets")
def presets_cmd() -> None:
    """List the training presets and their main settings."""
    from .config import PRESETS

    wn, wm = max(map(len, PRESETS)), max(len(c.model) for c in PRESETS.values())  # columns as wide as their names
    for name, c in PRESETS.items():
        blur = f"blur {c.blur_ksize}x{c.blur_ksize} sigma {c.blur_sigma:.3g}" if c.blur_ksize else "no blur"
        length = f"steps {c.steps}" if c.steps else f"epochs {c.epochs}"
        print(f"{name:{wn}s} {c.model:{wm}s} {c.image_size:3d}px  {c.loss:5s} {c.optimizer:5s} lr {c.lr:<6g} "
              f"batch {c.batch_size:<4d} {length:12s} {blur}")


ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", help="gb2312 (the shipped model, the default), gb2312-synth (shipped, synthetic handwriting only), a run folder, a checkpoint or an .onnx file.")]


@app.command()
def predict(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders (flat, or <root>/<char>/ for labelled "
                                                     "images), glob patterns, - (paths on stdin), CASIA .gnt/.pot "
                                                     "files or zips of .gnt files (labelled: the accuracy is printed), or "
                                                     "one packed store alone.")],
    model: ModelOpt = None,
    out: Annotated[Path | None, typer.Option(help="Write probabilities to this .npz.")] = None,
    crops: Annotated[int | None, typer.Option(help="1 (whole image) or 5 (the paper's multi-crop); default: the model's.")] = None,
    topk: Annotated[int, typer.Option(help="Candidates to print per image.")] = 5,
    charset: Annotated[str | None, typer.Option(help="Only answer with these characters (gb2312-1, a file, or a string).")] = None,
    format_: Annotated[FormatChoice, typer.Option("--format", help="jsonl and csv print every image.")] = FormatChoice.table,
    on_error: Annotated[OnErrorChoice, typer.Option(help="An unreadable image: skip it (and count it) or stop.")
                        ] = OnErrorChoice.stop,
    strict: Annotated[bool, typer.Option(help="Refuse images that look like several characters instead of warning.")] = False,
    split: Split = SplitChoice.all,
    batch_size: int = 256,
    float16: Annotated[bool, typer.Option(help="Store probabilities as float16.")] = False,
    amp: Annotated[bool, typer.Option(help="bf16 autocast (faster on CPUs with bf16 units, ~1e-2 different).")] = False,
    device: str = "cpu",
) -> None:
    """Recognise images (the shipped GB2312 model unless --model names another); prints top-k per image.

    The older form `hccr predict MODEL INPUT...` still works when MODEL is clearly a model."""
    from .evaluate import topk_accuracy
    from .runtime import allowed_indices, load_recognizer, predict_inputs
    from .utils import use_all_cores
    from .zoo import is_model_path

    format_, on_error, split = format_.value, on_error.value, split.value
    if topk < 1:  # said before anything is predicted
        raise HccrError(f"--topk must be at least 1, got {topk}")
    if out is not None:
        _check_npz_out(out)
    if model is None and len(inputs) > 1 and is_model_path(inputs[0]):
        model, inputs = inputs[0], inputs[1:]
    _check_split(split, inputs)
    use_all_cores()
    rec = load_recognizer(model, device, amp, crops=crops)
    crops = crops or rec.spec.crops
    rec.spec.side(crops)  # a --crops other than 1 or 5 is said before anything is predicted
    if charset:
        from .data.charset import resolve_charset

        topk = min(topk, len(allowed_indices(rec.charset, charset)))  # none known: an error before predicting
        unknown = [c for c in dict.fromkeys(resolve_charset(charset)) if c not in rec.charset.index]
        if unknown:
            print(f"note: --charset: {len(unknown)} of its characters the model does not know, never answered: "
                  f"{''.join(unknown[:20])}{'...' if len(unknown) > 20 else ''}", file=sys.stderr)
    pred = predict_inputs(rec, inputs, crops=crops, batch_size=batch_size, split=split,
                          progress=format_ == "table", on_error=on_error, allowed=charset)
    topk = min(topk, len(rec.charset))  # a CSV header as wide as its rows, never listing characters outside --charset
    info = sys.stderr if format_ != "table" else sys.stdout  # keep machine-readable output clean
    for problem in pred.meta["skipped"][:10]:
        print(f"skipped {problem}", file=sys.stderr)
    if pred.meta["skipped"]:
        print(f"skipped {len(pred.meta['skipped'])} unreadable image(s)", file=sys.stderr)
    several = pred.meta["several_characters"]
    if several:
        msg = (f"{len(several)} image(s) look like several characters (a word or a line), e.g. {several[0]}; "
               "hccr reads one character per image: crop each character first")
        if strict:
            raise HccrError(msg)
        print(f"warning: {msg}", file=sys.stderr)
    if out is not None:
        pred.save(out, float16=float16)
        print(f"wrote {out}: {count(len(pred), 'sample')} x {pred.probs.shape[1]} classes "
              f"({pred.meta['ms_per_char']:.2f} ms/char, {crops} crop(s))", file=info)
    _print_predictions(pred, rec.charset, topk, format_, limit=None if format_ != "table" or out is None else 50)
    # the summary last, where a terminal leaves it in view
    if pred.meta["unknown_labels"]:
        print(f"{pred.meta['unknown_labels']} of {len(pred)} labelled images are of characters the model does not "
              f"know ({pred.meta['unknown_chars'][:40]}): counted apart, not in the accuracy", file=info)
    if (pred.labels >= 0).any():
        acc = topk_accuracy(pred.probs, pred.labels)
        print(f"accuracy on {int((pred.labels >= 0).sum())} images: " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items()),
              file=info)


def _print_predictions(pred, charset, topk: int, fmt: str, limit: int | None) -> None:
    import csv
    import json

    from .runtime import topk_chars

    n = len(pred) if limit is None else min(limit, len(pred))
    cands = topk_chars(pred.probs[:n], charset, topk)
    digits = 4 if pred.probs.dtype.itemsize == 2 else 6  # a big run's float16 holds about 3-4 digits
    writer = csv.writer(sys.stdout) if fmt == "csv" else None
    if writer:
        writer.writerow(["file", *[f"{w}{i + 1}" for i in range(topk) for w in ("char", "prob")]])
    for sid, cs in zip(pred.ids[:n], cands, strict=True):
        if fmt == "jsonl":
            print(json.dumps({"file": str(sid), "top": [{"char": c, "prob": round(p, digits)} for c, p in cs]},
                             ensure_ascii=False))
        elif writer:
            writer.writerow([sid, *[x for c, p in cs for x in (c, f"{p:.{digits}f}")]])
        else:
            print(f"{sid}: " + "  ".join(f"{ch} {p:.3f}" for ch, p in cs))
    if n < len(pred):
        print(f"... {len(pred) - n} more images in the .npz (print every one with --format jsonl or csv)")


@app.command()
def package(
    run: Annotated[Path, typer.Argument(help="A training run folder (its best checkpoint) or a checkpoint.")],
    out: Annotated[Path, typer.Option(help="Output stem: writes STEM.json, STEM.safetensors (fp16) and STEM.onnx.")],
    recipe: Annotated[str, typer.Option(help="How the run was made, recorded as provenance.")] = "",
    crops: Annotated[int, typer.Option(help="Crops inside the ONNX graph.")] = 1,
    divide_prior: Annotated[bool, typer.Option(help="Fold the training store's class prior out of the classifier "
                                                    "(for unbalanced data, e.g. real images of a few characters; "
                                                    "not for a run started from the shipped gb2312, whose bias "
                                                    "has a prior divided out already).")] = False,
    prior_power: Annotated[float | None, typer.Option(help="With --divide-prior: divide by prior**POWER (default 1, "
                                                           "fully; below 1 keeps part of the pull towards the "
                                                           "characters with real images).")] = None,
    real_data: Annotated[str, typer.Option(help="What real images were mixed into training (provenance, model card).")] = "",
    overwrite: Annotated[bool, typer.Option(help="Replace a model already packaged under STEM.")] = False,
) -> None:
    """Turn a training run into a shippable model (fp16 checkpoint + ONNX, provenance, no absolute paths)."""
    from .packaging import init_prior_note, run_provenance, store_class_counts
    from .packaging import package as run_package

    _check_stem_free(out, overwrite, "packaged ")
    prov = run_provenance(run, recipe)
    if real_data:
        prov["real"] = real_data
    counts = None
    if prior_power is not None and not divide_prior:
        raise HccrError("--prior-power needs --divide-prior")
    if divide_prior:
        counts, store_name = store_class_counts(run)
        print(f"class prior from {store_name}: {min(counts)}-{max(counts)} samples per class")
        if note := init_prior_note(run):
            print(note)
    j, o = run_package(run, out, prov, crops, counts, 1.0 if prior_power is None else prior_power)
    for p in (j.with_suffix(".safetensors"), j, o):
        print(f"wrote {p} ({p.stat().st_size / 1e6:.1f} MB)")


@app.command()
def average(
    checkpoints: Annotated[list[Path], typer.Argument(help="Checkpoints of one network and charset (run folders or .json).")],
    out: Annotated[Path, typer.Option(help="Output stem: writes STEM.json and STEM.safetensors.")],
    overwrite: Annotated[bool, typer.Option(help="Replace a model already at STEM (its .onnx twin is removed).")] = False,
) -> None:
    """Average the weights of checkpoints of one network (e.g. a run and its continuation on fresh
    data, as gb2312-synth was made); package the result like a run."""
    from .checkpoint import average_checkpoints, model_stem, save_checkpoint, staged_model

    _check_stem_free(out, overwrite)
    model, meta = average_checkpoints(checkpoints)  # says so when the parts' biases were in different frames
    stem = model_stem(out)
    stale = Path(f"{stem}.onnx")  # the replaced model's export would answer for another model: staged_model removes it
    had_stale = stale.exists()
    with staged_model(stem) as part:
        save_checkpoint(part, model, meta)
    print(f"wrote {stem}.json (the average of {len(checkpoints)} checkpoints)")
    if had_stale:
        print(f"removed {stale} (the model it was exported from was replaced)")


@app.command("model-card")
def model_card(
    model: Annotated[str | None, typer.Option("--model", "-m", help="gb2312 (default), gb2312-synth, a run folder or "
                                              "a checkpoint (.json; an .onnx file with its .json beside it).")] = None,
    out: Annotated[Path, typer.Option(help="Where to write the card (Markdown).")] = Path("model-card.md"),
) -> None:
    """Write a model card from a checkpoint's metadata (default: the shipped model)."""
    from .packaging import write_model_card

    print(f"wrote {write_model_card(model, out)}")


@app.command()
def ensemble(
    preds: Annotated[list[Path], typer.Argument(help="Member prediction files (same samples, same charset).")],
    out: Annotated[Path, typer.Option(help="Where to write the ensemble's .npz.")],
    weights: Annotated[str | None, typer.Option(help="Comma-separated weights (default 0.3,0.2,0.5 for three).")] = None,
    fit: Annotated[list[Path] | None, typer.Option(help="Validation predictions of each member, in the same order: fit the weights on them.")] = None,
) -> None:
    """Weighted average of members' probabilities (paper weights by default, or fitted on validation data)."""
    from .ensemble import combine, fit_weights, load_all
    from .evaluate import topk_accuracy

    _check_npz_out(out)
    if fit and weights:
        raise HccrError("--weights and --fit both set the members' weights: give one (--fit fits them on validation "
                        "predictions)")
    members = load_all(preds)
    names = [str(p) for p in preds]
    w = None
    if fit:
        if len(fit) != len(preds):
            raise HccrError(f"--fit needs one validation file per member, in their order, each after its own --fit "
                            f"(--fit V1 --fit V2 ...): got {len(fit)} for {len(preds)} member(s)")
        w = fit_weights(load_all(fit)).tolist()
        print("fitted weights: " + ", ".join(f"{x:.3f}" for x in w))
    elif weights:
        w = _weights(weights)
    ens = combine(members, w, names)
    ens.save(out)
    print(f"wrote {out}: weights {', '.join(f'{x:.3f}' for x in ens.meta['weights'])}")
    if (ens.labels >= 0).any():
        print("accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in topk_accuracy(ens.probs, ens.labels).items()))


@app.command()
def evaluate(
    inputs: Annotated[list[Path], typer.Argument(help="Prediction files (.npz; the first gets the detailed report), "
                                                      "or labelled data to predict first: a store, a <root>/<char>/ "
                                                      "image folder, or CASIA .gnt files/folders.")],
    model: ModelOpt = None,
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("report"),
    split: Annotated[SplitChoice, typer.Option(help="Which part of a store to score (a store made with "
                                                    "--val-writers holds training samples too).")] = SplitChoice.all,
    crops: Annotated[int | None, typer.Option(help="1 or 5 crops per image when predicting data; default: the "
                                                   "model's (a run: 5, a packaged model: its own).")] = None,
) -> None:
    """Top-1/5/10, per-class accuracy, confused pairs, confusion and reliability plots -> report.md.

    Given data instead of prediction files, predicts it first with --model (default: the shipped model)."""
    from .evaluate import evaluate as run
    from .evaluate import predict_labelled, topk_text
    from .runtime import Predictions
    from .utils import use_all_cores

    if out.exists() and not out.is_dir():  # said before anything is predicted
        raise HccrError(f"--out {out}: is a file; the report is a folder (report.md, per_class.csv, plots)")
    if any(p.suffix == ".npz" for p in inputs) and not all(p.suffix == ".npz" for p in inputs):
        raise HccrError("evaluate takes prediction files (.npz) or labelled data to predict, not both: evaluate "
                        "the data first (hccr predict DATA --out FILE.npz), then compare the .npz files")
    if all(p.suffix == ".npz" for p in inputs):
        given = next((o for o, v in (("model", model), ("split", split != SplitChoice.all), ("crops", crops))
                      if v), None)
        if given:
            raise HccrError(f"--{given} is for evaluating data; these are prediction files already")
        loaded = [Predictions.load(p) for p in inputs]
        names = [p.stem for p in inputs]
        if len(set(names)) < len(names):  # e.g. two runs' report/predictions.npz: name each by its folder too
            names = [f"{p.parent.name}/{p.stem}" for p in inputs]
        if len(set(names)) < len(names):
            raise HccrError("two prediction files of one name in one folder: give each model's file once")
    else:
        stores = [p for p in inputs if (p / "manifest.json").exists()]
        _check_split(split.value, inputs)
        if stores and split == SplitChoice.all:
            from .data.store import Store

            if len(Store(stores[0]).indices("val")):
                print(f"note: {stores[0]} holds training and validation samples and all are scored; --split val "
                      "scores the held-out ones alone", file=sys.stderr)
        use_all_cores()
        loaded, names = [predict_labelled(inputs, model, out, split.value, crops)], [model or "gb2312"]
        meta = loaded[0].meta
        if meta.get("unknown_labels"):
            print(f"{meta['unknown_labels']} of {len(loaded[0])} images are of characters the model does not know "
                  f"({meta['unknown_chars'][:40]}): counted apart, not in the accuracy")
    res = run(loaded[0], out, compare=dict(zip(names[1:], loaded[1:], strict=True)), name=names[0])
    for name, r in res["table"].items():
        print(f"{name:30s} top-1 {r['top1']:.4f}  top-5 {topk_text(r, 5)}  ECE {r['ece']:.4f}")
    print(f"report: {out / 'report.md'}")


@app.command()
def calibrate(
    inputs: Annotated[list[str], typer.Argument(help="Labelled images the model did not train on: a store "
                                                     "(see --split) or <root>/<char>/ folders.")],
    model: ModelOpt = None,
    split: Annotated[SplitChoice | None, typer.Option(help="Which part of a store (default: val).")] = None,
    write: Annotated[bool, typer.Option(help="Record the temperature in the model's files.")] = True,
) -> None:
    """Fit the softmax temperature that makes the model's confidences honest (lowest NLL), report
    ECE before and after, and record it in the model (checkpoint JSON, ONNX metadata)."""
    from .evaluate import calibrate_model
    from .utils import use_all_cores

    if split is not None:  # named: it must pick part of a store (a folder has no splits to pick)
        _check_split(split.value, [Path(i) for i in inputs])
    use_all_cores()
    r = calibrate_model(model, inputs, split.value if split is not None else "val", write)
    print(f"temperature {r['temperature']:.3f}: ECE {r['ece_before']:.4f} uncalibrated (T = 1) -> {r['ece_after']:.4f} on {r['images']} "
          f"images (top-1 {r['top1']:.4f}, unchanged)")
    if write and not r["written"]:  # the package's own files serve every user of this install
        print(f"not recorded: the shipped model {model or 'gb2312'} is not rewritten; to keep a temperature for your data, "
              "package or copy the model and pass --model FILE")
    for p in r["written"]:
        print(f"wrote {p}")


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option(help="Folder for data, models, predictions and the report.")] = Path("runs/quickstart"),
    real: Annotated[list[Path] | None, typer.Option(help="Also evaluate on real data (a <root>/<char>/ folder, .gnt ...).")] = None,
    tiny: Annotated[bool, typer.Option(help="A seconds-long version for smoke tests.")] = False,
    epochs: Annotated[int | None, typer.Option(help="Epochs per model (default: as many as --minutes allow here).")] = None,
    minutes: Annotated[float, typer.Option(help="Wall time for training the three models, sized by a short speed "
                                           "probe of this machine.")] = 5.0,
) -> None:
    """The main job: synthetic data -> 3 fast models -> 5-crop predictions -> ensembles -> report."""
    import torch  # noqa: F401  (it trains: without torch, say so before any data is written)

    from .quickstart import QuickstartConfig, check_real, run

    if not minutes > 0 or (epochs is not None and epochs < 1):
        raise HccrError(f"--minutes must be above 0 and --epochs at least 1, got {minutes:g} and {epochs}")
    cfg = QuickstartConfig.tiny() if tiny else QuickstartConfig(train_minutes=minutes)
    if epochs is not None:
        cfg.epochs = epochs
    run(out, cfg, real=check_real([str(r) for r in real]) if real else None)


@app.command()
def export(
    ckpts: Annotated[list[Path], typer.Argument(help="One checkpoint, or several for an ensemble graph.")],
    out: Annotated[Path, typer.Option(help="The .onnx file to write.")] = Path("model.onnx"),
    weights: Annotated[str | None, typer.Option(help="Ensemble weights (default 0.3,0.2,0.5 for three).")] = None,
    crops: Annotated[int, typer.Option(help="1 or 5 crops inside the graph.")] = 5,
    int8: Annotated[bool, typer.Option(help="Also write an int8-quantised copy (MODEL.int8.onnx).")] = False,
    opset: int = 17,
    overwrite: Annotated[bool, typer.Option(help="Replace an ONNX file already at --out (and its int8 copy).")] = False,
) -> None:
    """Export a model or a whole ensemble (crops and weighted average inside) to ONNX."""
    from .export import export_onnx, quantize_int8
    from .packaging import _is_twin

    for c in ckpts:
        if c.suffix == ".onnx":
            raise HccrError(f"{c}: already an ONNX file; export reads checkpoints (a run folder, or the .json of a "
                            "packaged model)")
    if out.suffix != ".onnx":  # every loader tells a model's kind by its name
        raise HccrError(f"--out {out}: an ONNX model's name ends in .onnx (e.g. {out.with_suffix('.onnx').name})")
    quantized = out.with_suffix(".int8.onnx")
    if out.is_dir():
        raise HccrError(f"--out {out}: is a folder; give the .onnx file to write")
    if out.exists() and _is_twin(out):
        raise HccrError(f"{out}: the graph of the model packaged as {out.with_suffix('')} (with "
                        f"{out.with_suffix('.json').name} and {out.with_suffix('.safetensors').name}); a new graph "
                        "alone would not match them: give another --out, or make a new package with hccr package")
    for f in [out, quantized][: 1 + int8]:
        if f.exists() and not overwrite:
            raise HccrError(f"{f}: already exists; --overwrite replaces it, or give another --out")
    w = _weights(weights) if weights else None
    path = export_onnx([str(c) for c in ckpts], out, w, crops, opset)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {len(ckpts)} member(s), {crops} crop(s))")
    if int8:
        q = quantize_int8(path, quantized)
        print(f"wrote {q} ({q.stat().st_size / 1e6:.1f} MB)")
    elif quantized.is_file():  # the replaced graph's int8 copy would answer for another model
        quantized.unlink()
        print(f"removed {quantized}: the int8 copy of the graph replaced (--int8 makes a new one)")


@app.command()
def serve(
    model_arg: Annotated[str | None, typer.Argument(metavar="[MODEL]", help="Same as --model.")] = None,
    model: ModelOpt = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="Concurrent inferences.")] = 2,
    allow_host: Annotated[list[str] | None, typer.Option(help="Host names clients may use to reach the server "
                                                         "(default: --host, localhost, 127.0.0.1; '*' for any).")] = None,
) -> None:
    """HTTP API (POST /v1/recognize, GET /healthz, /docs) with a drawing page at /."""
    from .serve.app import Limits
    from .serve.app import serve as run

    if not 0 <= port <= 65535:
        raise HccrError(f"--port {port}: a port is a number from 0 to 65535")
    if model and model_arg and model != model_arg:
        raise HccrError(f"serve {model_arg} --model {model}: two models; give one (as MODEL or --model)")
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C stops the server as uvicorn does: nothing to resume
    run(model or model_arg, host, port, Limits(workers=workers), allowed_hosts=allow_host)


def _weights(text: str) -> list[float]:
    """``--weights 0.3,0.2,0.5`` as numbers, or a one-line error."""
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise HccrError(f"--weights must be numbers separated by commas, got {text!r}") from None


# The optional extras (pyproject.toml) and the modules each brings, for the message when one is missing.
EXTRAS = {"train": ("torch", "safetensors", "onnx"), "plot": ("matplotlib",),
          "serve": ("fastapi", "uvicorn", "multipart", "starlette")}


class Interrupted(BaseException):
    """Ctrl-C, raised in place of KeyboardInterrupt so that it reaches :func:`main` (Typer turns a
    KeyboardInterrupt into a silent exit 130 before any handler of ours sees it)."""


def _interrupt(signum, frame) -> None:
    raise Interrupted


def main() -> None:
    import signal

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where a caller chose to ignore Ctrl-C
        signal.signal(signal.SIGINT, _interrupt)
    try:
        app()
    except HccrError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except (Interrupted, KeyboardInterrupt):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while shutting down prints no traceback
        print("interrupted: nothing half-written was kept; the same command run again resumes a conversion or a "
              "synthesis, and train or distill with --resume goes on from the last saved state", file=sys.stderr)
        sys.exit(130)
    except ModuleNotFoundError as e:  # an optional extra this command needs; any other missing module is a bug
        extra = next((x for x, mods in EXTRAS.items() if (e.name or "").split(".")[0] in mods), None)
        if extra is None:
            raise
        print(f"error: this command needs {e.name.split('.')[0]}, which is not installed: pip install "
              f"'hccr[{extra}]'", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # the machine's, not hccr's: a full disk, a permission, a vanished file
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e} (nothing half-written is kept: outputs are renamed into place "
              "only when complete)", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
