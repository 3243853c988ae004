"""bioimage.io packages: made by ernet-export, validated by the spec library, tested by
bioimageio.core, run by ernet-infer as the ONNX file they were made from."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from conftest import run_cli

pytest.importorskip("bioimageio.core")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def exported(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model.onnx, its package) from the tiny checkpoint through the export command."""
    out = tmp_path_factory.mktemp("package")
    done = run_cli(
        "ernet-export",
        tiny_checkpoint,
        "-o",
        out / "model.onnx",
        "--variants",
        "",
        "--no-engine",
        "--bioimageio",
        out / "ernet-tiny.zip",
    )
    assert done.returncode == 0, done.stderr
    assert (
        "ernet-tiny.zip: bioimage.io package (ONNX and TorchScript weights) validated and tested"
        in done.stdout
    )
    return out / "model.onnx", out / "ernet-tiny.zip"


def _description(package: Path) -> dict:
    with zipfile.ZipFile(package) as archive:
        return yaml.safe_load(archive.read("rdf.yaml"))


def _rewritten(package: Path, target: Path, change: dict[str, bytes | None]) -> Path:
    """A copy of ``package`` with members replaced (or, for None, left out)."""
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(target, "w") as out:
        for name in source.namelist():
            data = change.get(name, source.read(name))
            if data is not None:
                out.writestr(name, data)
    return target


def test_the_package_validates_and_describes_the_model(exported: tuple[Path, Path]) -> None:
    from bioimageio.spec import InvalidDescr, load_description

    _, package = exported
    descr = load_description(package)
    assert not isinstance(descr, InvalidDescr), descr.validation_summary.format()
    rdf = _description(package)
    assert rdf["format_version"].startswith("0.5.")
    assert set(rdf["weights"]) == {"onnx", "torchscript"} and rdf["weights"]["onnx"]["opset_version"] == 18
    (tensor,) = rdf["inputs"]
    assert [a["type"] for a in tensor["axes"]] == ["batch", "channel", "space", "space"]
    assert tensor["axes"][2]["size"] == {"min": 1, "step": 1} and tensor["data"]["type"] == "float32"
    assert [step for step in tensor["preprocessing"] if step["id"] != "ensure_dtype"] == [
        {"id": "scale_range", "kwargs": {"axes": ["y", "x"], "min_percentile": 1.0, "max_percentile": 99.0}},
        {"id": "clip", "kwargs": {"min": 0.0, "max": 1.0}},
    ]
    (output,) = rdf["outputs"]
    assert output["axes"][1]["channel_names"] == ["background", "ER"]
    assert {"doi": "10.1126/sciadv.abc7209"}.items() <= rdf["cite"][0].items()
    assert {"endoplasmic-reticulum", "segmentation", "fluorescence-light-microscopy", "2d"} <= set(
        rdf["tags"]
    )
    with zipfile.ZipFile(package) as archive:
        card = archive.read("README.md").decode()
        cover = archive.read("cover.png")
    assert "## Intended use and limits" in card and cover[:4] == b"\x89PNG"
    from ernet.runtime.evaluation import REAL_DATA

    real = len(list(REAL_DATA.glob("*_image.tif")))  # the export's default --real-data
    assert (f"Measured by ernet-export on {real} hand-labelled frames" if real else "Not measured") in card


@pytest.mark.parametrize(
    ("weights", "devices"), [("onnx", ["CPUExecutionProvider"]), ("torchscript", ["cpu"])]
)
def test_bioimageio_core_reproduces_the_test_output(
    weights: str, devices: list[str], exported: tuple[Path, Path]
) -> None:
    from bioimageio.core import test_model

    summary = test_model(exported[1], weight_format=weights, devices=devices)
    assert summary.status == "passed", summary.format()


def test_a_wrong_test_output_fails_bioimageio_core_s_test(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    """The dynamic test compares: a package whose test output is not what its weights give fails."""
    import hashlib

    from bioimageio.core import test_model

    _, package = exported
    with zipfile.ZipFile(package) as archive:
        expected = np.load(io.BytesIO(archive.read("test_output.npy")))
    buffer = io.BytesIO()
    np.save(buffer, expected[:, ::-1].copy())  # the classes swapped
    wrong = buffer.getvalue()
    rdf = _description(package)
    rdf["outputs"][0]["test_tensor"]["sha256"] = hashlib.sha256(wrong).hexdigest()
    changed = _rewritten(
        package, tmp_path / "wrong.zip", {"test_output.npy": wrong, "rdf.yaml": yaml.safe_dump(rdf).encode()}
    )
    summary = test_model(changed, weight_format="onnx", devices=["CPUExecutionProvider"])
    failed = [d.name for d in summary.details if d.status == "failed"]
    assert summary.status != "passed" and failed == ["Reproduce test outputs from test inputs (onnx)"]


@pytest.mark.parametrize("tile", [None, "24"])
def test_ernet_infer_runs_the_package_as_the_onnx_file(
    tile: str | None, exported: tuple[Path, Path], tmp_path: Path
) -> None:
    """Same labels as the ONNX file the package was made from, whole frames and tiled."""
    onnx_model, package = exported
    frame = tmp_path / "frame.tif"
    from ernet.training.synthetic import SyntheticConfig, generate

    tifffile.imwrite(frame, generate(5, SyntheticConfig(height=72, width=96)).image)
    masks = []
    for name, model in (("onnx", onnx_model), ("package", package)):
        args = ["--tile", tile] if tile else []
        done = run_cli(
            "ernet-infer", frame, "--model", model, "--provider", "cpu", "-q", "-o", tmp_path / name, *args
        )
        assert done.returncode == 0, done.stderr
        masks.append(tifffile.imread(tmp_path / name / "frame_mask.tif"))
    assert np.array_equal(*masks) and 0 < masks[0].mean() < 1


BAD_PACKAGES = {
    "missing weights file": (
        {"model.onnx": None},
        "its description names model.onnx, which the package does not hold",
    ),
    "edited test tensor": (
        {"test_input.npy": b"not the tensor"},
        "test_input.npy does not match the sha256 its description records (a damaged or edited package)",
    ),
    "no ONNX weights": (
        {"rdf.yaml": lambda rdf: {**rdf, "weights": {"torchscript": rdf["weights"]["torchscript"]}}},
        "no ONNX weights (it has: torchscript); this runtime runs ONNX",
    ),
    "other preprocessing": (
        {
            "rdf.yaml": lambda rdf: {
                **rdf,
                "inputs": [{**rdf["inputs"][0], "preprocessing": [{"id": "zero_mean_unit_variance"}]}],
            }
        },
        "preprocessing 'zero_mean_unit_variance' is not a normalisation this runtime has",
    ),
    "other percentiles": (
        {
            "rdf.yaml": lambda rdf: {
                **rdf,
                "inputs": [
                    {
                        **rdf["inputs"][0],
                        "preprocessing": [
                            {"id": "scale_range", "kwargs": {"axes": ["y", "x"], "min_percentile": 2.0}},
                            {"id": "clip", "kwargs": {"min": 0.0, "max": 1.0}},
                        ],
                    }
                ],
            }
        },
        "is not the normalisation its model was trained with",
    ),
    "not a model": (
        {"rdf.yaml": lambda rdf: {**rdf, "type": "dataset"}},
        "its rdf.yaml does not describe a model",
    ),
}


@pytest.mark.parametrize("case", BAD_PACKAGES)
def test_a_package_it_cannot_honour_is_one_line(
    case: str, exported: tuple[Path, Path], tmp_path: Path
) -> None:
    change, message = BAD_PACKAGES[case]
    _, package = exported
    members = {
        name: yaml.safe_dump(edit(_description(package))).encode() if callable(edit) else edit
        for name, edit in change.items()
    }
    bad = _rewritten(package, tmp_path / "bad.zip", members)
    frame = tmp_path / "frame.tif"
    tifffile.imwrite(frame, np.zeros((16, 16), np.uint8))
    done = run_cli("ernet-infer", frame, "--model", bad, "--provider", "cpu", "-q")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {bad}: ") and message in lines[0]
    assert not (tmp_path / "frame_mask.tif").exists()


def test_a_multi_class_model_packages_the_same_way(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from bioimageio.core import test_model

    from ernet.export.bioimageio import write_package
    from ernet.export.exporter import export_checkpoint
    from ernet.runtime import ModelMetadata
    from ernet.training.checkpoint import save_checkpoint
    from ernet.training.models.ernet import ERNet, ERNetConfig

    from conftest import TINY_OPTIONS

    torch.manual_seed(1)
    config = ERNetConfig(**TINY_OPTIONS, n_classes=4)
    checkpoint = tmp_path / "four.pt"
    save_checkpoint(
        checkpoint, ERNet(config), ModelMetadata(config.contract(64), config.architecture()), epoch=0
    )
    export_checkpoint(checkpoint, tmp_path / "four.onnx")
    write_package(tmp_path / "four.onnx", tmp_path / "four.zip", checkpoint=checkpoint, echo=lambda _: None)
    assert _description(tmp_path / "four.zip")["outputs"][0]["axes"][1]["channel_names"] == [
        "class0",
        "class1",
        "class2",
        "class3",
    ]
    assert (
        test_model(tmp_path / "four.zip", weight_format="onnx", devices=["CPUExecutionProvider"]).status
        == "passed"
    )


def test_a_package_on_native_tensorrt_is_refused_in_one_line(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    frame = tmp_path / "frame.tif"
    tifffile.imwrite(frame, np.zeros((16, 16), np.uint8))
    done = run_cli("ernet-infer", frame, "--model", exported[1], "--provider", "tensorrt", "-q")
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        f"error: {exported[1]}: a bioimage.io package runs on ONNX Runtime; for native TensorRT give the "
        "ONNX model it was made from"
    ]


def test_a_model_with_a_noise_floor_packages_on_a_frame_the_floor_leaves_alone(tmp_path: Path) -> None:
    from dataclasses import replace

    from bioimageio.core import test_model

    from ernet.export.bioimageio import sample_frame, write_package
    from ernet.export.exporter import export_checkpoint
    from ernet.runtime import ModelMetadata, Normalization
    from ernet.runtime.preprocess import noise_level
    from ernet.training.checkpoint import save_checkpoint
    from ernet.training.models.ernet import ERNet, ERNetConfig

    from conftest import TINY_OPTIONS

    floored = Normalization(noise_floor=30)
    plain_frame, floored_frame = sample_frame(1, Normalization()), sample_frame(1, floored)
    lo, hi = Normalization().percentiles(plain_frame)
    assert hi - lo < 30 * noise_level(plain_frame)  # the floor would bind on the usual frame
    lo, hi = floored.percentiles(floored_frame)
    assert hi - lo >= 30 * noise_level(floored_frame)  # not on the one chosen
    config = ERNetConfig(**TINY_OPTIONS)
    contract = replace(config.contract(64), normalization=floored)
    checkpoint = tmp_path / "floored.pt"
    save_checkpoint(checkpoint, ERNet(config), ModelMetadata(contract, config.architecture()), epoch=0)
    export_checkpoint(checkpoint, tmp_path / "floored.onnx", min_object_size=64)
    notes: list[str] = []
    write_package(
        tmp_path / "floored.onnx", tmp_path / "floored.zip", checkpoint=checkpoint, echo=notes.append
    )
    assert any("noise floor (30 noise levels) has no bioimage.io operation" in n for n in notes)
    with zipfile.ZipFile(tmp_path / "floored.zip") as archive:
        card = archive.read("README.md").decode()
        packaged_input = np.load(io.BytesIO(archive.read("test_input.npy")))
    assert "at least 30 times its noise level" in card and "pieces under 64 px" in card
    np.testing.assert_array_equal(packaged_input[0, 0], floored_frame)
    summary = test_model(tmp_path / "floored.zip", weight_format="onnx", devices=["CPUExecutionProvider"])
    assert summary.status == "passed"


def test_a_model_with_eight_bit_truncation_is_not_packaged(tmp_path: Path) -> None:
    from ernet.export.bioimageio import PackageError, write_package
    from ernet.export.exporter import export_checkpoint
    from ernet.runtime import ModelMetadata, Normalization
    from ernet.training.checkpoint import save_checkpoint
    from ernet.training.models.ernet import ERNet, ERNetConfig

    tiny = ERNetConfig(n_feats=4, n_resgroups=1, n_resblocks=1, reduction=2)
    contract = tiny.contract(32, Normalization.ernet_v2())
    save_checkpoint(tmp_path / "v2.pt", ERNet(tiny), ModelMetadata(contract, tiny.architecture()))
    export_checkpoint(tmp_path / "v2.pt", tmp_path / "v2.onnx")
    with pytest.raises(PackageError, match="truncates to 256 levels .* no package made"):
        write_package(tmp_path / "v2.onnx", tmp_path / "v2.zip", echo=lambda _: None)
    assert not (tmp_path / "v2.zip").exists()
