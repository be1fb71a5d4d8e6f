"""ONNX export (one model or a whole ensemble in one graph) and the ONNX Runtime recognizer.

The exported graph takes one normalised image batch (B, 1, s, s), ink high in [0, 1], with
``s = size * 280 / 256`` for five crops (``size`` for one): the crops, every member, the logit
average over crops, the softmax and the weighted average of members all happen inside it, and
it returns (B, C) probabilities. The character list and preprocessing travel in its metadata.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import HccrError
from .preprocess import InputSpec


class EnsembleGraph(nn.Module):
    def __init__(self, members: list[nn.Module], weights: list[float], spec: InputSpec, inks: list[str]):
        super().__init__()
        self.members = nn.ModuleList(m.eval() for m in members)
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32))
        self.size, self.crops, self.inks = spec.size, spec.crops, inks
        self.boxes = spec.boxes()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        views = torch.cat([x[:, :, r : r + self.size, c : c + self.size] for r, c in self.boxes], 0)
        out = 0
        for k, (m, ink) in enumerate(zip(self.members, self.inks, strict=True)):
            v = 1.0 - views if ink == "dark" else views
            logits = m(v).reshape(len(self.boxes), b, -1).mean(0)
            out = out + self.weights[k] * torch.softmax(logits, -1)
        return out


def export_onnx(checkpoints: list[str], out: str | os.PathLike, weights: list[float] | None = None,
                crops: int = 5, opset: int = 17, member_names: list[str] | None = None) -> Path:
    """Write one ONNX graph; ``member_names`` replaces the checkpoint paths in its metadata."""
    from .checkpoint import load_checkpoint
    from .ensemble import normalize_weights
    from .utils import atomic_path

    models, metas = zip(*(load_checkpoint(c, heads=False) for c in checkpoints), strict=True)
    charset = metas[0]["charset"]
    specs = [InputSpec.from_meta(m["preprocessing"], crops) for m in metas]
    # The graph takes ink-high images and flips them per member, so only size and margin must agree.
    spec = specs[0].with_(ink="high")
    for c, m, sp in zip(checkpoints[1:], metas[1:], specs[1:], strict=True):
        if m["charset"] != charset:
            raise HccrError(f"{c}: its character list differs from {checkpoints[0]}'s")
        if (sp.size, sp.margin) != (spec.size, spec.margin):
            raise HccrError(f"{c}: input size {sp.size} px / margin {sp.margin} differs from {spec.size} px / "
                            f"{spec.margin}; one graph needs one input framing")
    w = normalize_weights(weights, len(models)).tolist()  # None: the paper's 0.3/0.2/0.5 for three
    graph = EnsembleGraph(list(models), w, spec, [sp.ink for sp in specs]).eval()
    in_size = spec.side()
    dummy = torch.rand(2, 1, in_size, in_size)
    meta = {"hccr_format": "hccr-onnx/1", "charset": charset, "weights": json.dumps(w), "crops": str(crops),
            "input_size": str(in_size), "preprocessing": json.dumps({**metas[0]["preprocessing"], **spec.to_meta()}),
            "members": json.dumps(member_names or [Path(c).name for c in checkpoints])}
    if len(metas) == 1 and "calibration" in metas[0]:  # one model reads as calibrated as its checkpoint does
        meta["temperature"] = repr(float(metas[0]["calibration"]["temperature"]))
    out = Path(out)
    with atomic_path(out) as tmp:
        torch.onnx.export(graph, (dummy,), str(tmp), input_names=["image"], output_names=["probs"],
                          dynamic_axes={"image": {0: "batch"}, "probs": {0: "batch"}}, opset_version=opset,
                          dynamo=False)
        import onnx

        model = onnx.load(str(tmp))
        for k, v in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = k, v
        seal(model)
        onnx.save(model, str(tmp))
    return out


def seal(model) -> None:
    """Record the SHA-256 of the graph (weights included) in an ONNX model's metadata
    (``graph_sha256``); every hccr loader checks it (:func:`hccr.integrity.onnx_graph_digest`)."""
    import hashlib

    kept = [e for e in model.metadata_props if e.key != "graph_sha256"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = "graph_sha256", hashlib.sha256(model.graph.SerializeToString()).hexdigest()


def store_weights_fp16(path: str | os.PathLike, min_size: int = 256) -> Path:
    """Rewrite an ONNX file so its large float weights are stored as float16 and cast back to
    float32 when the session starts (ONNX Runtime folds the casts): half the file, fp32 compute."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from .utils import atomic_path

    path = Path(path)
    model = onnx.load(str(path))
    graph = model.graph
    casts = []
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < min_size:
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "__fp16")
        graph.initializer.remove(init)
        graph.initializer.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
    for node in reversed(casts):
        graph.node.insert(0, node)
    onnx.checker.check_model(model)
    seal(model)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    return path


def quantize_int8(src: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Dynamic int8 quantisation of weights (ONNX Runtime); accuracy cost to be measured by the caller."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from .utils import atomic_path

    root = logging.getLogger()  # onnxruntime advises "pre-processing" on the root logger: not the user's concern
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with atomic_path(out) as tmp:
            quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8)
            model = onnx.load(str(tmp))
            seal(model)  # new weights, so a new graph digest: hccr's loaders check it
            onnx.save(model, str(tmp))
    finally:
        root.setLevel(level)
    return Path(out)
