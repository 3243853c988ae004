"""The one protocol every execution backend implements, and the options they share."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..metadata import ModelMetadata


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
    #: Let TensorRT run layers in fp16.
    fp16: bool = False
    #: Where engines and timing caches are kept; None: ``$ERNET_CACHE`` or ``~/.cache/ernet``.
    cache_dir: Path | None = None

    def cache(self) -> Path:
        """The cache directory in effect."""
        return self.cache_dir or Path(os.environ.get("ERNET_CACHE", Path.home() / ".cache" / "ernet"))


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
