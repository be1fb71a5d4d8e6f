import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import fit_cut_after

from hccr.augment import AugmentConfig
from hccr.checkpoint import load_checkpoint
from hccr.config import apply_overrides, get_preset
from hccr.errors import HccrError
from hccr.models import create_model
from hccr.train import fit


def _cfg(**kw):
    cfg = get_preset("fast-1")
    cfg = apply_overrides(cfg, ["image_size=32", "batch_size=16", "epochs=2", "warmup_epochs=0", "lr=0.003",
                                "amp=false", "amp_probe=false",  # fp32 on every CPU: the same numbers everywhere
                                "model_args.widths=8,16,16,32", "model_args.stem=8"])
    cfg.augment = AugmentConfig(rotation=5)  # light augmentation: a few steps must already learn
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def test_overrides_are_typed_and_checked():
    cfg = apply_overrides(get_preset("fast-2"), ["epochs=3", "augment.rotation=4", "aux_weights=0.1,0.2", "amp=false"])
    assert cfg.epochs == 3 and cfg.augment.rotation == 4.0 and cfg.aux_weights == (0.1, 0.2) and cfg.amp is False
    cfg = apply_overrides(get_preset("fast-1"), ["model_args.widths=8,16,16,32", "model_args.stem=8",
                                                 "model_args.conv_stages=", "model_args.strides=2,"])
    assert cfg.model_args == {"widths": (8, 16, 16, 32), "stem": 8, "conv_stages": (), "strides": (2,)}
    with pytest.raises(HccrError, match="unknown config field"):
        apply_overrides(get_preset("fast-1"), ["epoch=3"])
    with pytest.raises(HccrError, match="cannot read"):
        apply_overrides(get_preset("fast-1"), ["epochs=many"])
    for kv, said in (("augment.blur=-1", "augment.blur must be a probability"), ("augment.rotation=nan", ">= 0"),
                     ("augment.rotation=inf", ">= 0"), ("augment.scale=1.1,0.9", "0 < lo <= hi"),
                     ("augment.scale=0.9", "a range of two values"), ("image_size=0", "8-2048 px"),
                     ("label_smoothing=2", r"in \[0, 1\)"), ("lr=nan", "lr must be a number above 0"),
                     ("lr=inf", "lr must be a number above 0"), ("seed=-1", "seed must be a whole number"),
                     ("warmup_epochs=-3", "warmup_epochs must be a number >= 0"),
                     ("grad_clip=-1", "grad_clip must be")):  # typed, but out of range: said, not trained on
        # (image_size=0, label_smoothing=2, lr=nan and seed=-1 were tracebacks; warmup and grad_clip accepted)
        with pytest.raises(HccrError, match=said):
            apply_overrides(get_preset("fast-1"), [kv]).validate()
    # Naming another architecture drops the preset's arguments for its own; booleans read as such.
    cfg = apply_overrides(get_preset("fast-1"), ["model_args.aux=false", "model=resnet-lean"])
    assert cfg.model == "resnet-lean" and cfg.model_args == {}
    create_model(cfg.model, 10, cfg.image_size, **cfg.model_args)
    cfg = apply_overrides(get_preset("gb2312"), ["model=charnet-s", "model_args.aux=false"])
    assert cfg.model_args == {"aux": False}
    def params(**kw):
        return sum(p.numel() for p in create_model("charnet-s", 10, 64, **kw).parameters())
    assert params(**cfg.model_args) < params()  # no auxiliary heads
    p = get_preset("paper-3")
    assert (p.model, p.image_size, p.loss, p.blur_ksize, p.blur_sigma, p.batch_size) == ("charnet", 256, "focal", 7, 50.0, 128)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_weight_decay_is_applied_by_every_optimizer_to_weights_not_biases(optimizer):
    """`--set weight_decay=...` must do something whichever optimizer a preset names (the paper's is adam)."""
    from hccr.train import make_optimizer

    cfg = apply_overrides(get_preset("paper-1"), [f"optimizer={optimizer}", "weight_decay=0.01", "lr=0.1"])
    model = torch.nn.Linear(3, 2)
    decays = {p.ndim: g["weight_decay"] for g in make_optimizer(cfg, model).param_groups for p in g["params"]}
    assert decays == {2: 0.01, 1: 0.0}


def test_two_epochs_learn_and_write_loadable_checkpoints(tiny_store, tmp_path):
    cfg = _cfg(model_args={})
    m = fit(cfg, tiny_store, tmp_path / "run", progress=False)
    assert m["val_acc"] > 0.5  # 4 classes: chance is 0.25
    model, meta = load_checkpoint(tmp_path / "run")
    assert meta["charset"] == "一人十口" and meta["arch"] == "charnet-s" and meta["config"]["epochs"] == 2
    assert meta["preprocessing"]["image_size"] == 32
    # Self-describing: every architecture argument is recorded, not only the overrides.
    assert meta["model_args"]["widths"] == list(model.arch_args["widths"]) and "strides" in meta["model_args"]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    assert (tmp_path / "run" / "last.safetensors").exists()
    with pytest.raises(HccrError, match="already holds a training run"):
        fit(cfg, tiny_store, tmp_path / "run", progress=False)


def test_resume_continues_from_saved_state(tiny_store, tmp_path):
    cfg = _cfg(epochs=1, model_args={})
    fit(cfg, tiny_store, tmp_path / "run", progress=False)
    state = torch.load(tmp_path / "run" / "last.state.pt", weights_only=True)  # no pickle needed
    assert state["epoch"] == 1 and state["batch"] == 0 and state["optimizer"]["state"]  # Adam moments saved
    cfg.epochs = 3
    m = fit(cfg, tiny_store, tmp_path / "run", resume=True, progress=False)
    assert m["epoch"] == 3
    epochs = [json.loads(x)["epoch"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]  # epoch 1 was not trained again
    state = torch.load(tmp_path / "run" / "last.state.pt", weights_only=True)
    assert state["scheduler"]["last_epoch"] > 0 and state["epoch"] == 3


def test_step_budget_and_mid_epoch_resume_match_an_uninterrupted_run(tiny_store, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    cfg = _cfg(model_args={}, steps=20, epochs=1, checkpoint_minutes=1e-9)  # 16 steps an epoch: two epochs; save each step
    m = fit(cfg, tiny_store, tmp_path / "whole", progress=False)
    assert m["step"] == 20 and m["epoch"] == 2
    assert json.loads((tmp_path / "whole" / "config.json").read_text())["total_steps"] == 20

    fit_cut_after(2, monkeypatch, cfg, tiny_store, tmp_path / "cut", progress=False)
    state = torch.load(tmp_path / "cut" / "last.state.pt", weights_only=True)
    assert (state["epoch"], state["batch"], state["step"]) == (0, 2, 2)
    m2 = fit(cfg, tiny_store, tmp_path / "cut", resume=True, progress=False)
    assert m2["step"] == 20
    a, b = load_file(str(tmp_path / "whole" / "last.safetensors")), load_file(str(tmp_path / "cut" / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # the resumed run is the same run


def test_a_wall_time_budget_ends_the_run_in_time_and_fixes_its_steps(tiny_store, tmp_path, monkeypatch):
    """--set minutes=N: the schedule is sized from the measured speed, and the run ends about then. The run's clock
    is a fake one that moves 0.01 s each time it is read (no real clock: a busy or slow machine measures the same)."""
    import time

    import hccr.train as T

    class Clock:
        t = 1000.0

        def monotonic(self) -> float:
            self.t += 0.01
            return self.t

        def __getattr__(self, name):
            return getattr(time, name)

    clock = Clock()
    monkeypatch.setattr(T, "time", clock)
    monkeypatch.setattr(T.WallBudget, "probe", (2, 8))  # measure over steps 2-8 (60 in a real run)
    cfg = _cfg(model_args={}, steps=100_000, epochs=1, minutes=0.05, schedule="cosine")  # 3 s of the fake clock
    t0 = clock.t
    m = fit(cfg, tiny_store, tmp_path / "run", progress=False)
    info = json.loads((tmp_path / "run" / "config.json").read_text())
    assert 8 <= m["step"] == info["total_steps"] == info["config"]["steps"] < 100_000
    assert info["wall_budget"]["minutes"] == 0.05 and info["config"]["minutes"] == 0
    assert clock.t - t0 <= 1.05 * 3  # never past its budget (95% of it for the steps)
    assert m["lr"] < 0.1 * cfg.lr  # the cosine reached its end: the schedule followed the fixed budget
    from hccr.config import config_from_dict

    resumed = config_from_dict(info["config"])  # as `hccr train --resume` reads it: finished, nothing more to do
    again = fit(resumed, tiny_store, tmp_path / "run", resume=True, progress=False)
    assert again == {} and json.loads((tmp_path / "run" / "config.json").read_text())["total_steps"] == m["step"]


def test_a_long_run_logs_each_resume_point(tiny_store, tmp_path, capsys):
    """A recipe's log hides the progress bar: each wall-time resume point prints where the run is."""
    import re

    cfg = _cfg(model_args={}, steps=20, epochs=1, checkpoint_minutes=1e-9)  # a resume point after every step
    fit(cfg, tiny_store, tmp_path / "run", progress=True)
    log = capsys.readouterr()
    saved = [int(n) for n in re.findall(r"^step (\d+)/20: resume point saved", log.out, re.M)]
    assert saved == list(range(1, 20))  # the last step ends the run with a checkpoint of its own
    # 16 steps an epoch: the second runs the budget's last 4, and its bar counts 4, not the epoch's 16
    assert set(re.findall(r"epoch 2: \d+/(\d+) steps", log.err)) == {"4"}, log.err


def test_a_run_given_more_steps_counts_the_epoch_it_adds(tiny_store, tmp_path, capsys):
    """A finished 10-step run (16 steps an epoch) resumed with steps=12: its first epoch ended at step 10, so the
    two more steps are a second epoch, and every line says epoch 2 of 2 (it said "epoch 2/1")."""
    import re

    cfg = _cfg(model_args={}, steps=10, epochs=1)
    fit(cfg, tiny_store, tmp_path / "run", progress=True)
    assert re.findall(r"^epoch (\d+)/(\d+) \(step", capsys.readouterr().out, re.M) == [("1", "1")]
    cfg.steps = 12
    m = fit(cfg, tiny_store, tmp_path / "run", resume=True, progress=True)
    out = capsys.readouterr().out
    assert m["step"] == 12 and m["epoch"] == 2
    assert "resuming" in out and "at epoch 2/2, step 10/12" in out, out
    assert re.findall(r"^epoch (\d+)/(\d+) \(step", out, re.M) == [("2", "2")], out


def test_ema_checkpoints_hold_the_average_and_resume_exactly(tiny_store, tmp_path):
    from safetensors.torch import load_file

    cfg = _cfg(model_args={}, epochs=2, ema=0.9, schedule="constant")
    m = fit(cfg, tiny_store, tmp_path / "whole", progress=False)
    # Validation reads the averaged network: the saved checkpoint (the average) scores exactly what
    # the run reported. (Not a threshold on what a 32-step run learns: that varies by CPU.)
    from hccr.data.store import Store
    from hccr.distributed import DistEnv
    from hccr.train import evaluate, split_indices

    avg, _ = load_checkpoint(tmp_path / "whole" / "last.json")
    st = Store(tiny_store)
    env = DistEnv()
    again = evaluate(avg, st, split_indices(st, cfg)[1], cfg, env)
    assert again["val_count"] == m["val_count"] and abs(again["val_loss"] - m["val_loss"]) < 1e-3
    state = torch.load(tmp_path / "whole" / "last.state.pt", weights_only=True)
    saved = load_file(str(tmp_path / "whole" / "last.safetensors"))
    key = next(k for k in saved if k.endswith("weight") and saved[k].dim() == 4)
    assert torch.allclose(saved[key], state["ema"]["module." + key])  # the checkpoint is the average...
    assert not torch.allclose(saved[key], state["model"][key])  # ...not the last step's weights
    cfg1 = _cfg(model_args={}, epochs=1, ema=0.9, schedule="constant")
    fit(cfg1, tiny_store, tmp_path / "cut", progress=False)
    with pytest.raises(HccrError, match="same --set ema"):
        fit(_cfg(model_args={}, epochs=2, schedule="constant"), tiny_store, tmp_path / "cut", resume=True,
            progress=False)
    fit(cfg, tiny_store, tmp_path / "cut", resume=True, progress=False)
    resumed = load_file(str(tmp_path / "cut" / "last.safetensors"))
    assert all(torch.allclose(saved[k], resumed[k]) for k in saved)  # the average went on where it stopped
    # (and so did the run: an epoch resumed at its start draws the augmentation that epoch draws uncut)
    with pytest.raises(HccrError, match="ema must be"):
        apply_overrides(get_preset("fast-1"), ["ema=1.5"]).validate()


def test_mixup_blends_pairs_learns_and_is_deterministic(tiny_store, tmp_path):
    from safetensors.torch import load_file

    from hccr.train import mixup_draw

    gen = torch.Generator().manual_seed(0)
    lam, perm = mixup_draw(16, 0.2, gen)
    assert 0.5 <= lam <= 1 and sorted(perm.tolist()) == list(range(16))
    assert mixup_draw(16, 0.0, gen) == (1.0, None)  # off: the plain loop, no draw
    m = fit(_cfg(model_args={}, mixup=0.4), tiny_store, tmp_path / "a", progress=False)
    assert m["val_acc"] > 0.5  # still learns the 4 classes (chance 0.25)
    fit(_cfg(model_args={}, mixup=0.4), tiny_store, tmp_path / "b", progress=False)
    fit(_cfg(model_args={}), tiny_store, tmp_path / "plain", progress=False)
    a, b, c = (load_file(str(tmp_path / n / "last.safetensors")) for n in ("a", "b", "plain"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # same seed, same run
    assert not all(torch.equal(a[k], c[k]) for k in a)  # and mixup changed it
    with pytest.raises(HccrError, match="mixup must be"):
        apply_overrides(get_preset("fast-1"), ["mixup=-1"]).validate()


def test_ema_on_a_short_run_is_not_stuck_at_the_first_weights():
    from hccr.train import make_ema

    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = make_ema(model, 0.999)
    ema.update_parameters(model)  # the first update copies the network: weight 0
    with torch.no_grad():
        model.weight.fill_(1.0)  # the network has learnt something
    for _ in range(200):
        ema.update_parameters(model)
    # A fixed 0.999 would still hold 82% of the untrained start after 200 steps (weight 0.18);
    # the warmed-up decay (at most (1 + n) / (10 + n)) follows the training.
    assert ema.module.weight.item() > 0.9


def test_a_run_cut_in_its_first_epoch_refuses_a_store_of_other_characters(tiny_store, tmp_path, monkeypatch):
    """Before its first epoch ends a run has resume points but no last.json: the characters it began with are in
    its config.json, and another store is one line, not a state_dict traceback."""
    from hccr.data.store import ConvertOptions, convert
    from hccr.data.synth import SynthConfig, synth

    cfg = _cfg(model_args={}, steps=20, epochs=1, checkpoint_minutes=1e-9)
    fit_cut_after(2, monkeypatch, cfg, tiny_store, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "last.json").exists()
    synth(tmp_path / "other", SynthConfig(chars="安宴家", writers=3, seed=1, size=40), workers=1, progress=False)
    other = convert([str(tmp_path / "other")], tmp_path / "os", ConvertOptions(size=32), workers=1, progress=False).path
    with pytest.raises(HccrError, match="holds 3 characters: resume with the run's store"):
        fit(cfg, other, tmp_path / "run", resume=True, progress=False)


def test_resume_refuses_a_pickled_state(tiny_store, tmp_path):
    run = tmp_path / "run"
    fit(_cfg(model_args={}, epochs=1), tiny_store, run, progress=False)

    import argparse

    torch.save({"model": argparse.Namespace(x=1)}, run / "last.state.pt")  # needs pickle to load: code could run
    with pytest.raises(HccrError, match="last.state.pt: not a resume state hccr can read safely"):
        fit(_cfg(model_args={}, epochs=2), tiny_store, run, resume=True, progress=False)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_torchrun_two_processes_on_cpu(tiny_store, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "hccr.cli",
           "train", "--data", str(tiny_store), "--out", str(tmp_path / "ddp"), "--epochs", "2",
           "--set", "image_size=32", "--set", "batch_size=16", "--set", "warmup_epochs=0"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    model, meta = load_checkpoint(tmp_path / "ddp")
    cfg = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert cfg["world_size"] == 2 and meta["arch"] == "charnet-s"
    last = json.loads((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()[-1])
    done = int(torch.load(tmp_path / "ddp" / "last.state.pt", weights_only=True)["epoch"])  # epochs finished
    assert done == 2 and last["val_count"] == 64  # exact: every validation sample counted once


@pytest.mark.parametrize("fails", [False, True])
def test_ranks_meet_before_leaving_the_group_unless_the_run_failed(tiny_store, tmp_path, monkeypatch, fails):
    """A finished run waits for its peers before tearing the group down (a rank that left early made gloo abort the
    other at exit); a failed one leaves at once, since a peer that is gone would never reach the barrier."""
    import hccr.distributed as D
    import hccr.train as T

    calls = []
    monkeypatch.setattr(T.D, "setup", lambda device=None: D.DistEnv(rank=1, world_size=2))
    monkeypatch.setattr(D.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(D.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(D.dist, "destroy_process_group", lambda: calls.append("destroy"))

    def one_rank(*a, **k):
        if fails:
            raise HccrError("a rank failed")
        return {"val_acc": 1.0}

    monkeypatch.setattr(T, "_fit", one_rank)
    if fails:
        with pytest.raises(HccrError):
            fit(_cfg(), tiny_store, tmp_path / "run", progress=False)
    else:
        fit(_cfg(), tiny_store, tmp_path / "run", progress=False)
    assert calls == (["destroy"] if fails else ["barrier", "destroy"])
    calls.clear()  # a peer lost at the last barrier: the group is still left, and the error still said

    def lost():
        raise RuntimeError("peer gone")

    monkeypatch.setattr(D.dist, "barrier", lost)
    with pytest.raises(RuntimeError, match="peer gone"):
        D.cleanup(D.DistEnv(rank=1, world_size=2), finished=True)
    assert calls == ["destroy"]


def test_precision_probe_times_both_dtypes_and_leaves_the_run_untouched():
    from hccr.models import create_model
    from hccr.train import probe_precision

    cfg = apply_overrides(get_preset("fast-1"), ["image_size=32", "batch_size=8"])
    model = create_model("charnet-s", 4, 32, widths=(8, 16, 16, 32), stem=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    res = probe_precision(model, cfg, torch.device("cpu"), 4, steps=1)
    assert res["chosen"] in ("fp32", "bf16") and res["fp32_img_per_s"] > 0 and res["bf16_img_per_s"] > 0
    assert torch.equal(torch.get_rng_state(), rng)  # dropout's stream is where it was
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics too


def test_a_run_of_a_few_steps_skips_the_precision_probe(tiny_store, tmp_path, monkeypatch):
    """The probe costs about ten steps of both precisions: a smoke run or quick fine-tune of a few steps keeps the
    default and starts at once; a longer run still measures."""
    import hccr.train as T

    calls = []
    monkeypatch.setattr(T, "_cpu_has_bf16", lambda: True)
    monkeypatch.setattr(T, "probe_precision", lambda *a, **k: calls.append(1) or
                        {"chosen": "fp32", "fp32_img_per_s": 1, "bf16_img_per_s": 1})
    fit(_cfg(amp=True, amp_probe=True, steps=T.PROBE_MIN_STEPS - 1), tiny_store, tmp_path / "short", progress=False)
    assert calls == []
    fit(_cfg(amp=True, amp_probe=True, steps=T.PROBE_MIN_STEPS, limit_steps=2), tiny_store, tmp_path / "long",
        progress=False)
    assert calls == [1]


def test_a_store_of_one_character_is_refused_for_training(tmp_path):
    """A classifier of one class reads 100% and learns nothing: said before any step (convert --limit on a PNG export
    easily makes one)."""
    from hccr.data.store import ConvertOptions, convert
    from hccr.data.synth import SynthConfig, synth

    synth(tmp_path / "gnt", SynthConfig(chars="永", writers=6, seed=0), workers=1, progress=False)
    store = convert([str(tmp_path / "gnt")], tmp_path / "st", ConvertOptions(size=32), workers=1, progress=False).path
    with pytest.raises(HccrError, match="hold 1 character"):
        fit(_cfg(steps=2), store, tmp_path / "run", progress=False)


def test_cli_train_resume_continues_with_the_runs_own_config(tiny_store, tmp_path):
    """`hccr train --resume` rebuilds the run from its config.json (not the preset's defaults) and trains on
    from where it stopped; --epochs given on resume extends it."""
    from conftest import run_cli

    out = tmp_path / "run"
    r = run_cli("train", "--preset", "fast-1", "--data", tiny_store, "--out", out, "--epochs", "1",
                "--set", "image_size=32", "--set", "batch_size=32", "--set", "amp_probe=false")
    assert r.returncode == 0, r.stderr
    r = run_cli("train", "--preset", "fast-1", "--data", tiny_store, "--out", out, "--resume", "--epochs", "2")
    assert r.returncode == 0, r.stderr  # the scripts rerun their own command with --resume added: its preset is fine
    assert "resuming" in r.stdout
    epochs = [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]  # epoch 1 was not trained again
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert (cfg["image_size"], cfg["batch_size"], cfg["epochs"]) == (32, 32, 2)  # the run's, not fast-1's 64 px


def test_a_diverging_run_stops_with_one_line_and_saves_no_nan_weights(tiny_store, tmp_path, monkeypatch):
    """A run whose loss stops being a number after its first epoch (16 steps): it stops at once, says what to do,
    and its checkpoints (written at the first epoch's end) hold finite weights. It trained on, exited 0 and saved
    NaN weights as "best"."""
    from safetensors.torch import load_file

    import hccr.train as T

    real_loss, real_eval, after_epoch_1 = T.make_loss, T.evaluate, []

    def poisoned(cfg):  # the loss is NaN from the first step after epoch 1's validation
        loss_fn = real_loss(cfg)
        return lambda *a, **kw: loss_fn(*a, **kw) * (float("nan") if after_epoch_1 else 1.0)

    def validate(*a, **kw):
        out = real_eval(*a, **kw)
        after_epoch_1.append(True)
        return out

    monkeypatch.setattr(T, "make_loss", poisoned)
    monkeypatch.setattr(T, "evaluate", validate)
    cfg = _cfg(model_args={}, steps=30, epochs=1)
    with pytest.raises(HccrError, match=r"the run diverged and stops here .* lower --lr \(it was 0.003\)"):
        fit(cfg, tiny_store, tmp_path / "run", progress=False)
    saved = sorted((tmp_path / "run").glob("*.safetensors"))
    assert [p.name for p in saved] == ["best.safetensors", "last.safetensors"]
    for ckpt in saved:
        assert all(torch.isfinite(t).all() for t in load_file(str(ckpt)).values()), ckpt
    assert json.loads((tmp_path / "run" / "last.json").read_text())["metrics"]["step"] == 16  # epoch 1's


def test_a_store_without_a_validation_split_says_what_validates_the_run(tiny_store, tmp_path, capsys):
    import numpy as np

    from hccr.data.store import Store, store_view

    whole = store_view(tiny_store, tmp_path / "whole", np.zeros(len(Store(tiny_store)), np.uint8))  # no val split
    fit(_cfg(model_args={}, steps=2, epochs=1), whole, tmp_path / "run", progress=True)
    out = capsys.readouterr().out
    assert "has no validation split: 16 of its training samples (val_fraction 0.05, drawn with seed 1)" in out, out
    assert "`hccr predict --split val` cannot pick them" in out
    fit(_cfg(model_args={}, steps=2, epochs=1), tiny_store, tmp_path / "run2", progress=True)
    assert "no validation split" not in capsys.readouterr().out  # a store with its own split: nothing to say


def test_a_run_stopped_before_its_first_resume_state_starts_again_on_resume(tiny_store, tmp_path, capsys):
    """Killed while saving epoch 1 (checkpoints written, no last.state.pt yet): --resume said "nothing to resume"
    and a fresh start "already holds a training run", each sending the user to the other."""
    cfg = _cfg(model_args={}, steps=20, epochs=1)
    fit(cfg, tiny_store, tmp_path / "run", progress=False)
    (tmp_path / "run" / "last.state.pt").unlink()  # as a kill during the first state's save leaves the folder
    with pytest.raises(HccrError, match="already holds a training run; pass --resume"):
        fit(cfg, tiny_store, tmp_path / "run", progress=False)
    m = fit(cfg, tiny_store, tmp_path / "run", resume=True, progress=False)
    assert m["step"] == 20 and "starts again from step 0" in capsys.readouterr().err
    epochs = [json.loads(x)["epoch"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2] and (tmp_path / "run" / "last.state.pt").exists()
