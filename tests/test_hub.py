"""Published weights by name: the table, and the download path against a local HTTP server on
loopback (Range support, dropped connections, checksums, offline use of the cache)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import threading

import pytest
import torch
from conftest import missing, published, reference_models, timm_published, timm_tags

from cnnzoo import create_model
from cnnzoo.download import download
from cnnzoo.errors import CnnzooError
from cnnzoo.hub import PUBLISHED, PublishedWeights, cache_dir, fetch_weights
from cnnzoo.models.factory import get_model_cfg, list_models, weights_cfg


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves `server.files`; honours `Range: bytes=N-` when `server.ranges`; the first
    `server.drops` answers stop after half the body and close the connection."""

    def do_GET(self):  # noqa: N802 (the http.server API)
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        body = srv.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and srv.ranges:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if srv.drops > 0:
            srv.drops -= 1
            self.wfile.write(body[start : start + (len(body) - start) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests, srv.ranges, srv.drops = {}, [], True, 0
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()

    def stop():
        if thread.is_alive():
            srv.shutdown()
            srv.server_close()
            thread.join()

    srv.stop = stop
    yield srv
    stop()


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
def test_table_lists_every_torchvision_file_and_every_timm_model():
    """The table holds every weight set published.json names, under the same file name, with
    the best one first (the default); and an entry for each timm-sourced reference model."""
    ref = published()
    if not ref:
        missing("published.json not found (set CNNZOO_REFERENCE)")
    registered = set(list_models())  # (an unregistered one fails test_fidelity's check)
    for model, rows in ref.items():
        if model not in registered:
            continue
        entries = PUBLISHED[model]
        files = {(r["weights"], r["url"].rsplit("/", 1)[-1]) for r in rows}  # URL or file name
        assert {(e.tag, e.file) for e in entries} == files
        # the default, what ModelCfg describes: the reference's own where it says, else the best
        flagged = [r for r in rows if r.get("default")]
        best = flagged[0] if flagged else max(rows, key=lambda r: r["acc1"])
        assert entries[0].tag == best["weights"] and len(entries) == len(rows)
        for e in entries:
            assert e.url == "https://download.pytorch.org/models/" + e.file
            assert e.sha256 is not None and e.sha256 in e.file
    timm_models = {m for m, r in reference_models().items() if r["source"].startswith("timm")}
    assert timm_models & registered and timm_models & registered <= set(PUBLISHED)
    for model, entries in PUBLISHED.items():
        assert model in registered
        assert get_model_cfg(model).source in ("torchvision", "timm")
        # only the Hugging Face files come without a published checksum
        for e in entries:
            assert (e.sha256 is None) == e.url.startswith("https://huggingface.co/"), e


def test_each_weight_set_carries_its_published_transform():
    """The second part of the zoo: every torchvision set and timm tag with its own eval
    transform (size, crop, interpolation, mean / std), the default's being the model's cfg."""
    tv, timm = published(), timm_published()
    checked = 0
    for model in set(list_models()) & (set(tv) | set(timm)):
        entries = {e.tag: e for e in PUBLISHED[model]}
        if entries[PUBLISHED[model][0].tag].transform is None:
            continue  # the first part of the zoo: the cfg describes its sets
        for r in tv.get(model, []):
            t = entries[r["weights"]].transform
            want = (r["crop_size"], r["crop_size"] / r["resize_size"], r["interpolation"])
            assert (t.input_size, t.crop_pct, t.interpolation) == pytest.approx(want), r
        if model in timm:
            assert set(entries) == {r["tag"] for r in timm[model]}
        for r in timm.get(model, []):
            e = entries[r["tag"]]
            assert e.url == (r["url"] or f"https://huggingface.co/{r['hf_hub_id']}/resolve/main/"
                             "model.safetensors")  # fmt: skip
            t = e.transform
            assert (t.input_size, t.crop_pct, t.interpolation, list(t.mean), list(t.std)) == (
                r["input_size"], r["crop_pct"], r["interpolation"], r["mean"], r["std"]
            )  # fmt: skip
        cfg = get_model_cfg(model)
        assert weights_cfg(model) == cfg, "the cfg describes the default (first) set"
        checked += 1
    if not checked:
        pytest.skip("zoo2 published facts not found (set CNNZOO_REFERENCE)")


def test_weights_cfg_gives_each_sets_transform():
    swag = weights_cfg("regnet_y_16gf", "IMAGENET1K_SWAG_E2E_V1")
    assert (swag.input_size, swag.crop_pct, swag.interpolation) == (384, 1.0, "bicubic")
    assert weights_cfg("regnet_y_16gf").input_size == 224
    ra4 = weights_cfg("resnet50d", "ra4_e3600_r224_in1k")
    assert ra4.mean == ra4.std == (0.5, 0.5, 0.5) and ra4.crop_pct == 0.95
    assert weights_cfg("resnet50") == get_model_cfg("resnet50")


def test_timm_defaults_are_published_tags_with_their_preprocessing():
    """A timm-sourced model's default tag is one timm publishes for it, and the model's config
    is that tag's eval transform (size, crop, interpolation, normalisation)."""
    tags = timm_tags()
    if not tags:
        pytest.skip("timm tags not found (set CNNZOO_REFERENCE)")
    for model, entries in PUBLISHED.items():
        cfg = get_model_cfg(model)
        if cfg.source != "timm":
            continue
        row = next((t for t in tags.get(model, []) if t["tag"] == entries[0].tag), None)
        assert row is not None, f"{model}.{entries[0].tag} is not a timm tag"
        assert (cfg.input_size, cfg.interpolation) == (row["input_size"], row["interpolation"])
        # the resize side is what the crop fraction decides
        side = round(cfg.input_size / cfg.crop_pct)
        assert side == round(row["input_size"] / row["crop_pct"]), model
        assert cfg.mean == pytest.approx(tuple(row["mean"])), model
        assert cfg.std == pytest.approx(tuple(row["std"])), model


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
    entry = PublishedWeights(model, "TEST", f"{server.url}/{name}", name)
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


def test_file_without_published_checksum_is_recorded_then_checked(home, server, caplog):
    """inception_v4's file comes from Hugging Face with no published checksum: it must be a
    safetensors file, its SHA-256 is recorded on first download and a changed file refused."""
    from safetensors.torch import save

    entry = PUBLISHED["inception_v4"][0]
    assert entry.sha256 is None
    server.files[entry.file] = b"not safetensors"
    with pytest.raises(CnnzooError, match="not a readable safetensors file"):
        fetch_weights("inception_v4", progress=False)
    (cache_dir() / entry.file).unlink()

    data = save({"w": torch.arange(10.0)})
    server.files[entry.file] = data
    with caplog.at_level("WARNING", logger="cnnzoo"):
        path = fetch_weights("inception_v4", progress=False)
    assert [r for r in caplog.records if "no published checksum" in r.getMessage()]
    stamp = json.loads(path.with_name(path.name + ".sha256").read_text())
    assert stamp["sha256"] == _sha(data)
    assert fetch_weights("inception_v4", progress=False) == path  # the recorded digest fits
    path.write_bytes(data[:-1] + b"!")  # same size, other content
    with pytest.raises(CnnzooError) as e:
        fetch_weights("inception_v4", progress=False)
    assert "delete it to download it again" in _one_line(e)


def test_train_pretrained_fine_tunes_from_the_published_file(home, server, monkeypatch, tmp_path):
    """`cnnzoo train --pretrained` is fine-tuning from the published file: the finetune recipe,
    the body's weights, the reference normalisation, a new classifier for the data's classes."""
    from test_train import make_bundle

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
    t = Trainer(cfg, make_bundle(10), progress=False)
    assert t.cfg.recipe == "finetune"
    assert t.mean == tuple(source.cfg.mean) and t.std == tuple(source.cfg.std)
    assert t.model.get_classifier().weight.shape[0] == 3
    mine = t.model.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in source.state_dict().items()
               if not k.startswith("classifier.3."))  # fmt: skip
    with pytest.raises(CnnzooError, match="not both"):
        Trainer(dataclasses.replace(cfg, weights="x.pth"), make_bundle(10), progress=False)
