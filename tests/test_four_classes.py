"""ERnet-v2's four-class model through the whole pipeline: exported with dynamic sizes,
run by ernet-infer with ERnet-v2's preprocessing (its own labels reproduced), odd and
constant frames, four-class outputs and their analysis."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from ernet.runtime import Segmenter
from ernet.runtime.errors import NoContrastWarning

from conftest import run_cli

torch = pytest.importorskip("torch")

#: ERnet-v2's saved PNG values of each of our class ids (0 bg, 1 tubule, 2 sheet, 3 SBT).
PNG_VALUE_OF_CLASS = (0, 255, 85, 170)
#: Labels may differ this close to the frame's edge (padding reaches about 8 px in).
BORDER = 8


def reference_labels(ernet_v2: Path) -> tuple[np.ndarray, np.ndarray]:
    """ERnet-v2's example frame and its own labels (eval mode), as our class ids."""
    reference = np.load(ernet_v2 / "example_ref_labels.npz")
    labels = np.full(reference["labels"].shape, 255, np.uint8)
    for k, value in enumerate(PNG_VALUE_OF_CLASS):
        labels[reference["labels"] == value] = k
    assert (labels < 4).all()
    return reference["image"], labels


def interior(a: np.ndarray) -> np.ndarray:
    return a[BORDER:-BORDER, BORDER:-BORDER]


def test_onnx_takes_any_even_size_and_batch(ernet_v2: Path, ernet_v2_onnx: Path) -> None:
    from ernet.runtime.backends import OnnxRuntimeBackend
    from ernet.runtime.spec import RunSpec
    from ernet.training.checkpoint import load_checkpoint

    model = load_checkpoint(ernet_v2 / "example_swinir_nch1.pth").model
    backend = OnnxRuntimeBackend(RunSpec(ernet_v2_onnx, "cpu"))
    rng = np.random.default_rng(0)
    for shape in ((1, 1, 34, 50), (3, 1, 64, 22), (2, 1, 128, 96)):
        batch = rng.random(shape, dtype=np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(batch)).numpy()
        np.testing.assert_allclose(backend.run(batch), expected, rtol=1e-3, atol=1e-4)
    contract = backend.metadata.contract
    assert contract.class_names == ("background", "tubule", "sheet", "SBT")
    assert contract.tiles.multiple_of == 2 and contract.normalization.levels == 255
    assert contract.tiles.activation_bytes and contract.tiles.activation_bytes > 4 * 192  # qkv: 192 per pixel


def test_ernet_infer_gives_ernet_v2_s_own_labels(ernet_v2: Path, ernet_v2_onnx: Path, tmp_path: Path) -> None:
    image, expected = reference_labels(ernet_v2)
    tifffile.imwrite(tmp_path / "frame.tif", image)
    done = run_cli("ernet-infer", tmp_path / "frame.tif", "--model", ernet_v2_onnx, "--provider", "cpu")
    assert done.returncode == 0, done.stderr
    with tifffile.TiffFile(tmp_path / "frame_mask.tif") as tif:
        labels = tif.asarray()
        info = json.loads(tif.imagej_metadata["Info"])
    assert info["class_names"] == ["background", "tubule", "sheet", "SBT"] and info["network_classes"] == [1]
    agreement = (interior(labels) == interior(expected)).mean()
    assert agreement >= 0.995, agreement
    assert set(np.unique(labels)) == {0, 1, 2, 3}  # random weights: every class somewhere


def test_odd_sizes_and_tiles_agree_with_whole_even_frames(ernet_v2: Path, ernet_v2_onnx: Path) -> None:
    image, _ = reference_labels(ernet_v2)
    with (
        Segmenter(ernet_v2_onnx, provider="cpu") as whole,
        Segmenter(ernet_v2_onnx, provider="cpu", tile=48, overlap=24) as tiled,
    ):
        even = whole.segment(image)
        odd = whole.segment(image[:89, :129])  # ERnet-v2 itself fails on odd sizes
        assert odd.shape == (89, 129)
        assert (interior(odd) == interior(even[:89, :129])).mean() >= 0.995
        assert all(y % 2 == 0 for y in tiled.grid(*image.shape).ys)  # 2x2 windows stay anchored
        assert (interior(tiled.segment(image)) == interior(even)).mean() >= 0.995


def test_a_constant_frame_is_background_with_a_warning(ernet_v2_onnx: Path, tmp_path: Path) -> None:
    flat = np.full((40, 60), 700, np.uint16)
    with Segmenter(ernet_v2_onnx, provider="cpu") as seg:
        with pytest.warns(NoContrastWarning, match="no contrast"):
            prediction = seg.predict(flat, probabilities="uint8")
    assert not prediction.labels.any() and prediction.probabilities is not None
    assert (prediction.probabilities[0] == 255).all() and not prediction.probabilities[1:].any()
    stack = np.stack([flat, np.random.default_rng(1).integers(0, 4000, (40, 60)).astype(np.uint16), flat])
    tifffile.imwrite(tmp_path / "s.tif", stack, imagej=True, metadata={"axes": "TYX"})
    done = run_cli("ernet-infer", tmp_path / "s.tif", "--model", ernet_v2_onnx, "--provider", "cpu")
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("note:")]
    assert notes == [
        f"note: {tmp_path / 's.tif'}: 2 of 3 frames (0, 2) have no contrast (an empty normalisation range, "
        "e.g. a constant frame): labelled background"
    ]
    masks = tifffile.imread(tmp_path / "s_mask.tif")
    assert not masks[0].any() and not masks[2].any() and masks[1].any()


def test_four_class_outputs_and_analysis(ernet_v2: Path, ernet_v2_onnx: Path, tmp_path: Path) -> None:
    pytest.importorskip("skan")
    image, _ = reference_labels(ernet_v2)
    stack = np.stack([image, image[::-1]])
    tifffile.imwrite(tmp_path / "cells.tif", stack, imagej=True, metadata={"axes": "TYX"})
    done = run_cli(
        "ernet-infer", tmp_path / "cells.tif", "--model", ernet_v2_onnx, "--provider", "cpu",
        "--probabilities", "uint8", "--overlay", "--metrics", "--fractions-csv", tmp_path / "fractions.csv",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    masks = tifffile.imread(tmp_path / "cells_mask.tif")
    with tifffile.TiffFile(tmp_path / "cells_probabilities.tif") as tif:
        assert tif.series[0].axes == "TCYX" and tif.series[0].shape == (2, 4, 90, 130)
    with tifffile.TiffFile(tmp_path / "cells_overlay.tif") as tif:
        legend = json.loads(tif.imagej_metadata["Info"])["legend"] if tif.imagej_metadata else None
        if legend is None:
            legend = json.loads(json.loads(tif.pages.first.description)["ernet"])["legend"]
    assert legend == {"tubule": "#ff00ff", "sheet": "#00ff00", "SBT": "#ffa000"}

    with (tmp_path / "cells_metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    foreground = [(m > 0).sum() for m in masks]
    for row, mask, total in zip(rows, masks, foreground, strict=True):
        assert float(row["fraction_sheet"]) == pytest.approx((mask == 2).sum() / total, rel=1e-5)
        assert float(row["area_sheet [px2]"]) <= (mask == 2).sum()  # pieces under 16 px left out
        assert "count_tubule" not in row  # tubules are the network, measured as a graph
        assert float(row["er_area [px2]"]) == pytest.approx((mask == 1).sum())  # the network: tubules
    with (tmp_path / "fractions.csv").open() as f:
        table = list(csv.reader(f))
    assert table[0] == ["Filename", "Tubule fraction", "Sheet fraction", "SBT fraction"]
    assert [r[0] for r in table[1:]] == ["cells.tif [T=0]", "cells.tif [T=1]"]
    for r, mask, total in zip(table[1:], masks, foreground, strict=True):
        assert [float(v) for v in r[1:]] == pytest.approx(
            [(mask == k).sum() / total for k in (1, 2, 3)], rel=1e-5
        )

    # ernet-analyze reads the classes the mask records: the same rows again
    done = run_cli("ernet-analyze", tmp_path / "cells_mask.tif", "--out", tmp_path / "again", "-q",
                   "--fractions-csv", tmp_path / "again.csv")  # fmt: skip
    assert done.returncode == 0, done.stderr
    with (tmp_path / "again" / "cells_mask_metrics.csv").open() as f:
        assert list(csv.DictReader(f)) == rows
    assert (tmp_path / "again.csv").read_text() == (tmp_path / "fractions.csv").read_text()


def four_class_pairs(folder: Path, count: int = 3, size: int = 64) -> Path:
    """Frames with tubule lines (1), sheet discs (2) and an SBT patch (3), labelled."""
    rng = np.random.default_rng(5)
    folder.mkdir()
    yy, xx = np.mgrid[:size, :size]
    for i in range(count):
        labels = np.zeros((size, size), np.uint8)
        labels[:, 8 + 4 * i : 11 + 4 * i] = 1
        labels[30 + 2 * i : 34 + 2 * i, :] = 1
        labels[(yy - 48) ** 2 + (xx - 44) ** 2 < 90] = 2
        labels[4:14, 40:56] = 3
        image = (rng.poisson(20, labels.shape) + np.choose(labels, [0, 200, 120, 160])).astype(np.uint16)
        tifffile.imwrite(folder / f"f{i}_image.tif", image)
        tifffile.imwrite(folder / f"f{i}_mask.tif", labels)
    return folder


def test_a_swin_model_trains_exports_and_runs_on_four_classes(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    from ernet.training.checkpoint import load_checkpoint

    data = four_class_pairs(tmp_path / "pairs")
    done = run_cli(
        "ernet-train", data, "--out", tmp_path / "run", "--architecture", "ERnetV2-Swin",
        "--option", "embed_dim=8", "--option", "depths=[1]", "--option", "num_heads=2",
        "--classes", "background,tubule,sheet,SBT", "--normalization", "ernet-v2",
        "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--crop", "32",
        "--val-fraction", "0.34",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "iou_sheet" in done.stderr and "iou_SBT" in done.stderr  # per-class scores each epoch
    loaded = load_checkpoint(tmp_path / "run" / "best.pt")
    meta = loaded.metadata
    assert meta.architecture.name == "ERnetV2-Swin" and meta.contract.tiles.multiple_of == 2
    assert meta.contract.class_names == ("background", "tubule", "sheet", "SBT")
    assert meta.contract.normalization.levels == 255
    assert {"iou_tubule", "iou_sheet", "iou_SBT", "dice_SBT"} <= set(meta.provenance["validation"])

    model = tmp_path / "swin.onnx"
    done = run_cli("ernet-export", tmp_path / "run" / "best.pt", "-o", model, "--variants", "", "--no-engine")
    assert done.returncode == 0, done.stderr
    done = run_cli("ernet-infer", data / "f0_image.tif", "--model", model, "--out", tmp_path / "out", "-q")
    assert done.returncode == 0, done.stderr
    mask = tifffile.imread(tmp_path / "out" / "f0_image_mask.tif")
    assert mask.shape == (64, 64) and mask.max() <= 3

    done = run_cli("ernet-validate", data, "--model", model, "--no-baseline")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["frame", "IoU", "Dice", "IoU", "tubule", "IoU", "sheet", "IoU", "SBT"]
    assert [line.split()[0] for line in lines[1:]] == ["f0", "f1", "f2", "mean"]


@pytest.fixture(scope="module")
def tiny_swin_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small four-class residual Swin with ERnet-v2's contract (random weights, tile 32)."""
    pytest.importorskip("onnx")
    from dataclasses import replace

    from ernet.export.exporter import export_checkpoint
    from ernet.runtime import ModelMetadata
    from ernet.training.checkpoint import save_checkpoint
    from ernet.training.models.swin import ResidualSwin, SwinConfig, ernet_v2_contract

    config = SwinConfig(embed_dim=8, depths=(1,), num_heads=2)
    contract = ernet_v2_contract(config)
    contract = replace(contract, tiles=replace(contract.tiles, size=32))
    folder = tmp_path_factory.mktemp("tiny-swin")
    torch.manual_seed(0)
    save_checkpoint(
        folder / "m.pt", ResidualSwin(config, 1, 4), ModelMetadata(contract, config.architecture())
    )
    export_checkpoint(folder / "m.pt", folder / "m.onnx")
    return folder / "m.onnx"


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_variant_gates_fail_a_variant_that_loses_one_class(
    tiny_swin_onnx: Path, tmp_path: Path, precision: str
) -> None:
    """A variant that calls sheets SBT and SBT sheets keeps the foreground, all that binary
    labels see, so the IoU against them does not move: the per-class agreement catches it."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from ernet.export.artefacts import report_path, variant_path, write_variant
    from ernet.export.exporter import ParityError
    from ernet.runtime.evaluation import LabelledFrames
    from ernet.training.synthetic import SyntheticConfig, generate

    reference = tmp_path / "model.onnx"
    reference.write_bytes(tiny_swin_onnx.read_bytes())
    drawn = generate(9000, SyntheticConfig(height=128, width=128))
    data = [LabelledFrames("generated", [drawn.image], [drawn.mask])]

    def variant(swap: bool):  # noqa: ANN202
        def write(tmp: Path) -> None:
            model = onnx.load(reference)
            for tensor in model.graph.initializer:
                if tensor.name.startswith("segmentation_decode.") and swap:
                    values = numpy_helper.to_array(tensor)[[0, 1, 3, 2]]  # sheet <-> SBT
                    tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
            onnx.save(model, tmp)

        return write

    report = write_variant(reference, precision, data, variant(swap=False))  # the reference itself
    assert report.passed and report.comparisons[0].least_class_agreement == 1.0
    variant_path(reference, precision).unlink()
    with pytest.raises(ParityError, match="fails its gate"):
        write_variant(reference, precision, data, variant(swap=True))
    saved = json.loads(report_path(variant_path(reference, precision)).read_text())
    (comparison,) = saved["comparisons"]
    assert comparison["class_share"]["sheet"] >= 0.005  # gated: the model predicts sheets
    assert comparison["class_agreement"]["sheet"] == 0.0 and comparison["least_class_agreement"] == 0.0
    assert comparison["iou_drop"] == 0.0  # the foreground, all the labels see, is unchanged
    assert not variant_path(reference, precision).exists()


def test_int8_of_a_swin_model_runs_and_is_quiet(
    tiny_swin_onnx: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ONNX Runtime's quantiser warns once per LayerNorm scale (rank 1: no channel axis)
    and quantises it per tensor; those warnings are not the user's business."""
    from ernet.export.artefacts import calibration_frames
    from ernet.export.precision import quantize_int8
    from ernet.runtime.backends import read_onnx_metadata

    quantize_int8(
        tiny_swin_onnx, tmp_path / "m.int8.onnx", calibration_frames(read_onnx_metadata(tiny_swin_onnx))
    )
    assert "out-of-range" not in caplog.text
    frame = np.random.default_rng(0).integers(0, 4000, (40, 50)).astype(np.uint16)
    with Segmenter(tmp_path / "m.int8.onnx", provider="cpu") as seg:
        assert seg.segment(frame).shape == (40, 50)
