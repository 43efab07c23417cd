"""Data layer: image decoding, folders, digits, CIFAR pickles, Imagenette, archives, `cnnzoo data`."""

from __future__ import annotations

import dataclasses
import io
import logging
import pickle
import shutil
import struct
import tarfile

import numpy as np
import pytest
import torch
from conftest import DATASETS, missing
from PIL import Image

from cnnzoo.cli.main import main
from cnnzoo.data import cifar as cifar_mod
from cnnzoo.data import extract, load_data, load_image, safe_pickle
from cnnzoo.data import imagenette as imagenette_mod
from cnnzoo.data.archives import file_digest
from cnnzoo.data.split import stratified_split
from cnnzoo.errors import CnnzooError

RNG = np.random.default_rng(0)


def _rgb(h: int = 12, w: int = 16) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path, im: Image.Image, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, **kw)


# one writer per kind of file a real folder holds; each takes (path stem, index)
def _jpg(p, i):
    _save(p.with_suffix(".jpg"), Image.fromarray(_rgb(12 + i, 16)), quality=90)


def _upper_jpeg(p, i):
    _save(p.with_suffix(".JPEG"), Image.fromarray(_rgb(16, 12 + i)))


def _grey_png(p, i):
    _save(p.with_suffix(".png"), Image.fromarray(_rgb()[..., 0], "L"))


def _rgba_png(p, i):
    _save(p.with_suffix(".png"), Image.fromarray(RNG.integers(0, 256, (12, 12, 4), np.uint8)))


def _palette_gif(p, i):
    _save(p.with_suffix(".gif"), Image.fromarray(_rgb()).convert("P"))


def _cmyk_jpg(p, i):
    _save(p.with_suffix(".jpeg"), Image.fromarray(_rgb()).convert("CMYK"))


def _i16_png(p, i):
    _save(p.with_suffix(".png"), Image.fromarray(RNG.integers(0, 65536, (14, 14), np.uint16)))


def _bmp(p, i):
    _save(p.with_suffix(".bmp"), Image.fromarray(_rgb()))


def _webp(p, i):
    _save(p.with_suffix(".webp"), Image.fromarray(_rgb()), lossless=True)


def _tiff(p, i):
    _save(p.with_suffix(".tif"), Image.fromarray(_rgb()))


WRITERS = [_jpg, _upper_jpeg, _grey_png, _rgba_png, _palette_gif, _cmyk_jpg, _i16_png, _bmp]
WRITERS += [_webp, _tiff]
CLASSES = ["cat", "dog", "fish"]


def make_folder(root, per_class: int = 10, classes=CLASSES):
    for cls in classes:
        for i in range(per_class):
            WRITERS[i % len(WRITERS)](root / cls / f"img{i:03d}", i)
    return root


def truncated_jpeg(path) -> None:
    buf = io.BytesIO()
    Image.fromarray(_rgb(40, 40)).save(buf, "JPEG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text and text
    return text


# ---------------------------------------------------------------- load_image


def test_load_image_converts_every_mode(tmp_path):
    grey = np.full((5, 7), 77, np.uint8)
    _save(tmp_path / "grey.png", Image.fromarray(grey, "L"))
    out = load_image(tmp_path / "grey.png")
    assert out.dtype == torch.uint8 and out.shape == (3, 5, 7)
    assert (out == 77).all()

    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red stays red
    rgba[0, 1] = (255, 0, 0, 0)  # fully transparent becomes white
    rgba[0, 2] = (0, 0, 0, 128)  # half-transparent black over white: mid grey
    _save(tmp_path / "rgba.png", Image.fromarray(rgba, "RGBA"))
    out = load_image(tmp_path / "rgba.png")
    assert out[:, 0, 0].tolist() == [255, 0, 0]
    assert out[:, 0, 1].tolist() == [255, 255, 255]
    assert all(abs(v - 127) <= 1 for v in out[:, 0, 2].tolist())

    pal = Image.new("P", (3, 3), 1)
    pal.putpalette([0, 255, 0, 10, 20, 30] + [0] * 762)
    pal.putpixel((0, 0), 0)
    _save(tmp_path / "pal.png", pal, transparency=0)  # index 0 transparent
    out = load_image(tmp_path / "pal.png")
    assert out[:, 0, 0].tolist() == [255, 255, 255]
    assert out[:, 1, 1].tolist() == [10, 20, 30]

    _save(tmp_path / "cmyk.jpg", Image.new("CMYK", (4, 4), (0, 0, 0, 255)))
    assert load_image(tmp_path / "cmyk.jpg").max() <= 2  # full black ink is black

    wide = np.array([[0, 257 * 100, 65535]], np.uint16)
    _save(tmp_path / "i16.png", Image.fromarray(wide))
    assert Image.open(tmp_path / "i16.png").mode.startswith("I")
    assert load_image(tmp_path / "i16.png")[0, 0].tolist() == [0, 100, 255]

    # a camera's EXIF rotation is applied: stored 8 wide, 4 tall, shown 4 wide, 8 tall
    exif = Image.Exif()
    exif[0x0112] = 6
    _save(tmp_path / "rot.jpg", Image.fromarray(_rgb(4, 8)), exif=exif)
    assert load_image(tmp_path / "rot.jpg").shape == (3, 8, 4)


def test_load_image_errors_are_one_line(tmp_path):
    truncated_jpeg(tmp_path / "cut.jpg")
    with pytest.raises(CnnzooError) as e:
        load_image(tmp_path / "cut.jpg")
    assert "cut.jpg" in one_line(e) and "truncated" in str(e.value)

    (tmp_path / "fake.jpg").write_text("not an image at all")
    with pytest.raises(CnnzooError) as e:
        load_image(tmp_path / "fake.jpg")
    assert "fake.jpg" in one_line(e) and "not a readable image" in str(e.value)

    with pytest.raises(CnnzooError) as e:
        load_image(tmp_path / "missing.png")
    assert "not found" in one_line(e)


# ---------------------------------------------------------------- folders


def test_folder_mixed_formats_and_broken_files(tmp_path, caplog):
    root = make_folder(tmp_path / "pets")
    truncated_jpeg(root / "cat" / "broken.jpg")
    (root / "dog" / "fake.jpg").write_text("a text file with an image extension")
    (root / "fish" / "notes.txt").write_text("ignored: not an image extension")
    with caplog.at_level(logging.WARNING, logger="cnnzoo"):
        b = load_data(str(root), image_size=16, progress=False)

    assert b.classes == CLASSES and b.image_size == 16
    assert [f.rsplit("/", 1)[-1] for f, _ in b.skipped] == ["broken.jpg", "fake.jpg"]
    assert "truncated" in b.skipped[0][1]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "broken.jpg" in warnings[0].getMessage()
    assert "fake.jpg" in warnings[0].getMessage()

    for part in (b.train, b.val):
        assert part.images.dtype == torch.uint8 and part.labels.dtype == torch.int64
        assert part.images.shape[1:] == (3, 16, 16)
        assert len(part.paths) == len(part)
    total = torch.bincount(torch.cat([b.train.labels, b.val.labels]), minlength=3)
    assert total.tolist() == [10, 10, 10]  # the two broken files are gone, nothing else
    assert len(b.val) == 3 or len(b.val) == 2  # one per class, unless a broken file was it
    assert b.val_name == "held-out 10% of train"
    assert all("broken" not in p and "fake" not in p for p in b.train.paths + b.val.paths)
    # the source modes seen, as `cnnzoo data` reports them
    modes = {mode for (_, _, mode) in b.source_formats}
    assert {"RGB", "L", "RGBA", "P", "CMYK"} <= modes and any(m.startswith("I") for m in modes)
    assert sum(b.source_formats.values()) == 30


def test_folder_decodes_pixels_like_a_resize_then_center_crop(tmp_path):
    # a 20x10 (w x h) image with a distinct left, middle, right: stored at 10 keeps the middle
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :5], arr[:, 5:15], arr[:, 15:] = 10, 200, 50
    for cls in ("a", "b"):
        _save(tmp_path / "f" / cls / "x.png", Image.fromarray(arr))
        _save(tmp_path / "f" / cls / "y.png", Image.fromarray(arr))
    b = load_data(str(tmp_path / "f"), image_size=10, val_split=0.5, progress=False)
    assert (b.train.images == 200).all() and (b.val.images == 200).all()
    # stored default for small sources: their own shorter side, not 256
    assert load_data(str(tmp_path / "f"), val_split=0.5, progress=False).image_size == 10


def test_folder_stratified_seeded_split(tmp_path):
    root = tmp_path / "s"
    for cls, n in (("a", 20), ("b", 10), ("c", 5)):
        for i in range(n):
            _save(root / cls / f"{i}.png", Image.fromarray(_rgb(8, 8)))
    b1 = load_data(str(root), val_split=0.2, seed=3, progress=False)
    b2 = load_data(str(root), val_split=0.2, seed=3, progress=False)
    b3 = load_data(str(root), val_split=0.2, seed=4, progress=False)
    assert torch.bincount(b1.val.labels).tolist() == [4, 2, 1]
    assert torch.bincount(b1.train.labels).tolist() == [16, 8, 4]
    assert b1.val.paths == b2.val.paths and b1.val.paths != b3.val.paths
    assert torch.equal(b1.val.images, b2.val.images)
    assert not set(b1.val.paths) & set(b1.train.paths)
    assert b1.val_name == "held-out 20% of train" and b1.image_size == 8


def test_stratified_split_properties():
    labels = torch.tensor([0] * 30 + [1] * 7 + [2] * 1 + [3] * 2)
    tr, va = stratified_split(labels, 0.1, seed=0)
    assert sorted(tr.tolist() + va.tolist()) == list(range(40))
    assert torch.bincount(labels[va], minlength=4).tolist() == [3, 1, 0, 1]
    assert stratified_split(labels, 0.0, 0)[1].numel() == 0


def test_split_folders_val_picks_test_is_kept_apart(tmp_path):
    root = tmp_path / "split"
    make_folder(root / "train", per_class=4)
    make_folder(root / "test", per_class=2)
    b = load_data(str(root), image_size=8, val_split=0.25, progress=False)
    # no val folder: a share of train is held out (--val-split); test stays test
    assert b.val_name == "held-out 25% of train" and len(b.train) == 9 and len(b.val) == 3
    assert len(b.test) == 6 and all("/test/" in p for p in b.test.paths)
    assert not set(b.test.paths) & set(b.train.paths + b.val.paths)

    make_folder(root / "val", per_class=3, classes=["dog"])  # a val with one class only
    b = load_data(str(root), image_size=8, progress=False)
    assert b.val_name == "val" and b.val.labels.tolist() == [1, 1, 1]
    assert len(b.train) == 12 and len(b.test) == 6

    make_folder(root / "val", per_class=1, classes=["zebra"])
    with pytest.raises(CnnzooError) as e:
        load_data(str(root), image_size=8, progress=False)
    assert "zebra" in one_line(e) and "not a class" in str(e.value)


@pytest.mark.parametrize("name", ["valid", "Validation"])
def test_kaggle_and_roboflow_val_names(tmp_path, name):
    root = tmp_path / "kaggle"
    make_folder(root / "train", per_class=4)
    make_folder(root / name, per_class=2)
    b = load_data(str(root), image_size=8, progress=False)
    assert b.val_name == name and len(b.val) == 6 and len(b.train) == 12 and b.test is None

    make_folder(root / "val", per_class=1)  # two validation folders: which one is unclear
    with pytest.raises(CnnzooError) as e:
        load_data(str(root), image_size=8, progress=False)
    assert "keep one validation folder" in one_line(e)


def test_train_folder_alone_holds_out_val(tmp_path):
    make_folder(tmp_path / "r" / "train", per_class=10)
    b = load_data(str(tmp_path / "r"), image_size=8, progress=False)
    assert b.val_name.startswith("held-out") and len(b.val) == 3 and len(b.train) == 27


@pytest.mark.parametrize(
    "setup, expected",
    [
        ("missing", "dataset folder not found"),
        ("file", "is a file, not a folder"),
        ("empty_root", "no class folders"),
        ("loose_images", "holds images but no class folders"),
        ("empty_class", "holds no images"),
        ("only_test", "no train/ folder"),
    ],
)
def test_folder_errors_say_what_to_do(tmp_path, setup, expected):
    root = tmp_path / "data"
    if setup == "file":
        root.write_text("x")
    elif setup == "empty_root":
        root.mkdir()
    elif setup == "loose_images":
        _save(root / "a.png", Image.fromarray(_rgb()))
    elif setup == "empty_class":
        make_folder(root, per_class=2)
        (root / "empty").mkdir()
        (root / "empty" / "readme.txt").write_text("no images here")
    elif setup == "only_test":
        make_folder(root / "test", per_class=1)
    with pytest.raises(CnnzooError) as e:
        load_data(str(root), progress=False)
    assert expected in one_line(e)


def test_bad_options():
    with pytest.raises(CnnzooError, match="val-split"):
        load_data("digits", val_split=1.0)
    with pytest.raises(CnnzooError, match="image-size"):
        load_data("digits", image_size=0)


# ---------------------------------------------------------------- digits


def test_digits():
    b = load_data("digits")
    assert b.train.images.shape[1:] == (3, 8, 8) and b.train.images.dtype == torch.uint8
    assert len(b.train) + len(b.val) == 1797 and b.classes == [str(i) for i in range(10)]
    assert torch.equal(b.train.images[:, 0], b.train.images[:, 2])  # grey in all channels
    assert int(b.train.images.max()) == 255 and int(b.train.images.min()) == 0
    val_counts = torch.bincount(b.val.labels, minlength=10)
    assert val_counts.min() >= 17 and val_counts.max() <= 19  # 10% of ~180 per class
    assert len(set(b.mean)) == 1 and 0.2 < b.mean[0] < 0.4
    big = load_data("digits", image_size=16, val_split=0.2, seed=1)
    assert big.train.images.shape[1:] == (3, 16, 16) and big.image_size == 16
    assert abs(len(big.val) - 0.2 * 1797) < 10


# ---------------------------------------------------------------- CIFAR


class _Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2's byte strings, as the official CIFAR files hold them."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        n = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING
        self.write(head + (struct.pack("<i", n) if n >= 256 else b"") + obj)
        self.memoize(obj)

    def save_str(self, obj):
        self.save_bytes(obj.encode("latin1"))

    dispatch[bytes], dispatch[str] = save_bytes, save_str


def _dump(obj, f, protocol) -> None:
    if protocol != "py2":
        pickle.dump(obj, f, protocol)
        return
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    f.write(buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))


def write_fake_cifar(root, name="cifar10", per_batch=6, protocol="py2"):
    """The official layout and pickle format, with a few random images per batch."""
    spec = cifar_mod.SPECS[name]
    folder = root / spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    n_classes = 10 if name == "cifar10" else 100
    names = [f"class{i}" for i in range(n_classes)]
    with open(folder / spec.meta_file, "wb") as f:
        _dump({spec.names_key: names, "num_cases_per_batch": per_batch}, f, protocol)
    written = {}
    for i, fname in enumerate(spec.train_files + spec.test_files):
        data = RNG.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [(i + k) % n_classes for k in range(per_batch)]
        batch = {"batch_label": fname, spec.label_key: labels, "data": data}
        batch["filenames"] = [f"{k}.png" for k in range(per_batch)]
        with open(folder / fname, "wb") as f:
            _dump(batch, f, protocol)
        written[fname] = (data, labels)
    return folder, written


@pytest.mark.parametrize("protocol", ["py2", 2, 4, 5])
def test_cifar10_from_official_pickles(tmp_path, protocol):
    _, written = write_fake_cifar(tmp_path, protocol=protocol)
    b = load_data("cifar10", data_dir=str(tmp_path))
    assert b.name == "cifar10" and b.classes[3] == "class3" and b.val_name == "test"
    assert b.train.images.shape == (30, 3, 32, 32) and b.val.images.shape == (6, 3, 32, 32)
    data, labels = written["data_batch_2"]
    # rows hold the red plane, then green, then blue, each row-major 32x32
    assert torch.equal(b.train.images[6], torch.from_numpy(data[0].reshape(3, 32, 32)))
    assert b.train.labels[6:12].tolist() == labels
    assert b.val.labels.tolist() == written["test_batch"][1]
    mean = b.train.images.double().mean(dim=(0, 2, 3)) / 255
    assert np.allclose(b.mean, mean.tolist(), atol=1e-4)
    small = load_data("cifar10", data_dir=str(tmp_path), image_size=16)
    assert small.train.images.shape == (30, 3, 16, 16) and small.image_size == 16


def test_cifar100_fine_labels(tmp_path):
    write_fake_cifar(tmp_path, "cifar100", per_batch=5)
    b = load_data("cifar100", data_dir=str(tmp_path))
    assert len(b.classes) == 100 and len(b.train) == 5 and len(b.val) == 5
    assert b.train.labels.tolist() == [0, 1, 2, 3, 4]


def test_cifar_missing_offline_and_checksum(tmp_path, monkeypatch):
    with pytest.raises(CnnzooError) as e:
        load_data("cifar10", data_dir=str(tmp_path / "none"))
    assert "--download" in one_line(e) and "--data-dir" in str(e.value)

    # an unreachable server: one line telling the user to place the files
    spec = cifar_mod.SPECS["cifar10"]
    offline = dataclasses.replace(spec, url=(tmp_path / "nowhere.tar.gz").as_uri())
    monkeypatch.setitem(cifar_mod.SPECS, "cifar10", offline)
    with pytest.raises(CnnzooError) as e:
        load_data("cifar10", data_dir=str(tmp_path / "dl"), download=True, progress=False)
    assert "could not download" in one_line(e) and "--data-dir" in str(e.value)

    # a local "server" with a real archive: the MD5 is checked, then it is extracted
    src = tmp_path / "src"
    write_fake_cifar(src)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(src / spec.folder, arcname=spec.folder)
    served = dataclasses.replace(spec, url=archive.as_uri())
    monkeypatch.setitem(cifar_mod.SPECS, "cifar10", served)
    with pytest.raises(CnnzooError) as e:
        load_data("cifar10", data_dir=str(tmp_path / "dl"), download=True, progress=False)
    assert "MD5" in one_line(e) and spec.md5 in str(e.value)
    assert not list((tmp_path / "dl").glob("*.tar.gz*"))  # nothing half-done left behind

    good = dataclasses.replace(served, md5=file_digest(archive))
    monkeypatch.setitem(cifar_mod.SPECS, "cifar10", good)
    b = load_data("cifar10", data_dir=str(tmp_path / "dl"), download=True, progress=False)
    assert len(b.train) == 30

    # an archive the user put in data_dir is used without --download, once its MD5 checks out
    placed = tmp_path / "placed"
    placed.mkdir()
    shutil.copy(archive, placed / archive.name)
    assert len(load_data("cifar10", data_dir=str(placed)).val) == 6
    monkeypatch.setitem(cifar_mod.SPECS, "cifar10", served)  # the real MD5 again
    shutil.rmtree(placed / spec.folder)
    with pytest.raises(CnnzooError) as e:
        load_data("cifar10", data_dir=str(placed))
    assert "fails its MD5 check" in one_line(e)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_MARKER",))


def test_restricted_unpickler_refuses_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder, _ = write_fake_cifar(tmp_path)
    with open(folder / "data_batch_3", "wb") as f:
        pickle.dump({"data": _Evil(), "labels": [0]}, f, protocol=2)
    with pytest.raises(CnnzooError) as e:
        load_data("cifar10", data_dir=str(tmp_path))
    assert "refused" in one_line(e) and "system" in str(e.value)
    assert not (tmp_path / "PWNED_MARKER").exists()

    # object arrays would carry further pickles: refused too, as are other globals
    with pytest.raises(pickle.UnpicklingError):
        safe_pickle.loads(pickle.dumps(np.array([1, "a"], dtype=object), protocol=2))
    with pytest.raises(pickle.UnpicklingError):
        safe_pickle.loads(pickle.dumps(torch.zeros(2)))
    with pytest.raises(pickle.UnpicklingError):
        safe_pickle.loads(pickle.dumps(eval, protocol=2))
    # plain data and numeric arrays come back exactly
    obj = {"a": [1, 2.5, "s", b"b"], "x": np.arange(6, dtype=">i4").reshape(2, 3)}
    for proto in (2, 4, 5):
        back = safe_pickle.loads(pickle.dumps(obj, protocol=proto))
        assert back["a"] == obj["a"] and np.array_equal(back["x"], obj["x"])


# ---------------------------------------------------------------- Imagenette / archives

WNIDS = ["n01440764", "n02102040", "n02979186", "n03000684", "n03028079"]
WNIDS += ["n03394916", "n03417042", "n03425413", "n03445777", "n03888257"]


def test_imagenette_local_copy_and_download(tmp_path, monkeypatch):
    root = tmp_path / "imagenette2-160"
    for split, n in (("train", 2), ("val", 1)):
        for w in WNIDS:
            for i in range(n):
                _save(root / split / w / f"{w}_{i}.JPEG", Image.fromarray(_rgb(20, 30)))
    b = load_data("imagenette", data_dir=str(tmp_path), progress=False)
    assert b.name == "imagenette" and b.val_name == "val"
    assert b.classes[0] == "tench" and b.classes[3] == "chain saw" and len(b.classes) == 10
    assert len(b.train) == 20 and len(b.val) == 10 and b.image_size == 160  # the release size

    with pytest.raises(CnnzooError) as e:
        load_data("imagenette", data_dir=str(tmp_path / "empty"))
    assert "--download" in one_line(e) and "imagenette2-160" in str(e.value)

    # --download from a local "server": MD5 checked, archive extracted, layout checked
    archive = tmp_path / "imagenette2-160.tgz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(root, arcname="imagenette2-160")
    monkeypatch.setattr(
        imagenette_mod, "_URL", (tmp_path / "x").as_uri()[:-1] + "imagenette2-{px}.tgz"
    )
    monkeypatch.setitem(imagenette_mod._MD5, 160, file_digest(archive))
    b = load_data("imagenette", data_dir=str(tmp_path / "dl"), download=True, progress=False)
    assert b.classes[-1] == "parachute" and len(b.train) == 20


def test_extract_refuses_escaping_members(tmp_path):
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as t:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 2
        t.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(CnnzooError) as e:
        extract(evil, tmp_path / "out")
    assert "outside" in one_line(e)
    assert not (tmp_path / "outside.txt").exists()

    good = tmp_path / "good.tar.gz"
    make_folder(tmp_path / "src" / "ds", per_class=1)
    with tarfile.open(good, "w:gz") as t:
        t.add(tmp_path / "src" / "ds", arcname="ds")
    dest = extract(good, tmp_path / "x")
    assert (dest / "ds" / "cat").is_dir()
    (dest / "ds" / "cat" / "img000.jpg").unlink()
    extract(good, tmp_path / "x")  # already extracted: the marker says so, nothing redone
    assert not (dest / "ds" / "cat" / "img000.jpg").exists()


def test_shared_imagenette_sample(tmp_path):
    """A few real JPEGs of the shared Imagenette tar load with readable class names."""
    tar = DATASETS / "imagenette-160-train.tar"
    if not tar.is_file():
        missing(f"shared dataset not found at {tar} (set CNNZOO_DATASETS)")
    picked, per_class = [], {}
    with tarfile.open(tar) as t:  # uncompressed: reading headers only is quick
        for m in t.getmembers():
            cls = m.name.split("/")[1] if m.isfile() and m.name.count("/") == 2 else None
            if cls and per_class.get(cls, 0) < 3:
                per_class[cls] = per_class.get(cls, 0) + 1
                picked.append(m)
        for m in picked:
            (tmp_path / m.name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / m.name).write_bytes(t.extractfile(m).read())
    b = load_data(str(tmp_path / "train"), val_split=0.34, progress=False)
    assert b.classes[0] == "tench" and len(b.classes) == 10
    assert b.image_size == 160 and len(b.train) == 20 and len(b.val) == 10


# ---------------------------------------------------------------- cnnzoo data


def test_cli_data_report_and_grid(tmp_path, capsys):
    root = make_folder(tmp_path / "pets", per_class=6)
    truncated_jpeg(root / "fish" / "bad.jpg")
    grid = tmp_path / "grid.png"
    rc = main(["data", str(root), "--image-size", "16", "--grid", str(grid), "--per-class", "3"])
    out = capsys.readouterr().out
    assert rc == 0
    for name in CLASSES:
        assert name in out
    assert "total" in out and "skipped 1 unreadable file" in out and "bad.jpg" in out
    assert "3x16x16" in out and "modes:" in out and "CMYK" in out
    with Image.open(grid) as im:
        assert im.format == "PNG" and im.width > 100 and im.height > 100

    rc = main(["data", str(tmp_path / "nope")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "dataset folder not found" in err


def test_cli_export_writes_val_images_per_class(tmp_path, capsys):
    from PIL import Image

    from cnnzoo.cli.main import main

    out = tmp_path / "samples"
    assert main(["data", "digits", "--export", str(out), "--per-class", "2"]) == 0
    folders = sorted(p.name for p in out.iterdir())
    assert folders == [str(d) for d in range(10)]
    files = sorted(out.rglob("*.png"))
    assert len(files) == 20
    with Image.open(files[0]) as im:
        assert im.size == (8, 8)


def test_restricted_unpickler_refuses_files_that_modify_it():
    # GLOBAL numpy.ndarray, then BUILD with a slot-state dict: would set an attribute on the
    # reader's ndarray stand-in, for every later file, if it were let through
    hostile = b"\x80\x02cnumpy\nndarray\nN}X\x07\x00\x00\x00plantedK\x01s\x86b."
    with pytest.raises(pickle.UnpicklingError, match="sets attributes of the reader"):
        safe_pickle.loads(hostile)
    assert not hasattr(safe_pickle._NdarrayName, "planted")
    back = safe_pickle.loads(pickle.dumps({"x": np.arange(3, dtype=np.uint8)}, protocol=2))
    assert back["x"].tolist() == [0, 1, 2]
