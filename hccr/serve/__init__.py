"""HTTP service: ``hccr serve MODEL`` (FastAPI + uvicorn), with a drawing page at ``/``."""

from .app import Limits, create_app

__all__ = ["Limits", "create_app"]
