"""Property-based fuzzing of everything that reads image files: the decoder, the folder
loader (`cnnzoo data`), training and predict. Over 2,000 generated files per run: zero-byte,
random bytes, truncated at random offsets, headers claiming huge sizes, decompression bombs,
1/2/4-channel, 16-bit, palette, CMYK, animated, TIFF, WebP, unreadable, folders named like
images, FIFOs, link loops, non-UTF-8 names, extreme aspect ratios.

The properties: every file is converted or skipped with a reason (never another exception,
never a hang: an alarm turns one into a failure); every valid image is converted; memory
stays bounded; one bad file never costs the results of the good ones."""

from __future__ import annotations

import io
import json
import os
import resource
import signal
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from helpers import png_claiming
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnnzoo.cli.main import main
from cnnzoo.data import load_data
from cnnzoo.data.images import ImageReadError, decode_square, is_image_file, load_image
from cnnzoo.errors import CnnzooError

pytestmark = pytest.mark.usefixtures("one_thread")

COUNTS: dict[str, int] = {}  # files fuzzed per stage, printed at the end of the module
MEMORY: dict[str, int] = {}  # bytes: resident at the start of the decoder fuzz, and the most since


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# (format, extension, modes it can store)
FORMATS = [
    ("PNG", ".png", ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "I;16", "I"]),
    ("JPEG", ".jpg", ["L", "RGB", "CMYK"]),
    ("BMP", ".bmp", ["1", "L", "P", "RGB"]),
    ("GIF", ".gif", ["L", "P"]),
    ("TIFF", ".tif", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"]),
    ("WEBP", ".webp", ["RGB", "RGBA"]),
]
SIDE = st.one_of(st.integers(1, 48), st.sampled_from([1, 2, 3, 2000, 9000]))


@contextmanager
def alarm(seconds: int):
    """Fail instead of hanging (a FIFO opened for reading blocks until a writer comes)."""

    def boom(*_):
        raise TimeoutError(f"hung for {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def image_bytes(fmt: str, mode: str, w: int, h: int, frames: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(frames):
        base = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        if mode in ("I;16", "I", "F"):
            arr = rng.integers(0, 65535, (h, w))
            kind = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
            im = Image.fromarray((arr / 65535 if mode == "F" else arr).astype(kind))
        elif mode in ("P", "PA"):
            im = base.quantize(16)
            if mode == "PA":
                im.info["transparency"] = 0
        else:
            im = base.convert(mode)
        images.append(im)
    buf = io.BytesIO()
    extra = {"save_all": True, "append_images": images[1:]} if frames > 1 else {}
    try:
        images[0].save(buf, format=fmt, **extra)
    except (OSError, ValueError, KeyError):  # a mode this Pillow cannot write in fmt
        buf = io.BytesIO()
        images[0].convert("RGB").save(buf, format=fmt if fmt != "GIF" else "PNG")
    return buf.getvalue()


_BOMB: list[bytes] = []


def bomb() -> bytes:
    """A 1-bit PNG of 12,000 x 12,000 pixels: ~20 KB on disk, 432 MB as RGB."""
    if not _BOMB:
        buf = io.BytesIO()
        Image.new("1", (12_000, 12_000)).save(buf, format="PNG")
        _BOMB.append(buf.getvalue())
    return _BOMB[0]


@st.composite
def hostile_file(draw) -> dict:
    """What to write: hypothesis picks the kind, format, mode and sides (and shrinks them
    on a failure); the details that need no shrinking (cut offset, claimed size, random
    length, frames, name) follow from a drawn seed, which keeps each example cheap."""
    kind = draw(
        st.sampled_from(
            ["image"] * 6
            + ["zero", "random", "truncated", "truncated", "huge", "bomb", "fifo", "dir", "loop"]
            + ["broken-link", "unreadable", "wrong-ext"]
        )
    )
    fmt, ext, modes = draw(st.sampled_from(FORMATS))
    w, h, seed = draw(SIDE), draw(SIDE), draw(st.integers(0, 2**31))
    if w * h > 100_000:  # extreme aspect ratios, not big pictures
        h, w = (1 + seed % 3, w) if w > h else (h, 1 + seed % 3)
    rng = np.random.default_rng(seed)
    return {
        "kind": kind,
        "ext": ext,
        "fmt": fmt,
        "mode": draw(st.sampled_from(modes)),
        "w": w,
        "h": h,
        "seed": seed,
        "frames": int(rng.integers(1, 4)) if fmt in ("GIF", "WEBP", "PNG") else 1,
        "cut": float(rng.uniform(0, 0.99)),
        "huge": (int(rng.integers(1, 2**31)), int(rng.integers(1, 2**31))),
        "n": int(rng.integers(0, 3000)),
        "odd_name": bool(rng.integers(2)),
    }


def materialize(spec: dict, folder: Path, stem: str) -> tuple[str, bool]:
    """Write `spec` as a file (or FIFO, folder, link) in `folder`; returns (path, whether it
    is a valid image that must be converted)."""
    name = stem + ("\udcff\udce9" if spec["odd_name"] else "") + spec["ext"]
    path = os.path.join(folder, name)
    kind = spec["kind"]
    if kind in ("image", "truncated", "unreadable", "wrong-ext"):
        data = image_bytes(
            spec["fmt"], spec["mode"], spec["w"], spec["h"], spec["frames"], spec["seed"]
        )
        if kind == "truncated":
            data = data[: int(len(data) * spec["cut"])]
        if kind == "wrong-ext":  # a PNG called .jpg and the like: content decides
            path = os.path.join(folder, stem + (".jpg" if spec["ext"] != ".jpg" else ".png"))
        with open(path, "wb") as f:
            f.write(data)
        if kind == "unreadable":
            os.chmod(path, 0)
        return path, kind in ("image", "wrong-ext") or (kind == "unreadable" and os.geteuid() == 0)
    if kind == "zero":
        open(path, "wb").close()
    elif kind == "random":
        with open(path, "wb") as f:
            f.write(np.random.default_rng(spec["seed"]).bytes(spec["n"]))
    elif kind == "huge":
        with open(path, "wb") as f:
            f.write(png_claiming(*spec["huge"]))
    elif kind == "bomb":
        with open(path, "wb") as f:
            f.write(bomb())
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        os.mkdir(path)
    elif kind == "loop":
        os.symlink(name, path)  # a link to itself: ELOOP
    elif kind == "broken-link":
        os.symlink(os.path.join(folder, "nowhere" + spec["ext"]), path)
    return path, False


SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@settings(max_examples=1400, **SETTINGS)
@given(spec=hostile_file())
def test_decoder_converts_or_names_every_file(spec, tmp_path_factory):
    folder = tmp_path_factory.getbasetemp() / "decoder"
    folder.mkdir(exist_ok=True)
    if not MEMORY:
        MEMORY.update(start=resident_bytes(), peak_before=peak_bytes(), most=0)
    stem = f"f{COUNTS.get('decoder', 0):05d}"
    path, valid = materialize(spec, folder, stem)
    COUNTS["decoder"] = COUNTS.get("decoder", 0) + 1
    with alarm(20):
        try:
            pixels, _ = decode_square(path, 16)
            assert pixels.shape == (3, 16, 16) and pixels.dtype == np.uint8
        except ImageReadError as e:
            assert not valid, (spec, e.reason)
            assert e.reason and "\n" not in e.reason
        try:  # predict's reader: bounded by the centre band, never the whole strip
            image = load_image(path, max_aspect=2)
            assert image.shape[0] == 3 and max(image.shape[1:]) <= 2 * min(image.shape[1:]) + 1
        except CnnzooError as e:
            assert not valid, (spec, str(e))
    if spec["kind"] == "unreadable":
        os.chmod(path, 0o600)
    MEMORY["most"] = max(MEMORY["most"], resident_bytes())


def test_decoder_fuzz_kept_memory_bounded():
    """Runs after the fuzz above in this module: the bombs (432 MB as RGB) and headers
    claiming 2**31 x 2**31 pixels were refused before decoding, so the process never grew
    by anything like them, and nothing piled up from one file to the next. (The high-water
    mark only tells when the fuzz raised it above what earlier tests in the process left.)"""
    assert COUNTS.get("decoder", 0) >= 1400
    assert MEMORY["most"] - MEMORY["start"] < 300e6, MEMORY
    assert peak_bytes() - max(MEMORY["peak_before"], MEMORY["start"]) < 600e6, MEMORY


@settings(max_examples=16, **SETTINGS)
@given(specs=st.lists(hostile_file(), min_size=20, max_size=40))
def test_folder_loader_accounts_for_every_file(specs, tmp_path_factory):
    """`load_data` on a folder of good images and hostile files: each listed file is in the
    decoded set or skipped with a reason; the good images are all there."""
    root = Path(tmp_path_factory.mktemp("folder"))
    good = []
    for c in ("a", "b"):
        (root / c).mkdir()
        for i in range(3):
            p = root / c / f"good{i}.png"
            Image.fromarray(np.full((8, 8, 3), 60 * i + (c == "b") * 100, np.uint8)).save(p)
            good.append(str(p))
    listed = []
    for i, spec in enumerate(specs):
        path, _ = materialize(spec, root / "ab"[i % 2], f"h{i:03d}")
        if spec["kind"] != "dir" and is_image_file(path):
            listed.append(path)
    COUNTS["folder"] = COUNTS.get("folder", 0) + len(specs) + len(good)
    with alarm(60):
        b = load_data(str(root), image_size=8, val_split=0.0, progress=False, max_unreadable=1.0)
    decoded = set(b.train.paths or [])
    skipped = dict(b.skipped)
    assert set(good) <= decoded
    for path in listed:
        assert (path in decoded) != (path in skipped), path
    assert all(isinstance(why, str) and why for why in skipped.values())
    for spec in specs:  # leave the folder removable
        if spec["kind"] == "unreadable":
            for p in root.rglob("*"):
                if not p.is_symlink():
                    os.chmod(p, 0o700)


def _hostile_folder(root: Path, n_hostile: int, seed: int) -> tuple[list[str], list[str]]:
    """Two classes of 30 good images each, plus n_hostile generated files spread over them."""
    good = []
    for c, name in enumerate(("dark", "light")):
        (root / name).mkdir(parents=True)
        for i in range(30):
            p = root / name / f"good{i:02d}.png"
            noise = np.random.default_rng(i).integers(0, 40, (8, 8, 3))
            Image.fromarray((noise + 40 + 150 * c).astype(np.uint8)).save(p)
            good.append(str(p))
    hostile = []
    for i in range(n_hostile):
        spec = _spec_from_seed(seed + i)
        path, _ = materialize(spec, root / ("dark", "light")[i % 2], f"h{i:03d}")
        hostile.append(path)
    return good, hostile


def _spec_from_seed(seed: int) -> dict:
    """A hostile spec drawn deterministically (hypothesis' `example()` is for interactive use)."""
    rng = np.random.default_rng(seed)
    kinds = ["zero", "random", "truncated", "huge", "bomb", "fifo", "dir", "loop", "broken-link"]
    fmt, ext, modes = FORMATS[rng.integers(len(FORMATS))]
    return {
        "kind": kinds[rng.integers(len(kinds))],
        "ext": ext,
        "fmt": fmt,
        "mode": modes[rng.integers(len(modes))],
        "w": int(rng.integers(1, 40)),
        "h": int(rng.integers(1, 40)),
        "frames": 1,
        "cut": float(rng.uniform(0, 0.9)),
        "huge": (int(rng.integers(1, 2**31)), int(rng.integers(1, 2**31))),
        "n": int(rng.integers(0, 2000)),
        "seed": seed,
        "odd_name": bool(rng.integers(2)),
    }


def test_cli_data_train_and_predict_survive_a_hostile_folder(tmp_path, capsys):
    """`cnnzoo data`, `train` and `predict` on a folder where 40 of 100 files are hostile:
    all exit 0, name every hostile file, and the 60 good ones are used and classified."""
    root = tmp_path / "pets"
    good, hostile = _hostile_folder(root, 40, seed=7)
    COUNTS["cli"] = 3 * (len(good) + len(hostile))
    files = [h for h in hostile if not os.path.isdir(h)]
    with alarm(120):
        assert main(["data", str(root)]) == 0
        out = capsys.readouterr().out
        run = tmp_path / "run"
        args = ["train", "--model", "resnet20", "--data", str(root), "--out", str(run)]
        assert main([*args, "--epochs", "1", "--no-progress", "--batch-size", "16"]) == 0
        capsys.readouterr()
        assert main(["predict", "-c", str(run), str(root), "--json"]) == 0
        pred = json.loads(capsys.readouterr().out)
    from cnnzoo.data.images import shown

    for f in files:
        assert shown(f) in out, f  # `data` lists it
    listed = (run / "skipped.tsv").read_text()
    assert all(shown(f) in listed for f in files)
    assert "training" not in listed
    answered = {r["file"] for r in pred["results"]} | {e["file"] for e in pred["errors"]}
    assert {shown(g) for g in good} <= {r["file"] for r in pred["results"]}
    assert {shown(f) for f in files if os.path.lexists(f)} - {shown(g) for g in good} <= answered


def test_zz_report_counts(capsys):
    """Files fuzzed in this module (the figure docs/reliability.md quotes)."""
    total = sum(COUNTS.values())
    with capsys.disabled():
        print(f"\nfuzzed files: {COUNTS} = {total}")
    assert total >= 2000
