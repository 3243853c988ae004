"""Readers chosen by probing (content before suffix; directories too), writers chosen by
output name, and calibration carried per axis from any source into TIFF tags."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from ernet.runtime.errors import InputError, OutputError
from ernet.runtime.io import (
    AxisScale,
    Calibration,
    Layout,
    Reader,
    TiffStackWriter,
    open_image,
    open_writer,
    output_path,
    register_reader,
)


def test_content_decides_over_the_suffix(tmp_path: Path) -> None:
    data = np.arange(30, dtype=np.uint16).reshape(5, 6)
    tifffile.imwrite(tmp_path / "really_a_tiff.png", data)
    image = open_image(tmp_path / "really_a_tiff.png")
    np.testing.assert_array_equal(image.data, data)
    (tmp_path / "notes.tif").write_text("not an image")
    with pytest.raises(InputError, match="notes.tif: not a readable TIFF"):  # the suffix's reader says why
        open_image(tmp_path / "notes.tif")


class _NpyPages:
    """Pages of the test store: one .npy file per frame."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def read(self, frames: Iterable[tuple[int, int]]) -> Iterator[np.ndarray]:
        for _, page in frames:
            yield np.load(self.files[page])


def _npy_store(path: Path) -> Layout:
    info = json.loads((path / "store.json").read_text())
    files = sorted(path.glob("*.npy"))
    first = np.load(files[0])
    scale = {a: AxisScale(step, unit) for a, (step, unit) in info["scale"].items()}
    shape = (len(files), *first.shape)
    return Layout(path, "TYX", shape, first.dtype, "YX", _NpyPages(files), Calibration(scale))


def test_a_directory_store_is_one_more_reader(tmp_path: Path) -> None:
    register_reader(Reader("npy-store", (), lambda p: (p / "store.json").is_file(), _npy_store))
    store = tmp_path / "cells.store"
    store.mkdir()
    frames = np.random.default_rng(0).integers(0, 4000, (3, 12, 16), dtype=np.uint16)
    for i, frame in enumerate(frames):
        np.save(store / f"{i:03d}.npy", frame)
    scale = {"X": [0.1, "micron"], "Y": [0.1, "micron"], "T": [2.5, "s"]}
    (store / "store.json").write_text(json.dumps({"scale": scale}))
    image = open_image(store)
    assert image.axes == "TYX" and image.n_frames == 3
    np.testing.assert_array_equal(image.frame(2), frames[2])  # random access
    np.testing.assert_array_equal(image.data, frames)
    assert image.calibration.micrometres_per_pixel == pytest.approx(0.1)
    out = output_path(store, "mask", tmp_path / "out")
    assert out == tmp_path / "out" / "cells_mask.tif"
    with open_writer(out, image.shape, image.axes, np.uint8, image.calibration) as writer:
        for frame in image.frames():
            writer.write((frame > 2000).astype(np.uint8))
    with tifffile.TiffFile(out) as tif:  # the per-axis scale became TIFF and ImageJ tags
        ij = tif.imagej_metadata
        assert (ij["unit"], ij["finterval"]) == ("micron", 2.5)
        num, den = tif.pages.first.tags["XResolution"].value
        assert num / den == pytest.approx(10.0)
    empty = tmp_path / "folder.tif"
    empty.mkdir()
    with pytest.raises(InputError, match="folder.tif: a directory, not an image or an image store"):
        open_image(empty)


def test_writers_are_chosen_by_output_name(tmp_path: Path) -> None:
    writer = open_writer(tmp_path / "m.TIFF", (2, 4, 4), "TYX", "uint8", Calibration())
    assert isinstance(writer, TiffStackWriter)
    with pytest.raises(OutputError, match="m.xyz: no writer for this output type"):
        open_writer(tmp_path / "m.xyz", (4, 4), "YX", "uint8", Calibration())


def test_calibration_reads_per_axis(tmp_path: Path) -> None:
    tifffile.imwrite(
        tmp_path / "s.tif",
        np.zeros((2, 3, 8, 8), np.uint8),
        imagej=True,
        resolution=(4.0, 5.0),
        metadata={"axes": "TZYX", "unit": "micron", "spacing": 0.3, "finterval": 1.5},
    )
    calibration = open_image(tmp_path / "s.tif").calibration
    assert calibration.axes == {
        "X": AxisScale(0.25, "micron"),
        "Y": AxisScale(0.2, "micron"),
        "Z": AxisScale(0.3, "micron"),
        "T": AxisScale(1.5, "s"),
    }
    assert calibration.micrometres_per_pixel is None  # pixels that are not square
    tifffile.imwrite(
        tmp_path / "cm.tif", np.zeros((8, 8), np.uint8), resolution=(100.0, 100.0), resolutionunit=3
    )
    assert open_image(tmp_path / "cm.tif").calibration["X"] == AxisScale(0.01, "cm")
