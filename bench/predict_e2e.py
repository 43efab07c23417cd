"""`cnnzoo predict` end to end on a folder of JPEGs against the engine alone, and where the
time goes: reading + decoding + resizing alone (the thread pool, and one thread), the engine
alone on preprocessed batches of the same size, and the whole of `Predictor.predict_files`
(decoding overlapping inference). Rounds alternate the three so that load hurts each alike.

    OMP_NUM_THREADS=2 PYTHONPATH=src python bench/predict_e2e.py RUN IMAGE_FOLDER --images 1000
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from cnnzoo.export.engines import open_predictor
from cnnzoo.infer.predict import collect_images


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run")
    p.add_argument("folder")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--backend", default="auto")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    files, _ = collect_images([args.folder])
    step = max(1, len(files) // args.images)
    files = files[::step][: args.images]  # spread over the classes
    predictor = open_predictor(args.run, args.backend, "cpu")
    predictor.predict_files(files[: args.batch], args.batch)  # the engine is chosen here
    print(f"engine: {predictor.path.describe()}")
    x = predictor.inputs(files[: args.batch])
    n_batches = len(files) // args.batch
    threads = torch.get_num_threads()

    def engine_alone() -> float:
        t = time.perf_counter()
        for _ in range(n_batches):
            predictor.probabilities_of(x)
        return n_batches * args.batch / (time.perf_counter() - t)

    def decode(workers: int) -> float:
        t = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(predictor._read, files))
        return len(files) / (time.perf_counter() - t)

    def end_to_end() -> float:
        t = time.perf_counter()
        results, errors = predictor.predict_files(files, args.batch, 1)
        assert len(results) == len(files) and not errors
        return len(files) / (time.perf_counter() - t)

    ways = {
        "engine alone (preprocessed batches)": engine_alone,
        "read + decode + resize, pool": lambda: decode(os.cpu_count() or 1),
        "read + decode + resize, 1 thread": lambda: decode(1),
        "predict end to end": end_to_end,
    }
    rates: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(args.rounds):
        for k, f in ways.items():
            rates[k].append(f())
    print(
        f"{len(files)} JPEGs from {args.folder}, batch {args.batch}, {threads} torch threads, "
        f"load {os.getloadavg()[0]:.2f}; images/s, medians of {args.rounds} rounds"
    )
    for k, v in rates.items():
        print(f"  {k:<40} {statistics.median(v):>8.1f}")
    e2e = statistics.median(rates["predict end to end"])
    alone = statistics.median(rates["engine alone (preprocessed batches)"])
    print(f"end to end / engine alone: {100 * e2e / alone:.0f}%")


if __name__ == "__main__":
    main()
