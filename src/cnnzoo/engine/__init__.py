"""Training, evaluation and prediction: `train(TrainConfig(...))`, `load_checkpoint(path)`,
`Predictor`, `evaluate_checkpoint`; `prepare_inference` / `fast_form`: the fast inference path."""

from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .config import RECIPES, TrainConfig, resolve_config
from .fast import fast_form, prepare_inference
from .trainer import RunResult, Trainer, train

__all__ = [
    "RECIPES",
    "RunResult",
    "TrainConfig",
    "Trainer",
    "fast_form",
    "load_checkpoint",
    "prepare_inference",
    "read_checkpoint",
    "resolve_config",
    "save_checkpoint",
    "train",
]
