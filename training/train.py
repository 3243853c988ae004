"""The training loop, for any registered architecture: cross-entropy, Adam, step LR,
per-class IoU/Dice on whole validation frames, checkpoints."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader

from ernet.runtime import RunSpec, __version__
from ernet.runtime.contract import BINARY_CLASSES, ModelContract, TileSpec
from ernet.runtime.errors import InputError
from ernet.runtime.evaluation import confusion_matrix, scores
from ernet.runtime.io import file_sha256, labelled_pairs
from ernet.runtime.metadata import ArchitectureSpec, ModelMetadata
from ernet.runtime.preprocess import Normalization
from ernet.runtime.progress import progress
from ernet.runtime.tiling import tiled_logits

from .checkpoint import load_checkpoint, save_checkpoint
from .data import RandomCrops, Sample, balanced_class_weights, load_legacy_pickle, load_samples
from .models import get_architecture

PICKLE_SUFFIXES = (".pkl", ".pickle", ".p")
#: What a checkpoint needs beyond its weights to continue a run.
RESUME_KEYS = ("epoch", "optimizer", "scheduler", "best_score", "history")


@dataclass
class TrainConfig:
    """Everything a training run depends on; stored in every checkpoint."""

    data: Path
    out: Path
    val_data: Path | None = None
    val_fraction: float = 0.2  # of the samples, held out when no val_data is given
    #: The network: a registered architecture and its options (the rest from its defaults).
    architecture: ArchitectureSpec = field(default_factory=ArchitectureSpec)
    class_names: tuple[str, ...] = BINARY_CLASSES
    #: The classes that form the ER network (analysis; binary labels' ER); None: every class but background.
    network_classes: tuple[str, ...] | None = None
    normalization: Normalization = field(default_factory=Normalization)
    epochs: int = 100
    steps_per_epoch: int = 100
    batch_size: int = 2
    crop: int = 256
    lr: float = 1e-4
    lr_step: int = 20
    lr_gamma: float = 0.5
    #: Cross-entropy class weights: ``none``, or ``balanced`` (rare classes weigh more:
    #: :func:`~ernet.training.data.balanced_class_weights` of the training samples).
    class_weights: Literal["none", "balanced"] = "none"
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    resume: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("data", "out", "val_data", "resume"):
            out[key] = None if out[key] is None else str(out[key])
        out["class_names"] = list(self.class_names)
        if self.network_classes is not None:
            out["network_classes"] = list(self.network_classes)
        return out


def _load(source: Path, normalization: Normalization) -> tuple[list[Sample], list[dict[str, str]]]:
    source = Path(source)
    if source.suffix.lower() in PICKLE_SUFFIXES:
        files = [source]
        samples = load_legacy_pickle(source, normalization)
    else:
        files = [p for pair in labelled_pairs(source) for p in (pair.image, pair.mask)]
        samples = load_samples(source, normalization)
    return samples, [{"file": str(p), "sha256": file_sha256(p)} for p in files]


def split_samples(cfg: TrainConfig) -> tuple[list[Sample], list[Sample], dict[str, Any]]:
    """Training and validation samples, and the provenance of both."""
    train, files = _load(cfg.data, cfg.normalization)
    provenance: dict[str, Any] = {"source": str(cfg.data), "files": files}
    if cfg.val_data is not None:
        val, val_files = _load(cfg.val_data, cfg.normalization)
        provenance.update(validation_source=str(cfg.val_data), validation_files=val_files)
    else:
        n_val = int(round(len(train) * cfg.val_fraction))
        if n_val == 0 or n_val >= len(train):
            raise InputError(
                f"{cfg.data}: {len(train)} samples cannot be split for validation at --val-fraction "
                f"{cfg.val_fraction:g}; pass --val-data, or a --val-fraction that holds out at least one"
            )
        train, val = train[:-n_val], train[-n_val:]
    source = cfg.val_data or cfg.data
    if not val:
        raise InputError(f"{source}: no validation samples")
    if not any(s.mask.any() for s in val):
        raise InputError(
            f"{source}: the validation samples hold no labelled foreground, so no IoU can choose the best "
            "epoch; pass --val-data with labelled frames"
        )
    provenance.update(train_samples=[s.name for s in train], validation_samples=[s.name for s in val])
    return train, val, provenance


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, samples: list[Sample], contract: ModelContract, device: torch.device
) -> dict[str, float]:
    """IoU and Dice per class over whole validation frames, each run through the runtime's
    tiler in the contract's tiles (as ``ernet-infer`` runs a GPU); ``mean_iou_foreground``
    is the mean over frames of each frame's mean foreground IoU (a frame where a class is
    neither labelled nor predicted does not count for it)."""
    model.eval()
    n = contract.n_classes
    plan = RunSpec().tiling(contract)

    def run(batch: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(batch).to(device)).float().cpu().numpy()

    total = np.zeros((n, n), np.int64)
    per_frame = []
    for sample in samples:
        image = np.ascontiguousarray(sample.image, dtype=np.float32)
        matrix = confusion_matrix(tiled_logits(image, run, n, plan).argmax(0), sample.mask, n)
        total += matrix
        per_frame.append(scores(matrix, contract.class_names)["mean_iou_foreground"])
    out = scores(total, contract.class_names)
    finite = [v for v in per_frame if np.isfinite(v)]
    out["mean_iou_foreground"] = float(np.mean(finite)) if finite else float("nan")
    return out


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def train(cfg: TrainConfig, quiet: bool = False) -> dict[str, Any]:
    """Train, writing ``last.pt`` and ``best.pt`` to ``cfg.out``; returns the final summary."""
    architecture = get_architecture(cfg.architecture.name)
    spec = architecture.complete(cfg.architecture)
    unknown = set(cfg.network_classes or ()) - set(cfg.class_names[1:])
    if unknown:
        raise ValueError(f"network classes {', '.join(sorted(unknown))} are not foreground classes")
    contract = ModelContract(
        class_names=cfg.class_names,
        network_classes=None
        if cfg.network_classes is None
        else tuple(cfg.class_names.index(c) for c in cfg.network_classes),
        normalization=cfg.normalization,
        tiles=TileSpec(cfg.crop, architecture.tile_multiple(spec)),
    )
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    device = _device(cfg.device)
    train_samples, val_samples, data_provenance = split_samples(cfg)
    model = architecture.build(spec, contract).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
    start_epoch, best, history = 0, float("-inf"), []
    if cfg.resume is not None:
        loaded = load_checkpoint(cfg.resume)
        before = (loaded.metadata.architecture, loaded.metadata.contract.class_names)
        if before != (spec, contract.class_names):
            raise ValueError(
                f"{cfg.resume}: model {before[0]} with classes {before[1]} differs from the requested "
                f"{spec} with classes {contract.class_names}"
            )
        missing = [k for k in RESUME_KEYS if k not in loaded.raw]
        if missing:
            raise ValueError(
                f"{cfg.resume}: not a checkpoint written by ernet-train (no {', '.join(missing)})"
            )
        model.load_state_dict(loaded.model.state_dict())
        optimizer.load_state_dict(loaded.raw["optimizer"])
        scheduler.load_state_dict(loaded.raw["scheduler"])
        start_epoch, best = loaded.raw["epoch"], loaded.raw["best_score"]
        history = list(loaded.raw["history"])
    crops = RandomCrops(train_samples, cfg.crop, cfg.steps_per_epoch * cfg.batch_size, cfg.seed)
    loader = DataLoader(crops, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.workers)
    weights = None
    if cfg.class_weights == "balanced":
        weights = torch.tensor(balanced_class_weights(train_samples, contract.n_classes), dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=None if weights is None else weights.to(device))
    cfg.out.mkdir(parents=True, exist_ok=True)
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    say(
        f"training {sum(p.numel() for p in model.parameters()):,}-parameter {spec.name} on {device}: "
        f"{len(train_samples)} train / {len(val_samples)} validation samples"
    )
    for epoch in range(start_epoch, cfg.epochs):
        tic = time.perf_counter()
        crops.epoch = epoch
        model.train()
        losses = []
        with progress(len(loader), f"epoch {epoch + 1}/{cfg.epochs}", unit="steps", quiet=quiet) as advance:
            for images, masks in loader:
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(images.to(device)), masks.to(device))
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                advance(1)
        scheduler.step()
        metrics = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - tic,
            **evaluate(model, val_samples, contract, device),
        }
        history.append(metrics)
        score = metrics["mean_iou_foreground"]  # finite: some validation frame holds foreground
        is_best = score > best or not (cfg.out / "best.pt").exists()
        best = max(best, score)
        metadata = ModelMetadata(
            contract=contract,
            architecture=spec,
            package_version=__version__,
            provenance={
                "training": cfg.to_dict(),
                "data": data_provenance,
                "epoch": epoch + 1,
                "validation": {k: v for k, v in metrics.items() if k.startswith(("iou", "dice"))},
            },
        )
        extra = {
            "epoch": epoch + 1,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "best_score": best,
            "history": history,
        }
        save_checkpoint(cfg.out / "last.pt", model, metadata, **extra)
        if is_best:
            save_checkpoint(cfg.out / "best.pt", model, metadata, **extra)
        say(
            f"epoch {epoch + 1}/{cfg.epochs}: loss {metrics['loss']:.4f}, "
            + ", ".join(
                f"{k} {metrics[k]:.3f}"
                for k in metrics
                if k.startswith(("iou_", "dice_")) and "background" not in k
            )
            + f", frame-mean foreground IoU {metrics['mean_iou_foreground']:.3f}, {metrics['seconds']:.1f} s"
            + (" (best)" if is_best else "")
        )
    return {"best_score": best, "history": history, "out": str(cfg.out)}
