"""Reading images and stacks, writing masks atomically.

TIFF (ImageJ / OME / plain, BigTIFF) through tifffile; PNG, JPEG and BMP through
Pillow. Every problem with an input is raised as one :class:`InputError` line
naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import tifffile

from .errors import InputError, OutputError, first_line

TIFF_SUFFIXES = (".tif", ".tiff")
PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
SUPPORTED_SUFFIXES = TIFF_SUFFIXES + PILLOW_SUFFIXES
#: At most this many axes lead the Y, X axes of a frame (e.g. T, Z).
MAX_LEADING_AXES = 2


def _images_by_name(folder: Path, tag: str = "") -> dict[str, Path]:
    """Supported image files of ``folder`` whose stem ends with ``tag``, keyed by the stem
    without it."""
    return {
        p.stem.removesuffix(tag): p
        for p in folder.iterdir()
        if p.suffix.lower() in SUPPORTED_SUFFIXES and p.stem.endswith(tag)
    }


class LabelledPair(NamedTuple):
    """An image (or stack) and its label file."""

    name: str
    image: Path
    mask: Path


def labelled_pairs(folder: Path) -> list[LabelledPair]:
    """``NAME_image.EXT`` / ``NAME_mask.EXT`` pairs of ``folder``, or files of the same name
    in its ``images/`` and ``masks/``; sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: data folder not found")
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        images, masks = _images_by_name(folder / "images"), _images_by_name(folder / "masks")
    else:
        images, masks = _images_by_name(folder, "_image"), _images_by_name(folder, "_mask")
    names = sorted(images.keys() & masks.keys())
    if not names:
        raise InputError(
            f"{folder}: no image/mask pairs (NAME_image.tif + NAME_mask.tif, or images/ + masks/)"
        )
    return [LabelledPair(n, images[n], masks[n]) for n in names]


#: How files spell micrometres.
MICROMETRE_UNITS = ("micron", "microns", "um", "µm", "\u00b5m", "μm")


@dataclass(frozen=True)
class Calibration:
    """Physical scale that outputs carry over from their input."""

    resolution: tuple[float, float] | None = None  # pixels per unit along X, Y (TIFF tags)
    resolution_unit: int | None = None  # TIFF ResolutionUnit tag value
    unit: str | None = None  # ImageJ unit, e.g. "micron"
    spacing: float | None = None  # z step, in ``unit`` (ImageJ)
    finterval: float | None = None  # time between frames in s (ImageJ)

    @property
    def pixel_size(self) -> tuple[float, float] | None:
        """Size of a pixel along Y and X in ``unit``, where the file says it."""
        if not self.resolution or not all(self.resolution):
            return None
        rx, ry = self.resolution
        return 1.0 / ry, 1.0 / rx

    @property
    def micrometres_per_pixel(self) -> float | None:
        """The pixel side in µm where the file gives it in µm (square pixels), else None."""
        size = self.pixel_size
        if size is None or (self.unit or "").lower() not in MICROMETRE_UNITS:
            return None
        return size[1] if abs(size[0] - size[1]) <= 1e-6 * size[1] else None


@dataclass(frozen=True, eq=False)
class Image:
    """An image or stack on disk, read lazily frame by frame.

    ``axes``/``shape`` describe what is segmented: the file's axes less any that
    were selected away (e.g. the channel), always ending in ``YX``.
    """

    path: Path
    axes: str
    shape: tuple[int, ...]
    dtype: np.dtype
    calibration: Calibration
    _pages: tuple[int, ...]  # page (or eager frame) numbers to read, in output order
    _pick: tuple[int | slice, ...]  # index into a page's array giving the Y x X frame
    _eager: np.ndarray | None = None  # whole data, for formats read at once (pages x page shape)

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.shape[-2], self.shape[-1]

    @property
    def n_frames(self) -> int:
        return len(self._pages)

    def frames(self) -> Iterator[np.ndarray]:
        """The 2-D frames in file order, read one at a time and checked."""
        if self._eager is not None:
            for i, k in enumerate(self._pages):
                yield self._checked(self._eager[k][self._pick], i)
            return
        with tifffile.TiffFile(self.path) as tif:
            pages = tif.series[0].pages
            for i, k in enumerate(self._pages):
                try:
                    page = pages[k]
                    assert page is not None
                    frame = page.asarray()[self._pick]
                except Exception as exc:
                    raise InputError(
                        f"{self.path}: not a readable TIFF (frame {i}: {first_line(exc)})"
                    ) from None
                yield self._checked(frame, i)

    def _checked(self, frame: np.ndarray, i: int) -> np.ndarray:
        if frame.shape != self.frame_shape:
            raise InputError(f"{self.path}: frame {i} has shape {frame.shape}, expected {self.frame_shape}")
        if np.issubdtype(frame.dtype, np.floating) and not np.isfinite(frame).all():
            raise InputError(f"{self.path}: frame {i} has NaN or infinite pixels")
        return frame

    @cached_property
    def data(self) -> np.ndarray:
        """All frames as one array of ``shape`` (for small inputs; streams use ``frames``)."""
        out = np.empty(self.shape, self.dtype)
        flat = out.reshape(-1, *self.frame_shape)
        for i, frame in enumerate(self.frames()):
            flat[i] = frame
        return out


#: Axes that hold colour channels or samples, chosen by ``channel``.
CHANNEL_AXES = "CS"


def open_image(path: Path | str, channel: int | None = None, index: Mapping[str, int] | None = None) -> Image:
    """Open a 2-D image or a stack whose leading axes are time and/or z.

    ``channel`` picks one channel of a multichannel or RGB input; ``index`` fixes
    other axes (e.g. ``{"Q": 0}``) when there are more than two leading ones.
    Raises :class:`InputError` with one line naming the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a file (a directory?)")
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        layout = _tiff_layout(path)
    elif suffix in PILLOW_SUFFIXES:
        layout = _pillow_layout(path)
    else:
        raise InputError(f"{path}: unsupported file type '{suffix}' (use {', '.join(SUPPORTED_SUFFIXES)})")
    return _select(layout, channel, dict(index or {}))


@dataclass
class _Layout:
    """A file's data as pages: ``lead`` axes enumerate pages of ``page_axes``."""

    path: Path
    axes: str
    shape: tuple[int, ...]
    dtype: np.dtype
    page_axes: str
    calibration: Calibration = field(default_factory=Calibration)
    eager: np.ndarray | None = None


def _tiff_layout(path: Path) -> _Layout:
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise InputError(f"{path}: TIFF holds no image data")
            if len(tif.series) > 1:
                shapes = ", ".join("x".join(map(str, s.shape)) for s in tif.series[:4])
                raise InputError(
                    f"{path}: holds {len(tif.series)} image series of different shapes ({shapes}); "
                    "save each as its own file"
                )
            series = tif.series[0]
            axes, shape, dtype = series.axes, tuple(series.shape), series.dtype
            key = series.keyframe
            page_axes, page_shape = key.axes, tuple(key.shape)
            lead = len(axes) - len(page_axes)
            eager = None
            if not (
                lead >= 0
                and axes.endswith(page_axes)
                and shape[lead:] == page_shape
                and len(series.pages) == int(np.prod(shape[:lead], dtype=np.int64))
            ):  # pages do not map onto frames: read it whole
                page_axes = axes[-3:] if axes.endswith("S") else axes[-2:]
                data = series.asarray()
                eager = data.reshape(-1, *data.shape[len(axes) - len(page_axes) :])
            calibration = _tiff_calibration(tif)
    except InputError:
        raise
    except Exception as exc:  # tifffile raises many types for damaged files
        raise InputError(f"{path}: not a readable TIFF ({first_line(exc)})") from None
    return _Layout(path, axes, shape, dtype, page_axes, calibration, eager)


def _tiff_calibration(tif: tifffile.TiffFile) -> Calibration:
    tags = tif.pages.first.tags
    resolution = None
    if "XResolution" in tags and "YResolution" in tags:
        resolution = (_rational(tags["XResolution"].value), _rational(tags["YResolution"].value))
    unit_tag = tags["ResolutionUnit"].value if "ResolutionUnit" in tags else None
    ij = tif.imagej_metadata or {}
    calibration = Calibration(
        resolution if resolution and all(resolution) else None,
        int(unit_tag) if unit_tag else None,
        ij.get("unit"),
        ij.get("spacing"),
        ij.get("finterval"),
    )
    if tif.ome_metadata and not ij:
        calibration = _ome_calibration(tif.ome_metadata) or calibration
    return calibration


def _ome_calibration(xml: str) -> Calibration | None:
    """Pixel size from OME-XML ``Pixels`` attributes, converted to ImageJ-style calibration."""
    import xml.etree.ElementTree as ElementTree

    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None
    pixels = next((e for e in root.iter() if e.tag.endswith("}Pixels") or e.tag == "Pixels"), None)
    if pixels is None or "PhysicalSizeX" not in pixels.attrib:
        return None
    sx = float(pixels.attrib["PhysicalSizeX"])
    sy = float(pixels.attrib.get("PhysicalSizeY", sx))
    unit = pixels.attrib.get("PhysicalSizeXUnit", "µm")
    sz = pixels.attrib.get("PhysicalSizeZ")
    dt = pixels.attrib.get("TimeIncrement")
    if sx <= 0 or sy <= 0:
        return None
    return Calibration(
        (1 / sx, 1 / sy),
        1,
        "micron" if unit in ("µm", "um") else unit,
        float(sz) if sz else None,
        float(dt) if dt else None,
    )


def _pillow_layout(path: Path) -> _Layout:
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as im:
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            data = np.asarray(im)
    except Exception as exc:
        raise InputError(f"{path}: not a readable image ({first_line(exc)})") from None
    if data.ndim == 3:
        colour = data[..., : min(3, data.shape[-1])]
        if (colour == colour[..., :1]).all():  # grey stored as RGB(A): no channel to choose
            data = colour[..., 0]
    axes = "YXS" if data.ndim == 3 else "YX"
    return _Layout(path, axes, data.shape, data.dtype, axes, eager=data[None])


def _select(layout: _Layout, channel: int | None, index: dict[str, int]) -> Image:
    """Validate a layout and fix the axes that are not frames: channel, ``index``."""
    path, axes, shape = layout.path, layout.axes, layout.shape
    if int(np.prod(shape, dtype=np.int64)) == 0:
        raise InputError(f"{path}: image is empty (shape {shape})")
    if len(shape) < 2:
        raise InputError(f"{path}: wrong dimensionality: {len(shape)}-D (expected a 2-D frame or a stack)")
    if not (np.issubdtype(layout.dtype, np.integer) or np.issubdtype(layout.dtype, np.floating)):
        raise InputError(f"{path}: unsupported pixel type {layout.dtype}")
    sizes = dict(zip(axes, shape, strict=True))
    channels = [a for a in axes if a in CHANNEL_AXES and sizes[a] > 1]
    if channel is not None:
        if not channels:
            raise InputError(
                f"{path}: --channel {channel} given, but the image has one channel (axes '{axes}')"
            )
        index.setdefault(channels[0], channel)
    elif channels:
        a = channels[0]
        raise InputError(
            f"{path}: has {sizes[a]} channels (axis '{a}'); ERNet segments one: "
            f"choose it with --channel 0..{sizes[a] - 1}"
        )
    for a, i in index.items():
        if a not in sizes:
            raise InputError(f"{path}: no axis '{a}' to select from (axes '{axes}')")
        if not 0 <= i < sizes[a]:
            raise InputError(f"{path}: index {i} is outside axis '{a}' of size {sizes[a]}")
    frame_axes = axes[-3:-1] if axes.endswith("S") else axes[-2:]
    if frame_axes != "YX":
        raise InputError(f"{path}: frame axes are '{frame_axes}', expected Y and X (axes '{axes}')")
    lead = axes[: len(axes) - len(layout.page_axes)]
    kept = [a for a in lead if a not in index and a not in CHANNEL_AXES]
    if len(kept) > MAX_LEADING_AXES:
        extra = kept[0]
        raise InputError(
            f"{path}: wrong dimensionality: {len(shape)}-D with axes '{axes}'; frames are segmented along "
            f"at most {MAX_LEADING_AXES} leading axes: fix the others with --index, e.g. --index {extra}=0"
        )
    lead_shape = shape[: len(lead)]
    pages: tuple[int, ...] = (0,)
    if lead:
        fixed = {lead.index(a): i for a, i in index.items() if a in lead}
        pages = tuple(
            int(np.ravel_multi_index(full, lead_shape))
            for full in np.ndindex(*lead_shape)
            if all(full[d] == i for d, i in fixed.items())
        )
    pick = tuple(index.get(a, 0 if a in CHANNEL_AXES else slice(None)) for a in layout.page_axes)
    out_axes = "".join(a for a in axes if a not in index and a not in CHANNEL_AXES)
    out_shape = tuple(sizes[a] for a in out_axes)
    return Image(
        path, out_axes, out_shape, np.dtype(layout.dtype), layout.calibration, pages, pick, layout.eager
    )


def _rational(value: object) -> float:
    if isinstance(value, tuple):
        num, den = value
        return float(num) / float(den) if den else 0.0
    return float(value)  # type: ignore[arg-type]


def output_path(image: Path, kind: str, out_dir: Path | None = None, suffix: str = ".tif") -> Path:
    """Where an output of ``image`` goes: ``DIR/<stem>_<kind><suffix>`` (DIR defaults to
    the image's folder; ``.ome.tif`` counts as one suffix)."""
    stem = image.stem
    if image.name.lower().endswith((".ome.tif", ".ome.tiff")):
        stem = image.name[: image.name.lower().rindex(".ome.")]
    return (out_dir or image.parent) / f"{stem}_{kind}{suffix}"


def mask_path(image: Path, out_dir: Path | None = None) -> Path:
    """Where ``ernet-infer`` writes the mask of ``image``: ``DIR/<stem>_mask.tif``."""
    return output_path(image, "mask", out_dir)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only on success."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write here ({exc.strerror or first_line(exc)})") from None
    tmp = Path(tmp_name)
    try:  # from here on, whatever happens (Ctrl-C included), the temporary file goes
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; outputs get the usual mode
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _imagej_compatible(axes: str, dtype: np.dtype) -> bool:
    order = "TZCYXS"
    return (
        all(a in order for a in axes)
        and list(axes) == sorted(axes, key=order.index)
        and dtype in (np.uint8, np.uint16, np.float32)
    )


#: Past this many bytes of pixels a TIFF is written as BigTIFF (classic TIFF stops at 4 GiB).
BIGTIFF_BYTES = 2**32 - 2**25
_ABORT, _END = object(), object()


class TiffStackWriter:
    """Write a TIFF from frames as they are produced, on a background thread.

    ``shape``/``axes`` describe the whole file; ``write`` takes one frame's block
    (``shape[n_lead:]``, e.g. Y x X, C x Y x X or Y x X x S) at a time. ImageJ
    hyperstack where its axes and type allow, else a plain TIFF with tifffile's shaped
    metadata; BigTIFF past 4 GiB. The file appears under its name only when complete:
    a failure, an exception or Ctrl-C in the caller leaves nothing behind.
    """

    def __init__(
        self,
        path: Path,
        shape: tuple[int, ...],
        axes: str,
        dtype: np.dtype | type,
        calibration: Calibration = Calibration(),
        *,
        description: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        queue_size: int = 4,
    ) -> None:
        if len(shape) != len(axes):
            raise ValueError(f"shape {shape} does not match axes '{axes}'")
        self.path, self.shape, self.axes, self.dtype = Path(path), tuple(shape), axes, np.dtype(dtype)
        self.rgb = axes.endswith("S")
        #: The shape of one frame's block: the trailing C, Y, X, S axes.
        self.block_shape = self.shape[len(axes.rstrip("CYXS")) :]
        if path.exists() and not overwrite:
            raise OutputError(f"{path}: output exists (pass --overwrite to replace it)")
        nbytes = int(np.prod(shape, dtype=np.int64)) * self.dtype.itemsize
        self.bigtiff = nbytes > BIGTIFF_BYTES
        imagej = _imagej_compatible(axes, self.dtype) and not self.bigtiff
        metadata: dict[str, Any] = {"axes": axes}
        if calibration.unit:
            metadata["unit"] = calibration.unit
        if imagej and calibration.spacing and "Z" in axes:
            metadata["spacing"] = calibration.spacing
        if imagej and calibration.finterval and "T" in axes:
            metadata["finterval"] = calibration.finterval
        if description:
            metadata["Info" if imagej else "ernet"] = json.dumps(dict(description), sort_keys=True)
        self._kwargs: dict[str, Any] = {
            "imagej": imagej,
            "bigtiff": self.bigtiff,
            "metadata": metadata,
            "photometric": "rgb" if self.rgb else "minisblack",
        }
        if calibration.resolution:
            self._kwargs["resolution"] = calibration.resolution
            if calibration.resolution_unit is not None and not imagej:
                self._kwargs["resolutionunit"] = calibration.resolution_unit
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._files = ExitStack()

    def __enter__(self) -> TiffStackWriter:
        tmp = self._files.enter_context(atomic_output(self.path))
        try:
            self._thread = threading.Thread(
                target=self._write_file, args=(tmp,), name="ernet-tiff-writer", daemon=True
            )
            self._thread.start()
        except BaseException:  # e.g. Ctrl-C while the thread starts: __exit__ will not run
            self._files.__exit__(*sys.exc_info())  # removes the temporary file
            raise
        return self

    def _write_file(self, tmp: Path) -> None:
        try:
            tifffile.imwrite(tmp, data=self._pages(), shape=self.shape, dtype=self.dtype, **self._kwargs)
        except BaseException as exc:  # reported to the caller's thread by write()/close
            self._error = exc

    def _pages(self) -> Iterator[np.ndarray]:
        page_shape = self.shape[-3:] if self.rgb else self.shape[-2:]
        while True:
            block = self._queue.get()
            if block is _END:
                return
            if block is _ABORT:
                raise _Aborted
            yield from np.asarray(block, self.dtype).reshape(-1, *page_shape)

    def write(self, block: np.ndarray) -> None:
        """Queue one frame's block for writing (waits while the queue is full)."""
        if tuple(block.shape) != self.block_shape:
            raise ValueError(f"block of shape {block.shape}, expected {self.block_shape}")
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(block, timeout=0.1)
                return
            except queue.Full:
                continue

    def _raise_if_failed(self) -> None:
        if self._error is not None and not isinstance(self._error, _Aborted):
            raise OutputError(f"{self.path}: cannot write ({_os_reason(self._error)})")
        if self._thread is not None and not self._thread.is_alive() and self._error is None:
            raise OutputError(f"{self.path}: more frames written than the file holds")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        assert self._thread is not None
        if exc_type is None:
            while self._thread.is_alive():  # a thread that failed takes nothing more
                try:
                    self._queue.put(_END, timeout=0.1)
                    break
                except queue.Full:
                    continue
            self._thread.join()
            if self._error is not None:
                self._files.__exit__(OutputError, None, None)
                raise OutputError(f"{self.path}: cannot write ({_os_reason(self._error)})")
            self._files.close()  # renames the finished file into place
            return
        while True:  # make room for the abort marker, then wait for the thread to stop
            try:
                self._queue.put_nowait(_ABORT)
                break
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()
        self._thread.join(timeout=10)
        self._files.__exit__(exc_type, exc, tb)  # removes the temporary file


class _Aborted(Exception):
    """Stops a writer thread whose caller failed."""


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {first_line(exc)}"


def write_tiff(
    path: Path,
    data: np.ndarray,
    axes: str,
    calibration: Calibration = Calibration(),
    *,
    description: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> None:
    """Write a whole array with :class:`TiffStackWriter` (atomically, axes and scale kept)."""
    with TiffStackWriter(
        path, data.shape, axes, data.dtype, calibration, description=description, overwrite=overwrite
    ) as writer:
        for block in data.reshape(-1, *writer.block_shape):
            writer.write(block)
