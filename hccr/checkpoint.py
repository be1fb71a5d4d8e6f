"""Self-describing checkpoints: ``NAME.safetensors`` (weights) + ``NAME.json`` (everything else).

The JSON carries the architecture and its arguments, the character list, the preprocessing and
the training config, so prediction, export and serving need nothing else.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from . import __version__
from .errors import HccrError
from .integrity import check_checkpoint_meta, verify_file
from .preprocess import InputSpec
from .utils import json_text, no_interrupt, read_json, remove_stale, working_name, write_together

FORMAT = "hccr-ckpt/1"


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def train_spec(cfg, store) -> InputSpec:
    """The input spec a training run gives its checkpoints: the config's size and polarity, the
    store's margin (conversion framed every image that way), five crops at prediction."""
    return InputSpec(cfg.image_size, cfg.ink, float(store.manifest["normalization"]["margin"]), 5)


def checkpoint_meta(cfg, store, model: nn.Module, metrics: dict, epoch: int) -> dict:
    """The checkpoint schema (``FORMAT``): everything a checkpoint says about itself besides the weights."""
    from .config import config_to_dict

    # A model's own ``arch_args`` (every constructor argument, defaults included) win over the
    # config's overrides, so a checkpoint rebuilds the same network even if defaults change later.
    args = {**cfg.model_args, **getattr(unwrap(model), "arch_args", {})}
    return {
        "arch": cfg.model,
        "model_args": {"num_classes": len(store.charset), "image_size": cfg.image_size, **args},
        "charset": "".join(store.charset),
        "preprocessing": {**train_spec(cfg, store).to_meta(), "stretch_in_training": cfg.stretch,
                          "store_size": store.size},
        "config": config_to_dict(cfg),
        "metrics": metrics,
        "epoch": epoch,
        "store": str(store.path),
    }


MODEL_SUFFIXES = (".json", ".safetensors", ".onnx")


def model_stem(path: str | os.PathLike) -> Path:
    """The stem a model's files share: ``out/v1.json`` -> ``out/v1``, while ``out/gb2312-p0.5`` stays whole (a dot
    in a name is not a suffix, so its files are ``gb2312-p0.5.json`` and ``gb2312-p0.5.onnx``)."""
    p = Path(path)
    return p.with_suffix("") if p.suffix in MODEL_SUFFIXES else p


@contextlib.contextmanager
def staged_model(stem: Path) -> Iterator[Path]:
    """A model's files written whole or not at all: yields a hidden working stem beside ``stem``. When the block ends
    well, each file made under it is renamed to ``stem``'s (the .json, which marks a complete model, last) and a file
    of ``stem``'s the block did not make (a replaced model's .onnx) is removed, since it would answer for another
    model; when it fails or is interrupted, nothing it made is kept and a model already at ``stem`` stays whole."""
    name = working_name(stem, "partial")
    files = r"(\d{1,10})\.(onnx|safetensors|json)"
    remove_stale(stem.parent, f"{name}-", files)
    remove_stale(stem.parent, f".{name}-", files + r"\.tmp-\d{1,10}")  # the working files of those working files
    part = stem.with_name(f"{name}-{os.getpid()}")
    made = [Path(f"{part}{s}") for s in (".onnx", ".safetensors", ".json")]
    try:
        yield part
        for f in made[1:]:
            if not f.exists():  # a model is never its .onnx alone
                raise HccrError(f"{stem}: its working file {f} was removed while it was being written; run again")
        with no_interrupt():  # Ctrl-C between two renames would leave new weights beside the old .json
            for f in made:
                target = Path(f"{stem}{f.suffix}")
                if f.exists():
                    os.replace(f, target)
                else:
                    target.unlink(missing_ok=True)
    except OSError as e:  # a full disk, say: name the user's file, not its working name
        if e.filename is None or not str(e.filename).startswith(str(part)):
            raise
        raise OSError(e.errno, e.strerror, f"{stem}{str(e.filename)[len(str(part)):]}") from None
    finally:
        for f in made:
            f.unlink(missing_ok=True)


def save_checkpoint(path_stem: str | os.PathLike, model: nn.Module, meta: dict) -> Path:
    """Write ``<stem>.safetensors`` and ``<stem>.json`` together (:func:`~hccr.utils.write_together`): a checkpoint
    being replaced (a run's best) is never left with new weights beside the old JSON, whose digest would call them
    damaged."""
    import hashlib

    from safetensors.torch import save

    stem = model_stem(path_stem)
    state = {k: v.detach().contiguous().cpu() for k, v in unwrap(model).state_dict().items()}
    weights = save(state, metadata={"format": FORMAT})
    meta = {"format": FORMAT, "hccr_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **meta,
            "weights_sha256": hashlib.sha256(weights).hexdigest()}
    json_path = Path(f"{stem}.json")
    write_together([(json_path, json_text(meta).encode()), (Path(f"{stem}.safetensors"), weights)])
    return json_path


def resolve(path: str | os.PathLike) -> Path:
    """A run folder (its best checkpoint), a ``.json`` or ``.safetensors`` path, the stem both share
    (what ``hccr average --out STEM`` and ``hccr package --out STEM`` were given) or a shipped model's
    name (``gb2312``: :func:`hccr.zoo.shipped_name`) -> the ``.json``."""
    from .zoo import SHIPPED, shipped_files, shipped_name

    p = Path(path)
    if p.suffix in (".pt", ".pth", ".ckpt", ".bin"):
        raise HccrError(f"{path}: a pickled PyTorch file, which hccr does not load (it can run code); give a run "
                        "folder or NAME.json next to NAME.safetensors")
    if shipped_name(path):
        return shipped_files(str(path))[0]
    if p.is_dir():
        p = p / "best.json"
    elif p.suffix == ".safetensors":
        p = p.with_suffix(".json")
    elif p.suffix != ".json" and Path(f"{p}.json").is_file():
        p = Path(f"{p}.json")
    expected = f"expected a run folder, NAME.json, NAME.safetensors, the stem NAME or {' / '.join(SHIPPED)}"
    if p.is_file() and p.suffix != ".json":
        raise HccrError(f"{path}: not a checkpoint ({expected})")
    if not p.exists():
        raise HccrError(f"{path}: no checkpoint there ({expected})")
    return p


def read_meta(path: str | os.PathLike) -> dict:
    """The checkpoint's JSON, checked: a damaged or inconsistent file is an :class:`HccrError` naming it."""
    p = resolve(path)
    meta = read_json(p, "checkpoint metadata")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise HccrError(f"{p}: not an hccr checkpoint (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    check_checkpoint_meta(meta, p)  # every field a loader reads: types, ranges, finite values
    return meta


# 4 GB of float32: above the paper's CharNet at 256 px with its auxiliary heads (about 400 M), far below a hostile
# file's ask
MAX_PARAMETERS = 1_000_000_000
AUX_PREFIX = "aux_heads."


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu", heads: bool = True
                    ) -> tuple[nn.Module, dict]:
    """Rebuild the model from its JSON and load the weights; returns ``(model in eval mode, meta)``.
    ``heads=False`` leaves out the auxiliary heads, which serve training only (no prediction reads them): the
    paper's CharNet at 256 px and 7,330 classes is 15.4 M parameters without them, 406.9 M with them."""
    from safetensors import safe_open

    from .models import create_model

    p = resolve(path)
    meta = read_meta(p)
    weights = p.with_suffix(".safetensors")
    if not weights.exists():
        raise HccrError(f"{weights}: weights file missing next to {p.name}")
    args = dict(meta["model_args"])
    drop_heads = not heads and args.get("aux", False)
    if drop_heads:
        args["aux"] = False
    try:
        with torch.device("meta"):  # sized first, allocated only if sane
            size = sum(t.numel() for t in create_model(meta["arch"], **args).parameters())
    except (TypeError, ValueError, RuntimeError) as e:
        raise HccrError(f"{p}: bad metadata field model_args: {meta['arch']} cannot be built from it "
                        f"({str(e).splitlines()[0][:120]})") from None
    if size > MAX_PARAMETERS:
        raise HccrError(f"{p}: bad metadata field model_args: it describes a network of {size:,} parameters "
                        f"(at most {MAX_PARAMETERS:,})")
    verify_file(weights, meta.get("weights_sha256"), "weights_sha256")
    model = create_model(meta["arch"], **args)
    try:
        with safe_open(str(weights), framework="pt", device=str(device)) as f:
            state = {k: f.get_tensor(k) for k in f.keys() if not (drop_heads and k.startswith(AUX_PREFIX))}
    except Exception as e:  # truncated, not safetensors, unreadable
        raise HccrError(f"{weights}: damaged weights file ({str(e).splitlines()[0][:160]})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise HccrError(f"{weights}: weights do not fit {meta['arch']} as described in {p.name} "
                        f"(saved by hccr {meta.get('hccr_version', '?')}, an older design?): "
                        f"{str(e).splitlines()[-1].strip()[:200]}") from None
    if drop_heads:
        meta = {**meta, "model_args": {**meta["model_args"], "aux": False}}
    bad = next((k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise HccrError(f"{weights}: tensor {bad} holds NaN or infinite values: the model would answer nonsense "
                        "(a training run that diverged?); use an earlier checkpoint")
    return model.to(device).eval(), meta


def average_checkpoints(refs: list[str | os.PathLike]) -> tuple[nn.Module, dict]:
    """The uniform average of the weights of checkpoints of one network (a "model soup"), e.g. a run
    and its continuation on fresh data; BatchNorm statistics are averaged too. Returns ``(model,
    meta)``: the last checkpoint's metadata without its metrics (measure the average anew), plus
    ``averaged_from``."""
    if len(refs) < 2:
        raise HccrError("averaging needs at least two checkpoints")
    loaded = [load_checkpoint(r) for r in refs]
    model, meta = loaded[-1]
    for ref, (_, m) in zip(refs, loaded, strict=True):
        for key in ("arch", "model_args", "charset"):
            if m[key] != meta[key]:
                raise HccrError(f"{ref}: its {key} differs from {refs[-1]}'s; only checkpoints of one network "
                                "and charset can be averaged")
    states = [m.state_dict() for m, _ in loaded]
    avg = {k: (sum(st[k].double() for st in states) / len(states)).to(v.dtype) if v.is_floating_point() else v
           for k, v in states[-1].items()}
    model.load_state_dict(avg)
    # figures, a temperature and a lineage belong to the part they were measured on or made by: the average's are
    # measured anew (its lineage comes from averaged_from); its weights are float32 whatever the parts' files held
    meta = {k: v for k, v in meta.items() if k not in ("metrics", "format", "hccr_version", "created", "evaluations",
                                                       "calibration", "provenance", "weights_dtype")}
    if any(m.get("prior_correction") != meta.get("prior_correction") for _, m in loaded):
        meta.pop("prior_correction", None)  # parts in different bias frames: the average is in neither
        divided = [str(r) for r, (_, m) in zip(refs, loaded, strict=True) if m.get("prior_correction")]
        print(f"note: {', '.join(divided)} had the training class prior divided out of the classifier bias, the "
              "other checkpoints not or not alike: the average's bias lies between theirs, so measure it before use "
              "(hccr calibrate fits a temperature, not the bias)", file=sys.stderr)
    meta["averaged_from"] = [str(resolve(r).resolve()) for r in refs]
    return model, meta
