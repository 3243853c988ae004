"""Reading images and stacks, writing masks atomically.

TIFF (ImageJ / OME / plain, BigTIFF) through tifffile; PNG, JPEG and BMP through
Pillow. Every problem with an input is raised as one :class:`InputError` line
naming the file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tifffile

from .errors import InputError, OutputError, first_line

TIFF_SUFFIXES = (".tif", ".tiff")
PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
SUPPORTED_SUFFIXES = TIFF_SUFFIXES + PILLOW_SUFFIXES
#: ITU-R 601 luma weights, as Pillow uses for PNG/JPEG, so RGB reads alike in every format.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
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


@dataclass
class Image:
    """Pixels of an image or stack: ``data`` has axes ``axes`` ending in ``YX``."""

    path: Path
    data: np.ndarray
    axes: str
    resolution: tuple[float, float] | None = None  # pixels per unit along X, Y
    resolution_unit: int | None = None  # TIFF ResolutionUnit tag value
    unit: str | None = None  # ImageJ unit, e.g. "micron"

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.data.shape[-2], self.data.shape[-1]

    @property
    def n_frames(self) -> int:
        return int(np.prod(self.data.shape[:-2], dtype=np.int64))

    def frames(self) -> Iterator[np.ndarray]:
        """The 2-D frames, in file order."""
        yield from self.data.reshape(-1, *self.frame_shape)


def read_image(path: Path | str) -> Image:
    """Read a 2-D image or a stack whose leading axes are time and/or z."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        image = _read_tiff(path)
    elif suffix in PILLOW_SUFFIXES:
        image = _read_pillow(path)
    else:
        raise InputError(f"{path}: unsupported file type '{suffix}' (use {', '.join(SUPPORTED_SUFFIXES)})")
    _validate(image)
    return image


def _read_tiff(path: Path) -> Image:
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise InputError(f"{path}: TIFF holds no image data")
            series = tif.series[0]
            data = series.asarray()
            axes = series.axes
            page = tif.pages.first
            tags = page.tags
            resolution = None
            if "XResolution" in tags and "YResolution" in tags:
                resolution = (_rational(tags["XResolution"].value), _rational(tags["YResolution"].value))
            unit_tag = tags["ResolutionUnit"].value if "ResolutionUnit" in tags else None
            unit = (tif.imagej_metadata or {}).get("unit")
    except InputError:
        raise
    except Exception as exc:  # tifffile raises many types for damaged files
        raise InputError(f"{path}: not a readable TIFF ({first_line(exc)})") from None
    if "S" in axes:  # RGB(A) samples: use luminance, ERNet sees one channel
        data, axes = _samples_to_gray(data, axes)
    return Image(path, data, axes, resolution, int(unit_tag) if unit_tag else None, unit)


def _read_pillow(path: Path) -> Image:
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as im:
            if im.mode not in ("L", "I;16", "I;16B", "I", "F"):
                im = im.convert("L")
            data = np.asarray(im)
    except Exception as exc:
        raise InputError(f"{path}: not a readable image ({first_line(exc)})") from None
    return Image(path, data, "YX")


def _validate(image: Image) -> None:
    data, path = image.data, image.path
    if data.size == 0:
        raise InputError(f"{path}: image is empty (shape {data.shape})")
    if data.ndim < 2 or data.ndim > 2 + MAX_LEADING_AXES:
        raise InputError(
            f"{path}: wrong dimensionality: {data.ndim}-D with axes '{image.axes}' "
            f"(expected a 2-D frame or a stack of up to {MAX_LEADING_AXES} leading axes)"
        )
    if image.axes[-2:] != "YX":
        raise InputError(f"{path}: last two axes are '{image.axes[-2:]}', expected Y and X")
    if "C" in image.axes and data.shape[image.axes.index("C")] > 1:
        raise InputError(
            f"{path}: has {data.shape[image.axes.index('C')]} channels; "
            "ERNet segments one channel: save the ER channel alone"
        )
    if not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)):
        raise InputError(f"{path}: unsupported pixel type {data.dtype}")


def _samples_to_gray(data: np.ndarray, axes: str) -> tuple[np.ndarray, str]:
    s = axes.index("S")
    gray = np.moveaxis(data, s, -1)[..., :3].astype(np.float32) @ _LUMA
    if np.issubdtype(data.dtype, np.integer):
        gray = np.rint(gray).astype(data.dtype)
    return gray, axes.replace("S", "")


def _rational(value: object) -> float:
    if isinstance(value, tuple):
        num, den = value
        return float(num) / float(den) if den else 0.0
    return float(value)  # type: ignore[arg-type]


def mask_path(image: Path, out_dir: Path | None = None) -> Path:
    """Where ``ernet-infer`` writes the mask of ``image``: ``DIR/<stem>_mask.tif``
    (DIR defaults to the image's folder; ``.ome.tif`` counts as one suffix)."""
    stem = image.stem
    if image.name.lower().endswith((".ome.tif", ".ome.tiff")):
        stem = image.name[: image.name.lower().rindex(".ome.")]
    return (out_dir or image.parent) / f"{stem}_mask.tif"


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; outputs get the usual mode
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _imagej_compatible(axes: str) -> bool:
    order = "TZCYX"
    return all(a in order for a in axes) and list(axes) == sorted(axes, key=order.index)


def write_mask(path: Path, mask: np.ndarray, like: Image, *, overwrite: bool = False) -> None:
    """Write a uint8 class-id ``mask`` shaped like ``like``'s data, keeping its axes
    and pixel size. The file appears only when complete."""
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: output exists (pass --overwrite to replace it)")
    if mask.shape != like.data.shape:
        raise ValueError(f"mask shape {mask.shape} differs from input shape {like.data.shape}")
    kwargs: dict[str, object] = {}
    if like.resolution:
        kwargs["resolution"] = like.resolution
        if like.resolution_unit is not None:
            kwargs["resolutionunit"] = like.resolution_unit
    metadata: dict[str, object] = {"axes": like.axes}
    imagej = _imagej_compatible(like.axes)
    if imagej and like.unit:
        metadata["unit"] = like.unit
    with atomic_output(path) as tmp:
        tifffile.imwrite(
            tmp,
            mask.astype(np.uint8, copy=False),
            imagej=imagej,
            metadata=metadata,
            photometric="minisblack",
            **kwargs,  # type: ignore[arg-type]
        )
