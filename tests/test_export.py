"""Acceptance 2: checkpoints (ours and published-format) export to ONNX that matches PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from ernet.export import exporter  # noqa: E402
from ernet.export.exporter import ATOL, RTOL, ParityError, export_checkpoint  # noqa: E402
from ernet.runtime import RunSpec  # noqa: E402
from ernet.runtime.backends import OnnxRuntimeBackend  # noqa: E402
from ernet.runtime.io import file_sha256  # noqa: E402
from ernet.training.models.ernet import ERNet, ERNetConfig  # noqa: E402

from conftest import TINY_OPTIONS, run_cli  # noqa: E402

TINY = ERNetConfig(**TINY_OPTIONS)


def _published_format(tmp_path: Path, cfg: ERNetConfig, dataparallel: bool) -> Path:
    torch.manual_seed(3)
    state = ERNet(cfg).state_dict()
    if dataparallel:
        state = {f"module.{k}": v for k, v in state.items()}
    path = tmp_path / ("dp.pth" if dataparallel else "plain.pth")
    torch.save({"epoch": 100, "state_dict": state, "optimizer": {}}, path)
    return path


@pytest.mark.parametrize("dataparallel", [False, True])
def test_published_format_checkpoint_exports_with_parity(dataparallel: bool, tmp_path: Path) -> None:
    checkpoint = _published_format(tmp_path, TINY, dataparallel)
    output = tmp_path / "model.onnx"
    results = export_checkpoint(checkpoint, output)
    assert all(r.within_tolerance for r in results)
    assert {r.shape for r in results} == {(1, 1, 96, 96), (2, 1, 75, 53)}  # batch > 1, odd, not square
    # independent check on a third size, against a fresh forward of the original weights
    model = ERNet(TINY).eval()
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    x = np.random.default_rng(5).random((3, 1, 41, 130), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    actual = OnnxRuntimeBackend(RunSpec(output, "cpu")).run(x)
    np.testing.assert_allclose(actual, expected, atol=ATOL, rtol=RTOL)


def test_published_size_exports_with_parity(tmp_path: Path) -> None:
    results = export_checkpoint(_published_format(tmp_path, ERNetConfig(), True), tmp_path / "full.onnx")
    assert all(r.within_tolerance and r.argmax_agreement > 0.999 for r in results)


@pytest.mark.parametrize("opset", [19, 20])
def test_supported_opsets_export_with_parity(opset: int, tiny_checkpoint: Path, tmp_path: Path) -> None:
    results = export_checkpoint(tiny_checkpoint, tmp_path / "m.onnx", opset=opset)
    assert all(r.within_tolerance for r in results)
    assert onnx.load(tmp_path / "m.onnx").opset_import[0].version == opset


def test_onnx_contract(tiny_checkpoint: Path, tiny_onnx: Path) -> None:
    model = onnx.load(tiny_onnx)
    onnx.checker.check_model(model, full_check=True)
    assert 18 <= model.opset_import[0].version <= 20
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "image" and out.name == "logits"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1] == 1 and isinstance(dims[2], str) and isinstance(dims[3], str)
    assert "ReduceMean" in {n.op_type for n in model.graph.node}  # attention pooling
    meta = json.loads({p.key: p.value for p in model.metadata_props}["ernet"])
    contract = meta["contract"]
    assert meta["architecture"] == {"name": "ERNet-RCAN", "config": TINY.architecture().config}
    assert meta["architecture"]["config"]["n_feats"] == TINY.n_feats
    assert contract["class_names"] == ["background", "ER"] and contract["in_channels"] == 1
    assert contract["tiles"]["size"] == 64 and contract["normalization"]["mode"] == "percentile"
    # measured on ONNX Runtime: float32 maps of n_feats channels, several held at once (about 10 here)
    assert 4 * 4 * TINY.n_feats <= contract["tiles"]["activation_bytes"] <= 4 * 32 * TINY.n_feats
    assert meta["source_checkpoint_sha256"] == file_sha256(tiny_checkpoint)
    assert meta["package_version"]


def test_failed_parity_writes_nothing(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = exporter.to_onnx_proto

    def perturbed(model: ERNet, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        other = ERNet(model.config)
        other.load_state_dict({k: v + 0.01 for k, v in model.state_dict().items()})
        return real(other, *args, **kwargs)

    monkeypatch.setattr(exporter, "to_onnx_proto", perturbed)
    with pytest.raises(ParityError, match="does not match PyTorch"):
        export_checkpoint(tiny_checkpoint, tmp_path / "bad.onnx")
    assert list(tmp_path.iterdir()) == []


def test_export_cli_reports_parity_and_refuses_overwrite(tiny_checkpoint: Path, tmp_path: Path) -> None:
    output = tmp_path / "m.onnx"
    done = run_cli("ernet-export", tiny_checkpoint, "-o", output)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("parity ") == 2 and "[FAILED]" not in done.stdout
    assert all(tmp_path.joinpath(name).is_file() for name in ("m.onnx", "m.fp16.onnx", "m.int8.onnx"))
    again = run_cli("ernet-export", tiny_checkpoint, "-o", output)
    assert again.returncode != 0 and again.stderr.strip().splitlines() == [
        f"error: {output}: output exists (pass --overwrite to replace it)"
    ]
    bad = run_cli("ernet-export", tmp_path / "nope.pt", "-o", tmp_path / "x.onnx")
    assert bad.returncode != 0 and "checkpoint not found" in bad.stderr and not (tmp_path / "x.onnx").exists()
