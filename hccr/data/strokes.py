"""The bundled stroke asset: stroke medians in writing order for 9,574 characters.

Derived from the npm package hanzi-writer-data@2.0.1 (Make Me a Hanzi, Arphic Public License,
``hccr/assets/ARPHICPL.TXT``) by ``scripts/build_stroke_asset.py``. Loaded on first use.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

from ..errors import HccrError


@lru_cache(maxsize=1)
def _asset() -> dict[str, np.ndarray]:
    with resources.files("hccr").joinpath("assets/strokes.npz").open("rb") as f, np.load(f) as z:
        return {k: z[k] for k in z.files}


@lru_cache(maxsize=1)
def _index() -> dict[str, int]:
    return {chr(c): i for i, c in enumerate(_asset()["chars"].tolist())}


def covered() -> frozenset[str]:
    """Every character the asset has strokes for."""
    return frozenset(_index())


def has_strokes(ch: str) -> bool:
    return ch in _index()


def char_strokes(ch: str) -> list[np.ndarray]:
    """Stroke medians of ``ch`` in writing order: float (n, 2) arrays, 1024-unit box, y down."""
    i = _index().get(ch)
    if i is None:
        raise HccrError(f"no stroke data for {ch!r} (U+{ord(ch):04X}); use --font to render it from a font")
    a = _asset()
    s0, s1 = a["char_strokes"][i], a["char_strokes"][i + 1]
    offs = a["stroke_points"][s0 : s1 + 1]
    pts = a["points"]
    return [pts[offs[k] : offs[k + 1]].astype(np.float64) for k in range(len(offs) - 1)]
