"""What a run is set up with before its loop starts, and what stays fixed while it runs: the
device, the run folder (claimed before any data loads), the data, the model and its
preprocessing. `RunSetup` holds them; the loop's own state (optimiser, schedule position,
generators, history) lives in the `Trainer` and `LoopState`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnzoo.artifacts.lock import hold_folder, release_folder
from cnnzoo.artifacts.sidecar import STATE_FILE, resolve_checkpoint
from cnnzoo.cfg import as_size, size_hw
from cnnzoo.data import load_data
from cnnzoo.data.sources import canonical_source
from cnnzoo.data.stats import channel_stats
from cnnzoo.data.transforms import default_augment
from cnnzoo.data.types import DataBundle
from cnnzoo.errors import CnnzooError
from cnnzoo.hub import fetch_weights, published_weights
from cnnzoo.infer.evaluate import Preprocess
from cnnzoo.infer.machine import resolve_device
from cnnzoo.models.factory import create_model, get_entry
from cnnzoo.train import checks
from cnnzoo.train.config import TrainConfig, resolve_config, validate_config
from cnnzoo.train.distributed import Dist, convert_sync_batchnorm
from cnnzoo.train.fingerprint import check_data as check_data_fingerprint
from cnnzoo.train.optim import freeze_backbone


def default_run_dir(cfg: TrainConfig) -> Path:
    data = Path(cfg.data).name or "data"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.model}-{data}-{stamp}"


def claim_run_dir(out: str | None, cfg: TrainConfig) -> tuple[Path, bool]:
    """The run folder, created now (before any data loads) so that no other run takes it:
    --out as given (refused when it holds a run), else runs/MODEL-DATA-TIME with -2, -3...
    when two runs start in the same second. Returns (folder, whether it was created here)."""
    if out is not None:
        run_dir = Path(out)
        if run_dir.exists() and not run_dir.is_dir():
            raise CnnzooError(f"--out {run_dir} is a file; choose a folder")
        if (run_dir / STATE_FILE).exists():
            raise CnnzooError(
                f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                "or choose another --out"
            )
        created = not run_dir.exists()
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir, created
    base = default_run_dir(cfg)
    base.parent.mkdir(parents=True, exist_ok=True)
    for i in range(1, 1000):
        run_dir = base if i == 1 else base.with_name(f"{base.name}-{i}")
        try:
            run_dir.mkdir()
            return run_dir, True
        except FileExistsError:
            continue
    raise CnnzooError(f"could not create a run folder next to {base}; pass --out")


def augment_cfg(cfg: TrainConfig, mean, std):
    """The AugmentCfg for a preset: none | shift | light | standard | strong."""

    size = size_hw(cfg.image_size)
    base = default_augment(size, tuple(mean), tuple(std), hflip=bool(cfg.hflip))
    pad = max(1, min(size) // 8) if cfg.crop_pad is None else cfg.crop_pad
    presets = {  # flips as cfg.hflip says (resolve_config: off for none and shift)
        "none": dict(crop="none"),
        "shift": dict(crop="pad-crop", pad=pad),
        "light": dict(crop="pad-crop", pad=pad),
        "standard": dict(crop="random-resized", scale=(cfg.crop_scale, 1.0)),
        "strong": dict(
            crop="random-resized",
            scale=(cfg.crop_scale, 1.0),
            auto_augment="trivial",
            random_erasing=0.25,
        ),
    }
    return dataclasses.replace(base, **presets[cfg.augment])


def device_for(name: str, dist: Dist) -> torch.device:
    """The device of this process: `name` resolved, and under torchrun with GPUs the one of
    this process's local rank (cuda:LOCAL_RANK)."""
    dev = resolve_device(name)
    if dist.enabled and dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def claim_shared_run_dir(out: str | None, cfg: TrainConfig, dist: Dist) -> tuple[Path, bool]:
    """`claim_run_dir` on rank 0, the same folder (or the same error) on every rank."""
    claimed, error = None, None
    if dist.is_main:
        try:
            run_dir, created = claim_run_dir(out, cfg)
            claimed = (str(run_dir), created)
        except CnnzooError as e:
            error = str(e)
    claimed, error = dist.broadcast((claimed, error))
    if error is not None:
        raise CnnzooError(error)
    return Path(claimed[0]), bool(claimed[1]) and dist.is_main


@dataclass
class RunSetup:
    """Everything a run is set up with that stays fixed while it trains."""

    cfg: TrainConfig
    run_dir: Path
    device: torch.device
    dist: Dist
    bundle: DataBundle
    classes: list[str]
    model: nn.Module  # the raw module whose state dict is saved (never a DDP wrapper)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float
    preprocess: Preprocess
    aug: Any
    train_images: torch.Tensor  # uint8 [N, C, H, W] on the device
    train_labels: torch.Tensor
    data_record: dict[str, Any] | None = None  # an accepted data change, written on resume
    # gives the run folder back (the hold also ends when this setup is garbage collected)
    release: Callable[[], Any] = field(default=lambda: None, repr=False, compare=False)


def prepare_run(
    cfg: TrainConfig,
    bundle: DataBundle | None,
    *,
    dist: Dist,
    progress: bool,
    saved: dict[str, Any] | None = None,
    run_dir: Path | None = None,
) -> RunSetup:
    """Check `cfg`, claim the run folder (or take `run_dir` of a resumed run), load the data
    and build the model. `saved` is a resumed run's state metadata: its weights come from the
    state, so the original --weights file may be gone."""

    validate_config(cfg)  # cheap checks first: a typo should not wait for the data to load
    # paths absolute, so that eval and --resume work from any folder
    data_dir = str(Path(cfg.data_dir).resolve()) if cfg.data_dir else None
    cfg = dataclasses.replace(cfg, data=canonical_source(cfg.data), data_dir=data_dir)
    get_entry(cfg.model)
    load_weights = cfg.weights if saved is None else None
    if cfg.pretrained and saved is None:  # the published file, fetched into the cache
        load_weights = str(fetch_weights(cfg.model, pretrained_tag(cfg), progress=progress))
    if load_weights is not None:
        if Path(load_weights).is_dir():  # a cnnzoo run folder: its best checkpoint
            load_weights = str(resolve_checkpoint(load_weights))
            cfg = dataclasses.replace(cfg, weights=load_weights)
        if not Path(load_weights).is_file():
            raise CnnzooError(f"weights file not found: {cfg.weights}")
    device = device_for(cfg.device, dist)
    if run_dir is not None:
        created = False
    else:
        run_dir, created = claim_shared_run_dir(cfg.out, cfg, dist)
    try:
        if dist.is_main:  # one writer per run folder, until this run's setup is let go
            hold_folder(run_dir)
        setup = _build(cfg, bundle, dist, progress, saved, run_dir, device, load_weights)
    except BaseException:
        if dist.is_main:
            release_folder(run_dir)
        if created and not any(run_dir.iterdir()):
            run_dir.rmdir()  # nothing was written: leave no empty folder behind
        raise
    if dist.is_main:
        # the hold passes to the setup (and its trainer), which gives it back when done
        setup.release = hold_folder(run_dir, owner=setup) or setup.release
        release_folder(run_dir)
    return setup


def _build(cfg, bundle, dist, progress, saved, run_dir, device, load_weights) -> RunSetup:
    if bundle is None:
        bundle = load_data(
            cfg.data,
            data_dir=cfg.data_dir,
            image_size=cfg.load_size,
            val_split=cfg.val_split,
            seed=cfg.seed,
            download=cfg.download,
            progress=progress,
            cache=cfg.cache,
            cache_dir=cfg.cache_dir,
            ram_share=cfg.cache_ram,
            # a rectangular input: a folder's images stored with its aspect
            aspect=cfg.image_size if isinstance(cfg.image_size, list) else None,
        )
    if len(bundle.train) == 0:
        raise CnnzooError(f"{cfg.data}: no training images")
    if saved is None:  # a value given for a new run; a resumed run keeps its own
        checks.check_given_batch(cfg.batch_size, bundle)
    cfg = resolve_config(cfg, bundle.image_size)
    classes = list(bundle.classes)

    # what the run trains on: compared first on resume (a changed dataset is the news, not
    # its symptoms), recorded after the checks for a new run (a refused run leaves nothing)
    data_record = None
    if dist.is_main and saved is not None:
        data_record = check_data_fingerprint(run_dir, bundle, True, cfg.allow_data_change)
    checks.before_training(cfg, bundle, run_dir)
    given_normalisation(cfg, (), (), int(bundle.train.images.shape[1]))  # one per channel
    if dist.is_main and saved is None:
        check_data_fingerprint(run_dir, bundle, False, False)

    # model: seeded so that the same config gives the same initial weights

    torch.manual_seed(cfg.seed)
    in_chans = int(bundle.train.images.shape[1])
    model = create_model(
        cfg.model,
        num_classes=len(classes),
        in_chans=in_chans,
        weights=load_weights,
        **cfg.model_opts,
    )
    interpolation = "bilinear"
    if cfg.pretrained:  # the published weights' eval transform: its normalisation and filter
        model.cfg = published_weights(cfg.model, pretrained_tag(cfg)).model_cfg(model.cfg)
        interpolation = model.cfg.interpolation
    if model.model_overrides != cfg.model_opts:  # options a cnnzoo checkpoint brought
        cfg = dataclasses.replace(cfg, model_opts=dict(model.model_overrides))
    # pretrained weights keep the normalisation they were trained with: a cnnzoo
    # checkpoint's own, else the model's reference one (ImageNet's, mostly)
    mean, std = tuple(bundle.mean), tuple(bundle.std)
    if saved is not None and "mean" in saved:
        mean, std = tuple(saved["mean"]), tuple(saved["std"])
    elif cfg.stats:  # asked for: the data's own, measured on its training images
        mean, std = channel_stats(bundle.train.images)
    elif load_weights is not None and in_chans == 3:
        facts = model.checkpoint_facts  # read once, by create_model
        mean = tuple(facts.get("mean") or model.cfg.mean)
        std = tuple(facts.get("std") or model.cfg.std)
    if saved is None or "mean" not in saved:  # --mean / --std given: they win
        mean, std = given_normalisation(cfg, mean, std, in_chans)
    crop_pct = 0.875 if cfg.augment in ("standard", "strong") else 1.0
    if cfg.freeze == "backbone":
        freeze_backbone(model)
    model.to(device)
    if cfg.sync_bn and dist.enabled:
        model = convert_sync_batchnorm(model, device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    return RunSetup(
        cfg=cfg,
        run_dir=run_dir,
        device=device,
        dist=dist,
        bundle=bundle,
        classes=classes,
        model=model,
        mean=mean,
        std=std,
        crop_pct=crop_pct,
        preprocess=Preprocess(as_size(cfg.image_size), mean, std, crop_pct, interpolation),
        aug=augment_cfg(cfg, mean, std),
        train_images=bundle.train.images.to(device),
        train_labels=bundle.train.labels.to(device),
        data_record=data_record,
    )


def given_normalisation(
    cfg: TrainConfig, mean: tuple[float, ...], std: tuple[float, ...], in_chans: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean and std a run normalises with: --mean / --std where given (one value per
    channel of the data), else `mean` and `std` as found."""
    for name, given in (("mean", cfg.mean), ("std", cfg.std)):
        if given is not None and len(given) != in_chans:
            want = "three (R G B)" if in_chans == 3 else f"{in_chans}"
            raise CnnzooError(
                f"--{name} has {len(given)} value(s) but the images have {in_chans} channel(s); "
                f"give {want}"
            )
    return (
        tuple(float(v) for v in cfg.mean) if cfg.mean is not None else mean,
        tuple(float(v) for v in cfg.std) if cfg.std is not None else std,
    )


def pretrained_tag(cfg: TrainConfig) -> str | None:
    """The published weight set --pretrained names: None for the model's default."""
    return None if cfg.pretrained is True else str(cfg.pretrained)
