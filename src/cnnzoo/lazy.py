"""Names of a package that load on first use (PEP 562): `cnnzoo` and `cnnzoo.engine` export
their public names this way, so that commands needing no model (`cnnzoo models`, `--help`)
do not pay for importing torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_names(
    package: str, names: dict[str, str], namespace: dict, before: str | None = None
) -> Callable[[str], object]:
    """A module `__getattr__` for `package`: `names` maps each public name to the module that
    defines it (relative to `package`); `before` is imported first (e.g. what registers the
    models). A loaded name is stored in `namespace`, so later look-ups skip the function."""

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if before:
            importlib.import_module(before, package)
        value = getattr(importlib.import_module(names[name], package), name)
        namespace[name] = value
        return value

    return __getattr__
