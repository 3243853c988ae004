"""Zarr and OME-Zarr inputs: plain zarr v2/v3 arrays, NGFF 0.4/0.5 images written by
ome-zarr-py, bioformats2raw stores with several series; each problem one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from ernet.runtime.errors import InputError
from ernet.runtime.io import AxisScale, open_image

from conftest import run_cli

zarr = pytest.importorskip("zarr")
pytest.importorskip("ome_zarr_models")
from ome_zarr.format import FormatV04, FormatV05  # noqa: E402
from ome_zarr.writer import write_image  # noqa: E402

FORMATS = {"0.4": FormatV04(), "0.5": FormatV05()}
#: A T x C x Z x Y x X image: 2 time points, 3 channels, 2 planes of 12 x 20.
TCZYX = np.random.default_rng(0).integers(0, 4000, (2, 3, 2, 12, 20), dtype=np.uint16)
SCALE = {"t": 1.5, "c": 1.0, "z": 0.4, "y": 0.1, "x": 0.1}
UNITS = {"t": "second", "z": "micrometer", "y": "micrometer", "x": "micrometer"}


def _ngff(group: Any, data: np.ndarray, version: str, axes: str = "tczyx") -> None:
    """Write ``data`` as an NGFF image of two levels into ``group``."""
    write_image(
        data,
        group,
        axes=axes,
        fmt=FORMATS[version],
        scale_factors=[2],
        scale={a: SCALE[a] for a in axes},
        axes_units={a: UNITS[a] for a in axes if a in UNITS},
    )


def _image(path: Path, version: str, data: np.ndarray = TCZYX, axes: str = "tczyx") -> Path:
    group = zarr.open_group(path, mode="w", zarr_format=FORMATS[version].zarr_format)
    _ngff(group, data, version, axes)
    return path


def _level0(path: Path) -> str:
    """The path of level 0 of the image group at ``path``, as ome-zarr-py named it."""
    attributes = zarr.open_group(path, mode="r").attrs.asdict()
    return str(attributes.get("ome", attributes)["multiscales"][0]["datasets"][0]["path"])


def _update_attributes(path: Path, version: str, change: Any) -> None:
    """Edit the NGFF attributes of the image group at ``path`` in place."""
    group = zarr.open_group(path, mode="r+")
    attributes = group.attrs.asdict()
    change(attributes["ome"] if version == "0.5" else attributes)
    group.attrs.update(attributes)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_plain_arrays(zarr_format: int, tmp_path: Path) -> None:
    data = TCZYX[:, 0]
    array = zarr.create_array(
        tmp_path / "data.zarr", shape=data.shape, dtype=data.dtype, zarr_format=zarr_format
    )
    array[:] = data
    image = open_image(tmp_path / "data.zarr")
    assert (image.axes, image.shape, image.dtype) == ("QBYX", data.shape, np.uint16)  # unnamed leading axes
    np.testing.assert_array_equal(image.data, data)
    np.testing.assert_array_equal(image.frame(3), data[1, 1])  # random access
    assert image.calibration.axes == {}


def test_dimension_names_name_the_axes(tmp_path: Path) -> None:
    data = TCZYX[0]
    names = ("c", "depth", "y", "x")
    array = zarr.create_array(tmp_path / "d.zarr", shape=data.shape, dtype=data.dtype, dimension_names=names)
    array[:] = data
    image = open_image(tmp_path / "d.zarr", channel=2)
    assert image.axes == "QYX"
    np.testing.assert_array_equal(image.data, data[2])


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ngff_images(version: str, tmp_path: Path) -> None:
    path = _image(tmp_path / "cells.ome.zarr", version)
    image = open_image(path, channel=1)
    assert (image.axes, image.shape, image.dtype) == ("TZYX", (2, 2, 12, 20), np.uint16)
    np.testing.assert_array_equal(image.data, TCZYX[:, 1])  # level 0, channel 1
    assert image.calibration.axes == {
        "T": AxisScale(1.5, "second"),
        "Z": AxisScale(0.4, "micrometer"),
        "Y": AxisScale(0.1, "micrometer"),
        "X": AxisScale(0.1, "micrometer"),
    }
    assert image.calibration.micrometres_per_pixel == pytest.approx(0.1)
    assert image.description == {}
    one = open_image(path, channel=2, index={"T": 1})
    assert (one.axes, one.n_frames) == ("ZYX", 2)
    np.testing.assert_array_equal(one.data, TCZYX[1, 2])
    # a region of a plane, read by itself (zarr indexes only the chunks it touches)
    np.testing.assert_array_equal(one.region(1, slice(3, 9), slice(5, 17)), TCZYX[1, 2, 1, 3:9, 5:17])
    with pytest.raises(InputError, match=r"cells.ome.zarr: has 3 channels \(axis 'C'\)"):
        open_image(path)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_multiscale_scale_and_our_description(version: str, tmp_path: Path) -> None:
    path = _image(tmp_path / "m.zarr", version, TCZYX[0, 0], "zyx")

    def add(attributes: dict[str, Any]) -> None:
        attributes["multiscales"][0]["coordinateTransformations"] = [
            {"type": "scale", "scale": [2.0, 3.0, 3.0]}
        ]

    _update_attributes(path, version, add)
    zarr.open_group(path, mode="r+").attrs["ernet"] = {"classes": ["background", "tubule"]}
    image = open_image(path)
    assert image.calibration["Z"] == AxisScale(pytest.approx(0.8), "micrometer")
    assert image.calibration.pixel_size == pytest.approx((0.3, 0.3))
    assert image.description == {"classes": ["background", "tubule"]}


def _bioformats2raw(path: Path, version: str) -> list[np.ndarray]:
    """A bioformats2raw store of two series of different shapes."""
    root = zarr.open_group(path, mode="w", zarr_format=FORMATS[version].zarr_format)
    layout = {"bioformats2raw.layout": 3}
    if version == "0.5":
        root.attrs["ome"] = {"version": "0.5", **layout}
    else:
        root.attrs.update(layout)
    series = [TCZYX[0, 0], TCZYX[1, 0, :, :8, :10]]
    for n, data in enumerate(series):
        _ngff(root.create_group(str(n)), data, version, "zyx")
    return series


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_bioformats2raw_series(version: str, tmp_path: Path) -> None:
    path = tmp_path / "plate.zarr"
    series = _bioformats2raw(path, version)
    for n in (None, 0, 1):
        image = open_image(path, series=n)
        np.testing.assert_array_equal(image.data, series[n or 0])
        assert image.axes == "ZYX"
    with pytest.raises(InputError, match=r"plate.zarr: has 2 series; --series 2 is outside 0..1$"):
        open_image(path, series=2)


def test_ernet_infer_series(tiny_onnx: Path, tmp_path: Path) -> None:
    path = tmp_path / "plate.zarr"
    series = _bioformats2raw(path, "0.5")
    done = run_cli(
        "ernet-infer", path, "--series", "1", "--model", tiny_onnx, "--out", tmp_path / "out", "-q"
    )
    assert done.returncode == 0, done.stderr
    assert open_image(tmp_path / "out" / "plate_mask.ome.zarr").shape == series[1].shape
    done = run_cli("ernet-infer", path, "--series", "2", "--model", tiny_onnx, "--out", tmp_path / "out2")
    assert done.returncode == 1 and "--series 2 is outside 0..1" in done.stderr


def _one_line(path: Path, match: str, **options: Any) -> None:
    with pytest.raises(InputError, match=match) as error:
        open_image(path, **options)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_store_problems_are_one_line(version: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty.zarr"
    zarr.open_group(empty, mode="w", zarr_format=FORMATS[version].zarr_format)
    _one_line(empty, "a zarr group with no image or array in it")
    missing = _image(tmp_path / "missing.zarr", version, TCZYX[0, 0], "zyx")
    level0 = _level0(missing)
    shutil.rmtree(missing / level0)
    _one_line(missing, rf"missing array in the OME-Zarr image \(Expected to find an array at {level0}\b")

    def duplicate_axis(attributes: dict[str, Any]) -> None:
        attributes["multiscales"][0]["axes"][0]["name"] = "x"

    invalid = _image(tmp_path / "invalid.zarr", version, TCZYX[0, 0], "zyx")
    _update_attributes(invalid, version, duplicate_axis)
    _one_line(invalid, r"invalid OME-Zarr metadata \(multiscales.0.axes: .*Axis names must be unique")
    _one_line(_image(tmp_path / "one.zarr", version, TCZYX[0, 0], "zyx"), "has one series", series=1)


def test_groups_arrays_and_pixel_types(tmp_path: Path) -> None:
    group = zarr.open_group(tmp_path / "g.zarr", mode="w")
    group.create_array("raw", shape=(6, 7), dtype="uint8")[:] = 5
    assert open_image(tmp_path / "g.zarr").data.sum() == 5 * 42  # a group's one array
    group.create_array("other", shape=(6, 7), dtype="uint8")
    _one_line(tmp_path / "g.zarr", r"holding 2 arrays \(other, raw\).*give one of them, e.g. .*g.zarr/other$")
    for dtype in ("complex64", "bool"):
        zarr.create_array(tmp_path / f"{dtype}.zarr", shape=(4, 4), dtype=dtype)
        _one_line(tmp_path / f"{dtype}.zarr", f"unsupported pixel type {dtype}")
    zarr.create_array(tmp_path / "a.zarr", shape=(4, 4), dtype="uint8")
    _one_line(tmp_path / "a.zarr", "has one series; --series 1 is out of range", series=1)
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((4, 4), np.uint8))
    _one_line(tmp_path / "f.tif", "has one series", series=1)


def test_without_zarr_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zarr.create_array(tmp_path / "a.zarr", shape=(4, 4), dtype="uint8")
    monkeypatch.setitem(sys.modules, "zarr", None)  # import zarr raises ImportError
    _one_line(tmp_path / "a.zarr", r"reading zarr needs the 'zarr' extra: pip install 'ernet\[zarr\]'")


def test_the_runtime_starts_and_probes_without_importing_zarr(tmp_path: Path) -> None:
    zarr.create_array(tmp_path / "a.zarr", shape=(4, 4), dtype="uint8")
    code = (
        "import sys; from pathlib import Path; import ernet.runtime; "
        "from ernet.runtime.io import reader_for; "
        f"print(reader_for(Path({str(tmp_path / 'a.zarr')!r})).name, "
        "sorted(m for m in sys.modules if m.split('.')[0] in ('zarr', 'ome_zarr_models', 'ome_zarr')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["zarr", "[]"]


def test_ernet_infer_segments_a_zarr(tiny_onnx: Path, tmp_path: Path) -> None:
    path = _image(tmp_path / "cells.ome.zarr", "0.5", TCZYX[0, 0].astype(np.float32) / 4000, "zyx")
    done = run_cli("ernet-infer", path, "--model", tiny_onnx, "--out", tmp_path / "out", "-q")
    assert done.returncode == 0, done.stderr
    mask = open_image(tmp_path / "out" / "cells_mask.ome.zarr")  # zarr in, OME-Zarr out
    assert (mask.axes, mask.shape) == ("ZYX", (2, 12, 20))
    tif = tmp_path / "tif"
    done = run_cli("ernet-infer", path, "--model", tiny_onnx, "--out", tif, "--out-format", "tif")
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(tifffile.imread(tif / "cells_mask.tif"), mask.data)


def test_the_metadata_is_read_by_ome_zarr_models(tmp_path: Path) -> None:
    """A dataset path the metadata names is looked up by it (not guessed)."""
    path = _image(tmp_path / "renamed.zarr", "0.4", TCZYX[0, 0], "zyx")
    attributes = json.loads((path / ".zattrs").read_text())
    (path / _level0(path)).rename(path / "full")
    attributes["multiscales"][0]["datasets"][0]["path"] = "full"
    (path / ".zattrs").write_text(json.dumps(attributes))
    np.testing.assert_array_equal(open_image(path).data, TCZYX[0, 0])
