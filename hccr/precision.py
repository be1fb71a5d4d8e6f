"""The dtype training and prediction compute in: bf16 where the hardware has it, else fp32.

Its own small module so that recognizers (``hccr.predict``) need nothing from training.
"""

from __future__ import annotations

import contextlib

import torch


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
