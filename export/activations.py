"""The memory a model's activations take on ONNX Runtime's CPU provider, measured.

The runtime plans tile sizes and refuses frames by this figure (bytes per tile pixel,
recorded in the model's contract at export). It is measured, not estimated from the
graph: a fresh process opens the model as the runtime does and runs one blank tile, and
the growth of its peak resident memory over the tile's pixels is the figure, ONNX
Runtime's arena and its kernels' scratch buffers included. (Shape inference misses the
reshaped tensors of a windowed transformer: for ERnet-v2 it gave 2 KiB per pixel where
8.6 KiB are used.)

``python -m ernet.export.activations MODEL.onnx SIDE`` prints the figure.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ernet.runtime.errors import ModelError

#: Side of the blank tile measured on (rounded up to the model's multiple): large enough
#: that the activations dwarf what a run allocates once (the embedded model: 547 B/px at
#: 256, 532 at 512).
MEASURE_SIDE = 256


def _resident() -> tuple[int, int]:
    """This process's (resident, peak resident) bytes."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]) * 1024, int(status["VmHWM"].split()[0]) * 1024


def _peak_growth(run: Callable[[], object]) -> int | None:
    """How far ``run`` raises this process's peak resident memory above where it was: on
    Linux from a peak reset just before; elsewhere from the peak so far (an undercount
    where loading the model peaked higher than running it); None where neither is known."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current size
        before, _ = _resident()
    except OSError:
        try:
            import resource
        except ImportError:  # Windows
            return None
        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB elsewhere
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        run()
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale - before
    run()
    return _resident()[1] - before


def measure_here(model: Path, side: int) -> int | None:
    """Peak resident bytes per pixel that running one ``side`` x ``side`` blank tile adds
    to this process (which must not have run the model before), at least its input and
    logits in float32; None where this system does not say."""
    from ernet.runtime import RunSpec
    from ernet.runtime.backends import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(RunSpec(model, "cpu"))
    contract = backend.metadata.contract
    tile = np.zeros((1, contract.in_channels, side, side), np.float32)
    grown = _peak_growth(lambda: backend.run(tile))
    if grown is None:
        return None
    return max(4 * (contract.in_channels + contract.n_classes), math.ceil(grown / (side * side)))


def measure(model: Path, multiple_of: int = 1) -> int | None:
    """The activation bytes per tile pixel of ``model`` on ONNX Runtime's CPU provider,
    measured in a fresh process on a :data:`MEASURE_SIDE` tile; None where the system
    does not report memory (the runtime then assumes its default)."""
    side = -(-MEASURE_SIDE // multiple_of) * multiple_of
    done = subprocess.run(
        [sys.executable, "-m", __name__, str(model), str(side)], capture_output=True, text=True
    )
    answer = done.stdout.strip()
    if done.returncode != 0 or not (answer.isdigit() or answer == "None"):
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(f"{model}: its activation memory could not be measured ({reason})")
    return int(answer) if answer.isdigit() else None


if __name__ == "__main__":
    print(measure_here(Path(sys.argv[1]), int(sys.argv[2])))
