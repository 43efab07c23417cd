"""The machine: which device to run on (`resolve_device`), what a figure was measured on
(CPU name and the flags that decide what bf16 costs, cores, threads, load, torch, GPU), and
the project's one thread rule (`pick_threads`: one thread per idle core), which training
(train/threads.py) and every inference engine (`inference_threads`) follow."""

from __future__ import annotations

import os
import platform
import time

import torch

from cnnzoo.errors import CnnzooError

SAMPLE_S = 0.1  # long enough for a few scheduler ticks, short beside an epoch


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask, e.g. a container's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[float, float] | None:
    """(idle, total) jiffies summed over all cores, or None where /proc/stat is missing."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return idle, sum(fields[:8])


def idle_cores(sample_s: float = SAMPLE_S) -> float | None:
    """Cores left idle by every process during a `sample_s` window (None if unknown)."""
    first = _cpu_times()
    if first is None:
        return None
    time.sleep(sample_s)
    second = _cpu_times()
    if second is None or second[1] <= first[1]:
        return None
    share = (second[0] - first[0]) / (second[1] - first[1])
    return share * (os.cpu_count() or 1)


def pick_threads(cpus: int, idle: float | None) -> int:
    """One thread per idle core (rounded), at least one, at most `cpus`; all of them when the
    load is unknown."""
    if idle is None:
        return cpus
    return max(1, min(cpus, int(idle + 0.5)))


def inference_threads(sample_s: float = SAMPLE_S) -> int:
    """The thread count every inference engine runs with: one per idle core (`pick_threads`),
    never more than torch's own setting (OMP_NUM_THREADS, `torch.set_num_threads`, --threads).
    torch is set to it too, so all engines timed against each other get the same."""
    n = min(torch.get_num_threads(), pick_threads(usable_cpus(), idle_cores(sample_s)))
    torch.set_num_threads(n)
    return n


# CPU flags that decide what bf16 costs: AMX tiles, AVX512 with bf16 dot products
BF16_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f")


def cpu_features() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict:
    """What a figure needs beside it: CPU (name, bf16 features, cores, threads), torch, GPU."""
    info = {
        "cpu": cpu_name(),
        "cpu_features": [f for f in BF16_FLAGS if f in cpu_features()],
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def bf16_is_native(device: torch.device) -> bool:
    """Whether `device` runs bf16 matrix work in hardware: a CUDA device with bf16, or a CPU
    with AMX or AVX512-BF16."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    flags = cpu_features()
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_device(name: str) -> torch.device:
    """auto (the first CUDA GPU, else the CPU), cpu, cuda or cuda:N, checked to exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise CnnzooError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise CnnzooError(f"--device {name} asked for, but no CUDA GPU is available")
        if dev.index is not None and dev.index >= count:
            raise CnnzooError(f"--device {name}: this machine has {count} GPU(s), cuda:0..")
    return dev
