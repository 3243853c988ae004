"""The writer interface and the writers registered by output suffix (or claiming a path
no suffix names: an image-label inside an OME-Zarr image).

A writer is a context manager over one output of known ``shape`` and ``axes``:
``write`` takes the next frame's block (the trailing C, Y, X, S axes) in frame
order, and the file appears under its name only when the ``with`` block completes;
an exception or Ctrl-C inside it leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import numpy as np

from ..errors import OutputError
from . import tiff
from .calibration import Calibration
from .omezarr import store as omezarr


class Writer(Protocol):
    """One output, written frame by frame and completed atomically."""

    path: Path
    #: The shape of one frame's block: the trailing C, Y, X, S axes.
    block_shape: tuple[int, ...]

    def write(self, block: np.ndarray) -> None: ...

    def __enter__(self) -> Writer: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class WriterFactory(Protocol):
    """What makes a writer: the output, its whole shape, axes and type, its calibration
    and a description recorded inside it."""

    def __call__(
        self,
        path: Path,
        shape: tuple[int, ...],
        axes: str,
        dtype: np.dtype,
        calibration: Calibration,
        *,
        description: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> Writer: ...


_WRITERS: dict[str, WriterFactory] = {
    **dict.fromkeys(tiff.SUFFIXES, tiff.TiffStackWriter),
    **dict.fromkeys(omezarr.SUFFIXES, omezarr.OmeZarrWriter),
}


#: Writers of outputs that no suffix names: whether one claims a path, and the writer.
_CLAIMING: list[tuple[Callable[[Path], bool], WriterFactory]] = [
    (omezarr.in_image_labels, omezarr.OmeZarrWriter),  # image.zarr/labels/NAME
]


def register_writer(suffixes: tuple[str, ...], factory: WriterFactory) -> None:
    """Write outputs whose names end in one of ``suffixes`` with ``factory``."""
    _WRITERS.update(dict.fromkeys(suffixes, factory))


def open_writer(
    path: Path,
    shape: tuple[int, ...],
    axes: str,
    dtype: np.dtype | str,
    calibration: Calibration,
    *,
    description: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Writer:
    """A writer for ``path``, chosen by its suffix (enter it to start writing)."""
    suffix = next((s for s in sorted(_WRITERS, key=len, reverse=True) if path.name.lower().endswith(s)), None)
    factory = _WRITERS[suffix] if suffix else next((f for claims, f in _CLAIMING if claims(path)), None)
    if factory is None:
        raise OutputError(f"{path}: no writer for this output type (use {', '.join(_WRITERS)})")
    return factory(
        path, shape, axes, np.dtype(dtype), calibration, description=description, overwrite=overwrite
    )
