"""A folder of TIFFs, or a glob of them, read as one stack along T (natural file order);
its outputs named after the folder, beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from ernet.runtime.errors import InputError
from ernet.runtime.io import AxisScale, input_stem, mask_path, open_image, output_path

#: Frames 0..10, written as f0.tif ... f10.tif: natural order puts f10 last.
FRAMES = np.random.default_rng(0).integers(0, 4000, (11, 6, 9), dtype=np.uint16)


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(FRAMES):
        tifffile.imwrite(
            folder / f"f{i}.tif", frame, imagej=True, resolution=(10.0, 10.0), metadata={"unit": "micron"}
        )
    (folder / "notes.txt").write_text("not a frame")
    return folder


@pytest.mark.parametrize("given", ["folder", "glob"])
def test_a_folder_or_glob_is_one_stack(given: str, frames: Path) -> None:
    path = frames if given == "folder" else frames / "f*.tif"
    image = open_image(path)
    assert (image.axes, image.shape, image.dtype) == ("TYX", FRAMES.shape, np.uint16)
    np.testing.assert_array_equal(image.data, FRAMES)
    np.testing.assert_array_equal(image.frame(10), FRAMES[10])  # random access
    assert image.calibration["X"] == AxisScale(pytest.approx(0.1), "micron")  # the first file's
    one = open_image(path, index={"T": 2})
    np.testing.assert_array_equal(one.data, FRAMES[2])


def test_outputs_go_beside_the_folder(frames: Path) -> None:
    for path in (frames, frames / "*.tif"):
        assert input_stem(path) == "frames"
        assert mask_path(path) == frames.parent / "frames_mask.tif"
        assert output_path(path, "metrics", frames / "out", ".csv") == frames / "out" / "frames_metrics.csv"
    for name, stem in (("cells.ome.tif", "cells"), ("image.ome.zarr", "image"), ("data.zarr", "data")):
        assert input_stem(frames / name) == stem


def test_files_must_be_alike(frames: Path) -> None:
    tifffile.imwrite(frames / "f7.tif", np.zeros((6, 8), np.uint16))
    image = open_image(frames)
    np.testing.assert_array_equal(image.frame(6), FRAMES[6])  # read lazily: earlier frames are fine
    with pytest.raises(InputError, match=r"f7.tif: shape \(6, 8\) uint16, unlike the first file") as error:
        image.frame(7)
    assert "\n" not in str(error.value)


def test_sequence_problems_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nothing/\*.tif: no files match$"):
        open_image(tmp_path / "nothing" / "*.tif")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("text")
    with pytest.raises(InputError, match="notes: a directory, not an image or an image store"):
        open_image(tmp_path / "notes")
    (tmp_path / "notes" / "b.tif").write_text("not a TIFF")
    with pytest.raises(InputError, match=r"b.tif: not a readable TIFF"):
        open_image(tmp_path / "notes" / "*.tif")
    with pytest.raises(InputError, match=r"notes/\*.tif: has one series"):
        open_image(tmp_path / "notes" / "*.tif", series=1)
