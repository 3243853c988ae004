"""Zarr and OME-Zarr inputs: plain zarr v2/v3 arrays, NGFF 0.4/0.5 images, bioformats2raw.

The probe looks for zarr's metadata files only; zarr and ome-zarr-models are imported
when a store is opened (the ``zarr`` extra). NGFF metadata is read and validated through
ome-zarr-models; level 0 (the first dataset) is segmented, one Y x X plane per read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError, first_line
from ..calibration import Calibration
from ..source import Layout, one_series
from .ngff import axis_letters, calibration_of
from .store import DESCRIPTION_KEY

SUFFIXES = (".zarr",)
#: Files of zarr's metadata (v2: arrays, groups, attributes; v3: every node).
_METADATA = (".zarray", ".zgroup", ".zattrs", "zarr.json")
_NEEDS_EXTRA = "reading zarr needs the 'zarr' extra: pip install 'ernet[zarr]'"


def probe(path: Path) -> bool:
    """Whether ``path`` is a directory holding zarr metadata (a zarr store's root node)."""
    return path.is_dir() and any((path / name).is_file() for name in _METADATA)


class _ZarrPages:
    """Planes of a zarr array: page ``k`` is the Y x X plane at the ``k``-th index (C
    order) of the leading axes, read when asked for (or a region of it: its chunks only)."""

    def __init__(self, path: Path, array: Any) -> None:
        self.path, self.array = path, array
        self.lead_shape = tuple(array.shape[:-2])

    def read(self, frames: Iterable[tuple[int, int]]) -> Iterator[np.ndarray]:
        for i, k in frames:
            yield self._read(i, k)

    def read_region(self, frame: int, page: int, rows: slice, columns: slice) -> np.ndarray:
        """Only the chunks of a Y x X region of a plane."""
        return self._read(frame, page, (rows, columns))

    def _read(self, frame: int, page: int, region: tuple[slice, ...] = ()) -> np.ndarray:
        index = tuple(int(j) for j in np.unravel_index(page, self.lead_shape))
        try:
            return np.asarray(self.array[index + region])
        except Exception as exc:  # zarr and its codecs raise many types for damaged chunks
            raise InputError(
                f"{self.path}: not a readable zarr array (frame {frame}: {first_line(exc)})"
            ) from None


def layout(path: Path, series: int = 0) -> Layout:
    """The planes of a zarr array or of level 0 of an OME-Zarr image (``series`` of a
    bioformats2raw store); InputError naming the store for every problem."""
    node = _open(path)
    if not _is_group(node):
        one_series(path, series)
        return _array_layout(path, node, _array_axes(node), Calibration(), node.attrs.asdict())
    return _group_layout(path, node, series)


def image_group(path: Path, series: int | None = None) -> Path:
    """The group of the OME-Zarr image at ``path`` (of its ``series`` in a bioformats2raw
    store): where its ``labels`` go. InputError if ``path`` holds no OME-Zarr image."""
    not_image = InputError(f"{path}: not an OME-Zarr image, so no labels can be added to it")
    if not probe(path):
        raise not_image
    node = _open(path)
    if not _is_group(node):
        raise not_image
    ome = _ome_attributes(node)
    if "bioformats2raw.layout" in ome:
        return path / str(series or 0)
    if "multiscales" in ome:
        return path
    raise not_image


def _open(path: Path) -> Any:
    """The zarr array or group at ``path``; InputError naming it if it cannot be opened."""
    try:
        import zarr
    except ImportError:
        raise InputError(f"{path}: {_NEEDS_EXTRA}") from None
    try:
        return zarr.open(store=str(path), mode="r")
    except Exception as exc:  # zarr raises many types for unreadable metadata
        raise InputError(f"{path}: not a readable zarr store ({first_line(exc)})") from None


def _is_group(node: Any) -> bool:
    import zarr

    return isinstance(node, zarr.Group)


def _array_axes(array: Any) -> str:
    """Axis letters of a plain array: zarr v3's ``dimension_names`` where given (see
    :func:`axis_letters`), else Y, X last and Q before."""
    ndim = len(array.shape)
    default = "Q" * max(ndim - 2, 0) + "YX"[max(2 - ndim, 0) :]
    names = getattr(array.metadata, "dimension_names", None) or ()
    if not any(name is not None for name in names):
        return default
    return "".join(
        d if name is None else axis_letters([{"name": name}]) for name, d in zip(names, default, strict=True)
    )


def _array_layout(
    path: Path, array: Any, axes: str, calibration: Calibration, attributes: Mapping[str, Any]
) -> Layout:
    """The layout of ``array`` read plane by plane."""
    description = attributes.get(DESCRIPTION_KEY)
    return Layout(
        path,
        axes,
        tuple(array.shape),
        np.dtype(array.dtype),
        axes[-2:],
        _ZarrPages(path, array),
        calibration,
        description if isinstance(description, dict) else {},
    )


def _group_layout(path: Path, group: Any, series: int) -> Layout:
    """An NGFF image (or a bioformats2raw store's ``series``) in ``group``, else its one
    array."""
    from pydantic import ValidationError

    attributes = group.attrs.asdict()
    version3 = group.metadata.zarr_format == 3
    ome = _ome_attributes(group)
    image_model, bioformats2raw_model = _models(version3)
    try:
        if "bioformats2raw.layout" in ome:
            group = _series_group(path, group, series, bioformats2raw_model)
            attributes = group.attrs.asdict()
        elif "multiscales" in ome:
            one_series(path, series)
        else:
            one_series(path, series)
            return _only_array(path, group)
        image = image_model.from_zarr(group)
    except ValidationError as exc:
        error = exc.errors()[0]
        where, message = ".".join(map(str, error["loc"])), " ".join(str(error["msg"]).split())
        raise InputError(f"{path}: invalid OME-Zarr metadata ({where}: {message})") from None
    except ValueError as exc:  # ome-zarr-models' check that the datasets are arrays
        raise InputError(f"{path}: missing array in the OME-Zarr image ({first_line(exc)})") from None
    multiscale = image.ome_attributes.multiscales[0]
    dataset = multiscale.datasets[0]
    axes = [axis.model_dump() for axis in multiscale.axes]
    scale = _scale(dataset.coordinateTransformations, multiscale.coordinateTransformations)
    calibration = calibration_of(axes, scale) if scale else Calibration()
    return _array_layout(path, group[dataset.path], axis_letters(axes), calibration, attributes)


def _ome_attributes(group: Any) -> dict[str, Any]:
    """A group's NGFF attributes: NGFF 0.5 keeps them under ``ome``, 0.4 at the top."""
    attributes = dict(group.attrs.asdict())
    return dict(attributes.get("ome", {})) if group.metadata.zarr_format == 3 else attributes


def _models(version3: bool) -> tuple[Any, Any]:
    """ome-zarr-models' image and bioformats2raw models of NGFF 0.5 (zarr v3) or 0.4 (v2)."""
    if version3:
        from ome_zarr_models.v05.bioformats2raw import BioFormats2Raw as BioFormats2Raw05
        from ome_zarr_models.v05.image import Image as Image05

        return Image05, BioFormats2Raw05
    from ome_zarr_models.v04.bioformats2raw import BioFormats2Raw as BioFormats2Raw04
    from ome_zarr_models.v04.image import Image as Image04

    return Image04, BioFormats2Raw04


def _series_group(path: Path, group: Any, series: int, model: Any) -> Any:
    """The image group of ``series`` in a bioformats2raw store (validated as one)."""
    count = len(model.from_zarr(group).image_paths)
    if count == 0:
        raise InputError(f"{path}: a bioformats2raw store with no image or array in it")
    if not 0 <= series < count:
        raise InputError(f"{path}: has {count} series; --series {series} is outside 0..{count - 1}")
    return group[str(series)]


def _only_array(path: Path, group: Any) -> Layout:
    """The one array of a group without NGFF metadata."""
    names = sorted(name for name, _ in group.arrays())
    if not names:
        raise InputError(f"{path}: a zarr group with no image or array in it (no NGFF multiscales)")
    if len(names) > 1:
        raise InputError(
            f"{path}: a zarr group holding {len(names)} arrays ({', '.join(names[:4])}) and no NGFF "
            f"multiscales; give one of them, e.g. {path / names[0]}"
        )
    array = group[names[0]]
    return _array_layout(path, array, _array_axes(array), Calibration(), array.attrs.asdict())


def _scale(*transforms: Sequence[Any] | None) -> list[float] | None:
    """The product of the ``scale`` transforms among ``transforms`` (a dataset's, the
    multiscale's); None where one is stored in an array rather than given."""
    total: list[float] | None = None
    for transform in transforms:
        if transform is None:
            continue
        step = getattr(transform[0], "scale", None)  # the first transform is the scale
        if step is None:
            return None
        total = list(step) if total is None else [a * b for a, b in zip(total, step, strict=True)]
    return total
