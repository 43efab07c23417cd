"""The server's page in headless Chromium: pick an image as a user would, read the top-5 bar
chart back from the page, and check it is what `predict` says for that file. The screenshot
is kept as artifacts/serve-page.png."""

from __future__ import annotations

import pytest
import torch
from chrome import Chrome, find_chromium
from conftest import ROOT
from PIL import Image, ImageDraw

import cnnzoo
from cnnzoo.export import model_meta
from cnnzoo.infer.predict import Predictor

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
from cnnzoo.serve import build_app, model_card, serving  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
CLASSES = ["tabby cat", "golden retriever", "goldfish", "barn owl", "fire truck", "tulip"]
ARTIFACTS = ROOT / "artifacts"


def picture(path) -> None:
    """A small scene (sky, sun, house) so the screenshot shows a real picture."""
    im = Image.new("RGB", (320, 220), (135, 190, 235))
    d = ImageDraw.Draw(im)
    d.rectangle((0, 160, 320, 220), fill=(70, 150, 60))
    d.ellipse((240, 20, 290, 70), fill=(250, 210, 60))
    d.rectangle((70, 100, 170, 170), fill=(180, 80, 60))
    d.polygon([(60, 100), (120, 55), (180, 100)], fill=(110, 50, 40))
    d.rectangle((105, 130, 130, 170), fill=(90, 60, 40))
    im.save(path)


def test_page_shows_the_top5_of_a_picked_image(tmp_path):
    exe = find_chromium()
    if exe is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set CNNZOO_CHROMIUM)")
    torch.manual_seed(3)
    model = cnnzoo.create_model("resnet20", num_classes=len(CLASSES))
    predictor = Predictor(model, model_meta("resnet20", len(CLASSES), CLASSES))
    image = tmp_path / "house.png"
    picture(image)
    (expected,), _ = predictor.predict_files([str(image)], topk=5)
    want = [(name, f"{100 * p:.1f}%") for name, _, p in expected.top]

    app = build_app(predictor, model_card(predictor.meta, "resnet20.safetensors", "pytorch"))
    browser = Chrome(exe, tmp_path / "profile")
    try:
        with serving(app) as url:
            page = browser.page(url + "/")
            card = browser.wait_for(  # the model card has arrived
                page,
                "(t => t.includes('classes') ? t : null)"
                "(document.getElementById('card').textContent)",
            )
            browser.set_file(page, "#file", image)
            rows = browser.wait_for(
                page,
                "(() => { const r = [...document.querySelectorAll('#results .row')];"
                " return r.length ? r.map(x => [x.querySelector('.name').textContent,"
                " x.querySelector('.pct').textContent]) : null; })()",
            )
            status = browser.evaluate(page, "document.getElementById('status').textContent")
            widths = browser.evaluate(
                page,
                "[...document.querySelectorAll('#results .bar')].map(b => b.style.width)",
            )
            shown = browser.evaluate(page, "document.getElementById('preview').naturalWidth")
            ARTIFACTS.mkdir(exist_ok=True)
            browser.screenshot(page, ARTIFACTS / "serve-page.png")
    finally:
        browser.close()
    assert [tuple(r) for r in rows] == want, (rows, want)
    assert widths == [pct for _, pct in want]  # each bar is as long as its probability
    assert status.startswith(f"house.png: {want[0][0]}")
    assert shown == 320  # the picked image is displayed
    assert card.startswith("resnet20 \u00b7 6 classes \u00b7 32 px"), card
    assert (ARTIFACTS / "serve-page.png").stat().st_size > 10_000
