"""The models shipped inside the package: names, files, and what names a model. Torch-free.

``hccr/assets/gb2312.*`` is the recognizer for all 6,763 GB2312 characters: ``gb2312.json`` +
``gb2312.safetensors`` (fp16 weights, a checkpoint any hccr command reads) and ``gb2312.onnx``
(the same weights stored in fp16, computed in fp32 by ONNX Runtime). Naming no model anywhere
(``hccr.load()``, ``hccr predict IMAGE``, ``hccr serve``) means this one. ``gb2312-synth.*`` is the
model it started from, trained on synthetic handwriting alone. Turning a training run into such
files is :mod:`hccr.packaging` (the training side).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from .errors import HccrError

ASSETS = Path(__file__).resolve().parent / "assets"
# name -> asset stem. gb2312: real handwriting (CASIA) + synthetic handwriting; gb2312-synth:
# synthetic handwriting only (its weights owe nothing to CASIA).
SHIPPED = {"gb2312": ASSETS / "gb2312", "gb2312-synth": ASSETS / "gb2312-synth"}
DEFAULT_MODEL = "gb2312"


def is_model_path(p: str | os.PathLike) -> bool:
    """Whether ``p`` names something a recognizer loads (a shipped name, a run folder, a checkpoint
    ``.json``/``.safetensors`` or an ``.onnx`` file) rather than input data."""
    p = Path(p)
    if str(p) in SHIPPED:
        return True
    if p.is_dir():
        return (p / "best.json").exists() or (p / "last.json").exists()
    if p.suffix in (".onnx", ".safetensors"):
        return True
    if p.suffix == ".json" and p.is_file():
        return p.with_suffix(".safetensors").exists()
    return False


def shipped_name(ref) -> str | None:
    """``ref`` as a shipped model's name, or None. A shipped name always means the shipped model, in every command;
    where a file or folder of that name is here too, a note says how to name it instead (``./gb2312``)."""
    name = str(ref) if ref is not None else None
    if name not in SHIPPED:
        return None
    if Path(name).exists() or Path(f"{name}.json").exists():
        _note_local(name)
    return name


@functools.cache
def _note_local(name: str) -> None:
    """Said once per process: a command may resolve the same name several times."""
    print(f"note: {name} is the shipped model; for the {name} here, give ./{name}", file=sys.stderr)


def shipped_files(name: str = DEFAULT_MODEL) -> tuple[Path, Path]:
    """(checkpoint .json, .onnx) of a shipped model."""
    if name not in SHIPPED:
        raise HccrError(f"unknown shipped model {name!r}; available: {', '.join(SHIPPED)}")
    stem = SHIPPED[name]
    if not stem.with_suffix(".json").exists():
        raise HccrError(f"the shipped model {name!r} is missing from this installation ({stem}.json); "
                        "reinstall hccr or name a model with --model")
    return stem.with_suffix(".json"), stem.with_suffix(".onnx")


