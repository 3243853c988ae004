"""TIFF in and out (ImageJ hyperstacks, OME-TIFF, plain TIFF, BigTIFF) through tifffile.

The reader describes a file's pages and reads them lazily; the writer writes a TIFF
page by page on a thread as frames are produced, atomically. Calibration is
converted from and to TIFF's resolution tags and ImageJ/OME metadata only here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..errors import InputError, OutputError, first_line
from .calibration import UNCALIBRATED, AxisScale, Calibration
from .files import atomic_output, refuse_existing
from .source import ArrayPages, Layout

SUFFIXES = (".tif", ".tiff")
#: The first bytes of classic TIFF and BigTIFF files, either byte order.
_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def probe(path: Path) -> bool:
    """Whether ``path`` is a file that starts like a TIFF."""
    try:
        with open(path, "rb") as f:
            return f.read(4) in _MAGIC
    except OSError:
        return False


class _TiffPages:
    """Pages of a TIFF's first series, read through one open file per pass; what tifffile
    logs meanwhile is reported once per file, like what it logged when the file was
    described (``reported``)."""

    def __init__(self, path: Path, reported: set[str]) -> None:
        self.path, self.reported = path, reported

    def read(self, frames: Iterable[tuple[int, int]]) -> Iterator[np.ndarray]:
        with _tifffile_messages(self.path, self.reported):
            tif = tifffile.TiffFile(self.path)
        with tif:
            with _tifffile_messages(self.path, self.reported):
                pages = tif.series[0].pages
            for i, k in frames:
                try:
                    with _tifffile_messages(self.path, self.reported):
                        page = pages[k]
                        assert page is not None
                        data = page.asarray()
                except Exception as exc:
                    raise InputError(
                        f"{self.path}: not a readable TIFF (frame {i}: {first_line(exc)})"
                    ) from None
                yield data


class _Collected(logging.Filter):
    """Takes what tifffile logs while a file is opened (it is not printed), to report it
    once, with the file's name."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = re.sub(r"^<tifffile\.\w+ [^>]*> ", "", record.getMessage().split("\n")[0])
        if record.levelno >= logging.WARNING and message not in self.messages:
            self.messages.append(message)
        return False


@contextlib.contextmanager
def _tifffile_messages(path: Path, reported: set[str]) -> Iterator[None]:
    """Hold tifffile's warnings back; if the block succeeds, log the first one not in
    ``reported`` as one line naming the file (a failure's error line says enough), and
    add them all to ``reported``."""
    logger = logging.getLogger("tifffile")
    collected = _Collected()
    logger.addFilter(collected)
    try:
        yield
    finally:
        logger.removeFilter(collected)
    new = [m for m in collected.messages if m not in reported]
    reported.update(new)
    if new:
        more = f" (and {len(new) - 1} more)" if len(new) > 1 else ""
        logging.getLogger("ernet.io").warning("note: %s: %s%s", path, new[0], more)


def layout(path: Path) -> Layout:
    """The pages of a TIFF's one image series; InputError naming the file if it has none,
    several, cannot be read, or holds fewer images than its metadata announces."""
    reported: set[str] = set()
    with _tifffile_messages(path, reported):
        return _layout(path, reported)


def _layout(path: Path, reported: set[str]) -> Layout:
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise InputError(f"{path}: TIFF holds no image data")
            if len(tif.series) > 1:
                kinds = ", ".join(f"{'x'.join(map(str, s.shape))} {s.dtype}" for s in tif.series[:4])
                raise InputError(
                    f"{path}: holds {len(tif.series)} image series of different shapes or pixel types "
                    f"({kinds}); save each as its own file"
                )
            series = tif.series[0]
            axes, shape, dtype = series.axes, tuple(series.shape), series.dtype
            key = series.keyframe
            page_axes, page_shape = key.axes, tuple(key.shape)
            lead = len(axes) - len(page_axes)
            _check_complete(path, tif, shape, page_shape)
            pages: ArrayPages | _TiffPages = _TiffPages(path, reported)
            if not (
                lead >= 0
                and axes.endswith(page_axes)
                and shape[lead:] == page_shape
                and len(series.pages) == int(np.prod(shape[:lead], dtype=np.int64))
            ):  # pages do not map onto frames: read it whole
                page_axes = axes[-3:] if axes.endswith("S") else axes[-2:]
                data = series.asarray()
                pages = ArrayPages(data.reshape(-1, *data.shape[len(axes) - len(page_axes) :]))
            calibration = _calibration(tif)
            description = _description(tif)
    except InputError:
        raise
    except Exception as exc:  # tifffile raises many types for damaged files
        raise InputError(f"{path}: not a readable TIFF ({first_line(exc)})") from None
    return Layout(path, axes, shape, np.dtype(dtype), page_axes, pages, calibration, description)


def _description(tif: tifffile.TiffFile) -> dict[str, Any]:
    """What our writer recorded in a file (:class:`TiffStackWriter`'s ``description``: in
    the ImageJ ``Info``, or tifffile's shaped description); empty for other files."""
    recorded = (tif.imagej_metadata or {}).get("Info")
    if recorded is None and tif.shaped_metadata:
        recorded = tif.shaped_metadata[0].get("ernet")
    try:
        values = json.loads(recorded) if isinstance(recorded, str) else None
    except json.JSONDecodeError:
        return {}
    return values if isinstance(values, dict) else {}


def _check_complete(
    path: Path, tif: tifffile.TiffFile, shape: tuple[int, ...], page_shape: tuple[int, ...]
) -> None:
    """InputError if the series lacks pages its OME metadata places (tifffile would fill
    them with zeros) or holds fewer images than its ImageJ metadata announces (a file
    copied or saved only in part)."""
    pages = tif.series[0].pages
    absent = sum(page is None for page in pages)
    if absent:
        raise InputError(f"{path}: incomplete: {absent} of its {len(pages)} images are missing")
    announced = int((tif.imagej_metadata or {}).get("images", 0) or 0)
    planes = int(np.prod(shape, dtype=np.int64)) // max(int(np.prod(page_shape, dtype=np.int64)), 1)
    if announced > planes:
        raise InputError(
            f"{path}: truncated or damaged: its ImageJ metadata announces {announced} images, "
            f"the file holds {planes}"
        )


#: TIFF ResolutionUnit tag values with a unit, and back.
_RESOLUTION_UNITS = {2: "inch", 3: "cm"}
_RESOLUTION_TAGS = {unit: tag for tag, unit in _RESOLUTION_UNITS.items()}
#: How OME spells micrometres, and what ImageJ writes instead.
_OME_MICROMETRES = ("µm", "um")
IMAGEJ_MICROMETRE = "micron"


def _calibration(tif: tifffile.TiffFile) -> Calibration:
    """Pixel size (resolution tags; unit from ImageJ metadata or the ResolutionUnit tag),
    ImageJ's z spacing and frame interval, or OME-XML's sizes where ImageJ's are absent."""
    ij = tif.imagej_metadata
    if tif.ome_metadata and not ij:
        ome = _ome_calibration(tif.ome_metadata)
        if ome is not None:
            return ome
    tags = tif.pages.first.tags
    scales: dict[str, AxisScale] = {}
    if "XResolution" in tags and "YResolution" in tags:
        rx, ry = _rational(tags["XResolution"].value), _rational(tags["YResolution"].value)
        tag = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else None
        unit = ij.get("unit") if ij else _RESOLUTION_UNITS.get(tag or 0)
        if rx and ry:
            scales.update(X=AxisScale(1 / rx, unit), Y=AxisScale(1 / ry, unit))
    if ij and ij.get("spacing"):
        scales["Z"] = AxisScale(float(ij["spacing"]), ij.get("unit"))
    if ij and ij.get("finterval"):
        scales["T"] = AxisScale(float(ij["finterval"]), "s")
    return Calibration(scales)


def _ome_calibration(xml: str) -> Calibration | None:
    """Physical sizes and the time increment from OME-XML ``Pixels`` attributes."""
    import xml.etree.ElementTree as ElementTree

    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None
    pixels = next((e for e in root.iter() if e.tag.endswith("}Pixels") or e.tag == "Pixels"), None)
    if pixels is None or "PhysicalSizeX" not in pixels.attrib:
        return None
    attrib = pixels.attrib
    sx = float(attrib["PhysicalSizeX"])
    sy = float(attrib.get("PhysicalSizeY", sx))
    if sx <= 0 or sy <= 0:
        return None

    def unit(name: str) -> str:
        value = attrib.get(name, "µm")
        return IMAGEJ_MICROMETRE if value in _OME_MICROMETRES else value

    scales = {"X": AxisScale(sx, unit("PhysicalSizeXUnit")), "Y": AxisScale(sy, unit("PhysicalSizeXUnit"))}
    if attrib.get("PhysicalSizeZ"):
        scales["Z"] = AxisScale(float(attrib["PhysicalSizeZ"]), unit("PhysicalSizeXUnit"))
    if attrib.get("TimeIncrement"):
        scales["T"] = AxisScale(float(attrib["TimeIncrement"]), attrib.get("TimeIncrementUnit", "s"))
    return Calibration(scales)


def _rational(value: object) -> float:
    if isinstance(value, tuple):
        num, den = value
        return float(num) / float(den) if den else 0.0
    return float(value)  # type: ignore[arg-type]


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


def _resolution_tags(calibration: Calibration, imagej: bool) -> dict[str, Any]:
    """tifffile's ``resolution`` (pixels per unit along X, Y) and, outside ImageJ files
    (which keep the unit in their metadata), ``resolutionunit``."""
    x, y = calibration["X"], calibration["Y"]
    if not (x and y):
        return {}
    tags: dict[str, Any] = {"resolution": (1 / x.step, 1 / y.step)}
    if not imagej:
        tags["resolutionunit"] = _RESOLUTION_TAGS.get(x.unit or "", 1)
    return tags


def _calibration_metadata(calibration: Calibration, axes: str, imagej: bool) -> dict[str, Any]:
    """The unit of the pixel size and, in ImageJ files, the z spacing and frame interval."""
    metadata: dict[str, Any] = {}
    if calibration.unit:
        metadata["unit"] = calibration.unit
    z, t = calibration["Z"], calibration["T"]
    if imagej and z and "Z" in axes:
        metadata["spacing"] = z.step
    if imagej and t and "T" in axes:
        metadata["finterval"] = t.step
    return metadata


class TiffStackWriter:
    """Write a TIFF from frames as they are produced, on a background thread.

    ``shape``/``axes`` describe the whole file; ``write`` takes one frame's block
    (``shape[n_lead:]``, e.g. Y x X, C x Y x X or Y x X x S) at a time. ImageJ
    hyperstack where its axes and type allow, else a plain TIFF with tifffile's shaped
    metadata; BigTIFF past 4 GiB. The file appears under its name only when complete:
    a failure, an exception or Ctrl-C in the caller leaves nothing behind.
    """

    suffixes = SUFFIXES

    def __init__(
        self,
        path: Path,
        shape: tuple[int, ...],
        axes: str,
        dtype: np.dtype | type,
        calibration: Calibration = UNCALIBRATED,
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
        refuse_existing(self.path, overwrite)
        self.overwrite = overwrite
        nbytes = int(np.prod(shape, dtype=np.int64)) * self.dtype.itemsize
        #: Written as BigTIFF (past 4 GiB), and as an ImageJ hyperstack (where axes and type allow).
        self.bigtiff = nbytes > BIGTIFF_BYTES
        self.imagej = _imagej_compatible(axes, self.dtype) and not self.bigtiff
        metadata: dict[str, Any] = {"axes": axes}
        metadata.update(_calibration_metadata(calibration, axes, self.imagej))
        if description:
            metadata["Info" if self.imagej else "ernet"] = json.dumps(dict(description), sort_keys=True)
        self._kwargs: dict[str, Any] = {
            "imagej": self.imagej,
            "bigtiff": self.bigtiff,
            "metadata": metadata,
            "photometric": "rgb" if self.rgb else "minisblack",
            **_resolution_tags(calibration, self.imagej),
        }
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._files = ExitStack()

    def __enter__(self) -> TiffStackWriter:
        tmp = self._files.enter_context(atomic_output(self.path, replace=self.overwrite))
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
        if exc_type is None:
            try:
                self._finish()
            except BaseException:  # e.g. Ctrl-C while the last frames are written
                self._abort(*sys.exc_info())
                raise
        else:
            self._abort(exc_type, exc, tb)

    def _finish(self) -> None:
        """Let the thread write the rest, then rename the finished file into place."""
        assert self._thread is not None
        while self._thread.is_alive():  # a thread that failed takes nothing more
            try:
                self._queue.put(_END, timeout=0.1)
                break
            except queue.Full:
                continue
        self._thread.join()
        if self._error is not None:
            raise OutputError(f"{self.path}: cannot write ({_os_reason(self._error)})")
        self._files.close()

    def _abort(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        """Stop the thread and remove the temporary file."""
        assert self._thread is not None
        while True:  # make room for the abort marker, then wait for the thread to stop
            try:
                self._queue.put_nowait(_ABORT)
                break
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()
        self._thread.join(timeout=10)
        self._files.__exit__(exc_type, exc, tb)  # removes the temporary file (if still there)


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
    calibration: Calibration = UNCALIBRATED,
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
