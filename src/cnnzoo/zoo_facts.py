"""Published ImageNet-1K top-1 accuracy (%) per model: that of its default weight set, read
from the weights table (`hub.PUBLISHED`, the one home of the fact). Models without published
weights are absent. Imports no torch (`cnnzoo models` lists it in a blink)."""

from __future__ import annotations

from cnnzoo.hub import PUBLISHED

PUBLISHED_TOP1: dict[str, float] = {
    model: sets[0].top1 for model, sets in PUBLISHED.items() if sets and sets[0].top1 is not None
}
