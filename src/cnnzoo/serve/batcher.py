"""Dynamic batching: images of concurrent requests run through the model together.

The first request waiting opens a batch; requests arriving within `max_delay_ms` join it
until it holds `max_batch` images. A larger request is split into batches that take turns
with the requests arriving meanwhile. The model runs in one worker thread, so the event loop
keeps accepting (and decoding) requests while a batch computes, and those requests form the
next batch. `max_batch=1` serves every image on its own.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch


@dataclass
class BatchStats:
    batches: int = 0
    images: int = 0
    largest: int = 0
    sizes: dict[int, int] = field(default_factory=dict)  # images per forward pass -> count

    def add(self, n: int) -> None:
        self.batches += 1
        self.images += n
        self.largest = max(self.largest, n)
        self.sizes[n] = self.sizes.get(n, 0) + 1

    def to_dict(self) -> dict:
        return {
            "batches": self.batches,
            "images": self.images,
            "largest_batch": self.largest,
            "batch_sizes": {str(k): v for k, v in sorted(self.sizes.items())},
        }


class _Job:
    """One request's images, the rows computed so far, and where the next batch starts."""

    def __init__(self, images: list[torch.Tensor], future: asyncio.Future) -> None:
        self.images, self.future = images, future
        self.rows: list[torch.Tensor] = []
        self.next = 0

    @property
    def left(self) -> int:
        return len(self.images) - self.next


class Batcher:
    """Collects requests (lists of uint8 images) into batches for `predict(images) ->
    probabilities [N, classes]`; `await submit(images)` gives that request's rows.

    No forward pass holds more than `max_batch` images. A request with more is served a
    batch at a time, and goes behind the requests that arrived meanwhile after each batch,
    so a small request waits for at most about one batch, however large the others."""

    def __init__(
        self,
        predict: Callable[[list[torch.Tensor]], torch.Tensor],
        max_batch: int = 16,
        max_delay_ms: float = 5.0,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.predict = predict
        self.max_batch = max_batch
        self.max_delay = max(0.0, max_delay_ms) / 1000
        self.stats = BatchStats()
        self._jobs: deque[_Job] = deque()
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="cnnzoo-model")

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._worker.shutdown(wait=True)

    async def submit(self, images: list[torch.Tensor]) -> torch.Tensor:
        if self._arrived is None:
            raise RuntimeError("Batcher.start() was not awaited")
        future = asyncio.get_running_loop().create_future()
        if not images:
            return torch.empty(0)
        self._jobs.append(_Job(images, future))
        self._arrived.set()
        return await future

    async def _wait_for_jobs(self, timeout: float | None) -> bool:
        assert self._arrived is not None
        self._arrived.clear()
        try:
            await asyncio.wait_for(self._arrived.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def _gather(self) -> list[tuple[_Job, int, int]]:
        """(job, first, end) slices of at most max_batch images in all, in arrival order;
        waits up to max_delay after the first for the batch to fill."""
        while not self._jobs:
            await self._wait_for_jobs(None)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_delay
        batch, room, again = [], self.max_batch, None
        while room > 0:
            if not self._jobs:
                left = deadline - loop.time()
                if left <= 0 or not await self._wait_for_jobs(left):
                    break
                continue
            job = self._jobs.popleft()
            if job.future.done():  # the client is gone
                continue
            take = min(job.left, room)
            batch.append((job, job.next, job.next + take))
            job.next += take
            room -= take
            if job.left:
                again = job  # the rest goes behind everything that waits now
        if again is not None:
            self._jobs.append(again)
        return batch

    def _run(self, images: list[torch.Tensor]) -> torch.Tensor:
        probs = self.predict(images)
        self.stats.add(len(images))
        return probs

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            if not batch:
                continue
            images = [im for job, a, b in batch for im in job.images[a:b]]
            try:
                probs = await loop.run_in_executor(self._worker, self._run, images)
            except Exception as e:  # the model failed: every request in the batch hears why
                for job, _, _ in batch:
                    if not job.future.done():
                        job.future.set_exception(e)
                continue
            start = 0
            for job, a, b in batch:
                job.rows.append(probs[start : start + b - a])
                start += b - a
                if not job.left and not job.future.done():
                    job.future.set_result(torch.cat(job.rows))
