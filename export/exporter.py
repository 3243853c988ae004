"""Checkpoint -> one self-contained ONNX file, with metadata, checked against PyTorch.

Any registered architecture: the checkpoint's module is traced as it is. Contract of
the exported graph: input ``image`` float32 N x C x H x W, output ``logits`` float32
N x K x H x W, with N, H and W dynamic; the model description is in
``metadata_props`` (see :mod:`ernet.runtime.metadata`).
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
from torch import nn

from ernet.runtime import RunSpec, __version__
from ernet.runtime.backends import OnnxRuntimeBackend
from ernet.runtime.backends.base import INPUT_NAME, OUTPUT_NAME
from ernet.runtime.errors import ErnetError
from ernet.runtime.io import atomic_output, refuse_existing
from ernet.runtime.metadata import ModelMetadata
from ernet.training.checkpoint import load_checkpoint

from .activations import measure

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


def to_onnx_proto(model: nn.Module, metadata: ModelMetadata, opset: int = 18) -> onnx.ModelProto:
    """Trace ``model`` with the dynamo exporter into an ONNX model with dynamic N, H, W."""
    if opset not in OPSETS:
        raise ValueError(f"opset {opset} is not supported (use {OPSETS.start}-{OPSETS.stop - 1})")
    m = metadata.contract.tiles.multiple_of
    side = -(-64 // m) * m
    sample = torch.zeros(1, metadata.contract.in_channels, side, side)
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


def check_parity(model: nn.Module, onnx_path: Path, seed: int = 0) -> list[ParityResult]:
    """Compare the ONNX file on ONNX Runtime (CPU) with the torch model on random frames
    (of the parity shapes, rounded up to the sizes the model takes)."""
    backend = OnnxRuntimeBackend(RunSpec(onnx_path, "cpu"))
    contract = backend.metadata.contract
    m = contract.tiles.multiple_of
    rng = np.random.default_rng(seed)
    results = []
    for n, h, w in PARITY_SHAPES:
        h, w = -(-h // m) * m, -(-w // m) * m
        batch = rng.random((n, contract.in_channels, h, w), dtype=np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(batch)).numpy()
        actual = backend.run(batch)
        diff = np.abs(actual - expected)
        results.append(
            ParityResult(
                (n, contract.in_channels, h, w),
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
    min_object_size: int | None = None,
    overwrite: bool = False,
) -> list[ParityResult]:
    """Export ``checkpoint`` to ``output``; the file appears only if parity holds. A
    ``tile_size`` or ``min_object_size`` given replaces the checkpoint's."""
    refuse_existing(output, overwrite)
    loaded = load_checkpoint(checkpoint)
    contract = loaded.metadata.contract
    if tile_size is not None:
        contract = replace(contract, tiles=replace(contract.tiles, size=tile_size))
    if min_object_size is not None:
        contract = replace(contract, min_object_size=min_object_size)
    metadata = replace(
        loaded.metadata,
        contract=contract,
        source_checkpoint_sha256=loaded.sha256,
        package_version=__version__,
    )
    proto = to_onnx_proto(loaded.model, metadata, opset)
    with atomic_output(output) as tmp:
        onnx.save_model(proto, tmp, save_as_external_data=False)
        tiles = replace(contract.tiles, activation_bytes=measure(tmp, contract.tiles.multiple_of))
        metadata = replace(metadata, contract=replace(contract, tiles=tiles))
        del proto.metadata_props[:]
        onnx.helper.set_model_props(proto, metadata.to_props())
        onnx.save_model(proto, tmp, save_as_external_data=False)
        results = check_parity(loaded.model, tmp)
        failed = [r for r in results if not r.within_tolerance]
        if failed:
            raise ParityError(
                f"{output}: ONNX does not match PyTorch: {failed[0]} "
                f"(tolerance atol {ATOL:g} + rtol {RTOL:g})"
            )
    return results
