"""Models check themselves: every metadata field is validated on load, and the weights are checked
against the SHA-256 recorded when they were written.

A model file is data from outside, like an image: a temperature of 0, NaN or -1, a width of ten
million, a string where a number belongs or a flipped bit in the weights must end in one line
naming the file and the field, never in a traceback, a huge allocation or silently wrong answers.
Nothing here imports torch (the ONNX runtime path uses it too).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from .errors import HccrError

MAX_CLASSES = 100_000
MAX_TEMPERATURE = 100.0
MIN_TEMPERATURE = 0.01


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def onnx_graph_digest(data: bytes) -> str | None:
    """SHA-256 of an ONNX file's graph (weights included), read from the protobuf wire format with
    no onnx package: the graph is field 7 of ModelProto, the metadata field 14, so the digest
    stays valid when metadata (a calibration temperature) is rewritten. None if no graph is found."""
    i, n = 0, len(data)

    def varint(i: int) -> tuple[int, int]:
        shift = value = 0
        while i < n:
            b = data[i]
            i += 1
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value, i
            shift += 7
        raise ValueError("truncated")

    try:
        while i < n:
            key, i = varint(i)
            field, wire = key >> 3, key & 7
            if wire == 0:
                _, i = varint(i)
            elif wire == 1:
                i += 8
            elif wire == 5:
                i += 4
            elif wire == 2:
                size, i = varint(i)
                if field == 7:
                    return hashlib.sha256(data[i : i + size]).hexdigest()
                i += size
            else:
                return None
    except ValueError:
        return None
    return None


class Checker:
    """Checks fields of one file's metadata; the first bad one is an :class:`HccrError` naming both."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)

    def fail(self, field: str, what: str, value: Any = None) -> None:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise HccrError(f"{self.path}: bad metadata field {field}: {what} (found {shown})")

    def get(self, d: Any, key: str, field: str) -> Any:
        if not isinstance(d, dict) or key not in d:
            self.fail(field, "missing", None)
        return d[key]

    def integer(self, value: Any, field: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 12:
                value = int(value)  # ONNX metadata stores every value as a string
            else:
                self.fail(field, f"must be an integer from {lo} to {hi}", value)
        if not lo <= value <= hi:
            self.fail(field, f"must be from {lo} to {hi}", value)
        return int(value)

    def number(self, value: Any, field: str, lo: float, hi: float, lo_open: bool = False) -> float:
        if isinstance(value, str) and len(value) < 40:
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(field, "must be a number", value)
        value = float(value)
        if not math.isfinite(value) or value < lo or value > hi or (lo_open and value == lo):
            self.fail(field, f"must be a finite number in {'(' if lo_open else '['}{lo:g}, {hi:g}]", value)
        return value

    def choice(self, value: Any, field: str, options: tuple) -> Any:
        if value not in options:
            self.fail(field, f"must be one of {', '.join(map(str, options))}", value)
        return value

    def charset(self, value: Any, field: str, classes: int | None) -> str:
        if not isinstance(value, str) or not value:
            self.fail(field, "must be a non-empty string of characters", value)
        if len(set(value)) != len(value):
            dup = next(c for i, c in enumerate(value) if c in value[:i])
            self.fail(field, f"lists {dup!r} twice", dup)
        if classes is not None and len(value) != classes:
            self.fail(field, f"has {len(value)} characters for {classes} classes", len(value))
        return value

    def json_field(self, value: Any, field: str) -> Any:
        if not isinstance(value, str):
            self.fail(field, "must be JSON text", value)
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            self.fail(field, "is not valid JSON", value)

    def preprocessing(self, pre: Any, field: str = "preprocessing") -> None:
        if not isinstance(pre, dict):
            self.fail(field, "must be an object", pre)
        self.integer(self.get(pre, "image_size", f"{field}.image_size"), f"{field}.image_size", 8, 2048)
        self.choice(pre.get("ink", "high"), f"{field}.ink", ("high", "dark"))
        margin = pre.get("margin", 0.0)
        self.number(margin, f"{field}.margin", 0.0, 0.49)
        self.choice(pre.get("crops", 5), f"{field}.crops", (1, 5))

    def temperature(self, value: Any, field: str) -> float:
        return self.number(value, field, MIN_TEMPERATURE, MAX_TEMPERATURE)

    def digest(self, value: Any, field: str) -> str:
        if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            self.fail(field, "must be a SHA-256 in hex (64 characters)", value)
        return value


def check_checkpoint_meta(meta: Any, path: str | os.PathLike) -> dict:
    """A checkpoint JSON (``hccr-ckpt/1``), every field a loader reads."""
    c = Checker(path)
    if not isinstance(meta, dict):
        c.fail("(top level)", "must be an object", type(meta).__name__)
    arch = c.get(meta, "arch", "arch")
    if not isinstance(arch, str) or not arch or len(arch) > 64:
        c.fail("arch", "must be a model name", arch)
    args = c.get(meta, "model_args", "model_args")
    if not isinstance(args, dict):
        c.fail("model_args", "must be an object", args)
    classes = c.integer(c.get(args, "num_classes", "model_args.num_classes"), "model_args.num_classes", 1, MAX_CLASSES)
    size = c.integer(c.get(args, "image_size", "model_args.image_size"), "model_args.image_size", 8, 2048)
    for key, value in args.items():
        _architecture_value(c, f"model_args.{key}", value)
    c.charset(c.get(meta, "charset", "charset"), "charset", classes)
    pre = c.get(meta, "preprocessing", "preprocessing")
    c.preprocessing(pre)
    if int(pre["image_size"]) != size:
        c.fail("preprocessing.image_size", f"differs from model_args.image_size {size}", pre["image_size"])
    cal = meta.get("calibration")
    if cal is not None:
        c.temperature(c.get(cal, "temperature", "calibration.temperature"), "calibration.temperature")
    if "weights_sha256" in meta:
        c.digest(meta["weights_sha256"], "weights_sha256")
    return meta


def _architecture_value(c: Checker, field: str, value: Any) -> None:
    """Architecture arguments are small numbers, flags, names or short lists of them: widths of a
    few thousand channels at most (a network's size is checked again before it is built)."""
    if isinstance(value, bool) or value is None or (isinstance(value, str) and len(value) <= 64):
        return
    if isinstance(value, int | float):
        if not math.isfinite(value) or abs(value) > 16384:
            c.fail(field, "must be a finite number of at most 16384", value)
        return
    if isinstance(value, list | tuple):
        if len(value) > 64:
            c.fail(field, "must be a list of at most 64 values", len(value))
        for v in value:
            _architecture_value(c, field, v)
        return
    c.fail(field, "must be a number, flag, name or list of them", value)


def check_onnx_meta(meta: dict, path: str | os.PathLike) -> dict:
    """An hccr ONNX file's metadata (``hccr-onnx/1``), parsed: charset, preprocessing, crops,
    input_size, temperature, members, weights."""
    c = Checker(path)
    charset = c.charset(c.get(meta, "charset", "charset"), "charset", None)
    pre = c.json_field(c.get(meta, "preprocessing", "preprocessing"), "preprocessing")
    c.preprocessing(pre)
    crops = c.integer(c.get(meta, "crops", "crops"), "crops", 1, 5)
    c.choice(crops, "crops", (1, 5))
    size = c.integer(c.get(meta, "input_size", "input_size"), "input_size", 8, 4096)
    temperature = c.temperature(meta.get("temperature", "1.0"), "temperature")
    members = c.json_field(meta.get("members", "[]"), "members")
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        c.fail("members", "must be a list of names", members)
    weights = c.json_field(meta.get("weights", "[1.0]"), "weights")
    if not isinstance(weights, list) or not weights:
        c.fail("weights", "must be a non-empty list of numbers", weights)
    weights = [c.number(w, "weights", 0.0, 1e6) for w in weights]
    if "graph_sha256" in meta:
        c.digest(meta["graph_sha256"], "graph_sha256")
    return {"charset": charset, "preprocessing": pre, "crops": crops, "input_size": size,
            "temperature": temperature, "members": members, "weights": weights}


def verify_file(path: Path, expected: str | None, field: str, digest: str | None = None) -> None:
    """The weights are what was written: their SHA-256 matches the one recorded in the metadata."""
    if expected is None:
        return
    found = digest if digest is not None else sha256_file(path)
    if found != expected:
        raise HccrError(f"{path}: weights do not match their recorded SHA-256 (metadata field {field}): the file "
                        "was damaged or changed after it was written; restore or re-export it")
