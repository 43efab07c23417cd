"""How many CPU threads a run uses: the one rule for `cnnzoo train` and `cnnzoo.train.train`.

torch's CPU kernels run on GNU OpenMP with one thread per core by default. Every kernel splits
its work evenly and ends at a barrier, thousands of times per training step; when another
process holds one of the cores, the thread sharing that core gets half of it (or waits a whole
scheduler slice to run) and every barrier waits for it, while the thread already done spins
on the other core. On the 2-core project machine that turned 88 images/s (1 thread) into 20
(2 threads) beside one busy process (docs/benchmarks.md, "Threads").

So, unless told a number, a run takes one thread per core that is idle now, measured from
/proc/stat over a short window (never more than the cores it may run on, never fewer than
one), and looks again at each epoch, since the machine's load changes under a long run. The
rule itself (`pick_threads`, `idle_cores`) lives in infer/machine.py, where the inference
engines take their thread count from it too.
"""

from __future__ import annotations

import logging
import os

import torch

from cnnzoo.infer.machine import SAMPLE_S, idle_cores, pick_threads, usable_cpus

log = logging.getLogger("cnnzoo")

__all__ = ["SAMPLE_S", "ThreadPolicy", "idle_cores", "pick_threads", "usable_cpus"]


class ThreadPolicy:
    """Sets torch's thread count for a run: `threads` fixes it; None picks it from the idle
    cores at each `apply()` (and 1 for tiny inputs, which gain nothing from a second thread)."""

    def __init__(self, threads: int | None, device: torch.device, tiny: bool = False) -> None:
        self.fixed = threads
        self.active = device.type == "cpu"
        self.tiny = tiny
        self.current: int | None = None

    def apply(self) -> int:
        """Set and return the thread count for the next stretch of work (an epoch)."""
        if self.fixed is not None:
            n = self.fixed
        elif not self.active:
            return torch.get_num_threads()  # GPU runs: the host threads do not matter
        elif self.tiny:
            n = 1
        else:
            n = pick_threads(usable_cpus(), idle_cores())
        if n != self.current and (self.current is not None or self.fixed is None):
            log.info("CPU threads: %d%s", n, "" if self.fixed else self._why(n))
        self.current = n
        torch.set_num_threads(n)  # always: the caller may have changed it in between
        return n

    def _why(self, n: int) -> str:
        if self.tiny:
            return " (tiny images gain nothing from more)"
        cpus = usable_cpus()
        if n < cpus:
            return f" of {cpus} cores (the others are busy; --threads {cpus} to insist)"
        return " (one per core; re-checked each epoch, fewer when other processes are busy)"


def run_thread_policy(
    threads: int | None, device: torch.device, tiny: bool, world: int, distributed: bool
) -> ThreadPolicy:
    """The policy of one training process: `threads` when given; under torchrun on a CPU the
    processes on this machine share its cores; tiny inputs (digits) train on one thread."""
    if threads is None and distributed and device.type == "cpu" and not tiny:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        threads = max(1, usable_cpus() // local)
    return ThreadPolicy(threads, device, tiny=tiny)
