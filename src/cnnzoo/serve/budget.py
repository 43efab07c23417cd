"""A memory budget shared by every request in flight: request bodies, the pixels of a decode
in progress and the decoded images a request holds until it is answered.

A request takes what it needs before it allocates it, and gives it all back when it ends
(`Lease`). When the budget is spent, a taker waits a little for others to give back, then is
refused (`Overloaded`, which the app answers with 503 and Retry-After); what could never fit
is refused at once (`TooLarge`, a 413).
"""

from __future__ import annotations

import asyncio

# how long a request waits for others to give memory back before it is refused
WAIT_S = 5.0


class Overloaded(Exception):
    """The budget is spent by other requests now: try again shortly."""


class TooLarge(Exception):
    """More than the whole budget: no waiting will help."""


class MemoryBudget:
    """`limit` bytes shared by every request in flight; `used` and `peak` as they stand."""

    def __init__(self, limit: int, wait_s: float = WAIT_S) -> None:
        self.limit = limit
        self.wait_s = wait_s
        self.used = 0
        self.peak = 0
        self.refused = 0
        self._freed: asyncio.Condition | None = None  # made on the event loop that uses it

    def _condition(self) -> asyncio.Condition:
        if self._freed is None:
            self._freed = asyncio.Condition()
        return self._freed

    async def take(self, n: int) -> None:
        """Hold `n` more bytes, waiting up to `wait_s` for them; Overloaded / TooLarge."""
        if n > self.limit:
            raise TooLarge(f"{n / 2**20:,.0f} MB, over the server's memory budget of "
                           f"{self.limit / 2**20:,.0f} MB")  # fmt: skip
        if self.used + n > self.limit:
            freed = self._condition()
            try:
                async with freed:
                    await asyncio.wait_for(
                        freed.wait_for(lambda: self.used + n <= self.limit), self.wait_s
                    )
            except asyncio.TimeoutError:
                self.refused += 1
                raise Overloaded(
                    f"the server's memory budget ({self.limit / 2**20:,.0f} MB) is in use "
                    "by other requests"
                ) from None
        self.used += n
        self.peak = max(self.peak, self.used)

    async def give(self, n: int) -> None:
        self.used -= n
        freed = self._condition()
        async with freed:
            freed.notify_all()

    def lease(self) -> Lease:
        return Lease(self)

    def to_dict(self) -> dict:
        return {
            "memory_budget_bytes": self.limit,
            "memory_in_use_bytes": self.used,
            "memory_peak_bytes": self.peak,
            "memory_refusals": self.refused,
        }


class Lease:
    """What one request holds of the budget; `close()` gives all of it back."""

    def __init__(self, budget: MemoryBudget) -> None:
        self.budget = budget
        self.held = 0

    async def take(self, n: int) -> None:
        await self.budget.take(n)
        self.held += n

    async def give(self, n: int) -> None:
        n = min(n, self.held)
        self.held -= n
        await self.budget.give(n)

    async def close(self) -> None:
        await self.give(self.held)

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
