"""Data-parallel training on torch.distributed (``torchrun --nproc-per-node N -m hamqcore.study.cli
train ...``): the process group (gloo on CPU, NCCL on GPU), batch norm over the global batch, and
the rank-aware pieces of the training loop. One process (no torchrun) is the same code with a world of
one. No scheduler of our own: torchrun starts and numbers the processes.

The study's grid (``torchrun ... -m hamqcore.study.cli demo ...``): :func:`grid` makes the ranks of a
launch workers of a grid of independent runs, each run a world of one, their results exchanged through
torch.distributed's TCPStore (no process group, so no run mistakes itself for a data-parallel rank)."""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..quant import data_parallel


@dataclass
class World:
    rank: int = 0
    size: int = 1
    device: str = "cpu"

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> World:
    """The process group when torchrun launched this process (WORLD_SIZE > 1), else a world of one.
    On CUDA each rank takes the GPU of its LOCAL_RANK."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(device=device)
    import torch.distributed as dist

    if device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return World(rank=dist.get_rank(), size=dist.get_world_size(), device=device)


def teardown(world: World) -> None:
    if world.size > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.size > 1:
        import torch.distributed as dist

        dist.barrier()


def all_sum(world: World, values):
    """The sums over the ranks of a list of Python numbers (float64)."""
    if world.size == 1:
        return list(values)
    import torch.distributed as dist

    t = torch.tensor(list(values), dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


class _AllReduceSum(torch.autograd.Function):
    """A sum over the ranks whose gradient is the sum over the ranks of the incoming gradients."""

    @staticmethod
    def forward(ctx, x):
        import torch.distributed as dist

        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, g):
        import torch.distributed as dist

        g = g.clone()
        dist.all_reduce(g)
        return g


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are those of the global batch across the ranks (sums and
    sums of squares all-reduced, with autograd through the reduction): the same as one process on the
    whole batch up to float summation order. torch's SyncBatchNorm does this on GPUs only; this works
    with gloo on the CPU too. Outside distributed training it is plain batch norm."""

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and data_parallel()):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        stats = _AllReduceSum.apply(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        c = x.shape[1]
        n = stats[2 * c]
        mean = stats[:c] / n
        var = stats[c:2 * c] / n - mean * mean
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1))
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + self.eps)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y


def convert_batchnorm(model: nn.Module) -> nn.Module:
    """Every BatchNorm1d/2d of ``model`` (in place) as a GlobalBatchNorm with the same state."""
    for name, m in list(model.named_modules()):
        if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d):
            g = GlobalBatchNorm(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats,
                                device=m.running_mean.device if m.running_mean is not None else None)
            g.load_state_dict(m.state_dict())
            g.train(m.training)
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, g)
    return model


def cross_entropy(logits: torch.Tensor, y: torch.Tensor, global_batch: int, world: World) -> torch.Tensor:
    """This rank's share of the global batch's mean cross entropy, so that DDP's gradient average over
    the ranks is the gradient of the global mean (exact for unequal shares too). One process: the
    plain mean, bit for bit."""
    if world.size == 1:
        return F.cross_entropy(logits, y)
    return F.cross_entropy(logits, y, reduction="sum") * (world.size / global_batch)


@dataclass
class Grid:
    """This process's place in a grid of independent runs: rank ``rank`` of ``size`` takes the runs
    i with i % size == rank; :meth:`gather` gives every rank every rank's results."""
    rank: int = 0
    size: int = 1
    store: Optional[Any] = None
    _calls: int = field(default=0, repr=False)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def gather(self, obj) -> List:
        """Every rank's ``obj`` (picklable), in rank order; every rank must call it, in the same order."""
        if self.size == 1:
            return [obj]
        self._calls += 1
        key = f"hamq-grid/{self._calls}"
        self.store.set(f"{key}/{self.rank}", pickle.dumps(obj))
        return [obj if r == self.rank else pickle.loads(self.store.get(f"{key}/{r}")) for r in range(self.size)]

    def close(self) -> None:
        """Rank 0 serves the store: it returns only when every rank has read everything."""
        if self.size == 1:
            return
        self.store.set(f"hamq-grid/done/{self.rank}", b"1")
        if self.main:
            self.store.wait([f"hamq-grid/done/{r}" for r in range(self.size)])


def grid(timeout_days: float = 30.0) -> Grid:
    """The ranks of a torchrun launch (WORLD_SIZE > 1) as workers of a grid, else a grid of one.

    Each run below trains as a world of one: WORLD_SIZE is set to 1 for this process and the workers
    it spawns, and on GPUs a rank sees only the GPU of its LOCAL_RANK (CUDA_VISIBLE_DEVICES). The
    store waits as long as the slowest rank's runs take (``timeout_days``)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return Grid()
    from torch.distributed import TCPStore

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    # as torch.distributed's env:// rendezvous does: torchrun's agent may already serve the store
    # (TORCHELASTIC_USE_AGENT_STORE), else rank 0 serves it
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), size, rank == 0 and not agent,
                     timeout=timedelta(days=timeout_days), **({} if agent else {"multi_tenant": True}))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip():
        devices = [d for d in visible.split(",") if d.strip()]
        os.environ["CUDA_VISIBLE_DEVICES"] = devices[local % len(devices)]
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(local)
    os.environ.update(WORLD_SIZE="1", RANK="0", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
    return Grid(rank=rank, size=size, store=store)
