"""The hostile probe of issue 25: hundreds of cases run as an attacker and a careless user
would, each outcome classified.

    PYTHONPATH=src OMP_NUM_THREADS=1 python bench/hostile_probe.py [--only CLASS] [--limit N]

Classes (bench/_hostile_cases.py, bench/_hostile_http.py): output targets for every output
option, two writers on one run folder, broken model files (checkpoints and ONNX), changed data
on resume, a damaged disk cache, numeric options of every subcommand, malformed HTTP requests
to `cnnzoo serve` on 127.0.0.1.

A command line case runs in a forked child of this process (cnnzoo and torch imported once),
stdin closed, stdout / stderr to files, killed after its timeout. Outcomes:
- expected: exit 0 (valid JSON where --json was asked, no nan printed), or exit 2 with a
  one-line error; the server: 2xx, 4xx or 503;
- crash: another exit status, a signal, a traceback; internal: a 500 from the server;
- hang: the timeout passed (the server: no answer, not even a close);
- nan: exit 0 with nan / inf printed, or --json that is not JSON;
- overwritten: a file that existed before changed (every file of the workspace is hashed
  before and after each case; a case that ends with exit 0 may change its own scratch copy),
  or a device / FIFO / socket / folder became something else.
Every loop is bounded; network traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import platform
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import onnxruntime  # noqa: E402, F401  (imported once, before the children fork: a child
import PIL.Image  # noqa: E402, F401  running as nobody may not read site-packages)
import torch  # noqa: E402

torch.set_num_threads(1)

from cnnzoo.cli.main import main  # noqa: E402


@dataclass
class Case:
    """One probe case: a command line (args) or a callable (http / custom), in a class."""

    kind: str
    name: str
    args: list[str] | None = None
    call: object = None  # () -> (outcome, detail) for non-CLI cases
    timeout: float = 60.0
    scratch: Path | None = None  # a folder this case may change when it succeeds
    json_out: bool = False
    before: object = None  # () -> None, run just before (e.g. start a rival writer)
    after: object = None  # () -> None, run just after
    as_user: bool = False  # run the command as nobody (a read-only folder binds root too)
    rival: bool = False  # another writer changes scratch meanwhile


@dataclass
class Result:
    case: Case
    outcome: str
    detail: str
    seconds: float
    extra: dict = field(default_factory=dict)


def _hash(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under root: regular files by content, anything else by kind."""
    seen: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            try:
                st = p.lstat()
            except OSError:
                continue
            mode = st.st_mode
            if os.path.islink(p):
                seen[str(p)] = "link:" + os.readlink(p)
            elif Path(p).is_file() and not os.path.islink(p) and (mode & 0o444):
                try:
                    seen[str(p)] = _hash(p)
                except OSError:
                    seen[str(p)] = "unreadable"
            else:
                seen[str(p)] = f"mode:{mode & 0o170000:o}"
    return seen


def changed(before: dict[str, str], after: dict[str, str], allowed: Path | None) -> list[str]:
    out = []
    for path, sig in before.items():
        if after.get(path) == sig:
            continue
        if allowed is not None and Path(path).is_relative_to(allowed):
            continue
        out.append(f"{path} {'removed' if path not in after else 'changed'}")
    return out


IO = Path(tempfile.mkdtemp(prefix="hostile-io-"))


def fork_cli(
    args: list[str], timeout: float, work: Path, as_user: bool = False
) -> tuple[int | None, str, str, bool]:
    """(exit status or -signal, stdout, stderr, timed out) of `cnnzoo ARGS` in a child."""
    out, err = IO / "stdout", IO / "stderr"
    os.chmod(IO, 0o777)
    for p in (out, err):  # a fresh file each time (a child as nobody must create them)
        p.unlink(missing_ok=True)
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            if as_user and os.getuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            fd_in = os.open(os.devnull, os.O_RDONLY)
            os.dup2(fd_in, 0)
            for fd, p in ((1, out), (2, err)):
                f = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(f, fd)
            os.chdir(work)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            try:
                code = main(args)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code if isinstance(code, int) else 1)
    deadline = time.monotonic() + timeout
    status, timed_out = None, False
    while True:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
            break
        if time.monotonic() > deadline:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
        time.sleep(0.02)
    read = lambda p: p.read_text(errors="replace") if p.exists() else ""  # noqa: E731
    return status, read(out), read(err), timed_out


def classify_cli(case: Case, status, stdout: str, stderr: str, timed_out: bool) -> tuple[str, str]:
    lines = [x for x in stderr.strip().splitlines() if x.strip()]
    last = lines[-1] if lines else ""
    if timed_out:
        return "hang", f"no end within {case.timeout:g} s"
    if "Traceback (most recent call last)" in stderr or "internal error" in stderr:
        return "crash", last
    if status == 2:
        if "error" not in last:
            return "crash", f"exit 2 without a one-line error: {last[:200]}"
        return "expected", last
    if status != 0:
        return "crash", f"exit {status}: {last[:200]}"
    if case.json_out:
        try:
            json.loads(stdout, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        except ValueError as e:
            return "nan", f"--json output is not JSON: {e}"[:200]
    low = stdout.lower()
    for token in (" nan", "nan%", "nan ", "inf%", " inf "):
        if token in low:
            return "nan", f"printed {token.strip()!r}: {stdout.strip()[:160]}"
    return "expected", "exit 0"


def run_case(case: Case, root: Path) -> Result:
    t0 = time.monotonic()
    if case.before:
        case.before()
    before = snapshot(root)
    special = {p: os.lstat(p).st_mode for p in ("/dev/null", "/dev/zero") if os.path.exists(p)}
    status = None
    if case.args is not None:
        status, out, err, timed_out = fork_cli(case.args, case.timeout, root, case.as_user)
        outcome, detail = classify_cli(case, status, out, err, timed_out)
    else:
        outcome, detail = case.call()
    allowed = case.scratch if (case.rival or (outcome == "expected" and status == 0)) else None
    diff = changed(before, snapshot(root), allowed)
    if case.after:
        case.after()
    seconds = time.monotonic() - t0
    diff += [f"{p} is no longer a device" for p, m in special.items() if os.lstat(p).st_mode != m]
    if diff and outcome == "expected":
        outcome, detail = "overwritten", "; ".join(diff[:3])
    return Result(case, outcome, detail, seconds)


def main_probe() -> int:
    import _hostile_cases
    import _hostile_http

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", help="run only these classes")
    ap.add_argument("--limit", type=int, default=0, help="at most N cases per class")
    ap.add_argument("--cap", action="append", metavar="CLASS=N", help="at most N of CLASS")
    ap.add_argument("--json", type=Path, help="write every result here")
    ap.add_argument("--work", type=Path, help="workspace folder (default: a temp folder)")
    opts = ap.parse_args()
    work = opts.work or Path(tempfile.mkdtemp(prefix="hostile-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    load0 = Path("/proc/loadavg").read_text().split()[:3]
    print(f"workspace {work}; load {' '.join(load0)}", flush=True)
    ws = _hostile_cases.Workspace.make(work, fork_cli)
    print(f"workspace ready in {time.monotonic() - t0:.0f} s", flush=True)
    cases = _hostile_cases.all_cases(ws) + _hostile_http.http_cases(ws)
    if opts.only:
        cases = [c for c in cases if c.kind in opts.only]
    caps = dict(c.split("=") for c in opts.cap or [])
    if opts.limit or caps:  # an even sample of each class (every k-th case)
        by_kind: dict[str, list[Case]] = collections.defaultdict(list)
        for c in cases:
            by_kind[c.kind].append(c)
        cases = []
        for kind, group in by_kind.items():
            n = int(caps.get(kind, opts.limit or len(group)))
            step = max(1.0, len(group) / max(n, 1))
            cases += [group[int(i * step)] for i in range(min(n, len(group)))]
    results = []
    try:
        for i, case in enumerate(cases):
            if case.kind == "http":
                _hostile_http.ensure_server(ws)
            r = run_case(case, ws.root)
            results.append(r)
            if (i + 1) % 25 == 0:
                print(f"[{i + 1}/{len(cases)}] {time.monotonic() - t0:.0f} s", flush=True)
            if r.outcome != "expected":
                print(f"[{i + 1}/{len(cases)}] {r.outcome.upper()} {case.kind}/{case.name}: "
                      f"{r.detail[:300]}", flush=True)  # fmt: skip
    finally:
        _hostile_http.stop_server(ws)
    report(results, time.monotonic() - t0, load0)
    if opts.json:
        rows = [{"kind": r.case.kind, "name": r.case.name, "outcome": r.outcome,
                 "detail": r.detail, "seconds": round(r.seconds, 2)} for r in results]  # fmt: skip
        opts.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(r.outcome == "expected" for r in results) else 1


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def report(results: list[Result], seconds: float, load0: list[str]) -> None:
    kinds = ("expected", "crash", "hang", "internal", "nan", "overwritten")
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in results:
        table[r.case.kind][r.outcome] += 1
    load1 = Path("/proc/loadavg").read_text().split()[:3]
    print(f"\n{len(results)} cases in {seconds:.0f} s on {_cpu()}, {os.cpu_count()} cores; "
          f"load {' '.join(load0)} before, {' '.join(load1)} after")  # fmt: skip
    print("| class | cases | " + " | ".join(kinds) + " |")
    print("|---|---:|" + "---:|" * len(kinds))
    total: collections.Counter = collections.Counter()
    for kind, counts in table.items():
        total.update(counts)
        row = " | ".join(str(counts[k]) for k in kinds)
        print(f"| {kind} | {sum(counts.values())} | {row} |")
    print(f"| all | {sum(total.values())} | " + " | ".join(str(total[k]) for k in kinds) + " |")


if __name__ == "__main__":
    sys.exit(main_probe())
