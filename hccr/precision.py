"""The dtype training and prediction compute in: bf16 where the hardware has it, else fp32.

Its own small module so that recognizers (``hccr.predict``) need nothing from training.
"""

from __future__ import annotations

import contextlib

import torch


def check_device(device: str) -> torch.device:
    """``--device`` as a torch device that this machine has, or a one-line error saying what to use."""
    from .errors import HccrError

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise HccrError(f"--device {device}: not a device name (cpu, cuda, cuda:1, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HccrError(f"--device {device}: this machine has no CUDA GPU that torch can use; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise HccrError(f"--device {device}: only {torch.cuda.device_count()} GPU(s) here")
    if dev.type not in ("cpu", "cuda"):
        raise HccrError(f"--device {device}: hccr runs on cpu or cuda")
    return dev


def precision_of(device: torch.device, amp: bool) -> str:
    """The dtype training computes in: bf16 where the hardware has it (fp16 on older GPUs), else fp32."""
    if not amp:
        return "fp32"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if device.type == "cpu" and _cpu_has_bf16() else "fp32"


def autocast_for(device: torch.device, enabled: bool):
    """(autocast context for ``precision_of``, whether it is fp16 and so needs a gradient scaler)."""
    precision = precision_of(device, enabled)
    if precision == "fp32":
        return contextlib.nullcontext(), False
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device.type, dtype=dtype), precision == "fp16"


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
