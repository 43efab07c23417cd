"""Data-parallel training on PyTorch's own engine (torch.distributed, launched by torchrun).

`Dist` says which process this is (rank, world size) and wraps the few collectives the trainer
needs; a single process gets `Dist()` and every collective is a no-op. `init_from_env` joins the
process group that torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR/PORT): NCCL on GPUs, gloo on CPUs. `launch` runs `cnnzoo train` under torchrun.

torch's SyncBatchNorm runs on GPUs only; `CpuSyncBatchNorm` does the same on CPUs (gloo), so
that `--sync-bn` works, and is tested, everywhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass

import torch
from torch import nn

from cnnzoo.errors import CnnzooError
from cnnzoo.train.signals import STOP_SIGNALS


@dataclass(frozen=True)
class Dist:
    """This process's place in the group; the defaults are a single process."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _device(self) -> torch.device:
        # NCCL moves CUDA tensors only; gloo CPU ones
        backend = torch.distributed.get_backend()
        return torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else "cpu"

    def broadcast(self, obj):
        """`obj` as rank 0 has it, on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """Sum over ranks, in place (returns `t`)."""
        return self._reduce(t, torch.distributed.ReduceOp.SUM)

    def max_(self, t: torch.Tensor) -> torch.Tensor:
        return self._reduce(t, torch.distributed.ReduceOp.MAX)

    def _reduce(self, t: torch.Tensor, op) -> torch.Tensor:
        if self.enabled:
            moved = t.to(self._device())
            torch.distributed.all_reduce(moved, op=op)
            t.copy_(moved)
        return t

    def gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        """`t` of every rank (all the same shape), in rank order, on the CPU."""
        if not self.enabled:
            return [t.cpu()]
        moved = t.to(self._device())
        out = [torch.empty_like(moved) for _ in range(self.world)]
        torch.distributed.all_gather(out, moved)
        return [o.cpu() for o in out]

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()


def current() -> Dist:
    """The group this process belongs to (joined by `init_from_env`), or a single process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return Dist(
            torch.distributed.get_rank(),
            torch.distributed.get_world_size(),
            int(os.environ.get("LOCAL_RANK", 0)),
        )
    return Dist()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_env(device: str = "auto") -> Dist:
    """Join the process group torchrun set up (once); a plain process stays single."""
    if not launched_by_torchrun() or torch.distributed.is_initialized():
        return current()
    if not torch.distributed.is_available():
        raise CnnzooError("this PyTorch build has no torch.distributed; run one process")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    torch.distributed.init_process_group(backend="nccl" if use_cuda else "gloo")
    return current()


def shutdown(orderly: bool = True, timeout_s: float = 60.0) -> None:
    """Leave the group. `orderly` (after a run that ended normally on every rank): every rank
    past its last collective (a barrier), the others gone, rank 0 last. Rank 0 hosts the
    rendezvous store, and a rank whose peers vanished while it was still tearing its
    connections down can abort in C++ ("terminate called without an active exception", seen
    under load). After an error, leave at once: a barrier could wait on a peer that is still
    inside another collective."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    dist = current()
    if not (orderly and dist.enabled):
        torch.distributed.destroy_process_group()
        return
    from torch.distributed.distributed_c10d import _get_default_store

    store = _get_default_store()  # kept: our own reference outlives the group
    try:
        torch.distributed.barrier()
    except RuntimeError:  # a peer already failed: nothing to wait for
        torch.distributed.destroy_process_group()
        return
    torch.distributed.destroy_process_group()
    key = "cnnzoo/left"
    try:
        if dist.rank != 0:
            store.add(key, 1)
            return
        deadline = time.monotonic() + timeout_s
        while store.add(key, 0) < dist.world - 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    except RuntimeError:  # the store's host is gone: nobody left to wait for
        pass


def launch(nproc: int, argv: list[str]) -> int:
    """Run `cnnzoo ARGV` in `nproc` processes on this machine under torchrun; its exit code.

    torchrun runs in a session of its own and stop signals (SIGTERM, SIGINT, SIGHUP) sent to
    this process go straight to the workers, which save their state and end cleanly (torchrun
    answers a signal of its own with a traceback); the code is then 128 + the signal's number.
    """
    if nproc < 1:
        raise CnnzooError(f"--nproc must be at least 1 (got {nproc})")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc-per-node", str(nproc), "-m", "cnnzoo", *argv]
    return run_forwarding_signals(cmd)


def run_forwarding_signals(cmd: list[str]) -> int:
    """Run `cmd` in a session of its own, handing stop signals to the processes it starts
    (to itself when it started none); its exit code, or 128 + the signal's number when a
    signal stopped it cleanly."""
    import signal

    proc = subprocess.Popen(cmd, start_new_session=True)
    received: list[int] = []

    def forward(signum, frame) -> None:
        received.append(signum)
        for pid in descendants(proc.pid) or [proc.pid]:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    previous = {s: signal.signal(s, forward) for s in STOP_SIGNALS}
    try:
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 128 + received[0] if received and code == 0 else code


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (torchrun starts its workers in sessions of their own);
    [] where /proc does not say."""
    from pathlib import Path

    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


class _SumOverRanks(torch.autograd.Function):
    """Sum of a tensor over ranks, differentiable: the gradient of a sum every rank uses is
    the sum of their gradients."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        out = t.clone()
        torch.distributed.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        torch.distributed.all_reduce(grad)
        return grad


class CpuSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the whole global batch: per-channel
    sums and sums of squares are added over ranks (an autograd-aware all-reduce, so gradients
    flow through the shared statistics as in torch's GPU SyncBatchNorm). Same parameters and
    buffers as BatchNorm2d, so checkpoints do not change."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and torch.distributed.is_initialized()):
            return super().forward(x)
        c = x.shape[1]
        xf = x.float()
        count = torch.tensor([x.numel() / c], dtype=torch.float32, device=x.device)
        local = torch.cat([xf.sum((0, 2, 3)), (xf * xf).sum((0, 2, 3)), count])
        total = _SumOverRanks.apply(local)
        n = total[-1]
        mean = total[:c] / n
        var = (total[c : 2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (
                    self.momentum
                    if self.momentum is not None
                    else 1.0 / float(self.num_batches_tracked)
                )
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_((var * n / (n - 1).clamp_min(1)).detach(), m)
        shape = (1, c, 1, 1)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every plain BatchNorm2d in `model` made to share statistics across ranks (torch's
    SyncBatchNorm on GPUs, CpuSyncBatchNorm on CPUs). Subclasses that add to BN (ResNetV2's
    BN + ReLU) are left alone: replacing them would drop what they add."""
    kind = nn.SyncBatchNorm if device.type == "cuda" else CpuSyncBatchNorm
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            sync = kind(
                child.num_features, child.eps, child.momentum, child.affine,
                child.track_running_stats,
            )  # fmt: skip
            sync.to(child.weight.device if child.affine else device)
            sync.load_state_dict(child.state_dict())
            sync.train(child.training)
            for p_new, p_old in zip(sync.parameters(), child.parameters(), strict=True):
                p_new.requires_grad_(p_old.requires_grad)
            setattr(model, name, sync)
        else:
            convert_sync_batchnorm(child, device)
    return model
