"""cnnzoo: convolutional image classifiers, faithful to their papers and reference weights."""

from . import layers
from .errors import CnnzooError
from .models.resnet import ResNetSpec, build_resnet
from .registry import create_model, get_model_cfg, list_models, register_model
from .summary import summary

__version__ = "0.1.0"
__all__ = [
    "CnnzooError",
    "ResNetSpec",
    "build_resnet",
    "create_model",
    "get_model_cfg",
    "layers",
    "list_models",
    "register_model",
    "summary",
]
