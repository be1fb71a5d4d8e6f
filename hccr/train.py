"""Training: one readable loop for a laptop CPU, one GPU, or many under ``torchrun`` (DDP).

    fit(cfg, store, out)  ->  train_one_epoch / evaluate per epoch  ->  best.* and last.* checkpoints
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from . import distributed as D
from .augment import (
    gaussian_blur,
    random_erase,
    random_pen_ink,
    random_warp,
    resize,
    stretch_to_content,
    to_model_input,
)
from .checkpoint import checkpoint_meta, save_checkpoint, unwrap
from .config import TrainConfig, config_to_dict
from .data.store import Store
from .distill import Teacher, distill_loss
from .errors import HccrError
from .losses import binary_focal_loss, cross_entropy, deep_supervision
from .models import create_model
from .precision import _cpu_has_bf16, autocast_for, precision_of
from .utils import Progress, atomic_path, read_json, write_json

# ---------------------------------------------------------------------------------------------
# Input pipeline (on the training device)

def prepare_batch(images: np.ndarray, sizes: np.ndarray, cfg: TrainConfig, device: torch.device, train: bool,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 store images -> model input: stretch (paper), resize, augment, blur, ink polarity."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).unsqueeze(1).float().div_(255)
    if cfg.stretch:
        x = stretch_to_content(x, torch.from_numpy(sizes.astype(np.int64)).to(device))
    x = resize(x, cfg.image_size)
    if train:
        x = random_warp(x, cfg.augment, generator)
        if cfg.augment.photometric:
            x = random_pen_ink(x, cfg.augment, generator)
        if cfg.augment.erase:
            x = random_erase(x, cfg.augment, generator)
    if cfg.blur_ksize > 1:
        x = gaussian_blur(x, cfg.blur_ksize, cfg.blur_sigma)
    return to_model_input(x, cfg.ink, cfg.channels_last)


PROBE_MIN_STEPS = 50  # shorter runs train in the default precision without timing both


def probe_precision(model: nn.Module, cfg: TrainConfig, device: torch.device, classes: int, steps: int = 3) -> dict:
    """Time forward + backward of this model at this batch size in fp32 and in bf16 autocast.

    bf16 is not faster on every CPU that has it (on some it is 12-14% slower than fp32), so the
    choice is measured on the machine that trains. Runs on a copy with the RNG state restored:
    the run itself is unchanged, whatever the probe picks."""
    import copy

    rng = torch.get_rng_state()
    probe = copy.deepcopy(unwrap(model)).train()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(cfg.batch_size, 1, cfg.image_size, cfg.image_size, generator=gen).to(device)
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (cfg.batch_size,), generator=gen).to(device)
    rates = {}
    for name, ctx in (("fp32", contextlib.nullcontext), ("bf16", lambda: torch.autocast("cpu", dtype=torch.bfloat16))):
        for i in range(steps + 1):  # the first step warms up the kernels
            if i == 1:
                t = time.perf_counter()
            with ctx():
                out = probe(x)
            logits = out[0] if isinstance(out, tuple) else out
            torch.nn.functional.cross_entropy(logits.float(), y).backward()
        rates[name] = steps * cfg.batch_size / (time.perf_counter() - t)
    torch.set_rng_state(rng)
    chosen = "bf16" if rates["bf16"] > 1.03 * rates["fp32"] else "fp32"
    return {"fp32_img_per_s": round(rates["fp32"]), "bf16_img_per_s": round(rates["bf16"]), "chosen": chosen}


def make_loss(cfg: TrainConfig):
    if cfg.loss == "focal":
        return lambda logits, y: binary_focal_loss(logits, y, cfg.focal_gamma, cfg.focal_alpha)
    return lambda logits, y: cross_entropy(logits, y, cfg.label_smoothing)


def epochs_to_go(budget: int, step: int, epoch: int, done_in_epoch: int, steps_per_epoch: int) -> int:
    """The epoch count a run will have reached when its budget ends, seen from ``step`` (``done_in_epoch`` batches
    into ``epoch``, 0-based). An epoch cut short by an earlier, smaller budget counts as begun, so a resumed run's
    label never reads "epoch 2/1"."""
    return epoch + max(math.ceil((budget - step + done_in_epoch) / steps_per_epoch), 1)


def total_steps(cfg: TrainConfig, steps_per_epoch: int) -> int:
    """The run's optimizer steps: ``cfg.steps`` when set (a step budget), else whole epochs."""
    return cfg.steps or max(cfg.epochs * steps_per_epoch, 1)


def lr_lambda(cfg: TrainConfig, steps_per_epoch: int, budget: dict | None = None):
    """The learning-rate factor at each step; ``budget["total"]``, when given, is read at every step
    (a wall-time budget fixes the run's length after it has started)."""
    warm = int(cfg.warmup_epochs * steps_per_epoch)
    budget = budget if budget is not None else {"total": total_steps(cfg, steps_per_epoch)}

    def f(step: int) -> float:
        if step < warm:
            return 0.1 + 0.9 * step / warm
        if cfg.schedule == "cosine":
            t = (step - warm) / max(budget["total"] - warm, 1)
            return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
        return 1.0

    return f


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for _n, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "adam":  # weight decay as an L2 term (the paper's optimizer); no decay on biases and norms
        return torch.optim.Adam(groups, lr=cfg.lr)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)


def split_indices(store: Store, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """The store's own validation split, or ``cfg.val_fraction`` of its training split (seeded)."""
    train, val = store.indices("train"), store.indices("val")
    if len(val) == 0 and cfg.val_fraction > 0:
        rng = np.random.default_rng(cfg.seed)
        perm = rng.permutation(train)
        k = max(1, int(round(len(train) * cfg.val_fraction)))
        val, train = np.sort(perm[:k]), np.sort(perm[k:])
    if len(train) == 0:
        raise HccrError(f"{store.path}: no training samples")
    return train, val


def shard_batches(indices: np.ndarray, batch: int, epoch: int, env: D.DistEnv, seed: int,
                  shuffle: bool = True) -> list[np.ndarray]:
    """This rank's batches: a seeded permutation padded to equal length on every rank."""
    idx = np.random.default_rng(seed + 1000 * epoch).permutation(indices) if shuffle else indices
    if env.world_size > 1 and shuffle:
        pad = (-len(idx)) % env.world_size
        idx = np.concatenate([idx, idx[:pad]])
    mine = idx[env.rank :: env.world_size]
    batches = [mine[i : i + batch] for i in range(0, len(mine), batch)]
    if shuffle and len(batches) > 1 and len(batches[-1]) < 2:
        batches.pop()  # BatchNorm cannot train on a single sample
    return batches


class WallBudget:
    """``minutes`` of training: the step budget is set from the speed of steps 10-60 of this
    invocation (the first ten warm up kernels and caches), keeping 5% for validation and saving; a
    run too slow to finish those steps in time stops at the deadline."""

    probe = (10, 60)

    def __init__(self, minutes: float, first_step: int):
        self.deadline = time.monotonic() + 60 * minutes
        self.first, self.t_probe, self.how = first_step, 0.0, ""

    def steps(self, step: int, env: D.DistEnv) -> int | None:
        """The run's total steps once ``step`` ends the probe, else None."""
        k = step - self.first
        if k == self.probe[0]:
            self.t_probe = time.monotonic()
        if k < self.probe[1] and time.monotonic() > self.deadline:  # steps too slow to finish the probe in time
            self.how = "the deadline came before the speed was measured"
            return step
        if k != self.probe[1]:
            return None
        per_step = (time.monotonic() - self.t_probe) / (self.probe[1] - self.probe[0])
        per_step = D.all_reduce_sum([per_step], env)[0] / env.world_size  # every rank fixes the same budget
        self.how = f"{1 / per_step:.2f} steps/s over steps {self.probe[0]}-{self.probe[1]}"
        return step + max(int(0.95 * (self.deadline - time.monotonic()) / per_step), 0)


def mixup_draw(n: int, alpha: float, gen: torch.Generator) -> tuple[float, torch.Tensor | None]:
    """Mixup's blend weight ``lam ~ Beta(alpha, alpha)`` (folded to >= 0.5, so the first label
    dominates) and a partner permutation, both from ``gen`` (resumable); ``(1.0, None)`` when off."""
    if alpha <= 0:
        return 1.0, None
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    return max(lam, 1 - lam), torch.randperm(n, generator=gen)


# ---------------------------------------------------------------------------------------------
# The loop

def train_one_epoch(model: nn.Module, store: Store, batches: list[np.ndarray], cfg: TrainConfig, optimizer,
                    scheduler, scaler, loss_fn, env: D.DistEnv, epoch: int, gen: torch.Generator,
                    progress: bool, start: int = 0, after_step=None, frozen: nn.Module | None = None,
                    teacher=None, pinned=None, adversary=None, planned: int | None = None) -> dict:
    """Train on ``batches[start:]``; ``after_step(i)`` runs after batch ``i`` and returns True to stop
    (the step budget is spent). ``frozen`` parts keep their weights and BatchNorm statistics; a
    ``teacher`` (distillation) gives soft targets for the same augmented views; ``pinned`` classifier
    rows are put back after every step (``init_keep_classes``); an ``adversary`` (hccr.domain) adds its domain
    loss. ``planned``: the steps this epoch will run when the budget ends it early (what the progress bar counts)."""
    model.train()
    held = list(frozen.parameters()) if frozen is not None else []
    if frozen is not None:
        frozen.eval()
    amp_ctx, _ = autocast_for(env.device, cfg.amp)
    tot_loss = tot_correct = tot_n = dom_right = dom_n = 0.0
    t0 = time.perf_counter()
    with Progress(planned or len(batches) - start, f"epoch {epoch + 1}", disable=not (progress and env.is_main),
                  unit="steps") as bar:
        for step in range(start, len(batches)):
            b = np.sort(batches[step])
            x = prepare_batch(store.images[b], store.sizes[b], cfg, env.device, True, gen)
            y = torch.from_numpy(store.labels[b].astype(np.int64)).to(env.device)
            lam, perm = mixup_draw(len(b), cfg.mixup, gen)
            if perm is not None:  # one blend per batch: every sample with a shuffled partner
                perm = perm.to(x.device)
                x = lam * x + (1 - lam) * x[perm]
            with amp_ctx:
                out = model(x)
            logits, aux = out if isinstance(out, tuple) else (out, [])
            loss = deep_supervision(logits, aux, y, loss_fn, 1.0, cfg.aux_weights)
            if perm is not None:
                loss = lam * loss + (1 - lam) * deep_supervision(logits, aux, y[perm], loss_fn, 1.0, cfg.aux_weights)
            if teacher is not None:
                soft = teacher.with_labels(teacher(to_model_input(x, cfg.ink, False)), y)  # ink high again (the flip
                # is its own inverse); a character no teacher knows learns from its label
                loss = (1 - cfg.distill_alpha) * loss + cfg.distill_alpha * distill_loss(
                    logits, soft, cfg.distill_temperature)
            if adversary is not None:
                d_loss, right, seen = adversary.loss(b)
                loss = loss + cfg.domain_loss * d_loss
                dom_right, dom_n = dom_right + right, dom_n + seen
            value = float(loss.detach())  # one read of the loss per step: the divergence check and the log
            check_finite(value, env, cfg)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            for p in held:  # no gradient: the optimizer leaves them (and their weight decay) alone
                p.grad = None
            if cfg.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                if adversary is not None:
                    nn.utils.clip_grad_norm_(adversary.critic.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            if pinned is not None:
                pinned.restore()
            scheduler.step()
            n = len(b)
            tot_loss += value * n
            tot_correct += float((logits.detach().argmax(1) == y).sum())
            tot_n += n
            rate = tot_n * env.world_size / (time.perf_counter() - t0)
            bar.update(1, loss=tot_loss / tot_n, acc=tot_correct / tot_n, img_s=round(rate))
            spent = after_step(step) if after_step else False  # every step counted, the epoch's last included
            if spent or (cfg.limit_steps and step + 1 >= cfg.limit_steps):
                break
    loss_sum, correct, n = D.all_reduce_sum([tot_loss, tot_correct, tot_n], env)
    dt = time.perf_counter() - t0
    out = {"train_loss": loss_sum / max(n, 1), "train_acc": correct / max(n, 1), "train_img_per_s": n / dt,
           "train_seconds": dt}
    if adversary is not None:  # the critic tells real from synthetic (at domain_chance: not at all)
        out["domain_acc"] = dom_right / max(dom_n, 1)
    return out


def diverged(what: str, cfg: TrainConfig) -> HccrError:
    """The one-line error of a run that diverged (``what``: the loss or the weights that are not numbers)."""
    return HccrError(f"{what}: the run diverged and stops here (nothing is saved after the last finite weights); "
                     f"start it again with a lower --lr (it was {cfg.lr:g}) or --set grad_clip=1")


def check_finite(loss: float, env: D.DistEnv, cfg: TrainConfig) -> None:
    """Stop a run whose loss is no longer a number (on every rank at once), before the step spreads it into the
    weights and the checkpoints: a diverged run trained on, exited with success and saved NaN weights as "best"."""
    bad = not math.isfinite(loss)
    if env.world_size > 1:
        bad = D.all_reduce_sum([float(bad)], env)[0] > 0
    if bad:
        raise diverged(f"the training loss is {loss if not math.isfinite(loss) else 'not finite on another process'}",
                       cfg)


def check_weights(model: nn.Module, cfg: TrainConfig) -> None:
    """:func:`diverged` if a weight is not a number (every rank holds the same weights: no collective needed)."""
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise diverged("the weights hold NaN or infinite values", cfg)


@torch.no_grad()
def evaluate(model: nn.Module, store: Store, indices: np.ndarray, cfg: TrainConfig, env: D.DistEnv,
             batch_size: int = 512) -> dict:
    """Exact top-1 accuracy of the main head over ``indices`` (sharded over ranks, counts reduced)."""
    if len(indices) == 0:
        return {}
    model.eval()
    amp_ctx, _ = autocast_for(env.device, cfg.amp)
    correct = total = loss_sum = 0.0
    mine = indices[env.rank :: env.world_size]
    for i in range(0, len(mine), batch_size):
        b = mine[i : i + batch_size]
        x = prepare_batch(store.images[b], store.sizes[b], cfg, env.device, False)
        y = torch.from_numpy(store.labels[b].astype(np.int64)).to(env.device)
        with amp_ctx:
            logits = model(x)
        loss_sum += float(torch.nn.functional.cross_entropy(logits.float(), y, reduction="sum"))
        correct += float((logits.argmax(1) == y).sum())
        total += len(b)
    correct, total, loss_sum = D.all_reduce_sum([correct, total, loss_sum], env)
    return {"val_acc": correct / total, "val_loss": loss_sum / total, "val_count": int(total)}


def fit(cfg: TrainConfig, store_path: str | Path, out: str | Path, resume: bool = False,
        device: str | None = None, progress: bool = True) -> dict:
    """Train ``cfg`` on a packed store; writes ``best.*``, ``last.*``, ``metrics.jsonl``, ``config.json``."""
    cfg.validate()
    env = D.setup(device)
    finished = False
    try:
        if not env.is_main:
            result = _fit(cfg, Store(store_path), Path(out), resume, env, progress)
        else:
            from .utils import output_lock

            with output_lock(out, "training run"):  # a second run into the same folder is refused
                result = _fit(cfg, Store(store_path), Path(out), resume, env, progress)
        finished = True
        return result
    finally:
        D.cleanup(env, finished)


def save_state(path: Path, model: nn.Module, optimizer, scheduler, scaler, gen: torch.Generator, epoch: int,
               batch: int, step: int, best_acc: float, best_loss: float, cfg: TrainConfig, ema=None,
               critic: nn.Module | None = None) -> None:
    """The resume state: tensors, numbers and strings only, so resuming never unpickles code."""
    state = {"model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "gen": gen.get_state(),
             "rng": torch.get_rng_state(),  # dropout's stream
             "epoch": epoch, "batch": batch, "step": step, "best_acc": best_acc, "best_loss": best_loss,
             "config": json.dumps(config_to_dict(cfg)),
             **({"ema": ema.state_dict()} if ema is not None else {}),
             **({"critic": critic.state_dict()} if critic is not None else {})}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file torch writes to raises the system's own error
        torch.save(state, f)


def make_ema(model: nn.Module, decay: float):
    """An exponential moving average of the weights and BatchNorm statistics, updated after every
    optimizer step (``ema.update_parameters(model)``); ``ema.module`` is the averaged network.

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates: with a fixed 0.999
    a run of 1,000 steps would keep 37% of its first, untrained weights in the average."""
    from torch.optim.swa_utils import AveragedModel

    @torch.no_grad()
    def average(ema_params: list, params: list, n_averaged) -> None:
        n = int(n_averaged)
        d = min(decay, (1 + n) / (10 + n))
        averaged, current = [], []
        for e, p in zip(ema_params, params, strict=True):
            if e.is_floating_point():
                averaged.append(e)
                current.append(p)
            else:  # counters such as BatchNorm's num_batches_tracked
                e.copy_(p)
        if averaged:  # AveragedModel calls this once per (device, dtype) group: some hold only counters
            torch._foreach_lerp_(averaged, current, 1 - d)

    return AveragedModel(model, multi_avg_fn=average, use_buffers=True)


def load_state(path: Path, device: torch.device) -> dict:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # a damaged file, or one holding objects only pickle could rebuild
        raise HccrError(f"{path}: not a resume state hccr can read safely ({str(e).splitlines()[0][:160]}); "
                        "start a new run with another --out") from None


def _check_run_folder(out: Path, resume: bool) -> tuple[Path, bool]:
    """(the run folder's state file, whether there is a state to resume from), after refusing a start that would
    overwrite a run or a resume of nothing. A run stopped while saving its first resume state (checkpoints written,
    no state yet) starts again from step 0 on --resume: there is nothing else to go on from."""
    state_path = out / "last.state.pt"
    if out.exists() and not out.is_dir():
        raise HccrError(f"{out}: is a file; --out names the run folder: choose another")
    if not resume and (out / "last.json").exists():
        raise HccrError(f"{out}: already holds a training run; pass --resume to continue it or choose another --out")
    if resume and not state_path.exists():
        if not (out / "last.json").exists():
            raise HccrError(f"{out}: nothing to resume (no last.state.pt)")
        print(f"note: {out}: the run stopped before its first resume state was saved; it starts again from step 0",
              file=sys.stderr)
        (out / "metrics.jsonl").unlink(missing_ok=True)  # the epochs it logs are the new run's
        return state_path, False
    return state_path, resume


def _build_model(cfg: TrainConfig, store: Store, env: D.DistEnv, resume: bool, earlier: dict, train_idx: np.ndarray):
    """(model, store, init report, init provenance): the network, started from ``cfg.init`` when fine-tuning
    (the source's architecture, input size and polarity; with ``init_keep_classes`` the store relabelled to
    the source's characters followed by its new ones)."""
    init_prov = None
    if cfg.init:
        from .checkpoint import read_meta
        from .finetune import adopt_architecture, keep_source_classes, resolve_init
        from .packaging import init_provenance

        source = read_meta(resolve_init(cfg.init))
        # what the starting model was when this run began (a name like gb2312 may later mean another file)
        init_prov = earlier.get("init_provenance") or init_provenance(cfg.init, source)
        changes = adopt_architecture(cfg, source)
        if changes and env.is_main and not resume:
            print(f"--init: the run builds {Path(str(cfg.init)).name}'s network, not the preset's: {'; '.join(changes)}")
        if cfg.init_keep_classes:  # the source's characters stay readable; the store's new ones are added
            store = keep_source_classes(store, source["charset"])
    torch.manual_seed(cfg.seed)
    num_classes = len(store.charset)
    model = create_model(cfg.model, num_classes, cfg.image_size, **cfg.model_args).to(env.device)
    init_report = None
    if cfg.init and not resume:
        from .finetune import init_from

        init_report = init_from(model, cfg.init, "".join(store.charset))
        known = set(source["charset"])
        new = [j for j, c in enumerate(store.charset) if c not in known]
        if new and len(new) < num_classes:  # beside known rows a fresh one takes every image: fit it to its own
            from .finetune import average_new_rows, warm_new_rows

            average_new_rows(model, new, num_classes)
            warm_new_rows(model, new, num_classes, store.labels[train_idx],
                          lambda i: prepare_batch(store.images[train_idx[i]], store.sizes[train_idx[i]], cfg,
                                                  env.device, False))
        if env.is_main:
            print(f"initialised from {cfg.init}: {init_report['classes_kept']} classes keep their rows, "
                  f"{init_report['classes_new']} new" + (f" ({init_report['new_characters']})"
                                                         if init_report["classes_new"] else ""))
            if "prior_power" in init_report:
                print(f"--init: {cfg.init}'s classifier bias has its training class prior divided out "
                      f"(power {init_report['prior_power']:g}); packaging this run with --divide-prior "
                      "divides a prior out again")
    return model, store, init_report, init_prov


def _restore(st: dict, state_path: Path, model, optimizer, scheduler, scaler, steps: int) -> tuple:
    """Load a resume point into the run's objects: (epoch, batches done in it, step, best accuracy, best loss,
    the augmentation generator's state or None)."""
    try:
        model.load_state_dict(st["model"])
    except RuntimeError as e:  # another network or class count than the run's: never a traceback
        raise HccrError(f"{state_path}: the run's saved network does not fit this one ({str(e).splitlines()[-1].strip()[:160]}"
                        "); resume with the run's own store and options, or start a new --out") from None
    try:
        optimizer.load_state_dict(st["optimizer"])
    except ValueError as e:  # another parameter grouping: a run begun by an older hccr's adam
        raise HccrError(f"{state_path}: its optimizer state does not fit this hccr's ({e}); finish the run with "
                        "the hccr that began it, or start it again in another folder") from None
    scheduler.load_state_dict(st["scheduler"])
    scaler.load_state_dict(st["scaler"])
    best = st["best_acc"], st.get("best_loss", float("inf"))
    if "batch" not in st:  # saved at the end of an epoch by an older hccr
        return st["epoch"] + 1, 0, (st["epoch"] + 1) * steps, *best, None
    torch.set_rng_state(st["rng"])  # mid-epoch state: epoch in progress, batches done in it
    skip = st["batch"]
    return st["epoch"], skip, st["step"], *best, (st["gen"] if skip else None)  # at an epoch's start its own seed


def _check_same_characters(out: Path, earlier: dict, store: Store) -> None:
    """A run resumes only on a store of the characters it was learning (in their order: one classifier row each):
    as it began (``earlier``, its config.json), or for older runs as its last epoch saved them."""
    last = out / "last.json"
    trained = earlier.get("charset") or (read_json(last).get("charset", "") if last.exists() else "")
    mine = "".join(store.charset)
    if trained and trained != mine:
        what = "other characters" if len(trained) == len(mine) else f"{len(mine)} characters"
        raise HccrError(f"{out}: it was trained on {earlier.get('store') or 'a store'} ({len(trained)} characters) and "
                        f"--data {store.path} holds {what}: resume with the run's store, or start a new --out")


def _fit(cfg: TrainConfig, store: Store, out: Path, resume: bool, env: D.DistEnv, progress: bool) -> dict:
    state_path, resume = _check_run_folder(out, resume)
    earlier = read_json(out / "config.json") if resume and (out / "config.json").exists() else {}
    train_idx, val_idx = split_indices(store, cfg)  # new rows are fitted on the training part only
    model, store, init_report, init_prov = _build_model(cfg, store, env, resume, earlier, train_idx)
    num_classes = len(store.charset)
    if resume:
        _check_same_characters(out, earlier, store)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if len(val_idx) and not len(store.indices("val")) and env.is_main and progress and not resume:
        print(f"note: {store.path} has no validation split: {len(val_idx)} of its training samples (val_fraction "
              f"{cfg.val_fraction:g}, drawn with seed {cfg.seed}) validate this run and are not trained on; `hccr "
              "predict --split val` cannot pick them (convert with --val-fraction or --val-writers for a split of its "
              "own)")
    present = len(np.unique(store.labels[train_idx]))
    if present < 2 and not cfg.init_keep_classes:  # it would read 100% and learn nothing
        raise HccrError(f"{store.path}: its training samples hold {present} character(s); a classifier needs at least "
                        "2 (convert more; --limit keeps the first samples in file order), or teach one character to a "
                        "model with --init M --keep-classes")
    steps = len(shard_batches(train_idx, cfg.batch_size, 0, env, cfg.seed))
    if cfg.limit_steps:
        steps = min(steps, cfg.limit_steps)
    budget = total_steps(cfg, steps)
    probe = None
    # the probe costs about ten steps: a run of a few dozen (a smoke test, a quick fine-tune) keeps the default
    if cfg.amp and cfg.amp_probe and env.device.type == "cpu" and _cpu_has_bf16() and budget >= PROBE_MIN_STEPS:
        probe = probe_precision(model, cfg, env.device, num_classes)
        cfg.amp = probe["chosen"] == "bf16"
        if env.is_main and progress:
            print(f"precision: {probe['chosen']} (probe: fp32 {probe['fp32_img_per_s']} img/s, "
                  f"bf16 {probe['bf16_img_per_s']} img/s)")
    precision = precision_of(env.device, cfg.amp)
    adversary = None
    if cfg.domain_loss:
        if env.world_size > 1:
            raise HccrError("domain_loss trains on one process (its critic is not shared between ranks): run it "
                            "without torchrun, or without domain_loss")
        if cfg.init_keep_classes:
            raise HccrError("domain_loss trains the features, which --keep-classes freezes: use one or the other")
        from .domain import DomainAdversary, sample_domains

        domains = sample_domains(store.writers, store.writer_names, store.labels, train_idx, cfg.real_writers,
                                 str(store.path))
        adversary = DomainAdversary(model, domains, lambda: step / max(budget, 1), env.device)
    critic = adversary.critic if adversary else None  # its state travels in the resume point, not the checkpoint
    optimizer = make_optimizer(cfg, nn.ModuleList([model, critic]) if critic else model)
    schedule = {"total": budget}  # a wall-time budget (cfg.minutes) sets it after the first steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, steps, schedule))
    _, fp16 = autocast_for(env.device, cfg.amp)
    scaler = torch.amp.GradScaler(env.device.type, enabled=fp16)
    gen = torch.Generator()
    st = load_state(state_path, env.device) if resume else None
    if st is not None and (critic is not None) != ("critic" in st):  # before its optimizer state is read
        raise HccrError(f"{out}: the run was started {'without' if critic is not None else 'with'} a domain loss; "
                        "resume it with the same --set domain_loss as it began")
    if st is not None and critic is not None:
        critic.load_state_dict(st["critic"])
    start_epoch, skip, step, best_acc, best_loss, gen_state = (
        _restore(st, state_path, model, optimizer, scheduler, scaler, steps) if st else (0, 0, 0, -1.0, float("inf"), None))
    epochs = epochs_to_go(budget, step, start_epoch, skip, steps)
    if env.is_main and resume and step >= budget:
        print(f"{out}: already complete ({step} of {budget} steps, best val acc {best_acc:.4f}); nothing to "
              "train (a larger --set steps=N goes on)")
    elif env.is_main and resume:
        print(f"resuming {out} at epoch {start_epoch + 1}/{epochs}, step {step}/{budget} "
              f"(best val acc so far {best_acc:.4f})")
    pinned = None
    if cfg.init_keep_classes:  # only the store's characters' rows learn; the rest stays as the source had it
        from .finetune import PinnedRows

        pinned = PinnedRows(model, num_classes, np.unique(store.labels).tolist())
    teacher = None
    if cfg.teachers:  # its networks draw their first weights before loading theirs: not from the run's random stream,
        with torch.random.fork_rng(devices=[]):  # which a resume point has just restored (a resumed run is the same)
            teacher = Teacher(cfg.teachers, cfg.teacher_weights, "".join(store.charset), cfg.distill_temperature,
                              cfg.teacher_crops, env.device)
    if teacher is not None and teacher.unknown and env.is_main and progress:
        print(f"note: no teacher knows {len(teacher.unknown)} of the store's characters ({teacher.unknown[:40]}): "
              "they learn from their labels alone")
    ema = make_ema(model, cfg.ema) if cfg.ema else None
    if resume and (ema is not None) != ("ema" in st):
        raise HccrError(f"{out}: the run was started {'without' if ema is not None else 'with'} a weight average; "
                        f"resume it with the same --set ema as it began")
    if resume and ema is not None:
        ema.load_state_dict(st["ema"])
    ddp = DDP(model, device_ids=[env.device.index] if env.device.type == "cuda" else None) if env.enabled else model
    loss_fn = make_loss(cfg)
    run_info = {"store": str(store.path), "charset": "".join(store.charset), "train": len(train_idx), "val": len(val_idx),
                "world_size": env.world_size, "device": str(env.device), "threads": torch.get_num_threads(),
                "steps_per_epoch": steps, "init": init_report or earlier.get("init"), "init_provenance": init_prov,
                "precision": precision, "precision_probe": probe,
                **({"domain_chance": adversary.chance(train_idx)} if adversary else {}),
                **({"wall_budget": earlier["wall_budget"]} if "wall_budget" in earlier else {})}

    def write_config() -> None:
        if env.is_main:
            write_json(out / "config.json", {"config": config_to_dict(cfg), **run_info, "total_steps": budget})

    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
    write_config()
    wall = WallBudget(cfg.minutes, step) if cfg.minutes else None
    last_metrics: dict = {}
    saved_at, saved_step = time.monotonic(), step
    for epoch in itertools.count(start_epoch):
        if step >= budget:  # a finished run resumed: nothing left to do
            break
        gen.manual_seed(cfg.seed * 7919 + env.rank + 104729 * epoch)  # resumable augmentation stream
        if gen_state is not None:
            gen.set_state(gen_state)
            gen_state = None
        batches = shard_batches(train_idx, cfg.batch_size, epoch, env, cfg.seed)

        def after_step(i: int, epoch: int = epoch, best: tuple = (best_acc, best_loss)) -> bool:
            nonlocal step, saved_at, saved_step, budget, epochs
            step += 1
            fixed = wall.steps(step, env) if wall is not None else None
            if fixed is not None:  # from now on an ordinary step-scheduled run (a resume keeps these steps)
                run_info["wall_budget"] = {"minutes": cfg.minutes, "steps": fixed, "how": wall.how}
                budget = schedule["total"] = cfg.steps = max(fixed, step)
                cfg.minutes, epochs = 0.0, epochs_to_go(budget, step, epoch, i + 1, steps)
                write_config()
                if env.is_main and progress:
                    print(f"wall-time budget: {budget} steps in {run_info['wall_budget']['minutes']:g} min "
                          f"({wall.how})", flush=True)
            if ema is not None:
                ema.update_parameters(model)
            if cfg.checkpoint_minutes and time.monotonic() - saved_at > 60 * cfg.checkpoint_minutes:
                if env.is_main and step < budget:  # a mid-epoch resume point (the epoch's end saves its own)
                    check_weights(model, cfg)  # the step just taken may have diverged: no resume point holds it
                    save_state(state_path, model, optimizer, scheduler, scaler, gen, epoch, i + 1, step, *best,
                               cfg, ema, critic)
                    if progress:  # one line per resume point: a long run's log shows where it is
                        per_step = (time.monotonic() - saved_at) / (step - saved_step)
                        print(f"step {step}/{budget}: resume point saved ({cfg.batch_size * env.world_size / per_step:.0f}"
                              f" img/s since the last; about {(budget - step) * per_step / 60:.0f} min to go)", flush=True)
                saved_at, saved_step = time.monotonic(), step
            return step >= budget

        frozen = None
        if epoch < cfg.freeze_epochs or cfg.init_keep_classes:
            from .finetune import backbone

            frozen = backbone(unwrap(ddp))
        tm = train_one_epoch(ddp, store, batches, cfg, optimizer, scheduler, scaler, loss_fn, env, epoch, gen,
                             progress, start=skip, after_step=after_step, frozen=frozen, teacher=teacher,
                             pinned=pinned, adversary=adversary,
                             planned=None if cfg.minutes else min(len(batches) - skip, budget - step))
        skip = 0
        shipped = ema.module if ema is not None else unwrap(ddp)  # what validation measures and checkpoints hold
        check_weights(shipped, cfg)  # the epoch's last step may have diverged
        vm = evaluate(shipped, store, val_idx, cfg, env)
        metrics = {"epoch": epoch + 1, "step": step, "lr": optimizer.param_groups[0]["lr"], **tm, **vm,
                   "precision": precision}
        acc = vm.get("val_acc", tm["train_acc"])
        loss = vm.get("val_loss", tm["train_loss"])
        # Best validation accuracy; ties (common once validation saturates) go to the lower loss.
        improved = acc > best_acc or (acc == best_acc and loss < best_loss)
        if improved:
            best_acc, best_loss = acc, loss
        metrics["best_val_acc"] = best_acc
        if env.is_main:
            meta = checkpoint_meta(cfg, store, model, metrics, epoch + 1)
            if improved:
                save_checkpoint(out / "best", shipped, meta)
            save_checkpoint(out / "last", shipped, meta)
            save_state(state_path, model, optimizer, scheduler, scaler, gen, epoch + 1, 0, step, best_acc, best_loss,
                       cfg, ema, critic)
            saved_at, saved_step = time.monotonic(), step
            with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(metrics) + "\n")
            if progress:
                va = f"val acc {vm['val_acc']:.4f}" if vm else "no validation split"
                print(f"epoch {epoch + 1}/{epochs} (step {step}/{budget}): loss {tm['train_loss']:.4f}  "
                      f"train acc {tm['train_acc']:.4f}  {va}  {tm['train_img_per_s']:.0f} img/s"
                      f"{'  *best' if improved else ''}", flush=True)
        D.barrier(env)
        last_metrics = metrics
        if step >= budget:
            break
    return last_metrics
