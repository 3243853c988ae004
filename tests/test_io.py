"""Reading every supported input, refusing bad ones with one line, writing atomically."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage

from ernet.runtime.errors import InputError, OutputError
from ernet.runtime.io import TiffStackWriter, atomic_output, open_image, write_tiff


def test_tiff_stack_keeps_axes_and_pixel_size(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 65535, (3, 20, 30), dtype=np.uint16)
    src = tmp_path / "stack.tif"
    tifffile.imwrite(
        src, data, imagej=True, metadata={"axes": "TYX", "unit": "micron"}, resolution=(1 / 0.1, 1 / 0.1)
    )
    image = open_image(src)
    assert image.axes == "TYX" and image.n_frames == 3 and image.frame_shape == (20, 30)
    np.testing.assert_array_equal(image.data, data)
    assert image.calibration.pixel_size == pytest.approx((0.1, 0.1))
    out = tmp_path / "mask.tif"
    write_tiff(out, (image.data > 30000).astype(np.uint8), image.axes, image.calibration)
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
    image = open_image(path)
    assert image.axes == "YX" and image.data.shape == (24, 31) and image.data.dtype == dtype


def test_rgb_needs_a_channel_unless_it_is_grey(tmp_path: Path) -> None:
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 1] = 90
    rgb[..., 2] = 7
    PILImage.fromarray(rgb).save(tmp_path / "rgb.png")
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    for name in ("rgb.png", "rgb.tif"):
        with pytest.raises(InputError, match="--channel 0..2"):
            open_image(tmp_path / name)
        green = open_image(tmp_path / name, channel=1)
        assert green.axes == "YX"
        np.testing.assert_array_equal(green.data, rgb[..., 1])
    PILImage.fromarray(np.repeat(rgb[..., 1:2], 3, axis=2)).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(open_image(tmp_path / "grey.png").data, rgb[..., 1])


def test_channel_and_index_select_frames_lazily(tmp_path: Path) -> None:
    data = np.arange(2 * 3 * 2 * 5 * 6, dtype=np.uint16).reshape(2, 3, 2, 5, 6)
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZCYX"})
    with pytest.raises(InputError, match="--channel 0..1"):
        open_image(path)
    image = open_image(path, channel=1)
    assert image.axes == "TZYX" and image.shape == (2, 3, 5, 6) and image.n_frames == 6
    np.testing.assert_array_equal(image.data, data[:, :, 1])
    one_z = open_image(path, channel=0, index={"Z": 2})
    assert one_z.axes == "TYX"
    np.testing.assert_array_equal(one_z.data, data[:, 2, 0])


def test_stack_written_frame_by_frame_keeps_calibration(tmp_path: Path) -> None:
    src = tmp_path / "s.tif"
    tifffile.imwrite(
        src,
        np.zeros((4, 3, 8, 9), np.uint8),
        imagej=True,
        resolution=(5.0, 5.0),
        metadata={"axes": "TZYX", "unit": "micron", "spacing": 0.3, "finterval": 2.5},
    )
    image = open_image(src)
    out = tmp_path / "out.tif"
    calibration = image.calibration
    with TiffStackWriter(out, image.shape, image.axes, np.uint8, calibration, description={"a": 1}) as w:
        for i in range(image.n_frames):
            assert not out.exists()  # appears only when complete
            w.write(np.full(image.frame_shape, i, np.uint8))
    back = open_image(out)
    assert back.axes == "TZYX" and back.calibration == image.calibration
    np.testing.assert_array_equal(back.data.reshape(12, -1)[:, 0], np.arange(12))
    with tifffile.TiffFile(out) as tif:
        assert '"a": 1' in tif.imagej_metadata["Info"]


def test_writer_failure_and_interrupt_leave_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    out = tmp_path / "m.tif"
    real_imwrite = tifffile.imwrite

    def disk_full(path, data=None, **kwargs):  # noqa: ANN001, ANN003, ANN202
        next(iter(data))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", disk_full)
    with pytest.raises(OutputError, match="No space left on device"):
        with TiffStackWriter(out, (3, 4, 4), "TYX", np.uint8) as w:
            for _ in range(3):
                w.write(np.zeros((4, 4), np.uint8))
    monkeypatch.setattr(tifffile, "imwrite", real_imwrite)
    with pytest.raises(KeyboardInterrupt):
        with TiffStackWriter(out, (3, 4, 4), "TYX", np.uint8) as w:
            w.write(np.zeros((4, 4), np.uint8))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_while_the_writer_starts_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: threading.Thread) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", interrupted)
    with pytest.raises(KeyboardInterrupt):
        TiffStackWriter(tmp_path / "m.tif", (3, 4, 4), "TYX", np.uint8).__enter__()
    assert list(tmp_path.iterdir()) == []


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


def _symlink_loop(d: Path) -> Path:
    (d / "b.tif").symlink_to(d / "a.tif")
    (d / "a.tif").symlink_to(d / "b.tif")
    return d / "a.tif"


def _fifo(d: Path) -> Path:
    import os

    os.mkfifo(d / "pipe.tif")
    return d / "pipe.tif"


def _half_imagej_stack(path: Path) -> Path:
    """The first half of a 10-frame ImageJ stack (a copy cut short)."""
    data = np.random.default_rng(0).integers(0, 255, (10, 64, 64), np.uint8)
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TYX"})
    return _write(path, path.read_bytes()[: path.stat().st_size // 2])


def _float_tiff(path: Path, bad: float) -> Path:
    data = np.ones((4, 16, 16), np.float32)
    data[3, 5, 7] = bad  # in the last frame: found while streaming, not at open
    tifffile.imwrite(path, data, photometric="minisblack")
    return path


def _mixed_sizes(d: Path) -> Path:
    with tifffile.TiffWriter(d / "mixed.tif") as tif:
        tif.write(np.zeros((16, 16), np.uint8))
        tif.write(np.zeros((20, 12), np.uint8))
    return d / "mixed.tif"


def _ome_size_lie(d: Path) -> Path:
    """An OME-TIFF whose OME-XML announces 5 time points; it holds 3."""
    tifffile.imwrite(d / "lie.ome.tif", np.zeros((3, 32, 32), np.uint8), ome=True, metadata={"axes": "TYX"})
    content = (d / "lie.ome.tif").read_bytes()
    return _write(d / "lie.ome.tif", content.replace(b'SizeT="3"', b'SizeT="5"'))


def _mixed_types(d: Path) -> Path:
    with tifffile.TiffWriter(d / "types.tif") as tif:
        tif.write(np.zeros((16, 16), np.uint8))
        tif.write(np.zeros((16, 16), np.uint16))
    return d / "types.tif"


BAD_INPUTS = {
    "missing": (lambda d: d / "absent.tif", "file not found"),
    "not an image": (lambda d: _write(d / "notes.tif", b"these are my notes\n" * 10), "not a readable TIFF"),
    "not a png": (lambda d: _write(d / "notes.png", b"hello"), "not a readable image"),
    "corrupt TIFF": (lambda d: _truncated_tiff(d / "cut.tif"), "not a readable TIFF"),
    "truncated ImageJ stack": (
        lambda d: _half_imagej_stack(d / "half.tif"),
        "truncated or damaged: its ImageJ metadata announces 10 images, the file holds 1",
    ),
    "OME size lie": (_ome_size_lie, "lie.ome.tif: incomplete: 2 of its 5 images are missing"),
    "symlink loop": (_symlink_loop, "a broken or looping symbolic link"),
    "FIFO": (_fifo, "not a regular file (a device, FIFO or socket)"),
    "device": (lambda d: Path("/dev/null"), "/dev/null: not a regular file (a device, FIFO or socket)"),
    "empty array": (lambda d: _write(d / "empty.tif", _tiff_bytes(np.zeros((0, 5), np.uint8))), "empty"),
    "1-D": (
        lambda d: (tifffile.imwrite(d / "line.tif", np.zeros(50, np.uint8)), d / "line.tif")[1],
        "dimensionality",
    ),
    "5-D": (
        lambda d: (tifffile.imwrite(d / "deep.tif", np.zeros((2, 2, 2, 8, 8), np.uint8)), d / "deep.tif")[1],
        "--index Q=0",
    ),
    "directory": (
        lambda d: (d / "folder.tif").mkdir() or d / "folder.tif",
        "a directory, not an image or an image store; to segment the images in it, give them:",
    ),
    "NaN pixels": (lambda d: _float_tiff(d / "nan.tif", np.nan), "NaN or infinite"),
    "inf pixels": (lambda d: _float_tiff(d / "inf.tif", np.inf), "NaN or infinite"),
    "RGB": (
        lambda d: (
            tifffile.imwrite(d / "rgb.tif", np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)),
            d / "rgb.tif",
        )[1],
        "--channel",
    ),
    "frames of differing sizes": (
        _mixed_sizes,
        "series of different shapes or pixel types (16x16 uint8, 20x12",
    ),
    "frames of differing types": (
        _mixed_types,
        "series of different shapes or pixel types (16x16 uint8, 16x16 uint16)",
    ),
    "multichannel": (
        lambda d: (
            tifffile.imwrite(
                d / "ch.tif", np.zeros((3, 8, 8), np.uint8), imagej=True, metadata={"axes": "CYX"}
            ),
            d / "ch.tif",
        )[1],
        "--channel 0..2",
    ),
    "unknown suffix": (lambda d: _write(d / "frame.xyz", b"x"), "unsupported file type"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_raise_one_line_naming_the_file(case: str, tmp_path: Path) -> None:
    make, message = BAD_INPUTS[case]
    path = make(tmp_path)
    with pytest.raises(InputError) as info:
        list(open_image(path).frames())  # some problems show only when frames are read
    text = str(info.value)
    assert str(path) in text and message in text and "\n" not in text


def test_atomic_output_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.tif"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_existing_output(tmp_path: Path) -> None:
    out = _write(tmp_path / "a_mask.tif", b"keep me")
    with pytest.raises(OutputError, match="exists"):
        write_tiff(out, np.zeros((4, 4), np.uint8), "YX")
    assert out.read_bytes() == b"keep me"
    write_tiff(out, np.ones((4, 4), np.uint8), "YX", overwrite=True)
    assert tifffile.imread(out).sum() == 16


def test_ome_pixel_size_is_read(tmp_path: Path) -> None:
    path = tmp_path / "cells.ome.tif"
    metadata = {"axes": "TYX", "PhysicalSizeX": 0.08, "PhysicalSizeY": 0.08, "PhysicalSizeXUnit": "µm"}
    tifffile.imwrite(path, np.zeros((2, 16, 16), np.uint16), ome=True, metadata=metadata)
    image = open_image(path)
    assert image.axes == "TYX" and image.calibration.unit == "micron"
    assert image.calibration.pixel_size == pytest.approx((0.08, 0.08))


def test_outputs_past_4_gib_are_bigtiff(tmp_path: Path) -> None:
    small = TiffStackWriter(tmp_path / "s.tif", (10, 64, 64), "TYX", np.uint8)
    huge = TiffStackWriter(tmp_path / "h.tif", (5000, 1040, 1392), "TYX", np.uint8)  # 7.2 GB
    assert not small.bigtiff and small.imagej
    assert huge.bigtiff and not huge.imagej  # ImageJ hyperstacks cannot be BigTIFF


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_output_written_meanwhile_by_another_run(overwrite: bool, tmp_path: Path) -> None:
    """Two runs writing one output without --overwrite: the second to finish fails and
    keeps the first's file; with --overwrite the last one wins."""
    path = tmp_path / "a_mask.tif"
    mask = np.ones((8, 8), np.uint8)

    def write() -> None:
        with TiffStackWriter(path, (1, 8, 8), "TYX", np.uint8, overwrite=overwrite) as writer:
            writer.write(mask)
            path.write_bytes(b"the other run's mask")  # it finishes first

    if overwrite:
        write()
        np.testing.assert_array_equal(tifffile.imread(path), mask)
    else:
        with pytest.raises(OutputError, match="a_mask.tif: output exists, written meanwhile by another run"):
            write()
        assert path.read_bytes() == b"the other run's mask"
    assert [p.name for p in tmp_path.iterdir()] == ["a_mask.tif"]  # no temporary file left


@pytest.mark.parametrize("compression", ["lzw", "zstd", "jpeg", "deflate"])
def test_compressed_tiffs_are_read(compression: str, tmp_path: Path) -> None:
    """Compressed TIFFs as Fiji, Bio-Formats and microscope software write them."""
    data = np.random.default_rng(0).integers(0, 255, (3, 64, 64), np.uint8)
    path = tmp_path / f"{compression}.tif"
    tifffile.imwrite(path, data, compression=compression, photometric="minisblack", metadata={"axes": "TYX"})
    source = open_image(path)
    frames = np.stack(list(source.frames()))
    assert frames.shape == (3, 64, 64)
    if compression != "jpeg":  # lossy
        np.testing.assert_array_equal(frames, data)
