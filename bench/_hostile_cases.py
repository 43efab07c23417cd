"""The command line cases of bench/hostile_probe.py: output targets, two writers, model
files, changed data on resume, a damaged disk cache, numeric options, in-range extremes."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from hostile_probe import Case

from cnnzoo.artifacts.files import write_json
from cnnzoo.artifacts.sidecar import read_checkpoint
from cnnzoo.artifacts.tensors import save_tensors
from cnnzoo.cli.main import build_parser
from cnnzoo.cli.numbers import _check_number
from cnnzoo.errors import CnnzooError

NOBODY = 65534


@dataclass
class Workspace:
    root: Path  # everything under it is hashed before and after every case
    run: Path  # resnet20 on digits, one epoch
    onnx: Path  # that run exported
    img: Path  # 120 digits as PNG files, ROOT/CLASS/IMAGE
    image: Path  # one of them
    fdata: Path  # a folder dataset (a copy of img) ...
    frun: Path  # ... and a run trained on it (8 px, one epoch)
    cache: Path  # a disk cache of fdata
    server: object = None

    @classmethod
    def make(cls, work: Path, fork_cli) -> Workspace:
        root = work / "root"
        root.mkdir(exist_ok=True)
        os.chmod(work, 0o755)
        os.chmod(root, 0o755)
        ws = cls(root, root / "run", root / "m.onnx", root / "img", root, root / "fdata",
                 root / "frun", root / "cache")  # fmt: skip
        steps = [
            ["train", "--model", "resnet20", "--data", "digits", "--out", str(ws.run),
             "--epochs", "1", "--no-progress"],
            ["data", "digits", "--export", str(ws.img), "--per-class", "12"],
            ["export", "-c", str(ws.run), "-o", str(ws.onnx), "--no-progress"],
        ]  # fmt: skip
        for args in steps:
            status, _, err, _ = fork_cli(args, 600, root)
            if status != 0:
                raise SystemExit(f"setup failed: {' '.join(args)}: {err[-400:]}")
        shutil.copytree(ws.img, ws.fdata)
        args = ["train", "--model", "resnet20", "--data", str(ws.fdata), "--out", str(ws.frun),
                "--epochs", "1", "--image-size", "8", "--no-progress", "--cache", "disk",
                "--cache-dir", str(ws.cache)]  # fmt: skip
        status, _, err, _ = fork_cli(args, 600, root)
        if status != 0:
            raise SystemExit(f"setup failed: {' '.join(args)}: {err[-400:]}")
        shutil.copytree(ws.fdata, root / "fdata.orig")
        ws.image = next(iter(sorted(ws.img.rglob("*.png"))))
        return ws


def special_targets(ws: Workspace, tag: str, suffix: str) -> dict[str, Path]:
    """name -> a target path that must never be written (made fresh for each option)."""
    d = ws.root / "targets" / tag
    d.mkdir(parents=True, exist_ok=True)
    fifo = d / f"pipe{suffix}"
    if not fifo.exists():
        os.mkfifo(fifo)
    sock = d / f"sock{suffix}"
    if not sock.exists():
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(sock))
        s.close()
    folder = d / f"folder{suffix}"
    folder.mkdir(exist_ok=True)
    (folder / "keep.txt").write_text("mine")
    link = d / f"null{suffix}"
    if not link.is_symlink():
        link.symlink_to("/dev/null")
    ro = d / "readonly"
    ro.mkdir(exist_ok=True)
    (ro / "keep.txt").write_text("mine")
    os.chmod(ro, 0o555)
    return {
        "dev_null": Path("/dev/null"), "fifo": fifo, "socket": sock, "folder": folder,
        "link_to_null": link, "best": ws.run / "best.safetensors",
        "state": ws.run / "state.safetensors", "last": ws.run / "last.safetensors",
        "run_config": ws.run / "config.json", "sidecar": ws.run / "best.json",
        "run_folder": ws.run, "wrong_suffix": d / "out.txt", "readonly": ro / f"x{suffix}",
        "no_parent": d / "missing" / "deeper" / f"x{suffix}", "proc_file": Path("/proc/version"),
    }  # fmt: skip


def output_cases(ws: Workspace) -> list[Case]:
    r, img, one = str(ws.run), str(ws.img), str(ws.image)
    options = {  # name -> (suffix, args with T for the target)
        "export_onnx": (".onnx", ["export", "-c", r, "-o", "T", "--no-progress"]),
        "export_ts": (".pt", ["export", "-c", r, "-f", "torchscript", "-o", "T",
                              "--no-progress"]),
        "eval_out": (".json", ["eval", r, "--out", "T", "--no-progress"]),
        "data_grid": (".png", ["data", img, "--grid", "T"]),
        "data_export": ("", ["data", "digits", "--export", "T", "--per-class", "1"]),
        "lr_find_out": (".png", ["lr-find", "--model", "resnet20", "--data", "digits",
                                 "--steps", "3", "--out", "T", "--no-progress"]),
        "train_out": ("", ["train", "--model", "resnet20", "--data", "digits", "--epochs", "1",
                           "--stop-after", "1", "--out", "T", "--no-progress"]),
        "explain_out": ("", ["explain", "-c", r, one, "--out", "T", "--no-progress"]),
        "predict_vis": ("", ["predict", r, one, "--save-vis", "T"]),
        "bench_plot": (".png", ["bench", "--all", "--plot", "T", "--iters", "1"]),
    }  # fmt: skip
    cases = []
    for opt, (suffix, args) in options.items():
        for name, target in special_targets(ws, opt, suffix).items():
            argv = [str(target) if a == "T" else a for a in args]
            cases.append(Case("outputs", f"{opt}:{name}", argv, timeout=120))
        mine = ws.root / "targets" / opt / f"mine{suffix or '.d'}"
        if suffix:  # a user's own file, named again: replacing it is what was asked
            mine.write_bytes(b"old")
        argv = [str(mine) if a == "T" else a for a in args]
        cases.append(Case("outputs", f"{opt}:own_file", argv, timeout=120, scratch=mine))
    return cases


def two_writer_cases(ws: Workspace) -> list[Case]:
    cases = []
    for i, second in enumerate(("resume", "train_out", "resume_more", "export_into")):
        scratch = ws.root / f"writers{i}"
        run = scratch / "run"
        rival: dict = {}

        def start(run=run, scratch=scratch, rival=rival) -> None:
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.copytree(ws.frun, run)
            cmd = [sys.executable, "-m", "cnnzoo", "train", "--resume", str(run), "--epochs",
                   "3", "--no-progress"]  # fmt: skip
            rival["p"] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)  # fmt: skip
            time.sleep(2.5)  # it has the folder by then (imports ~2 s)

        def stop(rival=rival) -> None:
            rival["p"].wait(timeout=300)

        argv = {
            "resume": ["train", "--resume", str(run), "--epochs", "3", "--no-progress"],
            "train_out": ["train", "--model", "resnet20", "--data", "digits", "--epochs", "1",
                          "--out", str(run), "--no-progress"],
            "resume_more": ["train", "--resume", str(run), "--epochs", "5", "--no-progress"],
            "export_into": ["export", "-c", str(run), "-o", str(run / "best.safetensors")],
        }[second]  # fmt: skip
        cases.append(Case("writers", second, argv, timeout=120, before=start, after=stop,
                          scratch=scratch, rival=True))  # fmt: skip
    return cases


def _checkpoint_variant(ws: Workspace, name: str, tensors=None, meta=None, raw=None) -> Path:
    d = ws.root / "models"
    d.mkdir(exist_ok=True)
    path = d / f"{name}.safetensors"
    if raw is not None:
        path.write_bytes(raw((ws.run / "best.safetensors").read_bytes()))
        shutil.copy(ws.run / "best.json", path.with_suffix(".json"))
        return path
    t, m = read_checkpoint(ws.run)
    t = {k: v.clone() for k, v in t.items()}
    if tensors:
        tensors(t)
    m = {**m, **(meta or {})}
    save_tensors(path, t, m)
    write_json(path.with_suffix(".json"), m)
    return path


def _set(key, fn):
    def change(t):
        t[key] = fn(t[key])

    return change


def _flip(data: bytes, at: float) -> bytes:
    i = int(len(data) * at)
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]


CHECKPOINTS = {
    "nan_conv": (_set("conv1.weight", lambda w: w * float("nan")), None, None),
    "inf_fc": (_set("fc.weight", lambda w: w + float("inf")), None, None),
    "neg_inf_bias": (_set("fc.bias", lambda b: b - float("inf")), None, None),
    "neg_var": (_set("bn1.running_var", lambda v: -v), None, None),
    "nan_mean_stat": (_set("bn1.running_mean", lambda v: v * float("nan")), None, None),
    "int_weight": (_set("fc.weight", lambda w: w.to(torch.int32)), None, None),
    "bool_bias": (_set("fc.bias", lambda b: b > 0), None, None),
    "int64_var": (_set("bn1.running_var", lambda v: v.to(torch.int64)), None, None),
    "f16_weight": (_set("conv1.weight", lambda w: w.half()), None, None),
    "wrong_shape": (_set("fc.weight", lambda w: w[:, :3].contiguous()), None, None),
    "fewer_rows": (_set("fc.weight", lambda w: w[:4].contiguous()), None, None),
    "missing_key": (lambda t: t.pop("fc.bias"), None, None),
    "extra_key": (lambda t: t.update(evil=torch.zeros(3)), None, None),
    "huge_weight": (_set("fc.weight", lambda w: w * 1e38), None, None),
    "zero_everything": (lambda t: [v.zero_() for v in t.values()], None, None),
    "nan_mean": (None, {"mean": [float("nan")] * 3}, None),
    "zero_std": (None, {"std": [0.0] * 3}, None),
    "text_mean": (None, {"mean": "gray"}, None),
    "text_std": (None, {"std": ["a", "b", "c"]}, None),
    "absurd_mean": (None, {"mean": [1e30] * 3}, None),
    "tiny_std": (None, {"std": [1e-38] * 3}, None),
    "huge_input": (None, {"input_size": 4096}, None),
    "zero_input": (None, {"input_size": 0}, None),
    "neg_input": (None, {"input_size": [-32, 32]}, None),
    "text_input": (None, {"input_size": "32px"}, None),
    "many_classes": (None, {"classes": [str(i) for i in range(11)]}, None),
    "one_class": (None, {"classes": ["a"], "num_classes": 1}, None),
    "null_classes": (None, {"classes": None}, None),
    "crop_pct": (None, {"crop_pct": 5}, None),
    "nan_crop_pct": (None, {"crop_pct": float("nan")}, None),
    "other_model": (None, {"model": "resnet50"}, None),
    "unknown_model": (None, {"model": "no_such_net"}, None),
    "truncated_half": (None, None, lambda b: b[: len(b) // 2]),
    "truncated_header": (None, None, lambda b: b[:20]),
    "empty": (None, None, lambda b: b""),
    "flip_header": (None, None, lambda b: _flip(b, 0.0005)),
    "flip_data": (None, None, lambda b: _flip(b, 0.7)),
    "json_text": (None, None, lambda b: b'{"a": 1}'),
    "huge_header_len": (None, None, lambda b: (1 << 62).to_bytes(8, "little") + b[8:]),
}  # fmt: skip


def _onnx_variant(ws: Workspace, name: str, change, raw=None) -> Path:
    d = ws.root / "models"
    d.mkdir(exist_ok=True)
    path = d / f"{name}.onnx"
    if raw is not None:
        path.write_bytes(raw(ws.onnx.read_bytes()))
        return path
    proto = onnx.load(str(ws.onnx))
    for p in proto.metadata_props:
        if p.key == "cnnzoo":
            meta = json.loads(p.value)
            out = change(meta)
            p.value = out if isinstance(out, str) else json.dumps(meta)
    onnx.save(proto, str(path))
    return path


ONNX = {
    "fewer_classes": lambda m: m.update(classes=m["classes"][:3], num_classes=3),
    "more_classes": lambda m: m.update(classes=[str(i) for i in range(50)], num_classes=50),
    "nan_mean": lambda m: m.update(mean=[float("nan")] * 3),
    "zero_std": lambda m: m.update(std=[0.0] * 3),
    "text_std": lambda m: m.update(std="one"),
    "neg_std": lambda m: m.update(std=[-1.0] * 3),
    "text_size": lambda m: m.update(input_size="32px"),
    "other_size": lambda m: m.update(input_size=16),
    "huge_size": lambda m: m.update(input_size=100000),
    "null_classes": lambda m: m.update(classes=None),
    "dict_classes": lambda m: m.update(classes={"a": 1}),
    "not_json": lambda m: "{not json",
    "json_list": lambda m: "[1, 2, 3]",
    "json_number": lambda m: "5",
    "deep_nesting": lambda m: "[" * 100000 + "]" * 100000,
    "truncated": (None, lambda b: b[: len(b) // 2]),
    "empty": (None, lambda b: b""),
    "random": (None, lambda b: os.urandom(4096)),
}  # fmt: skip


def model_file_cases(ws: Workspace) -> list[Case]:
    cases = []
    one, data = str(ws.image), str(ws.img)
    for name, (tensors, meta, raw) in CHECKPOINTS.items():
        path = str(_checkpoint_variant(ws, name, tensors, meta, raw))
        out = str(ws.root / "models" / f"{name}-out")
        for cmd, argv, js in (
            ("predict", ["predict", path, one, "--json"], True),
            ("eval", ["eval", path, "--data", data, "--out", out + ".json", "--no-progress"],
             False),
            ("export", ["export", "-c", path, "-o", out + ".onnx", "--no-progress"], False),
            ("serve", ["serve", "-c", path, "--port", "0", "--quiet"], False),
        ):  # fmt: skip
            cases.append(Case("model_files", f"ckpt:{name}:{cmd}", argv, 120, json_out=js))
    for name, change in ONNX.items():
        raw = None
        if isinstance(change, tuple):
            change, raw = change
        path = str(_onnx_variant(ws, name, change, raw))
        for cmd, argv, js in (
            ("predict", ["predict", path, one, "--json"], True),
            ("eval", ["eval", path, "--data", data, "--out",
                      str(ws.root / "models" / f"{name}.json"), "--no-progress"], False),
            ("serve", ["serve", "-c", path, "--port", "0", "--quiet"], False),
        ):  # fmt: skip
            cases.append(Case("model_files", f"onnx:{name}:{cmd}", argv, 120, json_out=js))
    return cases


def _first_files(folder: Path, cls: str, n: int = 1) -> list[Path]:
    return sorted((folder / cls).iterdir())[:n]


DATA_CHANGES = {
    "deleted_image": lambda d: _first_files(d, "3")[0].unlink(),
    "replaced_image": lambda d: shutil.copy(*_first_files(d, "5", 2)),
    "renamed_class": lambda d: (d / "7").rename(d / "seven"),
    "swapped_classes": lambda d: ((d / "1").rename(d / "tmp"), (d / "2").rename(d / "1"),
                                  (d / "tmp").rename(d / "2")),
    "added_class": lambda d: shutil.copytree(d / "4", d / "zz"),
    "removed_class": lambda d: shutil.rmtree(d / "9"),
    "added_image": lambda d: shutil.copy(_first_files(d, "0")[0], d / "0" / "extra.png"),
    "emptied_class": lambda d: [p.unlink() for p in (d / "6").iterdir()],
    "garbage_image": lambda d: _first_files(d, "8")[0].write_bytes(b"not an image"),
}  # fmt: skip


def data_change_cases(ws: Workspace) -> list[Case]:
    cases = []
    for name, change in DATA_CHANGES.items():
        for allow in (False, True):
            scratch = ws.root / f"dc_{name}_{int(allow)}"

            def before(scratch=scratch, change=change) -> None:
                shutil.rmtree(scratch, ignore_errors=True)
                shutil.copytree(ws.frun, scratch)
                change(ws.fdata)

            def after() -> None:
                shutil.rmtree(ws.fdata)
                shutil.copytree(ws.root / "fdata.orig", ws.fdata)

            argv = [
                "train",
                "--resume",
                str(scratch),
                "--epochs",
                "2",
                "--no-progress",
                "--cache-dir",
                str(scratch / "cache"),
            ] + (["--allow-data-change"] * allow)
            cases.append(Case("data_change", f"{name}:{'allow' if allow else 'plain'}", argv,
                              180, scratch=scratch, before=before, after=after))  # fmt: skip
    return cases


def _cache_files(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file())


CACHE_DAMAGE = {
    "truncate_data": lambda f: [os.truncate(p, p.stat().st_size // 2) for p in f
                                if p.suffix not in (".json", ".lock")],
    "zero_data": lambda f: [p.write_bytes(bytes(p.stat().st_size)) for p in f
                            if p.suffix not in (".json", ".lock")],
    "flip_byte": lambda f: [p.write_bytes(_flip(p.read_bytes(), 0.5)) for p in f
                            if p.suffix not in (".json", ".lock") and p.stat().st_size],
    "grow_data": lambda f: [p.open("ab").write(b"x" * 4096) for p in f
                            if p.suffix not in (".json", ".lock")],
    "bad_json": lambda f: [p.write_text("{nope") for p in f if p.suffix == ".json"],
    "nan_json": lambda f: [p.write_text('{"n": NaN, "shape": [-1, 3]}') for p in f
                           if p.suffix == ".json"],
    "empty_json": lambda f: [p.write_bytes(b"") for p in f if p.suffix == ".json"],
    "data_removed": lambda f: [p.unlink() for p in f if p.suffix not in (".json", ".lock")],
}  # fmt: skip


def cache_cases(ws: Workspace) -> list[Case]:
    cases = []
    for name, damage in CACHE_DAMAGE.items():
        scratch = ws.root / f"cache_{name}"

        def before(scratch=scratch, damage=damage) -> None:
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.copytree(ws.cache, scratch / "cache")
            damage(_cache_files(scratch / "cache"))

        for cmd in ("train", "data"):
            argv = {
                "train": ["train", "--model", "resnet20", "--data", str(ws.fdata), "--epochs",
                          "1", "--image-size", "8", "--cache", "disk", "--cache-dir",
                          str(scratch / "cache"), "--out", str(scratch / "run"),
                          "--no-progress"],
                "data": ["data", str(ws.fdata), "--image-size", "8", "--cache", "disk",
                         "--cache-dir", str(scratch / "cache")],
            }[cmd]  # fmt: skip
            cases.append(Case("disk_cache", f"{name}:{cmd}", argv, 180, scratch=scratch,
                              before=before))  # fmt: skip
    return cases


VALUES = ["nan", "inf", "-1e308", "-1", "0", "1e30", "²"]


def numeric_cases(ws: Workspace) -> list[Case]:
    r, one = str(ws.run), str(ws.image)
    base = {
        "train": ["train", "--model", "resnet20", "--data", "digits", "--no-progress",
                  "--out", str(ws.root / "never")],
        "lr-find": ["lr-find", "--model", "resnet20", "--data", "digits", "--no-progress",
                    "--out", str(ws.root / "never.png")],
        "eval": ["eval", r, "--no-progress", "--out", str(ws.root / "never.json")],
        "predict": ["predict", r, one],
        "explain": ["explain", "-c", r, one, "--out", str(ws.root / "never_cam")],
        "export": ["export", "-c", r, "-o", str(ws.root / "never.onnx")],
        "serve": ["serve", "-c", r, "--port", "0"],
        "data": ["data", "digits"],
        "bench": ["bench", "--model", "resnet20"],
        "summary": ["summary", "resnet20"],
    }  # fmt: skip
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    cases = []
    for cmd, argv in base.items():
        p = sub.choices[cmd]
        for action in p._actions:
            if action.type not in (int, float) or not action.option_strings:
                continue
            flag = max(action.option_strings, key=len)
            nargs = action.nargs if isinstance(action.nargs, int) else 1
            for v in VALUES:
                try:  # a value that parses and is in range would only run the command
                    _check_number(action.dest, action.type(v))
                    continue
                except (ValueError, CnnzooError):
                    pass
                extra = [flag] + [v] * (nargs if action.nargs not in ("+", "*") else 1)
                cases.append(Case("numbers", f"{cmd}{flag}={v!r}", argv + extra, 60))
    for _cmd, argv in (  # in range, but at the edge
        ("predict", ["predict", r, one, "--topk", "1000000", "--json"]),
        ("predict", ["predict", r, one, "--batch-size", "65536", "--json"]),
        ("eval", ["eval", r, "--top-losses", "10000", "--out", str(ws.root / "edge.json"),
                  "--no-progress"]),
        ("summary", ["summary", "resnet20", "--depth", "1000"]),
        ("summary", ["summary", "resnet20", "--input-size", "8"]),
        ("summary", ["summary", "resnet20", "--num-classes", "1000000"]),
        ("export", ["export", "-c", r, "-o", str(ws.root / "edge.onnx"), "--opset", "7"]),
        ("train", ["train", "--model", "resnet20", "--data", str(ws.fdata), "--batch-size",
                   "65536", "--epochs", "1", "--image-size", "8", "--cache-dir",
                   str(ws.root / "edge_cache"), "--out", str(ws.root / "edge_run"),
                   "--no-progress"]),
        ("train", ["train", "--model", "resnet20", "--data", str(ws.fdata), "--val-split",
                   "0.999", "--epochs", "1", "--image-size", "8", "--cache-dir",
                   str(ws.root / "edge_cache"), "--out", str(ws.root / "edge_run2"),
                   "--no-progress"]),
        ("bench", ["bench", "--model", "resnet20", "--input-size", "8", "--iters", "1",
                   "--warmup", "0", "--json"]),
    ):  # fmt: skip
        cases.append(Case("numbers", f"edge:{' '.join(argv[3:])[:60]}", argv, 180,
                          json_out="--json" in argv))  # fmt: skip
    return cases


def all_cases(ws: Workspace) -> list[Case]:
    return (output_cases(ws) + two_writer_cases(ws) + model_file_cases(ws)
            + data_change_cases(ws) + cache_cases(ws) + numeric_cases(ws))  # fmt: skip
