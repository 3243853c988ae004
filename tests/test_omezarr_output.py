"""OME-Zarr outputs in one process (--out-format zarr): multiscale image-labels and
probability images that the NGFF libraries read, frame-aligned chunks, and a store
that appears only when complete."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from ernet.runtime.errors import OutputError
from ernet.runtime.io import AxisScale, Calibration, open_image, open_writer

from conftest import run_cli

zarr = pytest.importorskip("zarr")
from ome_zarr.io import parse_url  # noqa: E402
from ome_zarr.reader import Label, Reader  # noqa: E402
from ome_zarr_models.v05.image import Image  # noqa: E402
from ome_zarr_models.v05.image_label import ImageLabel  # noqa: E402

from ernet.runtime.io.omezarr.store import pyramid_levels  # noqa: E402

CALIBRATION = Calibration(
    {"X": AxisScale(0.1, "µm"), "Y": AxisScale(0.1, "µm"), "Z": AxisScale(0.3, "µm"), "T": AxisScale(5, "s")}
)


def test_a_tiff_stack_to_ome_zarr(tiny_onnx: Path, tmp_path: Path) -> None:
    stack = np.random.default_rng(0).integers(0, 4000, (2, 3, 140, 150), dtype=np.uint16)  # T Z Y X
    source = tmp_path / "cells.tif"
    tifffile.imwrite(source, stack, imagej=True, metadata={"axes": "TZYX"})
    args = ("--model", tiny_onnx, "--probabilities", "float16", "-q")
    done = run_cli("ernet-infer", source, "--out-format", "zarr", "--out", tmp_path / "zarr", *args)
    assert done.returncode == 0, done.stderr
    done = run_cli("ernet-infer", source, "--out", tmp_path / "tif", *args)
    assert done.returncode == 0, done.stderr
    mask = tmp_path / "zarr" / "cells_mask.ome.zarr"
    group = zarr.open_group(mask, mode="r")
    assert [group[str(k)].shape for k in range(2)] == [(2, 3, 140, 150), (2, 3, 70, 75)]
    assert group["0"].chunks == (1, 1, 140, 150)  # one chunk per frame: workers never share one
    np.testing.assert_array_equal(group["1"][:], group["0"][:, :, ::2, ::2])
    np.testing.assert_array_equal(open_image(mask).data, tifffile.imread(tmp_path / "tif" / "cells_mask.tif"))
    label = ImageLabel.from_zarr(group).ome_attributes
    assert [a.name for a in label.multiscales[0].axes] == ["t", "z", "y", "x"]
    assert label.image_label is not None and [p.label_value for p in label.image_label.colors] == [0, 1]
    nodes = list(Reader(parse_url(str(mask)))())  # as napari's ome-zarr reader sees it
    assert any(isinstance(spec, Label) for spec in nodes[0].specs)
    probabilities = Image.from_zarr(
        zarr.open_group(tmp_path / "zarr" / "cells_probabilities.ome.zarr", mode="r")
    )
    axes = [a.name for a in probabilities.ome_attributes.multiscales[0].axes]
    assert axes == ["t", "c", "z", "y", "x"]  # NGFF's order, not the TIFF's T Z C Y X
    tif_probabilities = tifffile.imread(tmp_path / "tif" / "cells_probabilities.tif")  # T Z C Y X
    level0 = zarr.open_group(tmp_path / "zarr" / "cells_probabilities.ome.zarr", mode="r")["0"][:]
    np.testing.assert_array_equal(np.moveaxis(level0, 1, 2), tif_probabilities)


def test_calibration_and_units_are_ngff_s(tmp_path: Path) -> None:
    path = tmp_path / "m.ome.zarr"
    with open_writer(path, (2, 3, 64, 64), "TZYX", "uint8", CALIBRATION) as writer:
        for _ in range(6):
            writer.write(np.ones((64, 64), np.uint8))
    multiscale = Image.from_zarr(zarr.open_group(path, mode="r")).ome_attributes.multiscales[0]
    assert [(a.name, a.unit) for a in multiscale.axes] == [
        ("t", "second"),
        ("z", "micrometer"),
        ("y", "micrometer"),
        ("x", "micrometer"),
    ]
    assert multiscale.datasets[0].coordinateTransformations[0].scale == [5, 0.3, 0.1, 0.1]
    read = open_image(path)
    assert read.calibration.micrometres_per_pixel == 0.1 and read.calibration["T"] == AxisScale(5, "second")


def test_nothing_appears_unless_complete(tmp_path: Path) -> None:
    path = tmp_path / "m.ome.zarr"
    with pytest.raises(RuntimeError), open_writer(path, (3, 32, 32), "TYX", "uint8", CALIBRATION) as writer:
        writer.write(np.zeros((32, 32), np.uint8))
        raise RuntimeError("the model failed")
    assert list(tmp_path.iterdir()) == []
    with (
        pytest.raises(OutputError, match="1 of 3 frames"),
        open_writer(path, (3, 32, 32), "TYX", "uint8", CALIBRATION) as w,
    ):
        w.write(np.zeros((32, 32), np.uint8))
    assert list(tmp_path.iterdir()) == []
    with open_writer(path, (1, 32, 32), "TYX", "uint8", CALIBRATION) as writer:
        writer.write(np.zeros((32, 32), np.uint8))
    with pytest.raises(OutputError, match="exists"):
        open_writer(path, (1, 32, 32), "TYX", "uint8", CALIBRATION)
    with open_writer(path, (1, 32, 32), "TYX", "uint8", CALIBRATION, overwrite=True) as writer:
        writer.write(np.full((32, 32), 1, np.uint8))
    assert open_image(path).data.max() == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["m.ome.zarr"]


def test_pyramid_levels() -> None:
    assert pyramid_levels(60, 1000) == 1
    assert pyramid_levels(128, 128) == 2
    assert pyramid_levels(1040, 1392) == 5  # down to 65 x 87


def test_a_store_resumes_only_the_same_run(tmp_path: Path) -> None:
    from ernet.runtime.io.omezarr.store import FrameStore

    path = tmp_path / "p.ome.zarr"
    options = {"description": {"model_key": "a"}, "labels": False}
    store = FrameStore.create(path, (2, 2, 32, 32), "TCYX", "uint8", CALIBRATION, **options)
    store.write(0, np.full((2, 32, 32), 200, np.uint8))
    again = FrameStore.create(path, (2, 2, 32, 32), "TCYX", "uint8", CALIBRATION, resume=True, **options)
    assert again.done(0) and not again.done(1)
    with pytest.raises(OutputError, match="different run"):  # another pixel type
        FrameStore.create(path, (2, 2, 32, 32), "TCYX", "float16", CALIBRATION, resume=True, **options)
    with pytest.raises(OutputError, match="different run"):  # another model
        FrameStore.create(
            path, (2, 2, 32, 32), "TCYX", "uint8", CALIBRATION, resume=True,
            description={"model_key": "b"}, labels=False,
        )  # fmt: skip
    with pytest.raises(ValueError, match="not a multiple of 2"):
        FrameStore.create(tmp_path / "q.ome.zarr", (1, 128, 128), "TYX", "uint8", CALIBRATION, chunk=33)
