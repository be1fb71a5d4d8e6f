"""The ``hccr`` command line: parses arguments and calls the library, nothing more."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import HccrError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Offline handwritten Chinese character recognition (CASIA-HWDB, CharNet ensembles).")

OnError = Annotated[str, typer.Option(help="What to do with a bad sample: skip (count it) or stop.")]


@app.command()
def convert(
    sources: Annotated[list[Path], typer.Argument(help="Inputs (.gnt/.pot files, folders, zips, image folders) then OUT.")],
    size: Annotated[int, typer.Option(help="Side of the normalised square images.")] = 64,
    charset: Annotated[Optional[str], typer.Option(help="gb2312-1, gb2312, a charset file, or a string of characters.")] = None,
    val_fraction: Annotated[float, typer.Option(help="Fraction held out for validation.")] = 0.0,
    split_by_writer: Annotated[bool, typer.Option(help="Hold out whole writers for validation.")] = False,
    limit: Annotated[Optional[int], typer.Option(help="Stop after this many samples.")] = None,
    margin: Annotated[float, typer.Option(help="Blank border as a fraction of the side.")] = 0.0,
    stroke_width: Annotated[float, typer.Option(help="Pen width (px at 64 px) for rendering .pot data.")] = 2.0,
    seed: int = 0,
    on_error: OnError = "skip",
    workers: Annotated[Optional[int], typer.Option(help="Worker processes (default: all cores).")] = None,
    overwrite: bool = False,
) -> None:
    """Convert CASIA .gnt/.pot files or a PNG export (<root>/<char>/<n>.png) into a packed store."""
    from .data.store import ConvertOptions, convert as run

    if len(sources) < 2:
        raise HccrError("convert needs at least one source and the output folder: hccr convert SRC... OUT")
    opts = ConvertOptions(size=size, charset=charset, val_fraction=val_fraction, split_by_writer=split_by_writer,
                          limit=limit, margin=margin, stroke_width=stroke_width, seed=seed, on_error=on_error)
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
    split: Annotated[str, typer.Option(help="all, train or val.")] = "all",
    seed: int = 0,
) -> None:
    """Draw a labelled grid of samples from a store."""
    from .data.store import Store
    from .report import sample_grid

    s = Store(store)
    sample_grid(s, out, n=n, split=split, seed=seed)
    print(f"wrote {out}")


@app.command()
def synth(
    out: Annotated[Optional[Path], typer.Argument(help="Folder for the <writer>.gnt files.")] = None,
    chars: Annotated[str, typer.Option(help="gb2312-1, gb2312, a charset file, or a string of characters.")] = "gb2312-1",
    writers: Annotated[int, typer.Option(help="Number of simulated writers (one .gnt file each).")] = 10,
    seed: int = 0,
    size: Annotated[float, typer.Option(help="Mean character size in pixels (longer side).")] = 64.0,
    font: Annotated[Optional[list[Path]], typer.Option(help="TTF/OTF font to render glyphs from (repeatable).")] = None,
    font_fraction: Annotated[float, typer.Option(help="Share of samples drawn from the fonts.")] = 0.5,
    preview: Annotated[Optional[Path], typer.Option(help="Write a PNG grid of samples from several writers.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes (default: all cores).")] = None,
) -> None:
    """Generate synthetic handwriting as CASIA .gnt files (one per simulated writer)."""
    from .data import synth as sy
    from .data.charset import resolve_charset

    if preview is not None:
        sample_chars = chars if chars not in ("gb2312-1", "gb2312") else "永安家察寒宿它守完宏"
        sy.preview(preview, chars=sample_chars, writers=min(writers, 12), seed=seed, size=size)
        print(f"wrote {preview}")
        if out is None:
            return
    if out is None:
        raise HccrError("synth needs an output folder (or --preview PNG)")
    fonts = tuple(str(f) for f in font or ())
    cfg = sy.SynthConfig(chars=chars, writers=writers, seed=seed, size=size, fonts=fonts,
                         font_fraction=font_fraction if fonts else 0.0)
    import time

    t = time.perf_counter()
    files = sy.synth(out, cfg, workers=workers)
    dt = time.perf_counter() - t
    n = len(resolve_charset(chars)) * writers
    print(f"wrote {len(files)} .gnt files to {out}: {n} samples of {n // writers} characters "
          f"({dt:.1f}s, {n / dt:.0f} samples/s)")


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="Packed store made by hccr convert.")],
    out: Annotated[Path, typer.Option(help="Run folder for checkpoints and metrics.")],
    preset: Annotated[str, typer.Option(help="paper-1, paper-2, paper-3, fast-1, fast-2 or fast-3.")] = "fast-1",
    epochs: Annotated[Optional[int], typer.Option(help="Override the preset's epochs.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Override the preset's batch size.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Override the preset's learning rate.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Override the preset's seed.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Any config field: key=value (repeatable).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last epoch.")] = False,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1 (default: the GPU if any).")] = None,
) -> None:
    """Train a model (single process, or many under torchrun --nproc-per-node N)."""
    from .config import apply_overrides, config_from_dict, get_preset
    from .train import fit
    from .utils import read_json

    if resume and (out / "config.json").exists():
        cfg = config_from_dict(read_json(out / "config.json")["config"])
    else:
        cfg = get_preset(preset)
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr), ("seed", seed)):
        if value is not None:
            setattr(cfg, key, value)
    cfg = apply_overrides(cfg, set_ or [])
    fit(cfg, data, out, resume=resume, device=device)


@app.command("presets")
def presets_cmd() -> None:
    """List the training presets and their main settings."""
    from .config import PRESETS

    for name, c in PRESETS.items():
        blur = f"blur {c.blur_ksize}x{c.blur_ksize} sigma {c.blur_sigma:.3g}" if c.blur_ksize else "no blur"
        print(f"{name:8s} {c.model:10s} {c.image_size:3d}px  {c.loss:5s} {c.optimizer} lr {c.lr:g} "
              f"batch {c.batch_size} epochs {c.epochs}  {blur}")


def main() -> None:
    try:
        app()
    except HccrError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
