"""cnnzoo: convolutional image classifiers, faithful to their papers and reference weights.

The names below load on first use (PEP 562), so that commands which need no model, such as
`cnnzoo models` and `cnnzoo --help`, do not pay for importing torch.
"""

from __future__ import annotations

import importlib

from .errors import CnnzooError

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "ResNetSpec": ".models.resnet",
    "build_resnet": ".models.resnet",
    "create_model": ".registry",
    "get_model_cfg": ".registry",
    "list_models": ".registry",
    "register_model": ".registry",
    "summary": ".summary",
}

__all__ = ["CnnzooError", "layers", *_LAZY]


def __getattr__(name: str):
    if name == "layers":
        return importlib.import_module(".layers", __name__)
    if name in _LAZY:
        # the model families first: they register themselves with the registry as they load
        importlib.import_module(".models", __name__)
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
