"""Model registry; importing this package registers every architecture."""

from . import charnet, resnet  # noqa: F401  (registration)
from .registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
