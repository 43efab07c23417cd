"""Timing several ways of running the same input, taking turns: after `warmup` untimed calls of
each, `rounds` rounds of one call each, so that a busy moment on a shared machine hurts every
way alike. Shared by the bench scripts that compare paths (read its medians)."""

from __future__ import annotations

import time
from collections.abc import Callable


def time_alternately(
    runs: dict[str, Callable], x, warmup: int, rounds: int
) -> dict[str, list[float]]:
    """Milliseconds of each call of each run, by name."""
    for _ in range(warmup):
        for f in runs.values():
            f(x)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for k, f in runs.items():
            t = time.perf_counter()
            f(x)
            times[k].append(1000 * (time.perf_counter() - t))
    return times
