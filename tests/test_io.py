"""Reading every supported input, refusing bad ones with one line, writing atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage

from ernet.runtime.errors import InputError, OutputError
from ernet.runtime.io import atomic_output, read_image, write_mask


def test_tiff_stack_keeps_axes_and_pixel_size(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 65535, (3, 20, 30), dtype=np.uint16)
    src = tmp_path / "stack.tif"
    tifffile.imwrite(
        src, data, imagej=True, metadata={"axes": "TYX", "unit": "micron"}, resolution=(1 / 0.1, 1 / 0.1)
    )
    image = read_image(src)
    assert image.axes == "TYX" and image.n_frames == 3 and image.frame_shape == (20, 30)
    np.testing.assert_array_equal(image.data, data)
    out = tmp_path / "mask.tif"
    write_mask(out, (image.data > 30000).astype(np.uint8), image)
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "TYX" and tif.series[0].dtype == np.uint8
        assert tif.imagej_metadata["unit"] == "micron"
        num, den = tif.pages.first.tags["XResolution"].value
        assert num / den == pytest.approx(10.0)


@pytest.mark.parametrize("suffix,dtype", [(".png", np.uint8), (".png", np.uint16), (".jpg", np.uint8)])
def test_pillow_formats(tmp_path: Path, suffix: str, dtype: type) -> None:
    data = (np.arange(24 * 31).reshape(24, 31) % 250).astype(dtype)
    path = tmp_path / f"frame{suffix}"
    PILImage.fromarray(data).save(path)
    image = read_image(path)
    assert image.axes == "YX" and image.data.shape == (24, 31) and image.data.dtype == dtype


def test_rgb_is_read_as_one_channel(tmp_path: Path) -> None:
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 1] = 90
    PILImage.fromarray(rgb).save(tmp_path / "rgb.png")
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    assert read_image(tmp_path / "rgb.png").data.shape == (10, 12)
    tif = read_image(tmp_path / "rgb.tif")
    assert tif.data.shape == (10, 12) and tif.axes == "YX"
    np.testing.assert_array_equal(tif.data, read_image(tmp_path / "rgb.png").data)  # same luma in both


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _tiff_bytes(data: np.ndarray) -> bytes:
    import io
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile warns about zero-size arrays
        tifffile.imwrite(buffer, data)
    return buffer.getvalue()


def _truncated_tiff(path: Path) -> Path:
    tifffile.imwrite(path, np.ones((64, 64), np.uint16))
    return _write(path, path.read_bytes()[:300])


BAD_INPUTS = {
    "missing": (lambda d: d / "absent.tif", "file not found"),
    "not an image": (lambda d: _write(d / "notes.tif", b"these are my notes\n" * 10), "not a readable TIFF"),
    "not a png": (lambda d: _write(d / "notes.png", b"hello"), "not a readable image"),
    "corrupt TIFF": (lambda d: _truncated_tiff(d / "cut.tif"), "not a readable TIFF"),
    "empty array": (lambda d: _write(d / "empty.tif", _tiff_bytes(np.zeros((0, 5), np.uint8))), "empty"),
    "1-D": (
        lambda d: (tifffile.imwrite(d / "line.tif", np.zeros(50, np.uint8)), d / "line.tif")[1],
        "dimensionality",
    ),
    "5-D": (
        lambda d: (tifffile.imwrite(d / "deep.tif", np.zeros((2, 2, 2, 8, 8), np.uint8)), d / "deep.tif")[1],
        "dimensionality",
    ),
    "multichannel": (
        lambda d: (
            tifffile.imwrite(
                d / "ch.tif", np.zeros((3, 8, 8), np.uint8), imagej=True, metadata={"axes": "CYX"}
            ),
            d / "ch.tif",
        )[1],
        "channels",
    ),
    "unknown suffix": (lambda d: _write(d / "frame.xyz", b"x"), "unsupported file type"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_raise_one_line_naming_the_file(case: str, tmp_path: Path) -> None:
    make, message = BAD_INPUTS[case]
    path = make(tmp_path)
    with pytest.raises(InputError) as info:
        read_image(path)
    text = str(info.value)
    assert str(path) in text and message in text and "\n" not in text


def test_atomic_output_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.tif"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_write_mask_refuses_existing_output(tmp_path: Path) -> None:
    src = tmp_path / "a.tif"
    tifffile.imwrite(src, np.zeros((4, 4), np.uint8))
    image = read_image(src)
    out = _write(tmp_path / "a_mask.tif", b"keep me")
    with pytest.raises(OutputError, match="exists"):
        write_mask(out, np.zeros((4, 4), np.uint8), image)
    assert out.read_bytes() == b"keep me"
    write_mask(out, np.ones((4, 4), np.uint8), image, overwrite=True)
    assert tifffile.imread(out).sum() == 16
