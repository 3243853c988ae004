"""The source interface: an image or stack with named axes, read frame by frame.

A reader describes a file as a :class:`Layout` (its axes, shape, pixel type, scale,
and pages: the blocks it stores, enumerated by the leading axes); :func:`select`
fixes the axes that are not segmented (a channel, ``--index`` choices) and gives a
:class:`Source` whose frames are Y x X arrays, read lazily, each checked.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import InputError
from .calibration import Calibration

#: At most this many axes lead the Y, X axes of a frame (e.g. T, Z).
MAX_LEADING_AXES = 2
#: Axes that hold colour channels or samples, chosen by ``channel``.
CHANNEL_AXES = "CS"
#: Letters no reader uses for an axis of its own (tifffile names none of them): a repeated
#: axis letter (tifffile calls every unknown axis Q) is renamed to the next of these.
SPARE_AXES = "BDFGNOUW"


def distinct_axes(axes: str) -> str:
    """``axes`` with each repeated letter after the first renamed to a spare letter, so that
    every axis can be named (``--index``): ``QQQYX`` -> ``QBDYX``."""
    spare = iter(a for a in SPARE_AXES if a not in axes)
    out = ""
    for a in axes:
        out += next(spare) if a in out else a  # StopIteration past 8 repeats: a 12-D file
    return out


def one_series(path: Path, series: int) -> None:
    """InputError unless ``series`` is 0, the one series of a file that has one."""
    if series != 0:
        raise InputError(f"{path}: has one series; --series {series} is out of range")


class Source(ABC):
    """An image or stack: ``axes`` (ending in ``YX``), ``shape``, ``dtype``, per-axis
    ``calibration``, the ``description`` our writers record in outputs (class names...;
    empty for other files); random access to frame ``i`` and iteration over all frames."""

    path: Path
    axes: str
    shape: tuple[int, ...]
    dtype: np.dtype
    calibration: Calibration
    description: Mapping[str, Any] = {}

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.shape[-2], self.shape[-1]

    @property
    def n_frames(self) -> int:
        return int(np.prod(self.shape[:-2], dtype=np.int64))

    @abstractmethod
    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` (C order over the leading axes), checked."""

    def region(self, i: int, rows: slice, columns: slice) -> np.ndarray:
        """The ``rows`` x ``columns`` region of frame ``i`` (read alone where the format
        allows, else cut from the frame)."""
        return self.frame(i)[rows, columns]

    def frames(self) -> Iterator[np.ndarray]:
        """The frames in order, read one at a time and checked."""
        for i in range(self.n_frames):
            yield self.frame(i)

    @cached_property
    def data(self) -> np.ndarray:
        """All frames as one array of ``shape`` (for small inputs; streams use ``frames``)."""
        out = np.empty(self.shape, self.dtype)
        flat = out.reshape(-1, *self.frame_shape)
        for i, frame in enumerate(self.frames()):
            flat[i] = frame
        return out

    def checked(self, frame: np.ndarray, i: int) -> np.ndarray:
        """``frame`` (number ``i``) if it has the frame shape and finite pixels, else InputError."""
        if frame.shape != self.frame_shape:
            raise InputError(f"{self.path}: frame {i} has shape {frame.shape}, expected {self.frame_shape}")
        if np.issubdtype(frame.dtype, np.floating) and not np.isfinite(frame).all():
            raise InputError(f"{self.path}: frame {i} has NaN or infinite pixels")
        return frame


@runtime_checkable
class RegionReader(Protocol):
    """A page reader that also reads a Y x X region of a page without the rest of it."""

    def read_region(self, frame: int, page: int, rows: slice, columns: slice) -> np.ndarray: ...


class PageReader(Protocol):
    """Reads a file's pages: for each (frame number, page number) the page's array;
    a failure is an InputError naming the file and the frame."""

    def read(self, frames: Iterable[tuple[int, int]]) -> Iterator[np.ndarray]: ...


@dataclass(frozen=True)
class ArrayPages:
    """Pages of a file read whole (``pages x page shape``)."""

    data: np.ndarray

    def read(self, frames: Iterable[tuple[int, int]]) -> Iterator[np.ndarray]:
        for _, page in frames:
            yield self.data[page]


@dataclass
class Layout:
    """A file's data as pages: the leading axes (those before ``page_axes``) enumerate
    pages of ``page_axes``. Repeated axis letters are made distinct (:func:`distinct_axes`)."""

    path: Path
    axes: str
    shape: tuple[int, ...]
    dtype: np.dtype
    page_axes: str
    pages: PageReader
    calibration: Calibration = field(default_factory=Calibration)
    #: What our writers recorded in the file (see :attr:`Source.description`).
    description: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lead = len(self.axes) - len(self.page_axes)
        try:
            self.axes = distinct_axes(self.axes)
        except StopIteration:
            raise InputError(f"{self.path}: too many unnamed axes ('{self.axes}')") from None
        self.page_axes = self.axes[lead:]


class PagedSource(Source):
    """A source on the pages of a file: frame ``i`` is page ``pages[i]`` indexed by ``pick``."""

    def __init__(
        self, layout: Layout, axes: str, pages: Sequence[int], pick: tuple[int | slice, ...]
    ) -> None:
        self.path, self.dtype, self.calibration = layout.path, np.dtype(layout.dtype), layout.calibration
        self.description = layout.description
        sizes = dict(zip(layout.axes, layout.shape, strict=True))
        self.axes, self.shape = axes, tuple(sizes[a] for a in axes)
        self._reader, self._pages, self._pick = layout.pages, tuple(pages), pick

    @property
    def n_frames(self) -> int:
        return len(self._pages)

    def frame(self, i: int) -> np.ndarray:
        if not 0 <= i < len(self._pages):
            raise IndexError(f"frame {i} of {len(self._pages)}")
        (page,) = self._reader.read([(i, self._pages[i])])
        return self.checked(page[self._pick], i)

    def frames(self) -> Iterator[np.ndarray]:
        for i, page in enumerate(self._reader.read(enumerate(self._pages))):
            yield self.checked(page[self._pick], i)

    def region(self, i: int, rows: slice, columns: slice) -> np.ndarray:
        if not isinstance(self._reader, RegionReader) or self._pick != (slice(None), slice(None)):
            return super().region(i, rows, columns)
        block = self._reader.read_region(i, self._pages[i], rows, columns)
        if np.issubdtype(block.dtype, np.floating) and not np.isfinite(block).all():
            raise InputError(f"{self.path}: frame {i} has NaN or infinite pixels")
        return block


def select(layout: Layout, channel: int | None = None, index: dict[str, int] | None = None) -> Source:
    """Validate a layout and fix the axes that are not frames: ``channel``, ``index``."""
    index = dict(index or {})
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
        if a in "YX":
            raise InputError(f"{path}: --index {a}=... would cut the frame: only leading axes can be fixed")
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
    return PagedSource(layout, out_axes, pages, pick)
