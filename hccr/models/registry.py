"""A small model registry: ``register_model`` / ``create_model`` / ``list_models``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..errors import HccrError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = fn
        return fn

    return wrap


def create_model(name: str, num_classes: int, image_size: int, **kwargs) -> nn.Module:
    """Build a registered architecture. Every model maps (B, 1, S, S) in [0, 1] to (B, C) logits,
    offers ``forward_features`` / ``forward_head``, and returns ``(logits, aux_logits)`` in training mode."""
    if name not in _MODELS:
        raise HccrError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    try:
        return _MODELS[name](num_classes=num_classes, image_size=image_size, **kwargs)
    except TypeError as e:
        if "unexpected keyword argument" not in str(e):
            raise
        arg = str(e).rsplit(" ", 1)[-1]
        raise HccrError(f"model {name!r} has no argument {arg} (given in model_args: {', '.join(kwargs)})") from None
    except ValueError as e:  # an argument the architecture rejects, e.g. resnet-lean's depths
        raise HccrError(f"model {name!r}: {e}") from None


def list_models() -> list[str]:
    return sorted(_MODELS)


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """Fold BatchNorm into the preceding convolutions (eval mode only): fewer passes over memory.

    Uses torch.fx; a model that cannot be traced is returned unchanged. Conv -> BN pairs fold
    (every conv of CharNet-S); the paper's conv -> ReLU -> BN order cannot, so CharNet gains less.
    """
    try:
        from torch.fx.experimental.optimization import fuse

        return fuse(model.eval())
    except Exception:  # tracing limits differ between torch versions; fusion is only an optimisation
        return model.eval()
