"""Training-step throughput against thread count and OpenMP wait policy, alone and beside
busy processes that this script starts and stops itself.

    python bench/threads.py --model resnet18 --size 64 --batch 64 --busy 0 1

Each setting runs in a fresh interpreter (OpenMP reads OMP_WAIT_POLICY / GOMP_SPINCOUNT
once, when torch starts its thread pool), the settings alternate round by round, and the
median step time over rounds is reported. A busy process is a bounded pure-Python loop, the
stand-in for another user's job on the same cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CHILD = """
import sys, time, statistics, torch, torch.nn.functional as F
from cnnzoo import create_model
model_name, size, batch, steps, threads = sys.argv[1], *map(int, sys.argv[2:6])
if threads:
    torch.set_num_threads(threads)
torch.manual_seed(0)
model = create_model(model_name, num_classes=10)
x, y = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
times = []
for i in range(steps + 2):
    t = time.perf_counter()
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
    times.append(time.perf_counter() - t)
print(statistics.median(times[2:]))
"""

BUSY = "import time\nend = time.time() + {s}\nwhile time.time() < end: pass\n"

SETTINGS = {  # name -> (threads, extra environment)
    "1 thread": (1, {}),
    "2 threads": (2, {}),
    "2 threads, OMP_WAIT_POLICY=passive": (2, {"OMP_WAIT_POLICY": "passive"}),
    "engine default": (0, {}),
}


def run_child(args, threads: int, env_extra: dict[str, str]) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    env.update(env_extra)
    cmd = [sys.executable, "-c", CHILD, args.model, str(args.size), str(args.batch)]
    cmd += [str(args.steps), str(threads)]
    if threads == 0:  # the engine's own choice, as `cnnzoo train` and engine.train make it
        code = "import torch\nfrom cnnzoo.train.threads import ThreadPolicy\n"
        code += "ThreadPolicy(None, torch.device('cpu')).apply()\n"
        cmd[2] = code + CHILD
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--busy", type=int, nargs="+", default=[0, 1], help="busy processes")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    a = p.parse_args()
    cpus = len(os.sched_getaffinity(0))
    print(f"{a.model} {a.size}px batch {a.batch}, {cpus} CPUs, load {os.getloadavg()[0]:.2f}")
    print("| busy processes | setting | ms / step | images / s |")
    print("|---:|---|---:|---:|")
    for busy in a.busy:
        results: dict[str, list[float]] = {name: [] for name in a.settings}
        procs = [subprocess.Popen([sys.executable, "-c", BUSY.format(s=3600)]) for _ in range(busy)]
        try:
            time.sleep(0.5 if busy else 0)
            for _ in range(a.rounds):
                for name in a.settings:
                    threads, env = SETTINGS[name]
                    results[name].append(run_child(a, threads, env))
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
        for name, times in results.items():
            t = statistics.median(times)
            print(f"| {busy} | {name} | {1000 * t:.0f} | {a.batch / t:.1f} |", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
