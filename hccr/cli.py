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
