"""ONNX Runtime against the PyTorch-eager original method, and against the GEMM ceiling.

For an architecture and configuration, random weights (speed does not depend on them) are saved
as a checkpoint and exported, so both sides run the same network. Measured on uint16
frames, end to end (normalise, infer, argmax): ``Segmenter`` as ``ernet-infer`` runs it
by default (on the CPU: whole frames where memory allows), ``Segmenter`` in tiles of
the training crop (the default before whole frames), the same tiles on the int8
variant (``make export``'s quantisation, calibrated on generated frames), and the
original method in PyTorch.
The raw model on one 256 x 256 tile gives the achieved GFLOP/s (FLOPs counted from
the ONNX graph), set against the one-thread GEMM rate times the threads used.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ernet.runtime import ArchitectureSpec, ModelContract, ModelMetadata, RunSpec, Segmenter
from ernet.runtime.backends import physical_cores

from .ceiling import onnx_flops_per_pixel
from .measure import summary, timings, uint16_frame
from .reference import torch_original

#: Tile of the raw-model rate measurement.
RATE_TILE = 256


def export_random(architecture: ArchitectureSpec, contract: ModelContract, folder: Path) -> tuple[Path, Path]:
    """A checkpoint of ``architecture`` with random weights (seed 0: speed does not depend on
    them) and its ONNX export, in ``folder``: (``model.pt``, ``model.onnx``)."""
    import torch

    from ernet.export.exporter import export_checkpoint
    from ernet.training.checkpoint import save_checkpoint
    from ernet.training.models import build_model

    checkpoint, onnx_path = folder / "model.pt", folder / "model.onnx"
    torch.manual_seed(0)
    save_checkpoint(checkpoint, build_model(architecture, contract), ModelMetadata(contract, architecture))
    export_checkpoint(checkpoint, onnx_path, overwrite=True)
    return checkpoint, onnx_path


def compare(
    architecture: ArchitectureSpec,
    contract: ModelContract,
    sizes: list[tuple[int, int]],
    repeats: int,
    gemm_per_core: float,
) -> dict[str, Any]:
    """Timings of one architecture configuration, with ``contract``'s channels, classes and
    normalisation, on each frame size, and its efficiency."""
    from ernet.export.artefacts import calibration_frames
    from ernet.export.precision import quantize_int8
    from ernet.training.models import get_architecture

    threads = physical_cores()
    registered = get_architecture(architecture.name)
    architecture = registered.complete(architecture)
    contract = replace(contract, tiles=replace(contract.tiles, size=RATE_TILE))
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, onnx_path = export_random(architecture, contract, Path(tmp))
        int8_path = Path(tmp) / "model.int8.onnx"
        quantize_int8(onnx_path, int8_path, calibration_frames(ModelMetadata(contract, architecture)))
        flops = onnx_flops_per_pixel(onnx_path)
        reference = torch_original(checkpoint, threads)
        default = Segmenter(RunSpec(onnx_path, "cpu"))
        crop = Segmenter(RunSpec(onnx_path, "cpu", tile=RATE_TILE))
        crop_int8 = Segmenter(RunSpec(int8_path, "cpu", tile=RATE_TILE))
        tile = np.zeros((1, contract.in_channels, RATE_TILE, RATE_TILE), np.float32)
        rate_s = statistics.median(timings(lambda: crop.run_model(tile), repeats))
        frames = []
        for height, width in sizes:
            frame = uint16_frame(height, width)
            row: dict[str, Any] = {
                "frame": f"{height}x{width}",
                "default_tiling": default.plan.fitted(height, width).summary(),
                "onnx_default": summary(timings(partial(default.segment, frame), repeats)),
                "onnx_crop": summary(timings(partial(crop.segment, frame), repeats)),
                "onnx_crop_int8": summary(timings(partial(crop_int8.segment, frame), repeats)),
                "torch_original": summary(timings(partial(reference, frame), repeats)),
            }
            for key in ("onnx_default", "onnx_crop", "onnx_crop_int8"):
                row[f"speedup_{key}"] = row["torch_original"]["median_s"] / row[key]["median_s"]
            row["int8_over_fp32"] = row["onnx_crop"]["median_s"] / row["onnx_crop_int8"]["median_s"]
            frames.append(row)
    achieved = flops * RATE_TILE**2 / rate_s / 1e9
    ceiling = gemm_per_core * threads
    return {
        "model": registered.label(architecture),
        "flops_per_pixel": flops,
        "threads": threads,
        "tile_rate_s": rate_s,
        "achieved_gflops": achieved,
        "ceiling_gflops": ceiling,
        "efficiency": achieved / ceiling,
        "frames": frames,
    }
