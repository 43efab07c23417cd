"""The machine: which device to run on (`resolve_device`), and what a figure was measured on
(CPU name and the flags that decide what bf16 costs, cores, threads, load, torch, GPU)."""

from __future__ import annotations

import os
import platform

import torch

from cnnzoo.errors import CnnzooError

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
