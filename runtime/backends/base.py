"""The one protocol every execution backend implements, and the options they share."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..metadata import ModelMetadata

#: The tensor names of every ERNet artefact.
INPUT_NAME = "image"
OUTPUT_NAME = "logits"


@dataclass(frozen=True)
class BackendOptions:
    """How to run a model: provider choice, threads, and the tile shapes to prepare for."""

    provider: str = "auto"
    #: Fall back to the next provider when an explicitly requested one cannot start.
    fallback: bool = False
    #: CPU threads; None: the physical cores this process may use.
    threads: int | None = None
    #: Tile side and tiles per call the model will see (fixes GPU optimisation profiles);
    #: None: the model's training crop.
    tile: int | None = None
    batch: int = 4
    #: ONNX Runtime's TensorRT provider: let it run layers in fp16 (native TensorRT takes
    #: the precision of the ONNX graph instead: use model.fp16.onnx).
    fp16: bool = False
    #: Where engines and timing caches are kept; None: ``$ERNET_CACHE`` or ``~/.cache/ernet``.
    cache_dir: Path | None = None
    #: Native TensorRT: this engine file (built there from the model if absent) instead of the cache.
    engine: Path | None = None
    #: Native TensorRT: rebuild the engine even if one exists (e.g. built for another GPU).
    rebuild_engine: bool = False

    def cache(self) -> Path:
        """The cache directory in effect."""
        return self.cache_dir or Path(os.environ.get("ERNET_CACHE", Path.home() / ".cache" / "ernet"))


@dataclass(frozen=True)
class Profile:
    """The optimisation profile of the input: N x C x tile x tile, N from 1 to ``batch``."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @classmethod
    def for_tiles(cls, tile: int, batch: int, channels: int) -> Profile:
        """The profile for the runtime's fixed tiles: the last batch of a frame may be short."""
        if tile < 1 or batch < 1 or channels < 1:
            raise ValueError("tile, batch and channels must be positive")
        full = (batch, channels, tile, tile)
        return cls((1, channels, tile, tile), full, full)

    def admits(self, shape: tuple[int, ...]) -> bool:
        """Whether an input of ``shape`` lies inside the profile."""
        return len(shape) == len(self.min) and all(
            lo <= n <= hi for lo, n, hi in zip(self.min, shape, self.max, strict=True)
        )


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyper-threads counted once)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topology / "physical_package_id").read_text(), (topology / "core_id").read_text()))
        except OSError:
            cores.add((str(cpu), ""))
    return max(1, len(cores))


class Backend(Protocol):
    """Runs an ERNet model on float32 N x C x H x W batches, returning N x K x H x W logits."""

    #: The model description read from the artefact.
    metadata: ModelMetadata
    #: What actually executes, e.g. ``"onnxruntime/CPUExecutionProvider"``.
    description: str
    #: Faster providers that were asked for or tried first, and why each could not run.
    fallbacks: list[tuple[str, str]]

    def run(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...
