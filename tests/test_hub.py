"""Published weights by name: the table, and the download path against a local HTTP server on
loopback (Range support, dropped connections, checksums, offline use of the cache)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import torch
import weights_mirror
from conftest import missing, published, timm_tags

import cnnzoo
from cnnzoo import create_model
from cnnzoo.cfg import resize_side
from cnnzoo.download import download
from cnnzoo.errors import CnnzooError
from cnnzoo.hub import PUBLISHED, PublishedWeights, cache_dir, fetch_weights, published_weights
from cnnzoo.models.factory import get_model_cfg, list_models, weights_cfg

server = weights_mirror.server  # the loopback mirror, a fixture


@pytest.fixture
def home(tmp_path, monkeypatch, server):
    """An empty cache, and every published file fetched from the test server."""
    monkeypatch.setenv("CNNZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CNNZOO_WEIGHTS_URL", server.url)
    return tmp_path / "home"


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


def _payload(n: int = 300_000) -> bytes:
    return bytes(torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(n)).tolist())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- the table
@cache
def _timm_tags() -> dict:
    return timm_tags()  # both parts of the zoo


def test_table_lists_every_torchvision_weight_set_with_its_transform():
    """Every weight set torchvision 0.29.1 publishes, under its file name and SHA-256 prefix,
    with its top-1 and size, the best first (the default, which the model's ModelCfg
    describes); each set evaluated with its own transform."""
    ref = published()
    if not ref:
        missing("published.json not found (set CNNZOO_REFERENCE)")
    registered = set(list_models())  # (an unregistered one fails test_fidelity's check)
    for model, rows in ref.items():
        if model not in registered:
            continue
        entries = [e for e in PUBLISHED[model] if e.source == "torchvision"]
        assert entries == PUBLISHED[model][: len(entries)]  # torchvision's sets come first
        by_tag = {e.tag: e for e in entries}
        assert set(by_tag) == {r["weights"] for r in rows}
        for r in rows:
            e = by_tag[r["weights"]]
            assert (e.file, e.url) == (r["url"], "https://download.pytorch.org/models/" + r["url"])
            assert e.sha256 and len(e.sha256) >= 8 and f"-{e.sha256}." in e.file
            assert (e.top1, e.file_mb, e.licence) == (r["acc1"], r["file_mb"], "bsd-3-clause")
            if "crop_size" in r:  # zoo2's facts give each set's transform
                assert (e.input_size, e.resize, e.interpolation) == (
                    r["crop_size"],
                    r["resize_size"],
                    r["interpolation"],
                ), e.name
        # the default: torchvision's own where the facts say (zoo2), else the best
        flagged = [r for r in rows if r.get("default")]
        assert entries[0].tag == (flagged or [max(rows, key=lambda r: r["acc1"])])[0]["weights"]
    # the transforms torchvision publishes for a non-default set (not the default's)
    assert published_weights("resnet50", "IMAGENET1K_V1").resize == 256
    assert published_weights("resnet50", "IMAGENET1K_V2").resize == 232
    v1 = published_weights("efficientnet_b1", "IMAGENET1K_V1")
    v2 = published_weights("efficientnet_b1", "IMAGENET1K_V2")
    assert (v1.input_size, v1.resize, v1.interpolation) == (240, 256, "bicubic")
    assert (v2.input_size, v2.resize, v2.interpolation) == (240, 255, "bilinear")


def test_default_weights_are_what_the_model_cfg_describes():
    for model, entries in PUBLISHED.items():
        cfg = get_model_cfg(model)
        assert cfg.source in ("torchvision", "timm") and entries[0].source == cfg.source
        mine = entries[0].model_cfg(cfg)
        assert resize_side(mine.input_size, mine.crop_pct) == resize_side(
            cfg.input_size, cfg.crop_pct
        ), model
        assert (mine.input_size, mine.interpolation, mine.mean, mine.std) == (
            cfg.input_size, cfg.interpolation, cfg.mean, cfg.std
        ), model  # fmt: skip
    assert get_model_cfg("inception_resnet_v2").crop_pct == 0.8975  # timm's, not 0.897


def test_table_lists_every_timm_tag_as_timm_1_0_31_names_it():
    """Every timm tag of the zoo's architectures (but resnet50.bamboo, with no licence or
    top-1 published), with timm's top-1, licence, transform and file: the GitHub release
    file timm's config names (SHA-256 prefix in its name) or, where timm names only Hugging
    Face, its model.safetensors, pinned by the SHA-256 Hugging Face lists where known and
    plainly without one otherwise."""
    tags = _timm_tags()
    if not tags:
        missing("timm_tags.json not found (set CNNZOO_REFERENCE)")
    for model, rows in tags.items():
        entries = {e.tag: e for e in PUBLISHED[model] if e.source == "timm"}
        assert set(entries) == {r["tag"] for r in rows} - {"bamboo"}, model
        for r in rows:
            e = entries.get(r["tag"])
            if e is None:
                continue
            assert (e.top1, e.licence, e.input_size, e.crop_pct, e.interpolation) == (
                r["top1_at_input_size"], r["license"], r["input_size"], r["crop_pct"],
                r["interpolation"],
            ), e.name  # fmt: skip
            assert (list(e.mean), list(e.std)) == (r["mean"], r["std"]), e.name
            assert e.non_commercial == ("ig1b" in e.tag or "yfcc" in e.tag), e.name
            if r["url"]:
                assert e.url == r["url"] and f"-{e.sha256}." in e.file, e.name
            else:
                hf = f"https://huggingface.co/{r['hf_hub_id']}/resolve/main/model.safetensors"
                assert e.url == hf and e.file == f"{e.name}.safetensors"
                assert e.sha256 is None or len(e.sha256) == 64, e.name
    assert published_weights("inception_v4", "tf_in1k").sha256 == (
        "a756a086851c8d5a8de135ec15c76b90ea56cb5aef450e3299107e659e725bb1"
    )
    assert published_weights("inception_resnet_v2").sha256.startswith("dbea26b13a5fc835")
    assert "rwightman" not in published_weights("seresnet50").url  # timm's new organisation
    assert published_weights("resnetv2_50").url.startswith("https://huggingface.co/timm/")


def test_weights_cfg_gives_each_sets_transform():
    swag = weights_cfg("regnet_y_16gf", "IMAGENET1K_SWAG_E2E_V1")
    assert (swag.input_size, swag.crop_pct, swag.interpolation) == (384, 1.0, "bicubic")
    assert weights_cfg("regnet_y_16gf").input_size == 224
    ra4 = weights_cfg("resnet50d", "ra4_e3600_r224_in1k")
    assert ra4.mean == ra4.std == (0.5, 0.5, 0.5) and ra4.crop_pct == 0.95
    assert weights_cfg("resnet50") == get_model_cfg("resnet50")


def test_model_without_published_weights_is_one_line_error(home):
    with pytest.raises(CnnzooError) as e:
        create_model("resnet20", pretrained=True)
    assert "resnet20 has no published ImageNet weights" in _one_line(e)
    with pytest.raises(CnnzooError) as e:
        create_model("resnet50", pretrained="IMAGENET1K_V9")
    assert "IMAGENET1K_V2, IMAGENET1K_V1" in _one_line(e)
    with pytest.raises(CnnzooError, match="not both"):
        create_model("resnet50", pretrained=True, weights="x.pth")


# ---------------------------------------------------------------- downloads
def _publish(home, server, monkeypatch, model="mobilenet_v3_small"):
    """Serve the weights of a fresh `model` as the table's file for it (named, as torchvision
    names its files, with the start of its SHA-256); the model and the file name."""
    source = create_model(model).eval()
    path = home / "src.pth"
    home.mkdir(parents=True, exist_ok=True)
    torch.save(source.state_dict(), path)
    data = path.read_bytes()
    name = f"{model}-{_sha(data)[:8]}.pth"
    server.files[name] = data
    entry = PublishedWeights(model, "TEST", f"{server.url}/{name}", name, _sha(data)[:8])
    monkeypatch.setitem(PUBLISHED, model, [entry])
    return source, name, data


def test_good_file_is_cached_and_used_offline(home, server, monkeypatch):
    """create_model(pretrained=True) downloads the table's file once, checks it, and loads it;
    with the server gone, the cache alone is enough."""
    source, name, data = _publish(home, server, monkeypatch)

    x = torch.randn(1, 3, 32, 32)
    model = create_model("mobilenet_v3_small", pretrained=True).eval()
    assert torch.equal(model(x), source(x))
    cached = cache_dir() / name
    assert cached.read_bytes() == data
    assert json.loads(cached.with_name(name + ".sha256").read_text())["sha256"] == _sha(data)
    assert len(server.requests) == 1

    server.stop()
    again = create_model("mobilenet_v3_small", pretrained=True, num_classes=4).eval()
    body = {k: v for k, v in again.state_dict().items() if not k.startswith("classifier.3.")}
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in body.items())
    assert again(x).shape == (1, 4)
    assert len(server.requests) == 1


def test_wrong_checksum_is_refused_and_deleted(home, server):
    """resnet18's real table entry: a file that is not the published one never lands in the
    cache, and no partial file is left behind."""
    entry = PUBLISHED["resnet18"][0]
    server.files[entry.file] = _payload()
    with pytest.raises(CnnzooError) as e:
        fetch_weights("resnet18", progress=False)
    msg = _one_line(e)
    assert "SHA-256" in msg and entry.sha256 in msg and "deleted" in msg
    assert not any(p.name.startswith(entry.file) and not p.name.endswith(".lock")
                   for p in cache_dir().iterdir())  # fmt: skip


@pytest.mark.parametrize("ranges", [True, False], ids=["resumed", "restarted"])
def test_interrupted_download_is_completed(tmp_path, server, ranges):
    """The server drops the connection half-way: the download goes on from where it stopped
    (Range request) or, from a server without Range support, starts over; either way the file
    is whole and its checksum right."""
    data = _payload()
    server.files["w.bin"] = data
    server.ranges, server.drops = ranges, 1
    dest = tmp_path / "w.bin"
    digest = download(f"{server.url}/w.bin", dest, checksum=_sha(data)[:8], progress=False)
    assert digest == _sha(data) and dest.read_bytes() == data
    assert len(server.requests) == 2
    first, second = server.requests
    assert first[1] is None
    assert second[1] == f"bytes={len(data) // 2}-"  # asked for the rest only
    assert not dest.with_name("w.bin.part").exists()


def test_part_file_of_an_earlier_run_is_resumed(tmp_path, server):
    data = _payload()
    server.files["w.bin"] = data
    dest = tmp_path / "w.bin"
    dest.with_name("w.bin.part").write_bytes(data[:1000])
    download(f"{server.url}/w.bin", dest, checksum=_sha(data), progress=False)
    assert dest.read_bytes() == data
    assert server.requests == [("/w.bin", "bytes=1000-")]


def test_offline_with_empty_cache_says_where_to_put_the_file(home, server):
    server.stop()
    entry = PUBLISHED["resnet18"][0]
    with pytest.raises(CnnzooError) as e:
        create_model("resnet18", pretrained=True)
    msg = _one_line(e)
    assert f"{server.url}/{entry.file}" in msg
    assert f"put it at {cache_dir() / entry.file}" in msg


def test_file_without_a_known_checksum_is_recorded_then_checked(home, server, caplog):
    """inception_v3.tf_in1k is published only on Hugging Face, with no SHA-256 known here: it
    must be a safetensors file, its SHA-256 is recorded on first download (said plainly) and a
    changed file refused."""
    from safetensors.torch import save

    entry = published_weights("inception_v3", "tf_in1k")
    assert entry.sha256 is None and entry.file == "inception_v3.tf_in1k.safetensors"
    server.files[entry.file] = b"not safetensors"
    with pytest.raises(CnnzooError, match="not a readable safetensors file"):
        fetch_weights("inception_v3", "tf_in1k", progress=False)
    (cache_dir() / entry.file).unlink()

    data = save({"w": torch.arange(10.0)})
    server.files[entry.file] = data
    with caplog.at_level("WARNING", logger="cnnzoo"):
        path = fetch_weights("inception_v3", "TF_IN1K", progress=False)
    assert [r for r in caplog.records if "no published SHA-256 is known" in r.getMessage()]
    stamp = json.loads(path.with_name(path.name + ".sha256").read_text())
    assert stamp["sha256"] == _sha(data)
    assert fetch_weights("inception_v3", "tf_in1k", progress=False) == path  # it still fits
    path.write_bytes(data[:-1] + b"!")  # same size, other content
    with pytest.raises(CnnzooError) as e:
        fetch_weights("inception_v3", "tf_in1k", progress=False)
    assert "delete it to download it again" in _one_line(e)


def test_hugging_face_file_is_pinned_by_its_full_sha256(home, server):
    """inception_v4.tf_in1k: Hugging Face lists the file's SHA-256; any other file is refused
    before it reaches the cache, however well it parses."""
    from safetensors.torch import save

    entry = published_weights("inception_v4")
    server.files[entry.file] = save({"w": torch.arange(10.0)})
    with pytest.raises(CnnzooError) as e:
        fetch_weights("inception_v4", progress=False)
    assert "failed its SHA-256 check" in _one_line(e) and entry.sha256 in str(e.value)
    assert not (cache_dir() / entry.file).exists()


def test_timm_tag_by_name_loads_its_file_with_its_transform(home, server, monkeypatch):
    """create_model("resnet50.a1_in1k", pretrained=True): timm's tag, its weights, its eval
    transform as model.cfg; a torchvision set named the same way gets its own transform too."""
    source = create_model("resnet18").eval()
    path = home / "src.pth"
    home.mkdir(parents=True, exist_ok=True)
    torch.save(source.state_dict(), path)
    data = path.read_bytes()
    rows = list(PUBLISHED["resnet18"])
    i = next(i for i, r in enumerate(rows) if r.tag == "a1_in1k")
    name = f"resnet18_a1_0-{_sha(data)[:8]}.pth"
    rows[i] = dataclasses.replace(rows[i], file=name, sha256=_sha(data)[:8])
    monkeypatch.setitem(PUBLISHED, "resnet18", rows)
    server.files[name] = data

    model = create_model("resnet18.a1_in1k", pretrained=True).eval()
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(model(x), source(x)) and model.model_name == "resnet18"
    assert (model.cfg.crop_pct, model.cfg.interpolation) == (0.95, "bicubic")
    assert create_model("resnet18", pretrained="A1_IN1K").cfg.crop_pct == 0.95
    assert [p for p, _ in server.requests] == [f"/{name}"]
    small = create_model("resnet18.a3_in1k")  # no weights asked for: the transform only
    assert small.cfg.input_size == 160 and len(server.requests) == 1
    v1 = create_model("resnet50.IMAGENET1K_V1").cfg
    assert resize_side(v1.input_size, v1.crop_pct) == 256
    with pytest.raises(CnnzooError) as e:
        create_model("resnet18.a9_in1k")
    assert "a1_in1k" in _one_line(e)
    with pytest.raises(CnnzooError, match="another"):
        create_model("resnet18.a1_in1k", pretrained="a2_in1k")


def test_train_pretrained_fine_tunes_from_the_published_file(home, server, monkeypatch, tmp_path):
    """`cnnzoo train --pretrained` is fine-tuning from the published file: the finetune recipe,
    the body's weights, the reference normalisation, a new classifier for the data's classes."""
    from helpers import make_bundle

    from cnnzoo.cli.main import build_parser
    from cnnzoo.cli.train import config_from_args
    from cnnzoo.train import Trainer

    source, _, _ = _publish(home, server, monkeypatch)
    args = build_parser().parse_args(
        ["train", "--model", "mobilenet_v3_small", "--data", "patterns", "--pretrained",
         "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "run")]
    )  # fmt: skip
    cfg = config_from_args(args)
    assert cfg.pretrained and cfg.weights is None
    t = Trainer(cfg, make_bundle(14), progress=False)
    assert t.cfg.recipe == "finetune"
    assert t.setup.mean == tuple(source.cfg.mean) and t.setup.std == tuple(source.cfg.std)
    assert t.setup.model.get_classifier().weight.shape[0] == 3
    mine = t.setup.model.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in source.state_dict().items()
               if not k.startswith("classifier.3."))  # fmt: skip
    with pytest.raises(CnnzooError, match="not both"):
        Trainer(dataclasses.replace(cfg, weights="x.pth"), make_bundle(14), progress=False)


def test_models_pretrained_lists_every_weight_set_without_torch(home, server):
    """`cnnzoo models --pretrained [PATTERN]`: one line per weight set with top-1, transform,
    size, licence (non-commercial said), SHA-256 as pinned ("none known" where none is) and
    whether it is cached; no torch imported."""
    code = (
        "import sys\n"
        "from cnnzoo.cli.main import main\n"
        "assert main(['models', '--pretrained', 'PATTERN']) == 0\n"
        "assert 'torch' not in sys.modules, 'cnnzoo models --pretrained imported torch'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(cnnzoo.__file__).parents[1])}

    def listing(pattern: str) -> list[str]:
        run = [sys.executable, "-c", code.replace("'PATTERN'", repr(pattern))]
        p = subprocess.run(run, capture_output=True, text=True, env=env)
        assert p.returncode == 0, p.stderr
        return p.stdout.splitlines()

    lines = listing("*")
    assert len(lines) == 1 + sum(len(rows) for rows in PUBLISHED.values())
    r50 = {line.split()[0]: line for line in listing("resnet50")}
    assert "(default)" in r50["resnet50.IMAGENET1K_V2"] and " 232 " in r50["resnet50.IMAGENET1K_V2"]
    assert " 256 " in r50["resnet50.IMAGENET1K_V1"] and "97.8" in r50["resnet50.IMAGENET1K_V1"]
    assert "(non-commercial)" in r50["resnet50.fb_swsl_ig1b_ft_in1k"]
    assert "(non-commercial)" not in r50["resnet50.a1_in1k"]
    assert " 80.38 " in r50["resnet50.a1_in1k"] and " bicubic " in r50["resnet50.a1_in1k"]
    tagged = listing("*.tf_in1k")
    assert {line.split()[0] for line in tagged[1:]} == {
        "inception_v3.tf_in1k", "inception_v4.tf_in1k", "inception_resnet_v2.tf_in1k"
    }  # fmt: skip
    v3 = next(line for line in tagged if line.startswith("inception_v3."))
    assert "none known" in v3 and v3.endswith(" no")
    entry = published_weights("inception_v3", "tf_in1k")
    cache_dir().mkdir(parents=True)
    (cache_dir() / entry.file).write_bytes(b"x")
    assert listing("inception_v3.tf_in1k")[1].endswith(" yes")
