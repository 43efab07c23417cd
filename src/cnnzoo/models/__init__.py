"""Every model family; importing this package registers them all."""

from . import resnet  # noqa: F401
