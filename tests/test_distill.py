import json

import pytest
import torch
from conftest import run_cli

from hccr.distill import Teacher, distill_loss
from hccr.errors import HccrError
from hccr.predict import Recognizer
from hccr.train import fit


def test_distill_loss_is_zero_only_when_the_student_agrees():
    logits = torch.randn(8, 5)
    same = torch.softmax(logits / 2.0, -1)
    assert distill_loss(logits, same, 2.0).abs() < 1e-5
    assert distill_loss(-logits, same, 2.0) > 0.1


def test_teacher_answers_in_the_students_character_order(tiny_run):
    x = torch.rand(3, 1, 32, 32)
    rec = Recognizer.from_checkpoint(tiny_run)  # knows 一人十口
    ref = torch.softmax(rec.logits(x, 5), -1).clone()
    t = Teacher((str(tiny_run),), (), "口一X", temperature=1.0, crops=5, device=torch.device("cpu"))
    soft = t(x)
    assert soft.shape == (3, 3) and torch.allclose(soft.sum(1), torch.ones(3))
    kept = ref[:, [3, 0]] / ref[:, [3, 0]].sum(1, keepdim=True)  # 口 and 一, renormalised; X gets nothing
    assert torch.allclose(soft[:, :2], kept, atol=1e-5) and (soft[:, 2] == 0).all()
    # X, which no teacher knows, learns from its label: its samples' targets are their one-hot labels (they said
    # "口 or 一", and a student distilled with the shipped model read 0 of 20 images of 宬, its new character)
    assert t.unknown == "X"
    y = torch.tensor([2, 0, 2])
    mixed = t.with_labels(soft.clone(), y)
    assert torch.equal(mixed[[0, 2]], torch.tensor([[0.0, 0.0, 1.0]] * 2)) and torch.equal(mixed[1], soft[1])
    with pytest.raises(HccrError, match="2 teacher weights for 1 teachers"):
        Teacher((str(tiny_run),), (0.5, 0.5), "口一", 1.0, 5, torch.device("cpu"))


def test_distilled_student_loads_and_predicts_like_any_checkpoint(tiny_run, tiny_store, tmp_path):
    r = run_cli("distill", "--teacher", tiny_run, "--teacher", tiny_run, "--data", tiny_store, "--out", tmp_path / "s",
                "--epochs", "1", "--temperature", "3", "--set", "image_size=32", "--set", "model_args.aux=false",
                "--set", "aux_weights=")
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "s" / "best.json").read_text())
    assert meta["config"]["teachers"] == [str(tiny_run)] * 2 and meta["config"]["distill_temperature"] == 3.0
    r = run_cli("predict", "--model", tmp_path / "s", tiny_store, "--split", "val")
    assert r.returncode == 0, r.stderr
    assert "accuracy on " in r.stdout and "top1" in r.stdout
    # a finished run resumed needs no --teacher (it has its own), and refuses one that would be ignored
    r = run_cli("distill", "--data", tiny_store, "--out", tmp_path / "s", "--resume")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    r = run_cli("distill", "--teacher", tiny_run, "--data", tiny_store, "--out", tmp_path / "s", "--resume")
    assert r.returncode == 2 and "leave --teacher out" in r.stderr
    r = run_cli("distill", "--data", tiny_store, "--out", tmp_path / "s2")
    assert r.returncode == 2 and "distill needs --teacher" in r.stderr


def test_a_resumed_distillation_ends_where_an_uninterrupted_one_does(tiny_store, tiny_run, tmp_path, monkeypatch):
    """Stopped mid-epoch and resumed, a student ends with the very weights of one never stopped (the teacher's
    networks drew their first weights from the run's random stream just after the resume point restored it)."""
    from conftest import fit_cut_after
    from safetensors.torch import load_file
    from test_train import _cfg

    cfg = _cfg(model_args={}, steps=20, epochs=1, checkpoint_minutes=1e-9, teachers=(str(tiny_run),),
               distill_temperature=2.0)
    fit(cfg, tiny_store, tmp_path / "whole", progress=False)
    fit_cut_after(2, monkeypatch, cfg, tiny_store, tmp_path / "cut", progress=False)
    monkeypatch.undo()
    fit(cfg, tiny_store, tmp_path / "cut", resume=True, progress=False)
    a, b = load_file(str(tmp_path / "whole" / "last.safetensors")), load_file(str(tmp_path / "cut" / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
