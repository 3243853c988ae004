"""OME-Zarr outputs: multiscale images and image-labels, written frame by frame in any
order, by any process, and moved into place only when complete.

A :class:`FrameStore` is created once (by the process that plans the run): a zarr
group under a temporary name beside the output, its arrays (one per pyramid level,
chunked so that no chunk spans two frames) and its NGFF metadata, written through
ome-zarr-py. Any process may then :meth:`~FrameStore.write` a frame: every level of
it, then a completion record of that frame, so that a rerun can
skip what is complete (:meth:`~FrameStore.done`). :meth:`~FrameStore.finish` renames
the store into place. :class:`OmeZarrWriter` is the same store behind the frame-order
:class:`~ernet.runtime.io.writers.Writer` interface.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from ...errors import OutputError, first_line
from ...postprocess import label_rgba
from ..calibration import Calibration
from ..files import refuse_existing
from ..source import CHANNEL_AXES
from .ngff import ngff_axes, ngff_order, ngff_scale

#: Output names these writers take.
SUFFIXES = (".ome.zarr", ".zarr")
#: Pyramid levels halve Y and X while the smaller side stays at least this long.
MIN_LEVEL_SIDE = 64
#: At most this many levels (level 0 included).
MAX_LEVELS = 5
#: Planes up to this side are one chunk at level 0; larger ones are cut into chunks of
#: this side (halved with each level, so that a chunk never spans two written regions).
MAX_CHUNK_SIDE = 4096
#: The key of our run description in a store's attributes.
DESCRIPTION_KEY = "ernet"
#: The folder of completion records inside a store being written.
_RECORDS = "ernet-progress"


def pyramid_levels(height: int, width: int) -> int:
    """How many levels a ``height`` x ``width`` plane's pyramid has."""
    levels = 1
    while levels < MAX_LEVELS and min(height, width) >> levels >= MIN_LEVEL_SIDE:
        levels += 1
    return levels


def _zarr() -> Any:
    try:
        import zarr
    except ModuleNotFoundError:
        raise OutputError("writing OME-Zarr needs the 'zarr' extra: pip install 'ernet[zarr]'") from None
    return zarr


def _format(version: str) -> Any:
    from ome_zarr.format import FormatV04, FormatV05

    return {"0.4": FormatV04, "0.5": FormatV05}[version]()


@dataclass(frozen=True)
class FrameStore:
    """An OME-Zarr image (``labels``: an image-label, one colour per class) of ``shape``
    with our ``axes``, written frame by frame. Picklable: workers write through it.

    ``path`` is where the store goes when complete, ``work`` where it is written until
    then. Frames are numbered in C order over the leading axes (those before the
    block axes C, Y, X, S); a frame's block has the trailing axes in our order.
    """

    path: Path
    work: Path
    shape: tuple[int, ...]
    axes: str
    dtype: str
    levels: int
    version: str = "0.5"
    labels: bool = True
    #: The ``labels`` group of an input image that the image-label is added to, else None.
    into: Path | None = None
    overwrite: bool = False
    #: The side of level 0's chunks in Y and X (halved per level): regions written apart
    #: start at multiples of it.
    chunk: int = MAX_CHUNK_SIDE
    block_axes: str = field(init=False)

    def __post_init__(self) -> None:
        lead = len(self.axes.rstrip("CYXS"))
        object.__setattr__(self, "block_axes", self.axes[lead:])

    # -- planning ------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: Path,
        shape: tuple[int, ...],
        axes: str,
        dtype: np.dtype | str,
        calibration: Calibration,
        *,
        description: Mapping[str, Any] | None = None,
        labels: bool = True,
        class_names: Sequence[str] = (),
        overwrite: bool = False,
        resume: bool = False,
        chunk: int = MAX_CHUNK_SIDE,
    ) -> FrameStore:
        """Create the store's arrays and metadata under a temporary name beside ``path``
        (or, with ``resume``, reopen one an interrupted run left there with the same
        ``description``: its completed frames stay done). A ``path`` in the ``labels``
        group of an OME-Zarr image (``image.zarr/labels/ernet``) adds an image-label to
        that image, in its NGFF version, listed in the group when complete. Frames are
        written whole, or in regions of ``chunk`` pixels a side (a multiple of
        ``2 ** (levels - 1)``)."""
        path = Path(os.path.abspath(path))  # workers may run in another folder
        refuse_existing(path, overwrite)
        height, width = shape[-3:-1] if axes.endswith("S") else shape[-2:]
        image_version = _image_version(path.parent.parent) if in_image_labels(path) else None
        into = path.parent if image_version else None
        # Beside the output; an image-label added to an input image: beside its labels group.
        work = (path.parent if into is None else into.parent) / f".{path.name}.partial"
        store = cls(
            path, work, tuple(shape), axes, np.dtype(dtype).str,
            pyramid_levels(height, width), image_version or "0.5", labels, into, overwrite, chunk,
        )  # fmt: skip
        if chunk % 2 ** (store.levels - 1):
            raise ValueError(
                f"chunk side {chunk} is not a multiple of {2 ** (store.levels - 1)}, the pyramid's"
            )
        recorded = {
            **(description or {}),
            **{"store_shape": list(shape), "store_axes": axes, "store_dtype": store.dtype, "labels": labels},
        }
        if resume and store.work.exists():
            store._check_resumable(recorded)
            return store
        try:
            if store.work.exists():  # left by an interrupted run: start over
                shutil.rmtree(store.work)
            store._build(calibration, recorded, class_names)
        except OSError as exc:
            shutil.rmtree(store.work, ignore_errors=True)
            raise OutputError(f"{path}: cannot write ({exc.strerror or first_line(exc)})") from None
        return store

    def _check_resumable(self, recorded: Mapping[str, Any]) -> None:
        zarr = _zarr()
        try:
            before = zarr.open_group(self.work, mode="r").attrs.get(DESCRIPTION_KEY)
        except Exception as exc:
            raise OutputError(
                f"{self.path}: cannot resume, the partial store is unreadable ({first_line(exc)})"
            ) from None
        if _jsonable(before) != _jsonable(dict(recorded)):
            raise OutputError(
                f"{self.path}: cannot resume, the partial store was made by a different run "
                "(model, options or input): rerun without --resume to start over"
            )

    def _build(
        self, calibration: Calibration, recorded: Mapping[str, Any], class_names: Sequence[str]
    ) -> None:
        from ome_zarr.writer import add_metadata, write_multiscales_metadata

        zarr, fmt = _zarr(), _format(self.version)
        group = zarr.open_group(self.work, mode="w", zarr_format=fmt.zarr_format)
        store_axes = ngff_order(self.axes)
        datasets = []
        for level in range(self.levels):
            shape = self._level_shape(level)
            chunks = self._chunks(shape, level)
            options: dict[str, Any] = {
                "dimension_names": [a["name"] for a in ngff_axes(store_axes, calibration)]
            }
            if fmt.zarr_format == 2:
                options = {"chunk_key_encoding": {"name": "v2", "separator": "/"}}  # as NGFF 0.4 asks
            group.create_array(
                str(level),
                shape=tuple(shape[self.axes.index(a)] for a in store_axes),
                chunks=tuple(chunks[self.axes.index(a)] for a in store_axes),
                dtype=self.dtype,
                fill_value=0,
                **options,
            )
            scale = ngff_scale(store_axes, calibration)
            scale = [s * 2**level if a in "YX" else s for a, s in zip(store_axes, scale, strict=True)]
            datasets.append(
                {"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": scale}]}
            )
        axes = ngff_axes(store_axes, calibration)
        write_multiscales_metadata(group, datasets, fmt, axes=axes, name=self.path.name)
        if self.labels:
            label = {
                "version": fmt.version,
                "colors": [
                    {"label-value": k, "rgba": label_rgba(k)} for k in range(max(len(class_names), 1))
                ],
                "properties": [{"label-value": k, "class": name} for k, name in enumerate(class_names)],
            }
            if self.into is not None:
                label["source"] = {"image": "../../"}
            add_metadata(group, {"image-label": label}, fmt=fmt)
        group.attrs[DESCRIPTION_KEY] = _jsonable(dict(recorded))
        (self.work / _RECORDS).mkdir()

    def _level_shape(self, level: int) -> tuple[int, ...]:
        return tuple(
            -(-n // 2**level) if a in "YX" else n for a, n in zip(self.axes, self.shape, strict=True)
        )

    def _chunks(self, shape: tuple[int, ...], level: int) -> tuple[int, ...]:
        """Chunks of a level: one frame, Y and X cut at the level's share of :attr:`chunk`."""
        sizes, side = dict(zip(self.axes, shape, strict=True)), max(1, self.chunk >> level)
        block = {"Y": min(sizes["Y"], side), "X": min(sizes["X"], side)}
        return tuple(
            block.get(a, n if a in self.block_axes else 1) for a, n in zip(self.axes, shape, strict=True)
        )

    # -- writing (any process) ---------------------------------------------------------

    @property
    def n_frames(self) -> int:
        """Frames in the store: the product of the leading axes."""
        return int(np.prod(self.shape[: len(self.axes) - len(self.block_axes)], dtype=np.int64))

    def write(self, frame: int, block: np.ndarray, origin: tuple[int, int] = (0, 0)) -> None:
        """Write frame ``frame``'s ``block`` (the block axes; the whole frame, or a region
        whose Y, X ``origin`` is a multiple of :attr:`chunk`) into every level, then record
        it complete."""
        arrays = self._arrays()
        store_axes = ngff_order(self.axes)
        lead_axes = self.axes[: len(self.axes) - len(self.block_axes)]
        where = dict(zip(lead_axes, np.unravel_index(frame, self.shape[: len(lead_axes)]), strict=True))
        order = [self.block_axes.index(a) for a in store_axes if a in self.block_axes]
        data = np.asarray(block, self.dtype)
        for level, array in enumerate(arrays):
            step = 2**level
            sampled = data[
                tuple(slice(None, None, step) if a in "YX" else slice(None) for a in self.block_axes)
            ]
            region = {
                a: slice(start // step, start // step + sampled.shape[self.block_axes.index(a)])
                for a, start in zip("YX", origin, strict=True)
            }
            key = tuple(int(where[a]) if a in where else region.get(a, slice(None)) for a in store_axes)
            array[key] = np.transpose(sampled, order)
        self._record(frame, origin).touch()

    @functools.lru_cache(maxsize=8)  # noqa: B019 (a few stores per process, alive for the run)
    def _arrays(self) -> list[Any]:
        """The level arrays, opened once per process."""
        group = _zarr().open_group(self.work, mode="r+")
        return [group[str(level)] for level in range(self.levels)]

    def _record(self, frame: int, origin: tuple[int, int]) -> Path:
        return self.work / _RECORDS / f"{frame}.{origin[0]}.{origin[1]}"

    def done(self, frame: int, origin: tuple[int, int] = (0, 0)) -> bool:
        """Whether frame ``frame`` (its region at ``origin``) was written completely."""
        return self._record(frame, origin).exists()

    # -- completing --------------------------------------------------------------------

    def finish(self) -> Path:
        """Move the complete store into place (replacing an old one where asked); returns its path."""
        if self.path.exists() and not self.overwrite:
            raise OutputError(
                f"{self.path}: output exists, written meanwhile by another run (pass --overwrite "
                f"to replace it); this run's is kept in {self.work}"
            )
        shutil.rmtree(self.work / _RECORDS, ignore_errors=True)
        try:
            self.path.parent.mkdir(exist_ok=True)  # an input image's first labels group
            if self.path.exists():
                old = self.path.parent / f".{self.path.name}.old"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(self.path, old)
                os.replace(self.work, self.path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(self.work, self.path)
            if self.into is not None:
                self._list_in_labels_group()
        except OSError as exc:
            raise OutputError(
                f"{self.path}: cannot move into place ({exc.strerror or first_line(exc)})"
            ) from None
        return self.path

    def _list_in_labels_group(self) -> None:
        """Name the new image-label in its ``labels`` group's metadata (once)."""
        from ome_zarr.writer import add_metadata, get_metadata

        assert self.into is not None
        fmt = _format(self.version)
        group = _zarr().open_group(self.into, mode="a", zarr_format=fmt.zarr_format)
        names = [n for n in get_metadata(group).get("labels", []) if n != self.path.name]
        listing: dict[str, Any] = {"labels": [*names, self.path.name]}
        if fmt.zarr_format == 3:  # NGFF 0.5 versions every group's "ome" attributes
            listing["version"] = fmt.version
        add_metadata(group, listing, fmt=fmt)

    def discard(self) -> None:
        """Remove the partial store (a run that failed and cannot be resumed)."""
        shutil.rmtree(self.work, ignore_errors=True)


def in_image_labels(path: Path) -> bool:
    """Whether ``path`` names an image-label in the ``labels`` group of an OME-Zarr image."""
    return path.parent.name == "labels" and _image_version(path.parent.parent) is not None


def _image_version(group: Path) -> str | None:
    """The NGFF version of the OME-Zarr image at ``group``; None if it is none."""
    if not any((group / name).is_file() for name in ("zarr.json", ".zattrs")):
        return None
    from ome_zarr.writer import get_metadata

    try:
        multiscales = get_metadata(_zarr().open_group(group, mode="r")).get("multiscales")
    except Exception:  # not a zarr group
        return None
    if not multiscales:
        return None
    return "0.4" if (group / ".zattrs").is_file() else "0.5"


def _jsonable(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples as lists...)."""
    return json.loads(json.dumps(value, default=str))


class OmeZarrWriter:
    """An OME-Zarr output behind the :class:`~ernet.runtime.io.writers.Writer` interface:
    frames in order; the store appears under its name only when the block completes.
    Integer outputs without a channel axis are image-labels, one colour per class
    (``description["class_names"]``); others are multiscale images."""

    def __init__(
        self,
        path: Path,
        shape: tuple[int, ...],
        axes: str,
        dtype: np.dtype,
        calibration: Calibration,
        *,
        description: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> None:
        refuse_existing(path, overwrite)
        self.path, self._next = path, 0
        self._args = (path, tuple(shape), axes, dtype, calibration)
        labels = np.issubdtype(dtype, np.integer) and not any(a in CHANNEL_AXES for a in axes)
        self._options: dict[str, Any] = {
            "description": description,
            "labels": labels,
            "class_names": (description or {}).get("class_names", ()),
            "overwrite": overwrite,
        }
        lead = len(axes.rstrip("CYXS"))
        self.block_shape = tuple(shape[lead:])
        self._store: FrameStore | None = None

    def __enter__(self) -> OmeZarrWriter:
        self._store = FrameStore.create(*self._args, **self._options)
        return self

    def write(self, block: np.ndarray) -> None:
        """Write the next frame's block."""
        assert self._store is not None
        if tuple(block.shape) != self.block_shape:
            raise ValueError(f"block of shape {block.shape}, expected {self.block_shape}")
        try:
            self._store.write(self._next, block)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write ({exc.strerror or first_line(exc)})") from None
        self._next += 1

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._store is not None
        if exc_type is None and self._next == self._store.n_frames:
            self._store.finish()
        else:
            self._store.discard()
            if exc_type is None:
                raise OutputError(f"{self.path}: {self._next} of {self._store.n_frames} frames written")
