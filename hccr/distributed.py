"""Distributed training in one place: world size 1 is the degenerate case of DDP under torchrun."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .precision import check_device


@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str | None = None) -> DistEnv:
    """Read torchrun's environment, join the process group, pick the device and CPU threads."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    dev = check_device(device)
    if dev.type == "cuda" and dev.index is None:  # "cuda": this process's GPU under torchrun
        dev = torch.device("cuda", local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    else:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(local_world, 1)))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistEnv(rank, world, local, dev)


def all_reduce_sum(values: list[float], env: DistEnv) -> list[float]:
    """Exact sums over ranks (counts, not averages of shards)."""
    if not env.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=env.device if env.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


def barrier(env: DistEnv) -> None:
    if env.enabled:
        dist.barrier()


def cleanup(env: DistEnv, finished: bool = True) -> None:
    """Leave the process group. After a run that ``finished`` on every rank, the ranks first meet at a barrier, so
    none tears the group down while a peer is still talking to it (a rank that left early made gloo abort its
    peer at exit); after an error the peers may be gone, so the group is destroyed without waiting."""
    if env.enabled and dist.is_initialized():
        try:
            if finished:
                dist.barrier()
        finally:
            dist.destroy_process_group()
