"""Domain-adversarial training (hccr.domain): which samples take part, the reversed gradient, and a
training run that carries its critic through a resume."""

import numpy as np
import pytest
import torch
from conftest import fit_cut_after
from torch import nn

from hccr.augment import AugmentConfig
from hccr.config import apply_overrides, get_preset
from hccr.domain import OUT, REAL, SYNTHETIC, DomainAdversary, reversal, reverse_gradient, sample_domains
from hccr.errors import HccrError
from hccr.train import fit


def _cfg(**kw):  # a tiny fp32 charnet-s run on the tiny store, the same numbers on every CPU
    cfg = apply_overrides(get_preset("fast-1"), ["image_size=32", "batch_size=16", "warmup_epochs=0", "lr=0.003",
                                                 "amp=false", "amp_probe=false", "steps=20", "epochs=1",
                                                 "schedule=constant"])
    cfg.augment = AugmentConfig(rotation=5)
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def test_domains_mark_real_and_synthetic_and_leave_out_one_sided_characters():
    names = ["1001-c", "builtin0000", "1002-c"]
    writers = np.array([0, 1, 2, 1, 0, -1, 1, 0])
    labels = np.array([0, 0, 1, 1, 2, 0, 3, 3])  # 2: real only; 3: both, but its real sample is not trained on
    dom = sample_domains(writers, names, labels, np.arange(7), "[0-9]*")
    assert dom.tolist() == [REAL, SYNTHETIC, REAL, SYNTHETIC, OUT, OUT, OUT, OUT]
    with pytest.raises(HccrError, match=r"^runs/store: damaged store: writer ids up to 3 but 3 names"):
        sample_domains(np.array([0, 3]), names, np.array([0, 0]), np.arange(2), "[0-9]*", "runs/store")
    with pytest.raises(HccrError, match=r"^runs/store: domain_loss needs .* 0 samples by real writers and 6 by synthetic ones") as e:
        sample_domains(writers, names, labels, np.arange(7), "synth*", "runs/store")
    assert "\n" not in str(e.value)


def test_the_reversed_gradient_and_its_schedule():
    x = torch.ones(3, requires_grad=True)
    (2 * reverse_gradient(x, 0.5)).sum().backward()
    assert torch.equal(reverse_gradient(x, 0.5), x) and x.grad.tolist() == [-1.0, -1.0, -1.0]
    assert reversal(0.0) == 0.0 and 0.46 < reversal(0.1) < 0.47 and reversal(1.0) > 0.999


class _Toy(nn.Module):  # the model contract the adversary reads: pooled features out of ``neck``
    def __init__(self):
        super().__init__()
        self.neck, self.head, self.num_features = nn.Linear(3, 4), nn.Linear(4, 2), 4

    def forward(self, x):
        return self.head(self.neck(x))


def test_one_step_of_the_domain_loss_fools_the_critic_and_teaches_the_critic():
    """The network's step makes the critic's loss rise (its features hide the domain); the critic's own step
    makes it fall. Without the reversal both would fall."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    dom = torch.randint(0, 2, (256,), generator=gen)
    x = torch.cat([torch.randn(256, 2, generator=gen), dom[:, None].float()], 1)  # the domain is in the input
    model = _Toy()
    adv = DomainAdversary(model, dom.numpy().astype(np.int8), lambda: 1.0, torch.device("cpu"))

    def critic_loss() -> float:
        model(x)
        return float(adv.loss(np.arange(256))[0].detach())

    for params, rises in ((model.parameters(), True), (adv.critic.parameters(), False)):
        before = critic_loss()
        opt = torch.optim.SGD(list(params), lr=0.5)
        model(x)
        adv.loss(np.arange(256))[0].backward()
        opt.step()
        model.zero_grad(), adv.critic.zero_grad()
        assert (critic_loss() > before) == rises


def test_a_run_with_the_domain_loss_trains_its_critic_and_resumes_it(tiny_store, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    # the tiny store's writers are all synthetic: the first ten play the real ones
    cfg = _cfg(domain_loss=0.5, real_writers="synth000*", checkpoint_minutes=1e-9)  # a resume point every step
    m = fit(cfg, tiny_store, tmp_path / "whole", progress=False)
    assert 0.0 <= m["domain_acc"] <= 1.0
    fit(_cfg(), tiny_store, tmp_path / "plain", progress=False)
    whole, plain = (load_file(str(tmp_path / d / "last.safetensors")) for d in ("whole", "plain"))
    assert not all(torch.equal(whole[k], plain[k]) for k in whole)  # the loss reaches the network
    assert not any("critic" in k for k in whole)  # and the checkpoint holds the network alone

    fit_cut_after(3, monkeypatch, cfg, tiny_store, tmp_path / "cut", progress=False)  # the middle of the first epoch
    with pytest.raises(HccrError, match="same --set domain_loss"):
        fit(_cfg(checkpoint_minutes=1e-9), tiny_store, tmp_path / "cut", resume=True, progress=False)
    fit(cfg, tiny_store, tmp_path / "cut", resume=True, progress=False)
    cut = load_file(str(tmp_path / "cut" / "last.safetensors"))
    assert all(torch.equal(whole[k], cut[k]) for k in whole)  # the critic went on where it stopped

    with pytest.raises(HccrError, match="domain_loss needs characters written by real writers"):
        fit(_cfg(steps=2, domain_loss=0.5), tiny_store, tmp_path / "none", progress=False)
