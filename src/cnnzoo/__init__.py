"""cnnzoo: convolutional image classifiers, faithful to their papers and reference weights.

The names below load on first use (PEP 562), so that commands which need no model, such as
`cnnzoo models` and `cnnzoo --help`, do not pay for importing torch.
"""

from __future__ import annotations

import importlib

from cnnzoo.errors import CnnzooError
from cnnzoo.lazy import lazy_names

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "ResNetSpec": ".models.resnet",
    "build_resnet": ".models.resnet",
    "create_model": ".models.factory",
    "get_model_cfg": ".models.factory",
    "list_models": ".models.factory",
    "register_model": ".registry",
    "summary": ".summary",
}

__all__ = ["CnnzooError", "layers", *_LAZY]


_load = lazy_names(__name__, _LAZY, globals(), before=".models")


def __getattr__(name: str):
    if name == "layers":
        return importlib.import_module(".layers", __name__)
    # the model families are imported first: they register themselves as they load
    return _load(name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
