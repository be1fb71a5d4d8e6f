"""Model registry; importing this package registers every architecture."""

from . import charnet, resnet  # noqa: F401  (registration)
from .registry import create_model, fuse_for_inference, list_models, register_model

__all__ = ["create_model", "fuse_for_inference", "list_models", "register_model"]
