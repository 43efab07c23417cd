"""Stopping a run cleanly: SIGTERM (a scheduler's preemption), SIGINT (Ctrl-C) and SIGHUP (a
closed terminal) are turned into a request the training loop sees between two steps, so it saves
its state and returns instead of dying mid-step. A second Ctrl-C stops at once (the state on
disk is always whole, so that loses only the steps since the last save)."""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name)
)


class StopRequests:
    """While entered (in the main thread), the stop signals set `received` to the signal's
    name instead of ending the process. Elsewhere it does nothing."""

    def __init__(self) -> None:
        self.received: str | None = None
        self.signum = 0
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.received == "SIGINT":
            raise KeyboardInterrupt  # asked twice: stop now
        self.received = signal.Signals(signum).name
        self.signum = signum

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
