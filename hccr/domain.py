"""Domain-adversarial training: pooled features that cannot tell synthetic writers from real ones.

A store that mixes real handwriting with ``hccr synth`` writers lets a network learn "looks synthetic"
as a feature, and the characters that only synthetic writers drew (level 2) are then learnt as
synthetic-looking classes that real handwriting of them does not resemble. With ``--set
domain_loss=W`` a small critic reads the network's pooled features through a gradient reversal
layer and learns to tell real samples from synthetic ones; the network gets the critic's gradient
reversed, so its features learn to carry no trace of where a sample came from.

Only characters written by both kinds of writer take part (a character only synthetic writers drew
would otherwise be pushed towards other characters' real samples), and the reversal grows from 0 to
1 over the run (``reversal``), as the critic needs features worth reading before it is fought.
Which writers are real is a glob on the store's writer names (``real_writers``: CASIA's writers are
numbered, ``hccr synth`` names its own ``PREFIX0000``)."""

from __future__ import annotations

import fnmatch
import math

import numpy as np
import torch
from torch import Tensor, nn

from .errors import HccrError

REAL, SYNTHETIC, OUT = 1, 0, -1  # a sample's domain; OUT: no part in the domain loss


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.scale * grad, None


def reverse_gradient(x: Tensor, scale: float) -> Tensor:
    """``x`` unchanged going forward; its gradient multiplied by ``-scale`` going back."""
    return _Reverse.apply(x, scale)


def reversal(progress: float) -> float:
    """The reversal's strength at ``progress`` (0..1) of the run: 2 / (1 + exp(-10 p)) - 1, from 0 to ~1."""
    return 2.0 / (1.0 + math.exp(-10.0 * min(max(progress, 0.0), 1.0))) - 1.0


class DomainCritic(nn.Module):
    """Real-or-synthetic logit from pooled features (one hidden layer)."""

    def __init__(self, features: int, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))

    def forward(self, features: Tensor, scale: float) -> Tensor:
        return self.net(reverse_gradient(features.float(), scale)).squeeze(1)


def domain_loss(critic: DomainCritic, features: Tensor, domains: Tensor, scale: float) -> tuple[Tensor, int, int]:
    """(binary cross-entropy of the critic over the samples that take part, how many it read right, how many
    took part); a batch with none of them gives a zero loss that still reaches the critic's weights."""
    take = domains >= 0
    logit = critic(features[take], scale)
    if logit.numel() == 0:
        return sum(p.sum() for p in critic.parameters()) * 0.0, 0, 0
    target = domains[take].float()
    loss = nn.functional.binary_cross_entropy_with_logits(logit, target)
    return loss, int(((logit.detach() > 0) == (target > 0.5)).sum()), int(logit.numel())


def sample_domains(writer_ids: np.ndarray, writer_names: list[str], labels: np.ndarray, indices: np.ndarray,
                   real_writers: str, where: str = "the store") -> np.ndarray:
    """Each sample's domain (REAL, SYNTHETIC or OUT) over the whole store: a sample is REAL when its writer's
    name matches the glob ``real_writers``, SYNTHETIC when it has a writer that does not; OUT when its writer
    is unknown or when its character lacks samples of either kind among ``indices`` (the training split)."""
    if len(writer_ids) and writer_ids.max() >= len(writer_names):
        raise HccrError(f"{where}: damaged store: writer ids up to {writer_ids.max()} but {len(writer_names)} names "
                        "in writers.txt; convert it again")
    is_real = np.array([fnmatch.fnmatchcase(n, real_writers) for n in writer_names] + [False], bool)
    known = writer_ids >= 0
    dom = np.where(known, np.where(is_real[writer_ids], REAL, SYNTHETIC), OUT).astype(np.int8)
    n = int(labels.max()) + 1 if len(labels) else 0
    tr = indices[dom[indices] >= 0]
    real, synthetic = (np.bincount(labels[tr][dom[tr] == kind], minlength=n) for kind in (REAL, SYNTHETIC))
    both = (real > 0) & (synthetic > 0)
    if not both.any():
        raise HccrError(f"{where}: domain_loss needs characters written by real writers (names matching "
                        f"{real_writers!r}) and by synthetic ones; its training split has {real.sum():,} samples by "
                        f"real writers and {synthetic.sum():,} by synthetic ones, and no character written by both "
                        "(set real_writers to a glob of the real writers' names, or train without domain_loss)")
    dom[~both[labels]] = OUT
    return dom


class DomainAdversary:
    """The critic of one training run: reads the pooled features the model's ``neck`` produced in the step's
    forward pass (a hook), and gives the step's domain loss (``loss``); ``progress()`` is the run's progress
    (0..1), which sets the reversal's strength."""

    def __init__(self, model: nn.Module, domains: np.ndarray, progress, device: torch.device):
        neck = getattr(model, "neck", None)
        if neck is None or not hasattr(model, "num_features"):
            raise HccrError(f"domain_loss needs a model whose pooled features come out of its neck "
                            f"({type(model).__name__} has none)")
        with torch.random.fork_rng(devices=[]):  # its own seed: the run's random stream (dropout) stays as without it
            torch.manual_seed(0)
            self.critic = DomainCritic(model.num_features).to(device)
        self.domains, self.progress, self.device = torch.from_numpy(domains.astype(np.int64)), progress, device
        seen: dict = {}
        # a plain function, not a bound method, so that deep copies of the model (its weight average) copy no
        # critic; they share the hook, harmlessly: ``loss`` reads the features right after the training forward
        neck.register_forward_hook(lambda _m, _i, out: seen.__setitem__("features", out))
        self._seen = seen

    def loss(self, batch: np.ndarray) -> tuple[Tensor, int, int]:
        """The domain loss of the step whose forward pass just ran on the samples ``batch`` (store indices)."""
        features = self._seen.pop("features")
        return domain_loss(self.critic, features, self.domains[batch].to(self.device), reversal(self.progress()))

    def chance(self, indices: np.ndarray) -> float:
        """The critic's accuracy when it tells nothing apart: the share of the larger kind among ``indices``'s
        samples that take part."""
        dom = self.domains[indices]
        real, taking = int((dom == REAL).sum()), int((dom >= 0).sum())
        return round(max(real, taking - real) / max(taking, 1), 4)
