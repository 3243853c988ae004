"""Checkpoint -> one self-contained ONNX file, with metadata, checked against PyTorch.

Contract of the exported graph: input ``image`` float32 N x C x H x W, output
``logits`` float32 N x K x H x W, with N, H and W dynamic; the model description
is in ``metadata_props`` (see :mod:`ernet.runtime.metadata`).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from ernet.runtime import __version__
from ernet.runtime.backends import BackendOptions
from ernet.runtime.backends.base import INPUT_NAME, OUTPUT_NAME
from ernet.runtime.backends.onnxruntime import OnnxRuntimeBackend
from ernet.runtime.errors import ErnetError
from ernet.runtime.io import atomic_output
from ernet.runtime.metadata import ModelMetadata
from ernet.training.checkpoint import load_checkpoint
from ernet.training.model import ERNet

OPSETS = range(18, 21)
#: Parity shapes (N, H, W): one square, one batched, odd-sized and not square.
PARITY_SHAPES = ((1, 96, 96), (2, 75, 53))
#: float32 CPU tolerance per element: |onnx - torch| <= ATOL + RTOL * |torch|.
#: The absolute term is needed because relative error alone fails on logits near zero.
ATOL, RTOL = 1e-4, 1e-3


class ParityError(ErnetError):
    """The exported model does not reproduce PyTorch within tolerance."""


@dataclass
class ParityResult:
    shape: tuple[int, ...]
    max_abs_diff: float
    argmax_agreement: float
    within_tolerance: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        status = "ok" if self.within_tolerance else "FAILED"
        return (
            f"parity {'x'.join(map(str, self.shape))}: max |dlogits| {self.max_abs_diff:.2e}, "
            f"argmax agreement {self.argmax_agreement:.4%} [{status}]"
        )


def to_onnx_proto(model: ERNet, metadata: ModelMetadata, opset: int = 18) -> onnx.ModelProto:
    """Trace ``model`` with the dynamo exporter into an ONNX model with dynamic N, H, W."""
    if opset not in OPSETS:
        raise ValueError(f"opset {opset} is not supported (use {OPSETS.start}-{OPSETS.stop - 1})")
    sample = torch.zeros(1, metadata.config.in_channels, 64, 64)
    # The exporter logs a warning per torchvision op it cannot register: noise here.
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(
                model.eval(),
                (sample,),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes={"image": {0: "batch", 2: "height", 3: "width"}},
                external_data=False,
                verbose=False,
            )
        finally:
            logger.setLevel(level)
    assert program is not None  # the dynamo exporter always returns its program
    proto = program.model_proto
    onnx.helper.set_model_props(proto, metadata.to_props())
    proto.producer_name, proto.producer_version = "ernet-export", __version__
    onnx.checker.check_model(proto, full_check=True)
    return proto


def check_parity(model: ERNet, onnx_path: Path, seed: int = 0) -> list[ParityResult]:
    """Compare the ONNX file on ONNX Runtime (CPU) with the torch model on random frames."""
    backend = OnnxRuntimeBackend(onnx_path, BackendOptions("cpu"))
    rng = np.random.default_rng(seed)
    results = []
    for n, h, w in PARITY_SHAPES:
        batch = rng.random((n, model.config.in_channels, h, w), dtype=np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(batch)).numpy()
        actual = backend.run(batch)
        diff = np.abs(actual - expected)
        results.append(
            ParityResult(
                (n, model.config.in_channels, h, w),
                float(diff.max()),
                float((actual.argmax(1) == expected.argmax(1)).mean()),
                bool((diff <= ATOL + RTOL * np.abs(expected)).all()),
            )
        )
    return results


def export_checkpoint(
    checkpoint: Path,
    output: Path,
    *,
    opset: int = 18,
    tile_size: int | None = None,
    overwrite: bool = False,
) -> list[ParityResult]:
    """Export ``checkpoint`` to ``output``; the file appears only if parity holds."""
    if output.exists() and not overwrite:
        raise ErnetError(f"{output}: output exists (pass --overwrite to replace it)")
    loaded = load_checkpoint(checkpoint)
    metadata = replace(
        loaded.metadata,
        source_checkpoint_sha256=loaded.sha256,
        package_version=__version__,
        tile_size=tile_size or loaded.metadata.tile_size,
    )
    proto = to_onnx_proto(loaded.model, metadata, opset)
    with atomic_output(output) as tmp:
        onnx.save_model(proto, tmp, save_as_external_data=False)
        results = check_parity(loaded.model, tmp)
        failed = [r for r in results if not r.within_tolerance]
        if failed:
            raise ParityError(
                f"{output}: ONNX does not match PyTorch: {failed[0]} "
                f"(tolerance atol {ATOL:g} + rtol {RTOL:g})"
            )
    return results
