"""Dynamic batching: images of concurrent requests run through the model together.

The first request waiting opens a batch; requests arriving within `max_delay_ms` join it
until it holds `max_batch` images. The model runs in one worker thread, so the event loop
keeps accepting (and decoding) requests while a batch computes, and those requests form the
next batch. `max_batch=1` serves every image on its own.
"""

from __future__ import annotations

import asyncio
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


class Batcher:
    """Collects requests (lists of uint8 images) into batches for `predict(images) ->
    probabilities [N, classes]`; `await submit(images)` gives that request's rows."""

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
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="cnnzoo-model")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
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
        if self._queue is None:
            raise RuntimeError("Batcher.start() was not awaited")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((images, future))
        return await future

    def _run(self, images: list[torch.Tensor]) -> torch.Tensor:
        # one request may bring more than max_batch images: run those in slices
        outs = []
        for s in range(0, len(images), self.max_batch):
            chunk = images[s : s + self.max_batch]
            outs.append(self.predict(chunk))
            self.stats.add(len(chunk))
        return torch.cat(outs)

    async def _gather(self) -> list[tuple[list[torch.Tensor], asyncio.Future]]:
        assert self._queue is not None
        pending = [await self._queue.get()]
        count = len(pending[0][0])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_delay
        while count < self.max_batch:
            try:
                if self._queue.empty():
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    item = await asyncio.wait_for(self._queue.get(), left)
                else:
                    item = self._queue.get_nowait()
            except (asyncio.TimeoutError, asyncio.QueueEmpty):
                break
            pending.append(item)
            count += len(item[0])
        return pending

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            pending = await self._gather()
            live = [(ims, fut) for ims, fut in pending if not fut.done()]  # clients gone
            if not live:
                continue
            images = [im for ims, _ in live for im in ims]
            try:
                probs = await loop.run_in_executor(self._worker, self._run, images)
            except Exception as e:  # the model failed: every waiting request hears why
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            start = 0
            for ims, fut in live:
                if not fut.done():
                    fut.set_result(probs[start : start + len(ims)])
                start += len(ims)
