"""Reduced-precision variants of an exported fp32 ONNX model.

- :func:`to_fp16` (GPUs): fp16 weights and compute, fp32 input and output, and the
  nodes the architecture's :class:`~ernet.training.models.Fp16Policy` keeps in fp32
  (ERNet: each channel-attention branch, whose global pool overflows fp16).
- :func:`quantize_int8` (CPUs): static QDQ quantisation with ONNX Runtime, u8
  activations x s8 per-channel weights with reduced range, calibrated on frames
  from the synthetic generator.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ernet.runtime.backends.base import INPUT_NAME, OUTPUT_NAME
from ernet.runtime.metadata import ModelMetadata
from ernet.training.models import Fp16Policy


def _cast(source: str, target: str, to: int) -> onnx.NodeProto:
    return helper.make_node("Cast", [source], [target], name=f"cast_{target}", to=to)


def to_fp16(model: onnx.ModelProto, policy: Fp16Policy) -> onnx.ModelProto:
    """An fp16 copy of an fp32 graph, fp32 at its input, output and the nodes ``policy`` keeps."""
    unknown = {n.op_type for n in model.graph.node} - policy.ops
    if unknown:
        raise ValueError(f"cannot convert operators {sorted(unknown)} to fp16")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    fp32_nodes = policy.keep_fp32(graph)
    initializers = {init.name for init in graph.initializer}
    kept_fp32 = {name for i in fp32_nodes for name in graph.node[i].input if name in initializers}
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and init.name not in kept_fp32:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name))

    # Rename tensors where precision changes; a Cast bridges each crossing.
    produced_in = {name: i in fp32_nodes for i, node in enumerate(graph.node) for name in node.output}
    nodes: list[onnx.NodeProto] = [_cast(INPUT_NAME, f"{INPUT_NAME}_fp16", TensorProto.FLOAT16)]
    cast_to_fp32: set[str] = set()
    for i, node in enumerate(graph.node):
        in_fp32 = i in fp32_nodes
        for k, name in enumerate(node.input):
            if name in initializers or not name:
                continue
            source_fp32 = produced_in.get(name, False)  # the graph input is cast to fp16 above
            if name == INPUT_NAME:
                node.input[k] = f"{INPUT_NAME}_fp16"
            elif in_fp32 and not source_fp32:
                if name not in cast_to_fp32:
                    cast_to_fp32.add(name)
                    nodes.append(_cast(name, f"{name}_fp32", TensorProto.FLOAT))
                node.input[k] = f"{name}_fp32"
            elif source_fp32 and not in_fp32:
                node.input[k] = f"{name}_fp16"
        nodes.append(node)
        if in_fp32:
            for name in node.output:
                nodes.append(_cast(name, f"{name}_fp16", TensorProto.FLOAT16))
        elif OUTPUT_NAME in node.output:
            node.output[list(node.output).index(OUTPUT_NAME)] = f"{OUTPUT_NAME}_fp16"
            nodes.append(_cast(f"{OUTPUT_NAME}_fp16", OUTPUT_NAME, TensorProto.FLOAT))
    # Casts from an fp32 node whose output has no fp16 consumer are dead: drop them.
    used = {name for node in nodes for name in node.input} | {o.name for o in graph.output}
    nodes = [n for n in nodes if n.op_type != "Cast" or n.output[0] in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    out = onnx.shape_inference.infer_shapes(out, strict_mode=True)
    onnx.checker.check_model(out, full_check=True)
    return out


def with_metadata(model: onnx.ModelProto, metadata: ModelMetadata) -> onnx.ModelProto:
    """``model`` with its description replaced by ``metadata``."""
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, metadata.to_props())
    return model


def variant_metadata(metadata: ModelMetadata, precision: str, reference_sha256: str) -> ModelMetadata:
    """The description of a variant: the reference's, with its precision and origin."""
    provenance = {**metadata.provenance, "reference_onnx_sha256": reference_sha256}
    return replace(metadata, precision=precision, provenance=provenance)


class _Frames:
    """ONNX Runtime calibration reader over float32 1 x C x H x W frames."""

    def __init__(self, frames: Iterable[np.ndarray]) -> None:
        self._frames: Iterator[np.ndarray] = iter(frames)

    def get_next(self) -> dict[str, np.ndarray] | None:
        frame = next(self._frames, None)
        return None if frame is None else {INPUT_NAME: frame[None].astype(np.float32)}


class _RankOneWeights(logging.Filter):
    """Drops ONNX Runtime's warning, once per rank-1 weight (a LayerNorm's scale), that a
    per-channel axis is out of range: it then quantises that weight per tensor, as it should."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is out-of-range for weight" not in record.getMessage()


@contextmanager
def _filtered(noise: logging.Filter) -> Iterator[None]:
    """The root logger without what ``noise`` drops, inside the block."""
    root = logging.getLogger()
    root.addFilter(noise)
    try:
        yield
    finally:
        root.removeFilter(noise)


def quantize_int8(reference: Path, output: Path, calibration: Iterable[np.ndarray]) -> None:
    """Statically quantise ``reference`` (fp32 ONNX) into ``output`` (QDQ), calibrating
    activation ranges (min/max) on ``calibration``: normalised C x H x W frames."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(_Frames, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(prefix="ernet-int8-") as tmp, _filtered(_RankOneWeights()):
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(reference), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(output),
            Reader(calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            calibrate_method=CalibrationMethod.MinMax,
        )
