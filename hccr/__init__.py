"""hccr: offline handwritten Chinese character recognition.

``import hccr`` stays light; heavy parts (torch models, ONNX, the server) load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Ensemble", "HccrError", "__version__", "load"]


def __getattr__(name: str):
    if name in ("load", "Ensemble"):
        from . import api

        return getattr(api, name)
    if name == "HccrError":  # what every user mistake raises: one line naming the file or option and what to do
        from .errors import HccrError

        return HccrError
    raise AttributeError(f"module 'hccr' has no attribute {name!r}")
