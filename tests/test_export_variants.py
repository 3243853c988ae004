"""fp16 and int8 artefacts: their graphs, their accuracy gates, their reports and metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("torch")

from onnx import TensorProto  # noqa: E402

from ernet.export import verify  # noqa: E402
from ernet.export.artefacts import (  # noqa: E402
    calibration_frames,
    export_all,
    report_path,
    variant_path,
    write_variant,
)
from ernet.export.exporter import ParityError  # noqa: E402
from ernet.export.precision import quantize_int8, to_fp16  # noqa: E402
from ernet.runtime import DEFAULT_MODEL, Segmenter  # noqa: E402
from ernet.runtime.backends import read_onnx_metadata  # noqa: E402
from ernet.runtime.backends.trt_engine import tensorrt_unavailable_reason  # noqa: E402
from ernet.runtime.errors import ModelError  # noqa: E402
from ernet.runtime.io import file_sha256  # noqa: E402
from ernet.training.models.ernet import FP16_POLICY, attention_branches  # noqa: E402

from conftest import run_cli  # noqa: E402


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {name: node for node in graph.node for name in node.output}


def test_fp16_graph_is_fp16_except_io_and_channel_attention() -> None:
    fp32 = onnx.load(DEFAULT_MODEL)
    fp16 = to_fp16(fp32, FP16_POLICY)
    graph = fp16.graph
    assert [i.type.tensor_type.elem_type for i in graph.input] == [TensorProto.FLOAT]
    assert [o.type.tensor_type.elem_type for o in graph.output] == [TensorProto.FLOAT]
    branch = attention_branches(graph)
    pools = [graph.node[i] for i in branch if graph.node[i].op_type == "ReduceMean"]
    assert len(pools) == 4  # one per residual block of the default model (2 groups x 2 blocks)
    producers = _producers(graph)
    initializers = {i.name: i.data_type for i in graph.initializer}
    for pool in pools:  # the pool reads the features through a cast to fp32
        cast = producers[pool.input[0]]
        assert cast.op_type == "Cast" and cast.attribute[0].i == TensorProto.FLOAT
    for i, node in enumerate(graph.node):
        if node.op_type != "Conv":
            continue
        expected = TensorProto.FLOAT if i in branch else TensorProto.FLOAT16
        assert initializers[node.input[1]] == expected, node.name
    assert sum(n.op_type == "Conv" for n in graph.node) == sum(n.op_type == "Conv" for n in fp32.graph.node)
    # Casts: the input, the output, and into and out of each of the 4 branches.
    assert sum(n.op_type == "Cast" for n in graph.node) == 2 + 2 * 4


def test_fp16_refuses_operators_it_does_not_know() -> None:
    model = onnx.load(DEFAULT_MODEL)
    model.graph.node[1].op_type = "LeakyRelu"
    with pytest.raises(ValueError, match="LeakyRelu"):
        to_fp16(model, FP16_POLICY)


def test_int8_is_static_qdq_u8_activations_s8_per_channel_weights(tmp_path: Path) -> None:
    output = tmp_path / "m.int8.onnx"
    quantize_int8(DEFAULT_MODEL, output, calibration_frames(read_onnx_metadata(DEFAULT_MODEL)))
    graph = onnx.load(output).graph
    initializers = {i.name: i for i in graph.initializer}
    quantize = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    assert quantize and all(initializers[n.input[2]].data_type == TensorProto.UINT8 for n in quantize)
    producers = _producers(graph)
    weights = [producers[n.input[1]] for n in graph.node if n.op_type == "Conv" and n.input[1] in producers]
    assert weights and all(w.op_type == "DequantizeLinear" for w in weights)
    for dq in weights:
        assert initializers[dq.input[0]].data_type == TensorProto.INT8
        assert len(initializers[dq.input[1]].dims) == 1  # one scale per output channel
        values = onnx.numpy_helper.to_array(initializers[dq.input[0]])
        assert np.abs(values).max() <= 64  # reduced range: 7 bits


def test_variants_carry_the_reference_metadata_and_pass_their_gates(tmp_path: Path) -> None:
    reference = tmp_path / "model.onnx"
    reference.write_bytes(DEFAULT_MODEL.read_bytes())
    data = [verify.generated_frames(range(9000, 9002))]
    fp16 = write_variant(
        reference, "fp16", data, lambda tmp: onnx.save(to_fp16(onnx.load(reference), FP16_POLICY), tmp)
    )
    assert fp16.passed and fp16.comparisons[0].argmax_agreement >= verify.MIN_FP16_AGREEMENT
    int8 = write_variant(
        reference,
        "int8",
        data,
        lambda tmp: quantize_int8(reference, tmp, calibration_frames(read_onnx_metadata(reference))),
    )
    assert int8.passed and int8.comparisons[0].iou_drop <= verify.MAX_INT8_IOU_DROP
    base = read_onnx_metadata(reference)
    for precision in ("fp16", "int8"):
        path = variant_path(reference, precision)
        meta = read_onnx_metadata(path)
        assert meta.precision == precision
        assert (meta.contract, meta.architecture) == (base.contract, base.architecture)
        with Segmenter(path, provider="cpu") as seg:  # the runtime opens every artefact alike
            assert seg.metadata.precision == precision
        report = json.loads(report_path(path).read_text())
        assert report["passed"] and report["precision"] == precision
        assert report["comparisons"][0]["frames"] == 2


def test_a_variant_that_fails_its_gate_is_not_written_but_its_report_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = tmp_path / "model.onnx"
    reference.write_bytes(DEFAULT_MODEL.read_bytes())
    monkeypatch.setattr(verify, "MIN_FP16_AGREEMENT", 1.01)  # unreachable
    data = [verify.generated_frames(range(9000, 9001))]
    with pytest.raises(ParityError, match="fails its gate"):
        write_variant(
            reference, "fp16", data, lambda tmp: onnx.save(to_fp16(onnx.load(reference), FP16_POLICY), tmp)
        )
    assert not variant_path(reference, "fp16").exists()
    report = json.loads(report_path(variant_path(reference, "fp16")).read_text())
    assert report["passed"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.fp16.parity.json", "model.onnx"]


def test_export_all_writes_every_artefact_and_says_why_no_engine(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    output = tmp_path / "model.onnx"
    lines: list[str] = []
    export_all(tiny_checkpoint, output, real_data=None, echo=lines.append)
    for precision in ("fp32", "fp16", "int8"):
        assert (
            variant_path(output, precision).is_file()
            and report_path(variant_path(output, precision)).is_file()
        )
    assert json.loads(report_path(output).read_text())["parity"][0]["within_tolerance"]
    engine = [line for line in lines if line.startswith("TensorRT engine")]
    reason = tensorrt_unavailable_reason()
    if reason is not None:
        assert engine == [f"TensorRT engine skipped: {reason}"]  # one line, with the reason
    else:
        assert len(engine) == 1 and not engine[0].startswith("TensorRT engine skipped")
    with pytest.raises(Exception, match="output exists"):
        export_all(tiny_checkpoint, output, variants=("fp16",), engine=False, echo=lines.append)


def test_export_cli_rejects_unknown_variants(tiny_checkpoint: Path, tmp_path: Path) -> None:
    done = run_cli("ernet-export", tiny_checkpoint, "-o", tmp_path / "m.onnx", "--variants", "fp8")
    assert (
        done.returncode == 1 and done.stderr.strip() == "error: unknown variant 'fp8'; choose from fp16, int8"
    )
    assert list(tmp_path.iterdir()) == []


def test_variants_of_an_exported_model_without_its_checkpoint(tmp_path: Path) -> None:
    """The embedded default model ships without its checkpoint: its variants derive from it."""
    output = tmp_path / "default.onnx"
    lines: list[str] = []
    export_all(DEFAULT_MODEL, output, variants=("fp16",), engine=False, echo=lines.append)
    assert output.read_bytes() == DEFAULT_MODEL.read_bytes()
    assert json.loads(report_path(output).read_text())["reference"] == "ONNX model given"
    assert lines[0] == (
        f"default.onnx (fp32): from {DEFAULT_MODEL}, not re-checked against PyTorch (no checkpoint given)"
    )
    fp16 = variant_path(output, "fp16")
    assert read_onnx_metadata(fp16).provenance["reference_onnx_sha256"] == file_sha256(DEFAULT_MODEL)
    with pytest.raises(ModelError, match="an fp16 model; variants derive from an fp32 model"):
        export_all(fp16, tmp_path / "again.onnx", variants=("fp16",), engine=False)
    with pytest.raises(ValueError, match="--tile-size and --min-object-size apply to checkpoints"):
        export_all(DEFAULT_MODEL, tmp_path / "t.onnx", tile_size=128, engine=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "default.fp16.onnx",
        "default.fp16.parity.json",
        "default.onnx",
        "default.parity.json",
    ]


def test_generated_check_frames_follow_the_model_s_classes() -> None:
    from ernet.runtime.contract import BINARY_CLASSES, FOUR_CLASSES

    four = verify.generated_frames(range(9000, 9002), FOUR_CLASSES)
    assert four.class_names == FOUR_CLASSES
    assert {2, 3} <= set(np.unique(np.concatenate([m.ravel() for m in four.labels])).tolist())
    binary = verify.generated_frames(range(9000, 9002))
    assert binary.class_names == BINARY_CLASSES and max(m.max() for m in binary.labels) == 1
    np.testing.assert_array_equal(binary.frames[0], four.frames[0])  # the same frames, labelled twice
