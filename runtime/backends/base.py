"""The one protocol every execution backend implements, and what backends share."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..metadata import ModelMetadata
from ..tiling import TilePlan

#: The tensor names of every ERNet artefact.
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
#: The output of a bioimage.io package's ONNX weights instead: the softmax of the logits.
PROBABILITIES_NAME = "probabilities"


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


#: Where Linux describes each CPU's core and package.
CPU_TOPOLOGY = Path("/sys/devices/system/cpu")


def physical_cores(topology: Path = CPU_TOPOLOGY) -> int:
    """Physical cores among the CPUs this process may run on (hyper-threads counted once;
    a CPU whose topology is not described counts as a core of its own)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        topology_of = topology / f"cpu{cpu}" / "topology"
        try:
            cores.add(
                ((topology_of / "physical_package_id").read_text(), (topology_of / "core_id").read_text())
            )
        except OSError:
            cores.add((str(cpu), ""))
    return max(1, len(cores))


class Backend(Protocol):
    """Runs a model on float32 N x C x H x W batches, returning N x K x H x W logits."""

    #: The model description read from the artefact.
    metadata: ModelMetadata
    #: The tiles it was prepared for: the run spec resolved against the model's contract.
    plan: TilePlan
    #: What actually executes, e.g. ``"onnxruntime/CPUExecutionProvider"``.
    description: str
    #: Faster providers that were asked for or tried first, and why each could not run.
    fallbacks: list[tuple[str, str]]

    def run(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...
