"""Starting a run from another model: ``hccr train --init CKPT`` (the shipped ``gb2312`` included).

The backbone is reused as it is. Classifier rows (the main head and any auxiliary heads) are carried
over *by character*: a character the source model knows keeps its row wherever it sits in the new
charset; a character new to it starts at the mean of the known characters' rows and is then fitted to its own images
(:func:`warm_new_rows`; a fresh row's logit of about 0 beat every known row's and took every image).
``freeze_epochs`` trains only the heads for the first epochs, so a few hundred images do not wreck features
learnt from millions.
``init_keep_classes`` keeps every character of the source model (the store's characters are added to
them), for a user who teaches it a few characters of their own and still wants the rest read: the
backbone and every other character's classifier row are held still for the whole run
(:class:`PinnedRows`), so only the store's characters' rows learn.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .errors import HccrError
from .models.resnet import GROWABLE

HEAD_PREFIXES = ("head.", "aux_heads.")  # the model contract: classifiers live under these names
# Architectures whose networks a run may grow over its source's, and how (``hccr.models.resnet.GROWABLE``): added
# blocks start as identities and added channels as features nothing reads yet, so the grown network reads as the
# source did; every other argument is the source's.
GROWTH_ARGS = {"resnet-lean": tuple(GROWABLE)}
GROWTH_NAMES = {a for names in GROWTH_ARGS.values() for a in names}


def resolve_init(ref: str | os.PathLike) -> Path:
    """A shipped model's name, a run folder or a checkpoint -> the checkpoint's ``.json``."""
    from .checkpoint import resolve

    if str(ref).endswith(".onnx"):
        raise HccrError(f"--init {ref}: an ONNX file cannot be trained; give its checkpoint (.json/.safetensors)")
    return resolve(ref)


def adopt_architecture(cfg, meta: dict) -> list[str]:
    """Make ``cfg`` build the source model's network at its input size and polarity; returns what changed.
    With ``cfg.init_keep_size`` the input size stays ``cfg.image_size`` (for networks whose weights do
    not depend on it, e.g. the lean ResNet; others fail in the weight transfer with the shapes named)."""
    args = {k: v for k, v in meta["model_args"].items() if k not in ("num_classes", "image_size")}
    growable = GROWTH_ARGS.get(meta["arch"], ())
    for k, v in cfg.model_args.items():  # presets name no model_args: these are the user's (or a resumed run's)
        if k in growable:
            args[k] = grown(k, meta["model_args"].get(k), v)
        elif k in GROWTH_NAMES and list(v) != list(args.get(k, ())):
            raise HccrError(f"--init: model_args.{k} cannot grow the source's {meta['arch']} network (only "
                            f"{', '.join(GROWTH_ARGS)} networks grow)")
    pre = meta["preprocessing"]
    want = {"model": meta["arch"], "model_args": args, "image_size": int(pre["image_size"]), "ink": pre["ink"],
            "stretch": bool(pre.get("stretch_in_training", False))}
    if cfg.init_keep_size:
        del want["image_size"]
    changed = [f"{k} {getattr(cfg, k)!r} -> {v!r}" for k, v in want.items() if getattr(cfg, k) != v]
    for k, v in want.items():
        setattr(cfg, k, v)
    if not args.get("aux", True) and cfg.aux_weights:
        cfg.aux_weights = ()
        changed.append("aux_weights -> () (the source model has no auxiliary heads)")
    return changed


def grown(name: str, source, wanted):
    """``wanted`` for a growth argument, checked against the source's: a stage may gain blocks or channels, never
    lose them."""
    wanted = tuple(int(v) for v in (wanted if isinstance(wanted, (list, tuple)) else (wanted,)))
    have = tuple(source if source is not None else GROWABLE[name])
    if len(wanted) != len(have) or any(w < h for w, h in zip(wanted, have, strict=True)):
        raise HccrError(f"--init: model_args.{name}={','.join(map(str, wanted))} cannot grow the source's "
                        f"{','.join(map(str, have))} (one value per stage, none smaller)")
    return wanted


def keep_source_classes(store, source_charset: str):
    """``store`` relabelled in the source model's charset followed by the store's characters it lacks
    (``init_keep_classes``): the fine-tuned model still reads everything the source read."""
    import numpy as np

    from .data.charset import Charset

    if len(np.unique(store.labels)) < 2:
        raise HccrError(f"{store.path}: --keep-classes needs images of at least two characters (it teaches "
                        "the model to tell the store's characters apart); this store has one")
    known = set(source_charset)
    return store.with_charset(Charset(source_charset + "".join(c for c in store.charset if c not in known)))


def class_rows(model: nn.Module, num_classes: int) -> list[tuple[str, nn.Parameter]]:
    """The classifier tensors whose rows are classes (main and auxiliary heads), by name."""
    return [(n, p) for n, p in model.named_parameters()
            if n.startswith(HEAD_PREFIXES) and p.ndim >= 1 and p.shape[0] == num_classes]


def classifier_layers(model: nn.Module, num_classes: int) -> list[nn.Linear]:
    """The linear layers that answer one logit a class (main and auxiliary heads), in module order: the main
    head's is the last."""
    return [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]


def transfer_weights(model: nn.Module, source: dict[str, torch.Tensor], source_charset: str,
                     target_charset: str) -> dict:
    """Load ``source`` into ``model``; classifier rows are matched by character. Returns counts."""
    target = model.state_dict()
    src_index = {c: i for i, c in enumerate(source_charset)}
    pairs = [(j, src_index[c]) for j, c in enumerate(target_charset) if c in src_index]
    dst_rows = torch.tensor([j for j, _ in pairs], dtype=torch.long)
    src_rows = torch.tensor([i for _, i in pairs], dtype=torch.long)
    new_state, copied, remapped, fresh = {}, 0, 0, []
    for name, t in target.items():
        s = source.get(name)
        if s is None:
            fresh.append(name)
            continue
        is_head = name.startswith(HEAD_PREFIXES) and t.ndim >= 1 and t.shape[0] == len(target_charset) \
            and s.shape[0] == len(source_charset) and t.shape[1:] == s.shape[1:]
        if is_head:
            row = t.clone()
            row[dst_rows.to(t.device)] = s[src_rows].to(t.device, t.dtype)
            new_state[name] = row
            remapped += 1
        elif s.shape == t.shape:
            new_state[name] = s.to(t.dtype)
            copied += 1
        else:
            raise HccrError(f"--init: {name} has shape {tuple(s.shape)} in the source model but "
                            f"{tuple(t.shape)} here; the architectures differ")
    model.load_state_dict({**target, **new_state})
    return {"tensors_copied": copied, "head_tensors_remapped": remapped, "tensors_fresh": len(fresh),
            "classes_kept": len(pairs), "classes_new": len(target_charset) - len(pairs),
            "new_characters": "".join(c for c in target_charset if c not in src_index)[:200]}


def init_from(model: nn.Module, ref: str | os.PathLike, target_charset: str) -> dict:
    """Initialise ``model`` from the checkpoint ``ref`` (see :func:`transfer_weights`)."""
    from safetensors.torch import load_file

    from .checkpoint import read_meta

    path = resolve_init(ref)
    meta = read_meta(path)
    weights = path.with_suffix(".safetensors")
    try:
        source = load_file(str(weights))
    except Exception as e:  # missing, truncated or not safetensors
        raise HccrError(f"--init {ref}: cannot read {weights} ({str(e).splitlines()[0][:120]})") from None
    if hasattr(model, "grow_state"):  # a network grown wider than its source (resnet-lean's widths)
        source = model.grow_state(source, meta["model_args"])
    pc = meta.get("prior_correction")  # a packaged source's bias has its training prior divided out: say so
    return {"init": str(ref), **transfer_weights(model, source, meta["charset"], target_charset),
            **({"prior_power": pc["power"]} if pc else {})}


def backbone(model: nn.Module) -> nn.ModuleList:
    """Every top-level part of the model except its classifiers (what ``freeze_epochs`` holds still)."""
    return nn.ModuleList(m for n, m in model.named_children() if f"{n}." not in HEAD_PREFIXES)


class PinnedRows:
    """Classifier rows held at their starting values, except ``trainable``'s: restored after every
    optimizer step (exact, whatever the optimizer's weight decay or momentum would have done).

    The trainable rows learn under the loss over every class, so that the store's characters learn
    to beat all the others; but each keeps its starting length and bias (put back after every
    step), so they can turn towards their images and cannot rise together above every other
    character, which would make other characters' images read as one of them."""

    def __init__(self, model: nn.Module, num_classes: int, trainable: list[int]):
        params = class_rows(model, num_classes)
        device = params[0][1].device
        self.rows = torch.as_tensor(trainable, dtype=torch.long, device=device)
        self.pinned = torch.ones(num_classes, dtype=torch.bool, device=device)
        self.pinned[self.rows] = False
        self.saved = [(p, p.detach()[self.pinned].clone()) for _, p in params]
        trained = [(p, p.detach()[self.rows]) for _, p in params]
        self.starts = [(p, lengths(rows) if p.ndim > 1 else rows.clone()) for p, rows in trained]

    @torch.no_grad()
    def restore(self) -> None:
        for p, saved in self.saved:
            p[self.pinned] = saved
        for p, start in self.starts:  # weights: the starting length, biases: the starting value
            rows = p[self.rows]  # one gather per step
            p[self.rows] = rows * (start / lengths(rows)) if p.ndim > 1 else start


def lengths(rows: torch.Tensor) -> torch.Tensor:
    """The length of each row of a weight, shaped to scale those rows."""
    return rows.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (rows.ndim - 1))


def warm_new_rows(model: nn.Module, new: list[int], num_classes: int, labels, batch, steps: int = 300,
                  lr: float = 0.05, cap: int = 4096) -> int:
    """Fit the rows of characters new to the source (the classes ``new``) to their own images before training: the
    network's features of up to ``cap`` training samples are taken once, and each
    classifier's new rows alone learn (Adam, full batch, cross-entropy over every class, the source's rows and
    every bias fixed; each new row held at a typical source row's length, so it turns and cannot outgrow the
    others) for ``steps`` steps. A row started along the mean of the source's rows ranks its own character last
    of thousands, and the run's rate, set for whole networks, turned it too slowly to ever be read (the rest of
    the run turns it further at the length it starts with). A source that knows few characters has no rows that
    say where its other characters' images lie, and a new row fitted to the store alone can take them: check
    such a model on its other characters. ``labels``: the training samples' classes; ``batch(indices)``: their
    model inputs. Returns the number of rows fitted."""
    import numpy as np

    labels = np.asarray(labels)
    known = torch.ones(num_classes, dtype=torch.bool)
    known[list(new)] = False
    new = sorted(set(np.unique(labels).tolist()) & set(new))  # those with images to fit to
    if not new:
        return 0
    take = np.random.default_rng(0).permutation(len(labels))[:cap]
    heads = classifier_layers(model, num_classes)
    feats: dict[int, list[torch.Tensor]] = {id(h): [] for h in heads}
    hooks = [h.register_forward_pre_hook(lambda mod, inp: feats[id(mod)].append(inp[0].detach().flatten(1).float()))
             for h in heads]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(take), 256):
                model(batch(take[i:i + 256]))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    fitted = [h for h in heads if feats[id(h)]]  # auxiliary heads, read only in training, keep their start
    device = next(model.parameters()).device
    y = torch.as_tensor(labels[take], device=device).long()
    rows, every = torch.as_tensor(new, device=device), torch.arange(len(take), device=device)
    for h in fitted:
        f = torch.cat(feats[id(h)])
        with torch.no_grad():
            fixed = f @ h.weight.float().T + h.bias.float()  # every class's logit; the new ones are replaced below
        length = lengths(h.weight.detach()[known.to(device)].float()).mean()  # as long as a typical source row
        w = h.weight.detach()[rows].float().clone().requires_grad_(True)
        opt = torch.optim.Adam([w], lr=lr)
        for _ in range(steps):
            logits = fixed.index_put((every[:, None], rows[None, :]), f @ w.T + h.bias.detach()[rows].float())
            loss = nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():  # turning only: a longer row would win on characters the store never shows
                w *= length / lengths(w)
        with torch.no_grad():
            h.weight[rows] = w.detach().to(h.weight.dtype)
    return len(new) * len(fitted)


def average_new_rows(model: nn.Module, new: list[int], num_classes: int) -> None:
    """Rows of characters new to the source (the classes ``new``) start at the mean of the known characters' rows
    (with ``--keep-classes`` every row of the source), at the level of every other class."""
    if not new:
        return
    rows = class_rows(model, num_classes)
    known = torch.ones(num_classes, dtype=torch.bool, device=rows[0][1].device)
    known[list(new)] = False
    with torch.no_grad():
        for _, p in rows:  # biases: the median (a prior divided out raises rare ones)
            p[list(new)] = p[known].mean(0) if p.ndim > 1 else p[known].median()
