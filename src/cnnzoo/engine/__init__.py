"""Training, evaluation and prediction: `train(TrainConfig(...))`, `load_checkpoint(path)`,
`Predictor`, `evaluate_checkpoint`."""

from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .config import RECIPES, TrainConfig, resolve_config
from .trainer import DivergedError, RunResult, Trainer, train

__all__ = [
    "RECIPES",
    "DivergedError",
    "RunResult",
    "TrainConfig",
    "Trainer",
    "load_checkpoint",
    "read_checkpoint",
    "resolve_config",
    "save_checkpoint",
    "train",
]
